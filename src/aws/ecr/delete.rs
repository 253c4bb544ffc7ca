//! Deleting from ECR: BatchDeleteImage in chunks of 100, transient
//! per-image failures retried for those images only, `ImageNotFound` taken
//! as already gone, every other failure kept verbatim, and an image the
//! answer does not mention settled by listing the repository again.

use std::collections::HashSet;

use super::{DELETE_BATCH, Ecr, EcrError, bump, by_digest};
use crate::model::{ImageFailure, ImageId};

/// Per-image failure codes that are worth another try: ECR says the
/// trouble is upstream or in KMS, not with the image.
pub const TRANSIENT_FAILURES: [&str; 3] =
    ["UpstreamTooManyRequests", "UpstreamUnavailable", "KmsError"];

/// How often, and how patiently, transient per-image failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRetry {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// The first backoff; each retry doubles it.
    pub base_delay: std::time::Duration,
}

impl Default for ImageRetry {
    fn default() -> Self {
        ImageRetry {
            attempts: 3,
            base_delay: std::time::Duration::from_millis(200),
        }
    }
}

impl ImageRetry {
    pub(super) fn delay(&self, attempt: u32) -> std::time::Duration {
        self.base_delay.saturating_mul(1 << attempt.min(16))
    }
}

/// What one BatchDeleteImage call said.
#[derive(Default)]
struct Round {
    deleted: Vec<String>,
    failures: Vec<ImageFailure>,
    unaccounted: Vec<String>,
}

/// The outcome of deleting a set of images from one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Digests ECR confirmed deleted.
    pub deleted: Vec<String>,
    /// Digests ECR answered `ImageNotFound` for: gone already, which is
    /// what was wanted.
    pub already_gone: Vec<String>,
    /// Digests not sent, because the stop time had come.
    pub not_attempted: Vec<String>,
    /// Images not deleted, in ECR's shape.
    pub failures: Vec<ImageFailure>,
}

impl DeleteOutcome {
    /// Adds a later call's outcome, every part of it.
    pub fn extend(&mut self, later: DeleteOutcome) {
        self.deleted.extend(later.deleted);
        self.already_gone.extend(later.already_gone);
        self.not_attempted.extend(later.not_attempted);
        self.failures.extend(later.failures);
    }
}

