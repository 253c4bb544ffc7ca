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

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::aws::ecr::{Ecr, EcrError};
use crate::inventory::Inventory;
use crate::model::ImageStatus;
use crate::model::RepositoryName;
use crate::plan::{Facts, plan_with};
use crate::policy::Policy;
use crate::policy::overrides::{PolicySource, RulesFrom};
use crate::policy::settings::Safety;
pub use crate::run::apply::apply;
use crate::run::report::{
    self, Cause, Level, LogSink, PlannedImage, Report, RepositoryError, RepositoryReport, Summary,
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
            let changes = (out.planned.len() + out.planned_transitions.len()) as u64;
            out.held = match inventory_failure {
                Some(failure) if changes > 0 => Some(failure.to_owned()),
                _ => hold(&out, &policy.settings.safety, budget),
            };
            if out.held.is_none()
                && let Some(left) = &mut budget
            {
                *left -= changes;
            }
            if out.held.is_none() && run.dry_run {
                for image in &out.planned {
                    log.emit(report::image_deleted(&name, image, true));
                }
                for image in &out.planned_transitions {
                    log.emit(report::image_transitioned(&name, image, true));
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
    let (policy, from) = match policy_for(ecr, policy, name).await {
        Ok(resolved) => resolved,
        Err(error) => {
            out.error = Some(error);
            return out;
        }
    };
    if from != RulesFrom::Document {
        out.rules_from = Some(from.to_string());
    }
    let policy = policy.as_ref();
    let images = match ecr.images_with(name, policy.selects_archived()).await {
        Ok(images) => images,
        Err(error) => {
            out.error = Some(RepositoryError {
                error_code: error.code().to_owned(),
                error_message: error.to_string(),
            });
            return out;
        }
    };
    // An archived index cannot be read (BatchGetImage is a pull): its
    // children, archived with it, stand alone in the plan.
    let indexes: Vec<String> = images
        .iter()
        .filter(|i| i.is_index() && i.image_status == ImageStatus::Active)
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
    out.planned_transitions = plan
        .to_transition()
        .map(PlannedImage::from_decision)
        .collect();
    out.protected = plan.protected().map(PlannedImage::from_decision).collect();
    out.images_kept = plan.to_keep().count() as u64;
    out.images_active = images.iter().filter(|i| i.image_status.is_active()).count() as u64;
    let bytes = |list: &[PlannedImage]| list.iter().filter_map(|p| p.image_size_in_bytes).sum();
    out.bytes_planned = bytes(&out.planned);
    out.bytes_to_archive = bytes(&out.planned_transitions);
    out
}

/// The policy a repository is planned under, and where its rules come
/// from: its own lifecycle policy (with `policySource: repository`, when it
/// has one), else its override's rules, else the document's; the
/// document's settings in every case. A lifecycle policy that cannot be
/// read, or does not load, is an error: nothing is deleted in the
/// repository.
async fn policy_for<'p>(
    ecr: &Ecr,
    policy: &'p Policy,
    name: &str,
) -> Result<(Cow<'p, Policy>, RulesFrom), RepositoryError> {
    if policy.settings.policy_source == PolicySource::Repository {
        let text = ecr
            .lifecycle_policy(name)
            .await
            .map_err(|error| RepositoryError {
                error_code: error.code().to_owned(),
                error_message: format!(
                    "could not read its lifecycle policy (settings.policySource is `repository`), so nothing is deleted in it: {error}"
                ),
            })?;
        if let Some(text) = text {
            let rules = Policy::repository_rules(&text).map_err(|error| RepositoryError {
                error_code: "InvalidLifecyclePolicy".to_owned(),
                error_message: format!(
                    "its lifecycle policy does not load, so nothing is deleted in it: {error}"
                ),
            })?;
            return Ok((Cow::Owned(policy.with_rules(rules)), RulesFrom::Repository));
        }
    }
    Ok(policy.for_repository(name))
}

/// Whether a safety limit stops every deletion and transition in this
/// repository, and why. `run_budget` is what is left of
/// `maxDeletesPerRun`. A transition counts against the limits as a
/// deletion does (archiving an image that is still pulled is an outage
/// too); the report counts the two apart.
pub fn hold(report: &RepositoryReport, safety: &Safety, run_budget: Option<u64>) -> Option<String> {
    let deletes = report.planned.len() as u64;
    let archives = report.planned_transitions.len() as u64;
    let changes = deletes + archives;
    if changes == 0 {
        return None;
    }
    let what = match (deletes, archives) {
        (_, 0) => format!("deletes {deletes} images"),
        (0, _) => format!("archives {archives} images"),
        _ => format!("deletes {deletes} and archives {archives} images, {changes} in all"),
    };
    if let Some(max) = safety.max_deletes_per_repository
        && changes > max
    {
        return Some(format!(
            "the plan {what}, more than maxDeletesPerRepository ({max})"
        ));
    }
    if !safety.allow_deleting_every_image {
        // Nothing left at all, or nothing left that can be pulled.
        let active_deleted = report
            .planned
            .iter()
            .filter(|p| p.image_status.is_active())
            .count() as u64;
        if deletes == report.images_scanned {
            return Some(format!(
                "the plan deletes every image in the repository ({deletes}); set allowDeletingEveryImage to allow that"
            ));
        }
        if archives > 0 && active_deleted + archives == report.images_active {
            return Some(format!(
                "the plan {what}, which leaves no image in the repository that can be pulled; set allowDeletingEveryImage to allow that"
            ));
        }
    }
    if let Some(left) = run_budget
        && changes > left
    {
        return Some(format!(
            "the plan {what}, more than the {left} left of maxDeletesPerRun"
        ));
    }
    None
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
        check_archive(planned, 0, scanned, scanned, safety, budget, expected);
    }

    /// Like `check`, with `archives` planned transitions, `scanned` images
    /// of which `active` are ACTIVE (the planned deletions are).
    #[track_caller]
    fn check_archive(
        planned: usize,
        archives: usize,
        scanned: u64,
        active: u64,
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
            planned: vec![image.clone(); planned],
            planned_transitions: vec![image; archives],
            images_scanned: scanned,
            images_active: active,
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
        // Transitions count against the same limits, and are named apart.
        check_archive(0, 3, 10, 10, default, None, None);
        check_archive(
            2,
            2,
            10,
            10,
            limits,
            None,
            Some(
                "deletes 2 and archives 2 images, 4 in all, more than maxDeletesPerRepository (3)",
            ),
        );
        check_archive(
            0,
            3,
            10,
            10,
            default,
            Some(2),
            Some("archives 3 images, more than the 2 left of maxDeletesPerRun"),
        );
        // Archiving every ACTIVE image leaves nothing to pull.
        check_archive(
            1,
            2,
            8,
            3,
            default,
            None,
            Some("leaves no image in the repository that can be pulled"),
        );
        check_archive(1, 2, 8, 3, everything, None, None);
        check_archive(0, 2, 8, 3, default, None, None);
    }
}
