//! The integration tests: one binary, real components where it counts.
//!
//! * `moto`: the engine and the handler against `moto_server` over HTTP.
//! * `in_use`: the in-use inventory (ECS, Lambda, SSM, S3) against it.
//! * `schedules`, `batch`, `codebuild`, `apprunner`, `sagemaker`:
//!   EventBridge rules and Scheduler schedules, AWS Batch, CodeBuild
//!   projects, App Runner services (which `scripts/emulator.py` serves),
//!   SageMaker models and endpoints, through the binary.
//! * `eks`: EKS clusters' pods and pod templates, through the binary,
//!   against a local Kubernetes API over HTTPS (`kube_api.py`).
//! * `archive`: the archive storage class end to end: transitions and
//!   deletions from the archive, the fewest calls, a dry run, refusals.
//! * `archive_properties`: random repositories and policies over both
//!   storage classes through the engine; no archive or delete may break a
//!   protection.
//! * `extensions`: keep rules, expiring by last pull, regexes, semver
//!   order and groups in one policy, through the CLI and the Lambda.
//! * `per_repository`: `settings.overrides` and `policySource:
//!   repository` through the CLI and the Lambda; unreadable and invalid
//!   repository policies delete nothing there.
//! * `every_kind`: one workload of each kind on one repository; each keeps
//!   its image, and any one unreadable source deletes nothing.
//! * `mocks`: what the emulator cannot do (pagination, per-image failures),
//!   through `aws-smithy-mocks`.
//! * `faults`: throttling, 500s, resets and stalls from a proxy in front of
//!   moto_server; the report still matches the registry.
//! * `properties`: random registries, policies and inventories through the
//!   engine; no delete batch may break a protection.
//! * `binary`: the CLI and the Lambda runtime loop, as a user runs them.
//! * `failure_paths`: the failure side of each documented invariant.
//! * `template`: the SAM template, through cfn-lint and sam validate.
//! * `trust`: the trust boundaries, tried with hostile and stale input
//!   through the real binary: events, queue messages, in-use lists.

mod apprunner;
mod archive;
mod archive_properties;
mod batch;
mod binary;
mod codebuild;
mod eks;
mod every_kind;
mod extensions;
mod failure_paths;
mod faults;
mod html;
mod in_use;
mod mocks;
mod moto;
mod organisation;
mod per_repository;
pub mod properties;
mod reclaim;
mod sagemaker;
mod schedules;
mod support;
mod template;
mod terminal;
mod trust;
