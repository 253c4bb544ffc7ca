//! Orchestration: one run of the engine over a registry's repositories,
//! a collection of runs across accounts and regions, and the report both
//! produce.
//!
//! * [`engine`] chooses repositories, lists them, plans, holds what is in
//!   use, and (unless dry run) has `apply` delete and archive, compare
//!   first, and record every outcome.
//! * [`collection`] runs the engine over many targets (accounts x regions)
//!   with one inventory per target, and lists targets for fan-out.
//! * [`collected`] is what a collection across targets reports: each
//!   target's report, and the totals.
//! * [`report`] is the run report: per repository its counts, and its image
//!   lists unless only a summary is kept.
//! * [`lines`] is the JSON log lines, one per image outcome and per
//!   repository, written as the run goes.
//! * [`metrics`] is a collection's CloudWatch metrics, as embedded-metric
//!   log lines.
//! * [`totals`] is what a run's counts add up to: per repository, and
//!   the summary over a run.
//! * [`reclaim`] is what a repository's changes free (image sizes, or with
//!   `settings.exactReclaim` the layers no kept image uses) and the
//!   estimated saving a month.

mod apply;
pub mod collected;
pub mod collection;
pub mod engine;
pub mod lines;
pub mod metrics;
pub mod reclaim;
pub mod report;
pub mod totals;
