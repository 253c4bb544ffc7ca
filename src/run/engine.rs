//! The engine: one collection run, shared by the Lambda handler and the CLI.
//!
//! For each repository in scope:
//! 1. [`survey`]: list its images and plan (protections included);
//! 2. [`hold`]: stop every deletion in it if a blast-radius limit says so;
//! 3. [`apply`], unless this is a dry run: re-read the candidates and delete
//!    only those unchanged since the plan (compare-and-delete).
//!
//! Every outcome is reported and logged as it happens. A repository that
//! cannot be collected is reported and skipped; the run goes on.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::aws::ecr::{DeleteOutcome, Ecr, EcrError};
use crate::inventory::Inventory;
use crate::model::RepositoryName;
use crate::plan::{Facts, plan_with};
use crate::policy::Policy;
use crate::policy::settings::Safety;
use crate::run::report::{
    self, Cause, Level, LogSink, PlannedImage, Report, RepositoryError, RepositoryReport,
    SkippedImage, Summary,
};

/// Which repositories a run collects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every repository in the registry that the policy's settings select.
    Selected,
    /// These repositories, named by the caller, if the policy's settings
    /// select them: naming a repository never widens the settings. The
    /// entry points refuse a name the settings do not select before any
    /// call; the engine skips one again, with a log line, should it get here.
    Named(Vec<RepositoryName>),
}

/// One run's parameters. `now` comes from the caller: the engine reads no
/// clock for decisions.
#[derive(Debug, Clone)]
pub struct Run {
    pub trigger: Cause,
    pub scope: Scope,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    /// When set, no repository is started at or after this instant (the
    /// Lambda deadline less its margin); the report lists those left.
    pub stop_at: Option<Instant>,
}

/// A failure that stops the whole run before anything is deleted.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("could not list the registry's repositories: {0}")]
    ListRepositories(#[source] EcrError),
}

/// Runs one collection. `inventory` is what is in use in this account and
/// region; if any of its sources failed, nothing is deleted.
///
/// Four phases, so that parallelism never makes the outcome depend on
/// timing: `select` the repositories; [`survey`] them concurrently;
/// decide the holds in name order (`hold_in_order`: the run's delete
/// budget is spent first come, first served by name); then [`apply`]
/// concurrently.
pub async fn run(
    ecr: &Ecr,
    inventory: &Inventory,
    policy: &Policy,
    run: &Run,
    log: &dyn LogSink,
) -> Result<Report, EngineError> {
    let started = Instant::now();
    let inventory_failure = inventory_failure(inventory, log);
    let names = select(ecr, policy, &run.scope, log).await?;
    let concurrency = policy.settings.concurrency.max(1);
    let surveys: Vec<Option<Surveyed>> = stream::iter(names.iter())
        .map(|name| async move {
            if ecr.time_is_up() || run.stop_at.is_some_and(|stop| Instant::now() >= stop) {
                return None;
            }
            let started = Instant::now();
            let out = survey(ecr, inventory, policy, name, run.now).await;
            Some((out, started.elapsed()))
        })
        .buffered(concurrency)
        .collect()
        .await;
    let (surveyed, not_started) = hold_in_order(
        names,
        surveys,
        inventory_failure.as_deref(),
        policy,
        run,
        log,
    );
    let repositories: Vec<RepositoryReport> = stream::iter(surveyed)
        .map(|(mut out, took)| async move {
            let started = Instant::now();
            if out.error.is_none() && out.held.is_none() && !run.dry_run {
                apply(ecr, &mut out, log).await;
            }
            out.duration_ms =
                u64::try_from((took + started.elapsed()).as_millis()).unwrap_or(u64::MAX);
            log.emit(report::repository_summary(&out, run.dry_run));
            out
        })
        .buffered(concurrency)
        .collect()
        .await;
    let report = Report {
        trigger: run.trigger,
        dry_run: run.dry_run,
        now: run.now,
        summary: Summary::of(&repositories),
        repositories,
        api_calls: ecr.api_calls(),
        in_use_sources: inventory.sources.clone(),
        not_started,
        duration_ms: millis(started),
    };
    log.emit(report::run_summary(&report));
    Ok(report)
}