impl Ecr {
    /// Deletes the images with these digests from `repository`, in chunks of
    /// at most [`DELETE_BATCH`].
    ///
    /// Per-image failures ECR calls transient ([`TRANSIENT_FAILURES`]) are
    /// retried, only for those images, up to the configured attempts with
    /// exponential backoff. `ImageNotFound` means already gone. Every other
    /// failure is kept as ECR returned it, never retried blindly. A chunk
    /// whose call fails as a whole (after the SDK's own retries) reports
    /// each of its images as a failure carrying the call's error code.
    /// Should ECR ever answer without accounting for an image, the
    /// repository is listed once more to find out, so the outcome never
    /// guesses.
    pub async fn delete(&self, repository: &str, digests: &[String]) -> DeleteOutcome {
        let mut outcome = DeleteOutcome::default();
        let mut unaccounted: Vec<String> = Vec::new();
        for chunk in digests.chunks(DELETE_BATCH) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            loop {
                if self.time_is_up() {
                    outcome.not_attempted.extend(pending);
                    break;
                }
                let round = self.delete_once(repository, &pending).await;
                outcome.deleted.extend(round.deleted);
                unaccounted.extend(round.unaccounted);
                let (transient, lasting): (Vec<ImageFailure>, Vec<ImageFailure>) =
                    round.failures.into_iter().partition(|f| {
                        TRANSIENT_FAILURES.contains(&f.failure_code.as_str())
                            && f.image_id.image_digest.is_some()
                    });
                for failure in lasting {
                    match (
                        &failure.image_id.image_digest,
                        failure.failure_code.as_str(),
                    ) {
                        (Some(digest), "ImageNotFound") => {
                            outcome.already_gone.push(digest.clone())
                        }
                        _ => outcome.failures.push(failure),
                    }
                }
                if transient.is_empty() {
                    break;
                }
                if attempt >= self.retry.attempts {
                    outcome.failures.extend(transient);
                    break;
                }
                tokio::time::sleep(self.retry.delay(attempt)).await;
                attempt += 1;
                pending = transient
                    .into_iter()
                    .filter_map(|f| f.image_id.image_digest)
                    .collect();
            }
        }
        if !unaccounted.is_empty() {
            self.settle(repository, unaccounted, &mut outcome).await;
        }
        outcome
    }

    /// One BatchDeleteImage call (at most [`DELETE_BATCH`] digests).
    async fn delete_once(&self, repository: &str, chunk: &[String]) -> Round {
        bump(&self.calls.batch_delete_image);
        let ids = by_digest(chunk);
        let result = self
            .lanes
            .batch_delete_image
            .paced(
                self.lanes
                    .batch_delete_image
                    .batch_delete_image()
                    .set_registry_id(self.registry_id.clone())
                    .repository_name(repository)
                    .set_image_ids(Some(ids)),
                |request| request.send(),
            )
            .await;
        let mut round = Round::default();
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                let error = EcrError::from_sdk("BatchDeleteImage", error);
                round.failures = chunk
                    .iter()
                    .map(|digest| ImageFailure {
                        image_id: ImageId {
                            image_digest: Some(digest.clone()),
                            image_tag: None,
                        },
                        failure_code: error.code().to_owned(),
                        failure_reason: error.to_string(),
                    })
                    .collect();
                return round;
            }
        };
        let mut accounted: HashSet<&str> = HashSet::new();
        for id in response.image_ids() {
            if let Some(digest) = id.image_digest()
                && accounted.insert(digest)
            {
                round.deleted.push(digest.to_owned());
            }
        }
        for failure in response.failures() {
            if let Some(digest) = failure.image_id().and_then(|id| id.image_digest()) {
                accounted.insert(digest);
            }
            let image_id = failure.image_id().map(|id| ImageId {
                image_digest: id.image_digest().map(str::to_owned),
                image_tag: id.image_tag().map(str::to_owned),
            });
            round.failures.push(ImageFailure {
                image_id: image_id.unwrap_or_default(),
                failure_code: failure
                    .failure_code()
                    .map(|code| code.as_str().to_owned())
                    .unwrap_or_default(),
                failure_reason: failure.failure_reason().unwrap_or_default().to_owned(),
            });
        }
        round.unaccounted = chunk
            .iter()
            .filter(|d| !accounted.contains(d.as_str()))
            .cloned()
            .collect();
        round
    }

    /// Finds out what became of images a BatchDeleteImage response did not
    /// mention: gone from the listing means deleted.
    async fn settle(
        &self,
        repository: &str,
        unaccounted: Vec<String>,
        outcome: &mut DeleteOutcome,
    ) {
        match self.digests(repository).await {
            Ok(present) => {
                for digest in unaccounted {
                    if present.contains(&digest) {
                        outcome.failures.push(ImageFailure {
                            image_id: ImageId { image_digest: Some(digest), image_tag: None },
                            failure_code: "NotDeleted".into(),
                            failure_reason: "BatchDeleteImage neither deleted nor failed this image, and it is still in the repository".into(),
                        });
                    } else {
                        outcome.deleted.push(digest);
                    }
                }
            }
            Err(error) => {
                outcome.failures.extend(unaccounted.into_iter().map(|digest| ImageFailure {
                    image_id: ImageId { image_digest: Some(digest), image_tag: None },
                    failure_code: "Unconfirmed".into(),
                    failure_reason: format!(
                        "BatchDeleteImage did not report on this image, and listing the repository to check failed: {error}"
                    ),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing a second delete call answers is lost: a child left by the
    /// deadline between the two calls is reported as not attempted.
    #[test]
    fn a_later_outcome_adds_every_part() {
        let one = |d: &str| vec![d.to_owned()];
        let failure = |d: &str| ImageFailure {
            image_id: crate::model::ImageId {
                image_digest: Some(d.to_owned()),
                image_tag: None,
            },
            failure_code: "ImageReferencedByManifestList".into(),
            failure_reason: "still listed".into(),
        };
        let mut outcome = DeleteOutcome {
            deleted: one("a"),
            already_gone: one("b"),
            not_attempted: one("c"),
            failures: vec![failure("d")],
        };
        outcome.extend(DeleteOutcome {
            deleted: one("e"),
            already_gone: one("f"),
            not_attempted: one("g"),
            failures: vec![failure("h")],
        });
        assert_eq!(outcome.deleted, ["a", "e"]);
        assert_eq!(outcome.already_gone, ["b", "f"]);
        assert_eq!(outcome.not_attempted, ["c", "g"]);
        assert_eq!(outcome.failures, [failure("d"), failure("h")]);
    }
}
