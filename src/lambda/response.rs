//! What an invocation answers: a [`Response`] (a collection, a fan-out, an
//! SQS partial batch response or an ignored event), or a [`HandlerError`],
//! which fails the invocation so that its trigger retries and alarms fire.

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::Diagnostic;
use serde::Serialize;
use thiserror::Error;

use super::config::ConfigError;
use super::event::EventError;
use super::fanout::FanOut;
use crate::run::engine::EngineError;
use crate::run::report::{Cause, Collection};

/// Why an invocation failed. Each variant is a systemic failure.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("every repository failed ({failed}); the first: {first}")]
    EveryRepositoryFailed { failed: usize, first: String },
    #[error("every target failed ({failed}); the first: {first}")]
    EveryTargetFailed { failed: usize, first: String },
    #[error(
        "fan-out incomplete: {not_sent} of {total} messages could not be sent to the queue; the first: {first}"
    )]
    FanOutIncomplete {
        not_sent: usize,
        total: usize,
        first: String,
    },
    #[error(
        "the event asks to delete (\"dryRun\": false), but the function's ECR_GC_DRY_RUN is true: an event can only brake, never turn deleting on; set ECR_GC_DRY_RUN=false (the template's DryRun) to delete. Nothing was collected"
    )]
    DeletionNotAllowed,
    #[error("{reason}: an event cannot widen the policy's settings. Nothing was collected")]
    RepositoryNotSelected { reason: String },
}

impl HandlerError {
    /// The error type Lambda reports, and the `errorType` of the
    /// `invocation failed` log line.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Config(_) => "InvalidConfiguration",
            HandlerError::Event(_) => "UnrecognizedEvent",
            HandlerError::Engine(EngineError::ListRepositories(_)) => "ListRepositoriesFailed",
            HandlerError::EveryRepositoryFailed { .. } => "EveryRepositoryFailed",
            HandlerError::EveryTargetFailed { .. } => "EveryTargetFailed",
            HandlerError::FanOutIncomplete { .. } => "FanOutIncomplete",
            HandlerError::DeletionNotAllowed => "DeletionNotAllowed",
            HandlerError::RepositoryNotSelected { .. } => "RepositoryNotSelected",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What an invocation returns.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// The repositories were collected in this invocation.
    Collection(Box<Collection>),
    /// The repositories were listed and sent to the fan-out queue.
    FanOut(Box<FanOut>),
    /// An SQS batch was collected: SQS's partial batch response.
    Batch(SqsBatchResponse),
    Ignored {
        trigger: Cause,
        ignored: String,
    },
}