/// A surveyed repository, and how long its survey took.
type Surveyed = (RepositoryReport, Duration);

/// Why nothing may be deleted in this registry, if an in-use source
/// failed; logged once.
fn inventory_failure(inventory: &Inventory, log: &dyn LogSink) -> Option<String> {
    let failure = inventory.failure().map(|failure| {
        format!(
            "the in-use inventory is incomplete, so nothing is deleted in this registry: {failure}"
        )
    })?;
    log.emit(report::line(
        Level::Error,
        "in-use inventory incomplete",
        serde_json::json!({ "error": failure, "inUseSources": inventory.sources }),
    ));
    Some(failure)
}

/// The repositories in scope that the policy's settings select, in the
/// order they are collected: a named one the settings refuse is skipped
/// with a log line; all of them are listed and sorted by name.
async fn select(
    ecr: &Ecr,
    policy: &Policy,
    scope: &Scope,
    log: &dyn LogSink,
) -> Result<Vec<RepositoryName>, EngineError> {
    let filter = &policy.settings.repositories;
    Ok(match scope {
        Scope::Named(names) => {
            let mut selected = Vec::with_capacity(names.len());
            for name in dedup(names) {
                match filter.refusal(&name) {
                    None => selected.push(name),
                    Some(why) => log.emit(report::line(
                        Level::Info,
                        "repository not selected by the policy's settings",
                        serde_json::json!({ "repositoryName": name, "reason": why }),
                    )),
                }
            }
            selected
        }
        Scope::Selected => {
            let mut all = ecr
                .repository_names()
                .await
                .map_err(EngineError::ListRepositories)?;
            all.sort();
            all.into_iter().filter(|n| filter.selects(n)).collect()
        }
    })
}

/// Decides, in name order, which surveyed repositories are held (an
/// incomplete inventory, or a limit), spending the run's delete budget on
/// those that go ahead; logs what is protected, and in a dry run what
/// would be deleted. Returns the surveyed repositories and the names of
/// those never started (the deadline).
fn hold_in_order(
    names: Vec<RepositoryName>,
    surveys: Vec<Option<Surveyed>>,
    inventory_failure: Option<&str>,
    policy: &Policy,
    run: &Run,
    log: &dyn LogSink,
) -> (Vec<Surveyed>, Vec<String>) {
    let mut not_started = Vec::new();
    let mut surveyed = Vec::with_capacity(names.len());
    let mut budget = policy.settings.safety.max_deletes_per_run;
    for (name, survey) in names.into_iter().zip(surveys) {
        let Some((mut out, took)) = survey else {
            not_started.push(name.into());
            continue;
        };
        if out.error.is_none() {
            for image in &out.protected {
                log.emit(report::image_protected(&name, image));
            }
            out.held = match inventory_failure {
                Some(failure) if !out.planned.is_empty() => Some(failure.to_owned()),
                _ => hold(&out, &policy.settings.safety, budget),
            };
            if out.held.is_none()
                && let Some(left) = &mut budget
            {
                *left -= out.planned.len() as u64;
            }
            if out.held.is_none() && run.dry_run {
                for image in &out.planned {
                    log.emit(report::image_deleted(&name, image, true));
                }
            }
        }
        surveyed.push((out, took));
    }
    if !not_started.is_empty() {
        log.emit(report::line(
            Level::Warn,
            "deadline near: no further repository is started",
            serde_json::json!({ "trigger": run.trigger, "notStarted": not_started }),
        ));
    }
    (surveyed, not_started)
}

