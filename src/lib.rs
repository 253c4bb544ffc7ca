//! ecr-gc garbage-collects Amazon ECR images with exact ECR lifecycle-policy
//! semantics. It runs as an AWS Lambda function (on a schedule, or within
//! seconds of a push) and as a CLI; both are thin shells over one engine.
//!
//! A tour of the layout, from the pure core outwards:
//!
//! * [`model`] holds our vocabulary: [`model::Image`], image ids and ECR's
//!   per-image failures. No SDK types leak past the ECR adapter.
//! * [`pattern`] is the `*` wildcard matcher that `tagPatternList` and the
//!   repository globs share.
//! * [`policy`] parses and validates the policy document: ECR's `rules`,
//!   verbatim, plus ecr-gc's `settings`. It refuses what ECR refuses, and
//!   what ecr-gc does not implement, with a message naming rule and field.
//! * [`settings`] holds ecr-gc's own settings from the same document:
//!   repository globs, the grace period and the blast-radius limits.
//! * [`units`] says which images are multi-arch children or referrers, so
//!   that they follow their index or subject instead of the rules.
//! * [`plan`] is the planner: images + policy + now -> a decision and a
//!   reason for every image. No I/O, no clock.
//! * [`targets`] parses `ECR_GC_TARGETS`: the regions, and the accounts
//!   with the roles to assume.
//! * [`aws`] holds what the AWS adapters share: the clients, error codes,
//!   pagination, and the [`aws::Connector`] that assumes each target
//!   account's role once.
//! * [`inventory`] finds the images in use (ECS, Lambda, an external list)
//!   and resolves them to digests; it fails closed.
//! * [`ecr`] is the only module that talks to ECR: pagination, batches of at
//!   most 100, ECR's failures kept verbatim, API calls counted.
//! * [`engine`] runs a collection: choose repositories, list, plan, delete
//!   (unless dry run), and report.
//! * [`collect`] runs the engine over many targets (accounts x regions):
//!   one inventory per target, a failed target reported on its own.
//! * [`fanout`] is the SQS adapter: one message per repository out, and
//!   the queue's batches in.
//! * [`report`] is the run report and the JSON log lines.
//! * [`handler`] turns a Lambda event and the environment into an engine run.
//! * [`cli`] is the `plan` and `run` subcommands.
#![forbid(unsafe_code)]
// Library code returns errors; only tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod aws;
pub mod cli;
pub mod collect;
pub mod ecr;
pub mod engine;
pub mod fanout;
pub mod handler;
pub mod inventory;
pub mod model;
pub mod pattern;
pub mod plan;
pub mod policy;
pub mod report;
pub mod settings;
pub mod targets;
pub mod units;
