//! `ecr-gc run`: live repositories through the standard credential chain,
//! a dry run unless `--apply`, with the report as a table or as JSON.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;

use super::{Output, emit, figures, load_policy, print_table};
use crate::aws::targets::Targets;
use crate::aws::{Connector, SdkRetry};
use crate::model::{AccountId, RepositoryName};
use crate::run::collection;
use crate::run::engine::{Run, Scope};
use crate::run::lines::JsonLines;
use crate::run::metrics;
use crate::run::report::{Cause, Collection, Detail};

/// The targets `--registry-id` or `--targets` name, checked; else the
/// caller's own account and region.
fn targets_of(registry_id: Option<&str>, targets: Option<&str>) -> Result<Targets, String> {
    Ok(match (registry_id, targets) {
        (Some(id), _) => {
            Targets::registry(AccountId::parse(id).map_err(|e| format!("--registry-id: {e}"))?)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--targets {path}: cannot read it: {e}"))?;
            Targets::parse(&text).map_err(|e| format!("--targets {path}: {e}"))?
        }
        (None, None) => Targets::own(),
    })
}

/// What `run` writes besides its log lines: the report, as `output` and
/// with `detail`, and with `emf` the CloudWatch metrics.
pub(super) struct Reporting {
    pub output: Output,
    pub detail: Detail,
    pub emf: bool,
}