fn dedup(names: &[RepositoryName]) -> Vec<RepositoryName> {
    let mut out: Vec<RepositoryName> = Vec::with_capacity(names.len());
    for name in names {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Lists a repository's images and plans them: the report's `planned` and
/// `protected` images, or its `error`. Deletes nothing.
pub async fn survey(
    ecr: &Ecr,
    inventory: &Inventory,
    policy: &Policy,
    name: &str,
    now: DateTime<Utc>,
) -> RepositoryReport {
    let mut out = RepositoryReport {
        repository_name: name.to_owned(),
        ..RepositoryReport::default()
    };
    let images = match ecr.images(name).await {
        Ok(images) => images,
        Err(error) => {
            out.error = Some(RepositoryError {
                error_code: error.code().to_owned(),
                error_message: error.to_string(),
            });
            return out;
        }
    };
    let indexes: Vec<String> = images
        .iter()
        .filter(|i| i.is_index())
        .map(|i| i.image_digest.clone())
        .collect();
    let children = if indexes.is_empty() {
        HashMap::new()
    } else {
        match ecr.index_children(name, &indexes).await {
            Ok(children) => children,
            Err(error) => {
                out.error = Some(RepositoryError {
                    error_code: error.code().to_owned(),
                    error_message: format!(
                        "could not read the children of its {} multi-arch indexes, so nothing is deleted in it: {error}",
                        indexes.len()
                    ),
                });
                return out;
            }
        }
    };
    let facts = Facts {
        in_use: inventory.in_use(name, &images),
        children,
    };
    let plan = plan_with(&images, policy, now, &facts);
    out.images_scanned = images.len() as u64;
    out.planned = plan.to_delete().map(PlannedImage::from_decision).collect();
    out.protected = plan.protected().map(PlannedImage::from_decision).collect();
    out.images_kept = out.images_scanned - out.planned.len() as u64;
    out.bytes_planned = out
        .planned
        .iter()
        .filter_map(|p| p.image_size_in_bytes)
        .sum();
    out
}

/// Whether a safety limit stops every deletion in this repository, and why.
/// `run_budget` is what is left of `maxDeletesPerRun`.
pub fn hold(report: &RepositoryReport, safety: &Safety, run_budget: Option<u64>) -> Option<String> {
    let planned = report.planned.len() as u64;
    if planned == 0 {
        return None;
    }
    if let Some(max) = safety.max_deletes_per_repository
        && planned > max
    {
        return Some(format!(
            "the plan deletes {planned} images, more than maxDeletesPerRepository ({max})"
        ));
    }
    if !safety.allow_deleting_every_image && planned == report.images_scanned {
        return Some(format!(
            "the plan deletes every image in the repository ({planned}); set allowDeletingEveryImage to allow that"
        ));
    }
    if let Some(left) = run_budget
        && planned > left
    {
        return Some(format!(
            "the plan deletes {planned} images, more than the {left} left of maxDeletesPerRun"
        ));
    }
    None
}

/// Deletes a surveyed repository's planned images, compare-and-delete: each
/// is re-read just before, and one whose tags changed since the plan, or
/// that is gone, is skipped and logged. A tag added after the plan therefore
/// saves its image. Then `delete_in_two_phases`, and `record` what ECR
/// answered.
pub async fn apply(ecr: &Ecr, out: &mut RepositoryReport, log: &dyn LogSink) {
    if out.planned.is_empty() {
        return;
    }
    if ecr.time_is_up() {
        for planned in &out.planned {
            let left = not_attempted(planned);
            log.emit(report::image_skipped(&out.repository_name, &left));
            out.skipped.push(left);
        }
        out.unfinished = Some(unfinished(out.planned.len()));
        return;
    }
    let Some(candidates) = compare(ecr, out, log).await else {
        return;
    };
    if candidates.is_empty() {
        return;
    }
    let (outcome, held_children) =
        delete_in_two_phases(ecr, &out.repository_name, &out.planned, candidates).await;
    record(out, outcome, held_children, log);
}

/// Re-reads the planned images and returns the digests still as planned;
/// the others are skipped and logged. `None` when the re-read failed: the
/// repository's error, and nothing is deleted.
async fn compare(ecr: &Ecr, out: &mut RepositoryReport, log: &dyn LogSink) -> Option<Vec<String>> {
    let digests: Vec<String> = out.planned.iter().map(|p| p.image_digest.clone()).collect();
    let current = match ecr.current_tags(&out.repository_name, &digests).await {
        Ok(current) => current,
        Err(error) => {
            out.error = Some(RepositoryError {
                error_code: error.code().to_owned(),
                error_message: format!(
                    "re-reading the planned images before deleting failed, so nothing was deleted: {error}"
                ),
            });
            return None;
        }
    };
    let mut candidates = Vec::with_capacity(digests.len());
    for planned in &out.planned {
        let skipped = match current.get(&planned.image_digest) {
            None => Some(SkippedImage {
                image_digest: planned.image_digest.clone(),
                image_tags: planned.image_tags.clone(),
                current_image_tags: None,
                reason: "the image is no longer in the repository".into(),
            }),
            Some(tags) if !same_tags(tags, &planned.image_tags) => Some(SkippedImage {
                image_digest: planned.image_digest.clone(),
                image_tags: planned.image_tags.clone(),
                current_image_tags: Some(tags.clone()),
                reason: "its tags changed since the plan".into(),
            }),
            Some(_) => None,
        };
        match skipped {
            Some(skipped) => {
                log.emit(report::image_skipped(&out.repository_name, &skipped));
                out.skipped.push(skipped);
            }
            None => candidates.push(planned.image_digest.clone()),
        }
    }
    Some(candidates)
}

/// Deletes the candidates: indexes (and everything else) first; their
/// children in a later call, and only those whose every index ECR confirmed
/// gone, so ECR never answers ImageReferencedByManifestList. Returns what
/// ECR answered for both calls, and the children held because an index of
/// theirs remains.
async fn delete_in_two_phases(
    ecr: &Ecr,
    name: &str,
    planned: &[PlannedImage],
    candidates: Vec<String>,
) -> (DeleteOutcome, Vec<SkippedImage>) {
    let by_digest: HashMap<&str, &PlannedImage> = planned
        .iter()
        .map(|p| (p.image_digest.as_str(), p))
        .collect();
    let (children, first): (Vec<String>, Vec<String>) = candidates.into_iter().partition(|d| {
        by_digest
            .get(d.as_str())
            .is_some_and(|p| !p.index_digests.is_empty())
    });
    let mut outcome = ecr.delete(name, &first).await;
    let gone: HashSet<&str> = outcome.deleted.iter().map(String::as_str).collect();
    let mut second = Vec::with_capacity(children.len());
    let mut held_children = Vec::new();
    for child in children {
        let Some(planned) = by_digest.get(child.as_str()) else {
            unreachable!("a candidate is one of the planned images");
        };
        // Every index that lists it must be gone, not only one: ECR refuses
        // to delete a child that a remaining index lists.
        match planned
            .index_digests
            .iter()
            .find(|index| !gone.contains(index.as_str()))
        {
            None => second.push(child),
            Some(index) => held_children.push(SkippedImage {
                image_digest: planned.image_digest.clone(),
                image_tags: planned.image_tags.clone(),
                current_image_tags: Some(planned.image_tags.clone()),
                reason: format!("its index {index} was not deleted"),
            }),
        }
    }
    if !second.is_empty() {
        outcome.extend(ecr.delete(name, &second).await);
    }
    (outcome, held_children)
}

/// Records and logs what the deletes left: held children, images not
/// attempted (the repository is then unfinished), already gone, deleted
/// and failed.
fn record(
    out: &mut RepositoryReport,
    outcome: DeleteOutcome,
    held_children: Vec<SkippedImage>,
    log: &dyn LogSink,
) {
    let name = &out.repository_name;
    let by_digest: HashMap<&str, &PlannedImage> = out
        .planned
        .iter()
        .map(|p| (p.image_digest.as_str(), p))
        .collect();
    for skipped in held_children {
        log.emit(report::image_skipped(name, &skipped));
        out.skipped.push(skipped);
    }
    if !outcome.not_attempted.is_empty() {
        out.unfinished = Some(unfinished(outcome.not_attempted.len()));
    }
    for digest in &outcome.not_attempted {
        if let Some(planned) = by_digest.get(digest.as_str()) {
            let left = not_attempted(planned);
            log.emit(report::image_skipped(name, &left));
            out.skipped.push(left);
        }
    }
    for digest in &outcome.already_gone {
        if let Some(planned) = by_digest.get(digest.as_str()) {
            let gone = SkippedImage {
                image_digest: planned.image_digest.clone(),
                image_tags: planned.image_tags.clone(),
                current_image_tags: None,
                reason: "already gone: ECR answered ImageNotFound".into(),
            };
            log.emit(report::image_already_gone(name, &gone));
            out.skipped.push(gone);
        }
    }
    let mut deleted = Vec::with_capacity(outcome.deleted.len());
    for digest in &outcome.deleted {
        if let Some(image) = by_digest.get(digest.as_str()) {
            log.emit(report::image_deleted(name, image, false));
            deleted.push((*image).clone());
        }
    }
    for failure in &outcome.failures {
        log.emit(report::image_failed(name, failure));
    }
    out.bytes_reclaimed = deleted.iter().filter_map(|p| p.image_size_in_bytes).sum();
    out.deleted = deleted;
    out.failed = outcome.failures;
}

/// Why a repository did not finish: planned deletions left for the next run.
fn unfinished(left: usize) -> String {
    format!(
        "{left} planned deletions were not attempted: the invocation's deadline was near; the next run finishes them"
    )
}

fn not_attempted(planned: &PlannedImage) -> SkippedImage {
    SkippedImage {
        image_digest: planned.image_digest.clone(),
        image_tags: planned.image_tags.clone(),
        current_image_tags: Some(planned.image_tags.clone()),
        reason: "not attempted: the invocation's deadline was near; the next run finishes it"
            .into(),
    }
}

fn same_tags(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(
        planned: usize,
        scanned: u64,
        safety: Safety,
        budget: Option<u64>,
        expected: Option<&str>,
    ) {
        let image = PlannedImage {
            image_digest: "sha256:a".into(),
            image_tags: Vec::new(),
            image_pushed_at: DateTime::<Utc>::MIN_UTC,
            image_size_in_bytes: None,
            image_status: crate::model::ImageStatus::Active,
            rule_priority: Some(1),
            reason: String::new(),
            protection: None,
            index_digests: Vec::new(),
        };
        let report = RepositoryReport {
            planned: vec![image; planned],
            images_scanned: scanned,
            ..RepositoryReport::default()
        };
        let held = hold(&report, &safety, budget);
        match (held.as_deref(), expected) {
            (None, None) => {}
            (Some(got), Some(part)) => assert!(got.contains(part), "{got:?} lacks {part:?}"),
            (got, want) => panic!("held {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn holds() {
        let default = Safety::default();
        let limits = Safety {
            max_deletes_per_repository: Some(3),
            ..Safety::default()
        };
        let everything = Safety {
            allow_deleting_every_image: true,
            ..Safety::default()
        };
        check(0, 0, default, Some(0), None);
        check(3, 10, default, None, None);
        check(
            3,
            3,
            default,
            None,
            Some("every image in the repository (3)"),
        );
        check(3, 3, everything, None, None);
        check(3, 10, limits, None, None);
        check(
            4,
            10,
            limits,
            None,
            Some("more than maxDeletesPerRepository (3)"),
        );
        check(3, 10, default, Some(3), None);
        check(
            3,
            10,
            default,
            Some(2),
            Some("the 2 left of maxDeletesPerRun"),
        );
        check(
            3,
            10,
            Safety {
                max_deletes_per_repository: Some(0),
                ..default
            },
            None,
            Some("(0)"),
        );
    }
}
