//! ecr-gc garbage-collects Amazon ECR images with exact ECR lifecycle-policy
//! semantics. It runs as an AWS Lambda function (on a schedule, or within
//! seconds of a push) and as a CLI; both are thin shells over one engine.
//!
//! The code map, the layers and their invariants are in ARCHITECTURE.md.
//! The folders are the layers, and dependencies point down only:
//!
//! * entry points: [`lambda`] (the Lambda handler, fan-out and the queue
//!   consumer) and [`cli`];
//! * [`run`]: the engine, the collection across accounts and regions, and
//!   the report;
//! * adapters: [`aws`] (the clients, ECR, targets and roles) and
//!   [`inventory`] (what is in use); the pure planner, [`plan`](mod@plan), beside them;
//! * [`policy`]: the document, its rules, settings and patterns;
//! * [`model`]: images and their ids, and the checked names of
//!   repositories, accounts and regions.
#![forbid(unsafe_code)]
// Library code returns errors; only tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod aws;
pub mod cli;
pub mod inventory;
pub mod lambda;
pub mod model;
pub mod plan;
pub mod policy;
pub mod run;

pub use model::{AccountId, Image, Region, RepositoryName};
pub use plan::{Plan, plan};
pub use policy::Policy;
pub use run::report::{Collection, Report};
