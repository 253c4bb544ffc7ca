//! The engine: one collection run, shared by the Lambda handler and the CLI.
//!
//! For each repository in scope:
//! 1. [`survey`]: list its images and plan (protections included);
//! 2. its hold (`held`), in name order: stop every deletion in it if a blast-radius
//!    limit says so;
//! 3. [`apply`], unless this is a dry run: re-read the candidates and delete
//!    only those unchanged since the plan (compare-and-delete).
//!
//! Every outcome is reported and logged as it happens. A repository that
//! cannot be collected is reported and skipped; the run goes on.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use futures::channel::oneshot;
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
use crate::run::lines::{self, Level, LogSink, Step};
use crate::run::reclaim::{self, Blobs};
use crate::run::report::{
    Cause, Detail, PlannedImage, Report, RepositoryError, RepositoryReport, Summary,
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
    /// What the report keeps of each finished repository.
    pub detail: Detail,
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
/// Each repository goes through [`survey`], its hold and [`apply`] as one
/// piece of work, `settings.concurrency` of them at a time, so that only
/// the repositories in flight are held in memory. So that parallelism
/// never makes the outcome depend on timing, the holds are still decided
/// in name order: each repository waits for its turn (a `Turn`, which
/// hands on what is left of the run's delete budget) after its survey and
/// before it applies anything.
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
    log.progress(Step::Repositories(names.len()));
    let concurrency = policy.settings.concurrency.max(1);
    let pass = Pass {
        ecr,
        inventory,
        policy,
        run,
        log,
        inventory_failure: inventory_failure.as_deref(),
    };
    let turns = Turn::chain(names.len(), policy.settings.safety.max_deletes_per_run);
    let pass = &pass;
    let mut outcomes: Vec<(usize, Result<RepositoryReport, String>)> =
        stream::iter(names.into_iter().zip(turns).enumerate())
            .map(|(i, (name, turn))| async move { (i, pass.repository(name, turn).await) })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    outcomes.sort_unstable_by_key(|(i, _)| *i);
    let mut repositories = Vec::with_capacity(outcomes.len());
    let mut not_started = Vec::new();
    for (_, outcome) in outcomes {
        match outcome {
            Ok(out) => repositories.push(out),
            Err(name) => not_started.push(name),
        }
    }
    if !not_started.is_empty() {
        log.emit(lines::line(
            Level::Warn,
            "deadline near: no further repository is started",
            serde_json::json!({ "trigger": run.trigger, "notStarted": not_started }),
        ));
    }
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
        detail: run.detail,
        repositories_not_listed: 0,
        prices: policy.settings.prices,
    };
    log.emit(lines::run_summary(&report));
    Ok(report)
}

/// A repository's turn to decide its hold: it waits for the repository
/// before it (by name) to hand on what is left of the run's delete budget
/// (`None`: no budget), and hands on what it leaves.
struct Turn {
    wait: oneshot::Receiver<Option<u64>>,
    pass: oneshot::Sender<Option<u64>>,
}

impl Turn {
    /// `n` turns in order, the first with `budget` in hand.
    fn chain(n: usize, budget: Option<u64>) -> Vec<Turn> {
        let (first, mut wait) = oneshot::channel();
        let _ = first.send(budget);
        (0..n)
            .map(|_| {
                let (pass, next) = oneshot::channel();
                Turn {
                    wait: std::mem::replace(&mut wait, next),
                    pass,
                }
            })
            .collect()
    }

    /// Waits for the budget. A turn before that was dropped without
    /// handing it on (it cannot be, short of a panic) leaves none: fail
    /// closed.
    async fn take(&mut self) -> Option<u64> {
        (&mut self.wait).await.unwrap_or(Some(0))
    }
}

/// What every repository of one run shares.
struct Pass<'a> {
    ecr: &'a Ecr,
    inventory: &'a Inventory,
    policy: &'a Policy,
    run: &'a Run,
    log: &'a dyn LogSink,
    /// Why nothing may be deleted, if an in-use source failed.
    inventory_failure: Option<&'a str>,
}

