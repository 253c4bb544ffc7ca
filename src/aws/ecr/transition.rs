//! Archiving in ECR: UpdateImageStorageClass, one image per call (the API
//! takes one `imageId`), by digest, to `ARCHIVE`.
//!
//! Treated like a delete: `ImageNotFoundException` means already gone;
//! a failure ECR calls transient (a server error or throttling that
//! outlasted the SDK's own retries) is retried for that image, with
//! backoff; every other failure is kept verbatim, with ECR's code and
//! message, in the `ImageFailure` shape. An image is reported archived only
//! when ECR answers that its `imageStatus` is `ARCHIVED`: never assumed.

use aws_sdk_ecr::types::{ImageIdentifier, ImageStatus as SdkStatus, TargetStorageClass};

use super::{Ecr, bump};
use crate::aws::CallError;
use crate::model::{ImageFailure, ImageId};

/// Whole-call failures of UpdateImageStorageClass worth another try.
pub const TRANSIENT_CALL_FAILURES: [&str; 4] = [
    "ServerException",
    "ThrottlingException",
    "TooManyRequestsException",
    "LimitExceededException",
];

/// The outcome of archiving a set of images in one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransitionOutcome {
    /// Digests ECR answered `ARCHIVED` for.
    pub archived: Vec<String>,
    /// Digests ECR answered `ImageNotFoundException` for.
    pub already_gone: Vec<String>,
    /// Digests not sent, because the stop time had come.
    pub not_attempted: Vec<String>,
    /// Images not archived, in ECR's shape.
    pub failures: Vec<ImageFailure>,
}

/// What one call said of one image.
enum Answer {
    Archived,
    Gone,
    Transient(ImageFailure),
    Failed(ImageFailure),
}

impl Ecr {
    /// Archives the images with these digests in `repository`, one
    /// UpdateImageStorageClass call each, in the order given.
    pub async fn transition(&self, repository: &str, digests: &[String]) -> TransitionOutcome {
        let mut outcome = TransitionOutcome::default();
        for (at, digest) in digests.iter().enumerate() {
            let mut attempt = 0;
            loop {
                if self.time_is_up() {
                    outcome.not_attempted.extend(digests[at..].iter().cloned());
                    return outcome;
                }
                match self.transition_once(repository, digest).await {
                    Answer::Archived => outcome.archived.push(digest.clone()),
                    Answer::Gone => outcome.already_gone.push(digest.clone()),
                    Answer::Failed(failure) => outcome.failures.push(failure),
                    Answer::Transient(failure) => {
                        if attempt < self.retry.attempts {
                            tokio::time::sleep(self.retry.delay(attempt)).await;
                            attempt += 1;
                            continue;
                        }
                        outcome.failures.push(failure);
                    }
                }
                break;
            }
        }
        outcome
    }

    async fn transition_once(&self, repository: &str, digest: &str) -> Answer {
        const OP: &str = "UpdateImageStorageClass";
        bump(&self.calls.update_image_storage_class);
        let failure = |code: &str, reason: String| ImageFailure {
            image_id: ImageId {
                image_digest: Some(digest.to_owned()),
                image_tag: None,
            },
            failure_code: code.to_owned(),
            failure_reason: reason,
        };
        let sent = self
            .lanes
            .update_image_storage_class
            .paced(
                self.lanes
                    .update_image_storage_class
                    .update_image_storage_class()
                    .set_registry_id(self.registry_id.clone())
                    .repository_name(repository)
                    .image_id(ImageIdentifier::builder().image_digest(digest).build())
                    .target_storage_class(TargetStorageClass::Archive),
                |request| request.send(),
            )
            .await;
        match sent {
            Ok(out) => match out.image_status() {
                Some(SdkStatus::Archived) => Answer::Archived,
                other => Answer::Failed(failure(
                    "NotArchived",
                    format!(
                        "UpdateImageStorageClass answered imageStatus {}, not ARCHIVED",
                        other.map_or("(none)", |s| s.as_str())
                    ),
                )),
            },
            Err(error) => {
                let error = CallError::from_sdk(OP, &error);
                if error.code == "ImageNotFoundException" {
                    return Answer::Gone;
                }
                let lasting = !TRANSIENT_CALL_FAILURES.contains(&error.code.as_str());
                let failure = failure(&error.code, error.message);
                if lasting {
                    Answer::Failed(failure)
                } else {
                    Answer::Transient(failure)
                }
            }
        }
    }
}
