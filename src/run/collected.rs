//! What a collection across targets reports: each target's report or
//! error ([`TargetReport`]), and the totals over them ([`Collection`]): the
//! Lambda's response and `ecr-gc run --output json`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::aws::ecr::ApiCallCounts;
use crate::aws::targets::Target;
use crate::policy::reclaim::Prices;
use crate::run::report::{Cause, Report, RepositoryReport};
use crate::run::totals::Summary;

/// One target's outcome within a collection: its report, or why it could
/// not be collected (such as a role that could not be assumed).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    #[serde(flatten)]
    pub target: Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

/// What one invocation (or CLI run) did across its targets: each target's
/// report in order, and the totals.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    pub trigger: Cause,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    /// Totals over every target.
    pub summary: Summary,
    /// Targets that could not be collected at all.
    pub targets_failed: u64,
    /// ECR calls over every target.
    pub api_calls: ApiCallCounts,
    /// STS AssumeRole calls: one per target account with a role.
    pub assume_role_calls: u64,
    pub targets: Vec<TargetReport>,
    pub duration_ms: u64,
    /// The prices the estimated savings are counted at (the policy's).
    #[serde(rename = "pricesUsd")]
    pub prices: Prices,
}

impl Collection {
    pub fn new(
        trigger: Cause,
        dry_run: bool,
        now: DateTime<Utc>,
        targets: Vec<TargetReport>,
        assume_role_calls: u64,
        duration_ms: u64,
    ) -> Collection {
        let reports = || targets.iter().filter_map(|t| t.report.as_ref());
        let summary = Summary::of(reports().flat_map(|r| &r.repositories));
        let mut api_calls = ApiCallCounts::default();
        for report in reports() {
            api_calls += &report.api_calls;
        }
        Collection {
            trigger,
            dry_run,
            now,
            summary,
            targets_failed: targets.iter().filter(|t| t.error.is_some()).count() as u64,
            api_calls,
            assume_role_calls,
            prices: reports().next().map(|r| r.prices).unwrap_or_default(),
            targets,
            duration_ms,
        }
    }

    /// Whether anything went wrong that a caller must hear about, in any
    /// target.
    pub fn has_failures(&self) -> bool {
        self.targets_failed > 0
            || self
                .targets
                .iter()
                .filter_map(|t| t.report.as_ref())
                .any(Report::has_failures)
    }

    /// Keeps at most `max` repository entries over every target: those
    /// that need attention first, then the others, each in target and name
    /// order. The rest are counted in their target's
    /// `repositoriesNotListed`; the totals still count them, and each has
    /// its `repository collected` log line.
    pub fn trim(&mut self, max: usize) {
        let reports = || self.targets.iter().filter_map(|t| t.report.as_ref());
        let total: usize = reports().map(|r| r.repositories.len()).sum();
        if total <= max {
            return;
        }
        let attention = reports()
            .flat_map(|r| &r.repositories)
            .filter(|r| r.needs_attention())
            .count();
        let mut left = [max - max.min(attention), max.min(attention)];
        for report in self.targets.iter_mut().filter_map(|t| t.report.as_mut()) {
            let before = report.repositories.len();
            report.repositories.retain(|r| {
                let left = &mut left[usize::from(r.needs_attention())];
                let keep = *left > 0;
                *left = left.saturating_sub(1);
                keep
            });
            report.repositories_not_listed += (before - report.repositories.len()) as u64;
        }
    }

    /// Every repository report, with its target.
    pub fn repositories(&self) -> impl Iterator<Item = (&Target, &RepositoryReport)> {
        self.targets.iter().flat_map(|t| {
            t.report
                .iter()
                .flat_map(|r| r.repositories.iter())
                .map(move |r| (&t.target, r))
        })
    }
}
