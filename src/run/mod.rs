//! Orchestration: one run of the engine over a registry's repositories,
//! a collection of runs across accounts and regions, and the report both
//! produce.
//!
//! * [`engine`] chooses repositories, lists them, plans, holds what is in
//!   use, deletes (unless dry run) and records every outcome.
//! * [`collection`] runs the engine over many targets (accounts x regions)
//!   with one inventory per target, and lists targets for fan-out.
//! * [`report`] is the run report and the JSON log lines.

pub mod collection;
pub mod engine;
pub mod report;
