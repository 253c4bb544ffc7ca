//! What a repository's changes free, honestly counted, and what that saves
//! a month (an estimate at `settings.prices`).
//!
//! `bytesPlanned` and `bytesReclaimed` sum image sizes: an upper bound,
//! because ECR stores each layer once per repository and images share
//! layers. With `settings.exactReclaim`, the survey reads the manifest of
//! every `ACTIVE` image of a repository with deletions planned ([`read`]),
//! and the report also counts only the blobs that no image left behind
//! still names ([`exact_bytes`]), each once. A failed read costs only that
//! figure: what is deleted never depends on it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::aws::ecr::{Blob, Ecr};
use crate::model::Image;
use crate::policy::reclaim::{Freed, Prices};
use crate::run::report::{PlannedImage, RepositoryReport};

/// The blobs of every `ACTIVE` image of a repository, by digest.
pub type Blobs = HashMap<String, Vec<Blob>>;

/// A repository's exact figures, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged, rename_all = "camelCase")]
pub enum ExactReclaim {
    #[serde(rename_all = "camelCase")]
    Counted {
        /// Bytes of the blobs only the planned deletions name.
        bytes_planned: u64,
        /// Bytes of the blobs only the deleted images named.
        bytes_reclaimed: u64,
        /// The manifests read.
        manifests_read: u64,
    },
    /// The manifests could not be read; the image sizes stand.
    Unavailable { error: String },
}

/// The estimated saving a month, in US dollars: of the plan, and of what
/// was done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Saving {
    #[serde(serialize_with = "micro")]
    pub planned_usd: f64,
    #[serde(serialize_with = "micro")]
    pub reclaimed_usd: f64,
}

/// A dollar figure to the millionth, so that sums read as written.
fn micro<S: serde::Serializer>(usd: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((usd * 1e6).round() / 1e6)
}

impl std::ops::AddAssign for Saving {
    fn add_assign(&mut self, other: Saving) {
        self.planned_usd += other.planned_usd;
        self.reclaimed_usd += other.reclaimed_usd;
    }
}

/// The blobs of every `ACTIVE` image in `images`, when the repository has
/// deletions planned from standard storage; `None` when there is nothing
/// to count. An index names no blobs, so it is not read.
pub async fn read(
    ecr: &Ecr,
    repository: &str,
    images: &[Image],
    out: &mut RepositoryReport,
) -> Option<Blobs> {
    if !out.planned.iter().any(|p| p.image_status.is_active()) {
        return None;
    }
    let digests: Vec<String> = images
        .iter()
        .filter(|i| i.image_status.is_active() && !i.is_index())
        .map(|i| i.image_digest.clone())
        .collect();
    match ecr.blobs(repository, &digests).await {
        Ok(blobs) => Some(blobs),
        Err(error) => {
            out.exact_reclaim = Some(ExactReclaim::Unavailable {
                error: format!(
                    "could not read the manifests, so only the image sizes are counted: {error}"
                ),
            });
            None
        }
    }
}

/// Bytes of the blobs that the images in `gone` name and no other image
/// in `blobs` names, each blob once.
pub fn exact_bytes(blobs: &Blobs, gone: &HashSet<&str>) -> u64 {
    let mut freed: HashMap<&str, u64> = HashMap::new();
    let mut kept: HashSet<&str> = HashSet::new();
    for (digest, named) in blobs {
        for blob in named {
            if gone.contains(digest.as_str()) {
                freed.insert(&blob.digest, blob.size);
            } else {
                kept.insert(&blob.digest);
            }
        }
    }
    freed
        .into_iter()
        .filter(|(digest, _)| !kept.contains(digest))
        .map(|(_, size)| size)
        .sum()
}

/// Records the exact figures (when `blobs` were read) and the estimated
/// saving of a finished repository.
pub fn settle(out: &mut RepositoryReport, blobs: Option<&Blobs>, prices: &Prices) {
    if let Some(blobs) = blobs {
        out.exact_reclaim = Some(ExactReclaim::Counted {
            bytes_planned: exact_bytes(blobs, &active(&out.planned)),
            bytes_reclaimed: exact_bytes(blobs, &active(&out.deleted)),
            manifests_read: blobs.len() as u64,
        });
    }
    let exact = match &out.exact_reclaim {
        Some(ExactReclaim::Counted {
            bytes_planned,
            bytes_reclaimed,
            ..
        }) => Some((*bytes_planned, *bytes_reclaimed)),
        _ => None,
    };
    let planned = freed(&out.planned, &out.planned_transitions, exact.map(|e| e.0));
    let done = freed(&out.deleted, &out.transitioned, exact.map(|e| e.1));
    out.estimated_monthly_saving = Saving {
        planned_usd: prices.monthly_saving(planned),
        reclaimed_usd: prices.monthly_saving(done),
    };
}

/// The digests of the `ACTIVE` images of `list`.
fn active(list: &[PlannedImage]) -> HashSet<&str> {
    list.iter()
        .filter(|p| p.image_status.is_active())
        .map(|p| p.image_digest.as_str())
        .collect()
}

/// What deleting `deleted` and archiving `archived` frees: the standard
/// bytes counted exactly when given, else the image sizes.
fn freed(deleted: &[PlannedImage], archived: &[PlannedImage], exact: Option<u64>) -> Freed {
    let size = |p: &PlannedImage| u64::try_from(p.image_size_in_bytes.unwrap_or(0)).unwrap_or(0);
    let (active, archive): (Vec<&PlannedImage>, Vec<&PlannedImage>) =
        deleted.iter().partition(|p| p.image_status.is_active());
    Freed {
        standard: exact.unwrap_or_else(|| active.iter().map(|p| size(p)).sum()),
        archive: archive.iter().map(|p| size(p)).sum(),
        archived: archived.iter().map(size).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(digest: &str, size: u64) -> Blob {
        Blob {
            digest: digest.into(),
            size,
        }
    }

    #[track_caller]
    fn check(gone: &[&str], expected: u64) {
        // a and b share the base layer L; c shares M with b; d names
        // a layer twice.
        let blobs: Blobs = [
            ("a", vec![blob("ca", 1), blob("L", 100), blob("A", 10)]),
            ("b", vec![blob("cb", 2), blob("L", 100), blob("M", 20)]),
            ("c", vec![blob("cc", 3), blob("M", 20), blob("C", 5)]),
            ("d", vec![blob("cd", 4), blob("D", 7), blob("D", 7)]),
            ("gone-since", vec![]),
        ]
        .into_iter()
        .map(|(d, b)| (d.to_owned(), b))
        .collect();
        let gone: HashSet<&str> = gone.iter().copied().collect();
        assert_eq!(exact_bytes(&blobs, &gone), expected, "{gone:?}");
    }

    #[test]
    fn only_blobs_no_image_left_names_are_freed_each_once() {
        check(&[], 0);
        check(&["a"], 1 + 10);
        check(&["a", "b"], 1 + 100 + 10 + 2);
        check(&["a", "b", "c"], 1 + 100 + 10 + 2 + 20 + 3 + 5);
        check(&["d"], 4 + 7);
        check(&["gone-since", "unknown"], 0);
    }
}
