//! Totals: how many images of a repository ended each way
//! ([`ImageCounts`]), and the [`Summary`] of a run over its repositories,
//! with the bytes, the estimated saving and the exact figures
//! ([`ExactTotals`]) where they were counted.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run::reclaim::{ExactReclaim, Saving};
use crate::run::report::RepositoryReport;

/// How many images of a repository ended each way: what its image lists
/// hold, and what is left of them when they are dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageCounts {
    pub images_protected: u64,
    pub images_planned: u64,
    pub images_skipped: u64,
    pub images_deleted: u64,
    pub images_failed: u64,
    pub transitions_planned: u64,
    pub images_transitioned: u64,
    pub transitions_failed: u64,
}

impl std::ops::AddAssign for ImageCounts {
    fn add_assign(&mut self, other: ImageCounts) {
        self.images_protected += other.images_protected;
        self.images_planned += other.images_planned;
        self.images_skipped += other.images_skipped;
        self.images_deleted += other.images_deleted;
        self.images_failed += other.images_failed;
        self.transitions_planned += other.transitions_planned;
        self.images_transitioned += other.images_transitioned;
        self.transitions_failed += other.transitions_failed;
    }
}

/// Totals over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub repositories: u64,
    pub repositories_failed: u64,
    pub repositories_held: u64,
    /// Held repositories, by what held them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub repositories_held_by: BTreeMap<&'static str, u64>,
    /// Protected images, by kind of protection.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub images_protected_by: BTreeMap<&'static str, u64>,
    /// Repositories with planned deletions not attempted.
    pub repositories_unfinished: u64,
    pub images_scanned: u64,
    pub images_kept: u64,
    /// How many images ended each way, over every repository.
    #[serde(flatten)]
    pub counts: ImageCounts,
    pub bytes_planned: i64,
    pub bytes_reclaimed: i64,
    pub bytes_to_archive: i64,
    pub bytes_archived: i64,
    /// The exact figures over the repositories that have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_reclaim: Option<ExactTotals>,
    pub estimated_monthly_saving: Saving,
}

/// The exact figures of a run: shared layers counted once, in the
/// repositories whose manifests were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactTotals {
    pub bytes_planned: u64,
    pub bytes_reclaimed: u64,
    pub manifests_read: u64,
    pub repositories_counted: u64,
    /// Repositories whose manifests could not be read.
    pub repositories_not_counted: u64,
}

impl ExactTotals {
    fn add(totals: &mut Option<ExactTotals>, exact: &ExactReclaim) {
        let t = totals.get_or_insert_with(ExactTotals::default);
        match exact {
            ExactReclaim::Counted {
                bytes_planned,
                bytes_reclaimed,
                manifests_read,
            } => {
                t.bytes_planned += bytes_planned;
                t.bytes_reclaimed += bytes_reclaimed;
                t.manifests_read += manifests_read;
                t.repositories_counted += 1;
            }
            ExactReclaim::Unavailable { .. } => t.repositories_not_counted += 1,
        }
    }
}

impl Summary {
    pub fn of<'a>(repositories: impl IntoIterator<Item = &'a RepositoryReport>) -> Summary {
        let mut s = Summary::default();
        for r in repositories {
            s.repositories += 1;
            s.repositories_failed += u64::from(r.error.is_some());
            s.repositories_held += u64::from(r.held.is_some());
            if let Some(by) = r.held_by {
                *s.repositories_held_by.entry(by).or_default() += 1;
            }
            for (kind, n) in &r.protected_by {
                *s.images_protected_by.entry(kind).or_default() += n;
            }
            s.repositories_unfinished += u64::from(r.unfinished.is_some());
            s.images_scanned += r.images_scanned;
            s.images_kept += r.images_kept;
            s.counts += r.counts();
            s.bytes_planned += r.bytes_planned;
            s.bytes_reclaimed += r.bytes_reclaimed;
            s.bytes_to_archive += r.bytes_to_archive;
            s.bytes_archived += r.bytes_archived;
            if let Some(exact) = &r.exact_reclaim {
                ExactTotals::add(&mut s.exact_reclaim, exact);
            }
            s.estimated_monthly_saving += r.estimated_monthly_saving;
        }
        s
    }
}
