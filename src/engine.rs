//! The engine: one collection run, shared by the Lambda handler and the CLI.
//!
//! For each repository in scope: list its images, plan, delete what the plan
//! expires (unless this is a dry run), and report every outcome, logging as
//! it goes. A repository that cannot be collected is reported and skipped;
//! the run goes on with the others.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::ecr::{Ecr, EcrError};
use crate::plan::plan;
use crate::policy::Policy;
use crate::report::{
    self, LogSink, PlannedImage, Report, RepositoryError, RepositoryReport, Summary,
};

/// Which repositories a run collects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every repository in the registry that the policy's settings select.
    Selected,
    /// Exactly these repositories, named by the caller.
    Named(Vec<String>),
    /// These repositories, if the policy's settings select them (a push
    /// event names one).
    NamedIfSelected(Vec<String>),
}

/// One run's parameters. `now` comes from the caller: the engine reads no
/// clock for decisions.
#[derive(Debug, Clone)]
pub struct Run {
    pub trigger: String,
    pub scope: Scope,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
}

/// A failure that stops the whole run before anything is deleted.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("could not list the registry's repositories: {0}")]
    ListRepositories(#[source] EcrError),
}

/// Runs one collection.
pub async fn run(
    ecr: &Ecr,
    policy: &Policy,
    run: &Run,
    log: &dyn LogSink,
) -> Result<Report, EngineError> {
    let started = Instant::now();
    let filter = &policy.settings.repositories;
    let names: Vec<String> = match &run.scope {
        Scope::Named(names) => dedup(names),
        Scope::NamedIfSelected(names) => {
            let (selected, skipped): (Vec<String>, Vec<String>) =
                dedup(names).into_iter().partition(|n| filter.selects(n));
            for name in skipped {
                log.emit(report::line(
                    "INFO",
                    "repository not selected by the policy's settings",
                    serde_json::json!({ "repositoryName": name }),
                ));
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
    };

    let mut repositories = Vec::with_capacity(names.len());
    for name in names {
        let repository = collect(ecr, policy, &name, run, log).await;
        log.emit(report::repository_summary(&repository, run.dry_run));
        repositories.push(repository);
    }

    let report = Report {
        trigger: run.trigger.clone(),
        dry_run: run.dry_run,
        now: run.now,
        summary: Summary::of(&repositories),
        repositories,
        api_calls: ecr.api_calls(),
        duration_ms: millis(started),
    };
    log.emit(report::run_summary(&report));
    Ok(report)
}

fn dedup(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
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

/// Collects one repository.
async fn collect(
    ecr: &Ecr,
    policy: &Policy,
    name: &str,
    run: &Run,
    log: &dyn LogSink,
) -> RepositoryReport {
    let started = Instant::now();
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
            out.duration_ms = millis(started);
            return out;
        }
    };
    let plan = plan(&images, policy, run.now);
    out.images_scanned = images.len() as u64;
    out.planned = plan.to_delete().map(PlannedImage::from_decision).collect();
    out.images_kept = out.images_scanned - out.planned.len() as u64;
    out.bytes_planned = out
        .planned
        .iter()
        .filter_map(|p| p.image_size_in_bytes)
        .sum();

    if run.dry_run {
        for image in &out.planned {
            log.emit(report::image_deleted(name, image, true));
        }
    } else if !out.planned.is_empty() {
        let digests: Vec<String> = out.planned.iter().map(|p| p.image_digest.clone()).collect();
        let outcome = ecr.delete(name, &digests).await;
        let by_digest: HashMap<&str, &PlannedImage> = out
            .planned
            .iter()
            .map(|p| (p.image_digest.as_str(), p))
            .collect();
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
    out.duration_ms = millis(started);
    out
}