impl Pass<'_> {
    /// One repository, from its survey to its summary line: its report,
    /// kept as `run.detail` asks; or its name, when the deadline left no
    /// time to start it.
    async fn repository(
        &self,
        name: RepositoryName,
        mut turn: Turn,
    ) -> Result<RepositoryReport, String> {
        let Pass { ecr, run, log, .. } = *self;
        let started = Instant::now();
        let time_is_up = ecr.time_is_up() || run.stop_at.is_some_and(|stop| Instant::now() >= stop);
        let surveyed = if time_is_up {
            None
        } else {
            let all = run.detail == Detail::All;
            Some(survey_counting(ecr, self.inventory, self.policy, &name, run.now, all).await)
        };
        let took = started.elapsed();
        let budget = turn.take().await;
        let Some((mut out, blobs)) = surveyed else {
            let _ = turn.pass.send(budget);
            return Err(name.into());
        };
        let _ = turn.pass.send(self.hold(&mut out, budget));
        let started = Instant::now();
        if out.error.is_none() && out.held.is_none() && !run.dry_run {
            apply(ecr, &mut out, log).await;
        }
        reclaim::settle(&mut out, blobs.as_ref(), &self.policy.settings.prices);
        out.duration_ms = u64::try_from((took + started.elapsed()).as_millis()).unwrap_or(u64::MAX);
        log.emit(lines::repository_summary(&out, run.dry_run));
        log.progress(Step::Repository(&out));
        out.settle(run.detail);
        Ok(out)
    }

    /// Decides whether a surveyed repository is held (an incomplete
    /// inventory, or a limit), spending the run's delete budget if it goes
    /// ahead; logs what is protected, and in a dry run what would be
    /// deleted. Returns what is left of the budget.
    fn hold(&self, out: &mut RepositoryReport, mut budget: Option<u64>) -> Option<u64> {
        if out.error.is_some() {
            return budget;
        }
        let (log, name) = (self.log, &out.repository_name);
        for image in &out.protected {
            log.emit(lines::image_protected(name, image));
        }
        let changes = (out.planned.len() + out.planned_transitions.len()) as u64;
        let held = match self.inventory_failure {
            Some(failure) if changes > 0 => Some(Held {
                by: "inventory incomplete",
                reason: failure.to_owned(),
            }),
            _ => held(out, &self.policy.settings.safety, budget),
        };
        if held.is_none() {
            if let Some(left) = &mut budget {
                *left -= changes;
            }
            if self.run.dry_run {
                for image in &out.planned {
                    log.emit(lines::image_deleted(name, image, true));
                }
                for image in &out.planned_transitions {
                    log.emit(lines::image_transitioned(name, image, true));
                }
            }
        }
        out.held_by = held.as_ref().map(|h| h.by);
        out.held = held.map(|h| h.reason);
        budget
    }
}

/// Why nothing may be deleted in this registry, if an in-use source
/// failed; logged once.
fn inventory_failure(inventory: &Inventory, log: &dyn LogSink) -> Option<String> {
    let failure = inventory.failure().map(|failure| {
        format!(
            "the in-use inventory is incomplete, so nothing is deleted in this registry: {failure}"
        )
    })?;
    log.emit(lines::line(
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
                    Some(why) => log.emit(lines::line(
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
    survey_counting(ecr, inventory, policy, name, now, false)
        .await
        .0
}

/// [`survey`], and with `settings.exactReclaim` the blobs of its images,
/// to count what deleting frees; with `all`, the kept images listed too.
async fn survey_counting(
    ecr: &Ecr,
    inventory: &Inventory,
    policy: &Policy,
    name: &str,
    now: DateTime<Utc>,
    all: bool,
) -> (RepositoryReport, Option<Blobs>) {
    let mut out = RepositoryReport {
        repository_name: name.to_owned(),
        ..RepositoryReport::default()
    };
    let (policy, from) = match policy_for(ecr, policy, name).await {
        Ok(resolved) => resolved,
        Err(error) => {
            out.error = Some(error);
            return (out, None);
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
            return (out, None);
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
                return (out, None);
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
    for protection in plan.protected().filter_map(|d| d.protection.as_ref()) {
        *out.protected_by.entry(protection.kind()).or_default() += 1;
    }
    out.images_kept = plan.to_keep().count() as u64;
    if all {
        out.kept = plan
            .to_keep()
            .filter(|d| d.protection.is_none())
            .map(PlannedImage::from_decision)
            .collect();
    }
    out.images_active = images.iter().filter(|i| i.image_status.is_active()).count() as u64;
    let bytes = |list: &[PlannedImage]| list.iter().filter_map(|p| p.image_size_in_bytes).sum();
    out.bytes_planned = bytes(&out.planned);
    out.bytes_to_archive = bytes(&out.planned_transitions);
    let blobs = if policy.settings.exact_reclaim {
        reclaim::read(ecr, name, &images, &mut out).await
    } else {
        None
    };
    (out, blobs)
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

/// Why a repository is held, and by what.
struct Held {
    /// The setting that held it, or `inventory incomplete`.
    by: &'static str,
    reason: String,
}

/// Whether a safety limit stops every deletion and transition in this
/// repository, why, and by which setting. `run_budget` is what is left of
/// `maxDeletesPerRun`. A transition counts against the limits as a
/// deletion does (archiving an image that is still pulled is an outage
/// too); the report counts the two apart.
fn held(report: &RepositoryReport, safety: &Safety, run_budget: Option<u64>) -> Option<Held> {
    let held = |by: &'static str, reason: String| Some(Held { by, reason });
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
        return held(
            "maxDeletesPerRepository",
            format!("the plan {what}, more than maxDeletesPerRepository ({max})"),
        );
    }
    if !safety.allow_deleting_every_image {
        // Nothing left at all, or nothing left that can be pulled.
        let active_deleted = report
            .planned
            .iter()
            .filter(|p| p.image_status.is_active())
            .count() as u64;
        if deletes == report.images_scanned {
            return held(
                "allowDeletingEveryImage",
                format!(
                    "the plan deletes every image in the repository ({deletes}); set allowDeletingEveryImage to allow that"
                ),
            );
        }
        if archives > 0 && active_deleted + archives == report.images_active {
            return held(
                "allowDeletingEveryImage",
                format!(
                    "the plan {what}, which leaves no image in the repository that can be pulled; set allowDeletingEveryImage to allow that"
                ),
            );
        }
    }
    if let Some(left) = run_budget
        && changes > left
    {
        return held(
            "maxDeletesPerRun",
            format!("the plan {what}, more than the {left} left of maxDeletesPerRun"),
        );
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
        let held = held(&report, &safety, budget).map(|h| h.reason);
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