pub(super) fn run_command(
    policy: &str,
    repositories: Vec<String>,
    apply: bool,
    registry_id: Option<String>,
    targets: Option<String>,
    reporting: Reporting,
) -> Result<ExitCode, String> {
    let Reporting {
        output,
        detail,
        emf,
    } = reporting;
    // Every input is checked before any API call.
    let repositories = repositories
        .into_iter()
        .map(|name| RepositoryName::parse(name).map_err(|e| format!("--repository: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let targets = targets_of(registry_id.as_deref(), targets.as_deref())?;
    let policy = load_policy(policy)?;
    // Naming a repository never widens the policy's settings.
    for name in &repositories {
        if let Some(reason) = policy.settings.repositories.refusal(name) {
            return Err(format!("--repository: {reason}"));
        }
    }
    let retry = SdkRetry::from_env(|name| std::env::var(name).ok()).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let scope = if repositories.is_empty() {
        Scope::Selected
    } else {
        Scope::Named(repositories)
    };
    let run = Run {
        trigger: Cause::Cli,
        scope,
        dry_run: !apply,
        now: Utc::now(),
        stop_at: None,
        detail,
    };
    // Log lines go to stderr: stdout carries the table or the JSON report.
    let log = JsonLines::new(std::io::stderr());
    let work = targets
        .expand()
        .into_iter()
        .map(|t| (t, run.scope.clone()))
        .collect();
    let report = runtime.block_on(async {
        let connector = Connector::new(retry.load().await);
        let report = collection::collect(
            &connector,
            &targets,
            &policy,
            &run,
            work,
            collection::Others::Read,
            &log,
        )
        .await;
        if emf {
            metrics::emit(&connector, &report, &log);
        }
        report
    });
    emit(output, &report, print_report)?;
    Ok(if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_report(out: &mut impl Write, report: &Collection) {
    let several = report.targets.len() > 1;
    let rows: Vec<[String; 7]> = report
        .repositories()
        .map(|(target, r)| {
            let c = r.counts();
            [
                if several {
                    format!("{target}:{}", r.repository_name)
                } else {
                    r.repository_name.clone()
                },
                r.images_scanned.to_string(),
                c.images_protected.to_string(),
                c.images_planned.to_string(),
                c.images_skipped.to_string(),
                c.images_deleted.to_string(),
                match &r.error {
                    Some(e) => format!("error: {}", e.error_code),
                    None => c.images_failed.to_string(),
                },
            ]
        })
        .collect();
    print_table(
        out,
        [
            "REPOSITORY",
            "IMAGES",
            "PROTECTED",
            "PLANNED",
            "SKIPPED",
            "DELETED",
            "FAILED",
        ],
        &rows,
        None,
    );
    print_notes(out, report);
    print_totals(out, report);
}

/// A line for each target that failed, and for each repository's hold,
/// unfinished work, skipped image and failed image.
fn print_notes(out: &mut impl Write, report: &Collection) {
    for t in &report.targets {
        if let Some(error) = &t.error {
            let _ = writeln!(out, "target failed: {}: {error}", t.target);
        }
    }
    for (_, r) in report.repositories() {
        if let Some(held) = &r.held {
            let _ = writeln!(out, "held: {}: nothing deleted: {held}", r.repository_name);
        }
        if let Some(unfinished) = &r.unfinished {
            let _ = writeln!(out, "unfinished: {}: {unfinished}", r.repository_name);
        }
        if let Some(c) = r.dropped {
            for (what, n) in [
                ("skipped", c.images_skipped),
                ("failed", c.images_failed),
                ("not archived", c.transitions_failed),
            ] {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "{what}: {}: {n} images, each in the log lines (stderr)",
                        r.repository_name
                    );
                }
            }
        }
        for skipped in &r.skipped {
            let _ = writeln!(
                out,
                "skipped: {} {}: {}",
                r.repository_name, skipped.image_digest, skipped.reason
            );
        }
        for (what, f) in r
            .failed
            .iter()
            .map(|f| ("failed", f))
            .chain(r.transition_failed.iter().map(|f| ("not archived", f)))
        {
            let _ = writeln!(
                out,
                "{what}: {} {} {}: {}",
                r.repository_name,
                f.image_id.image_digest.as_deref().unwrap_or("-"),
                f.failure_code,
                f.failure_reason
            );
        }
    }
}

/// The totals, and whether anything was deleted.
fn print_totals(out: &mut impl Write, report: &Collection) {
    let s = &report.summary;
    let mode = if report.dry_run {
        "dry run: nothing deleted; pass --apply to delete"
    } else {
        "applied"
    };
    let _ = writeln!(
        out,
        "\n{} repositories ({} held), {} images: {} protected, {} planned, {} skipped, {} deleted, {} failed ({mode}).",
        s.repositories,
        s.repositories_held,
        s.images_scanned,
        s.counts.images_protected,
        s.counts.images_planned,
        s.counts.images_skipped,
        s.counts.images_deleted,
        s.counts.images_failed,
    );
    if s.counts.transitions_planned > 0 {
        let _ = writeln!(
            out,
            "Archive: {} planned, {} archived, {} not archived.",
            s.counts.transitions_planned, s.counts.images_transitioned, s.counts.transitions_failed
        );
    }
    let _ = writeln!(out, "{}", reclaimed(report));
}

/// What the run freed (or in a dry run would free), and what that saves.
fn reclaimed(report: &Collection) -> String {
    let s = &report.summary;
    let (bound, usd) = if report.dry_run {
        (s.bytes_planned, s.estimated_monthly_saving.planned_usd)
    } else {
        (s.bytes_reclaimed, s.estimated_monthly_saving.reclaimed_usd)
    };
    let verb = if report.dry_run {
        "would free"
    } else {
        "freed"
    };
    let bound = figures::bytes(u64::try_from(bound).unwrap_or(0));
    let exact = match &s.exact_reclaim {
        Some(e) => {
            let bytes = if report.dry_run {
                e.bytes_planned
            } else {
                e.bytes_reclaimed
            };
            let missed = if e.repositories_not_counted > 0 {
                format!(", {} repositories not counted", e.repositories_not_counted)
            } else {
                String::new()
            };
            format!(
                "{} counting shared layers once ({} manifests read{missed}); image sizes sum to {bound}",
                figures::bytes(bytes),
                e.manifests_read
            )
        }
        None => format!("up to {bound} (image sizes; shared layers make it less)"),
    };
    format!(
        "Deleting {verb} {exact}; {}.",
        figures::saving(usd, &report.prices)
    )
}
