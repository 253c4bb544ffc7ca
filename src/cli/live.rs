//! `ecr-gc run`: live repositories through the standard credential chain,
//! a dry run unless `--apply`, with the report as a table or as JSON.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;

use super::summary::{print_summary, write_markdown};
use super::terminal::Progress;
use super::terminal::{Paint, Style};
use super::{Format, html, load_policy, print_table};
use crate::aws::targets::Targets;
use crate::aws::{Connector, SdkRetry};
use crate::model::{AccountId, RepositoryName};
use crate::run::collection;
use crate::run::engine::{Run, Scope};
use crate::run::lines::{JsonLines, LogSink};
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
/// with `detail`, and with `emf` the CloudWatch metrics; where the log
/// lines go, and whether a terminal is shown progress.
pub(super) struct Reporting {
    pub output: Format,
    pub detail: Detail,
    pub emf: bool,
    pub quiet: bool,
    pub log_file: Option<String>,
}

pub(super) fn run_command(
    policy: &str,
    repositories: Vec<String>,
    apply: bool,
    registry_id: Option<String>,
    targets: Option<String>,
    reporting: Reporting,
) -> Result<ExitCode, String> {
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
        // The page draws every image, the kept ones too.
        detail: if reporting.output == Format::Html {
            Detail::All
        } else {
            reporting.detail
        },
    };
    // Log lines go to stderr (or --log-file): stdout carries the report.
    let lines = log_lines(reporting.log_file.as_deref())?;
    let log = Progress::new(lines, reporting.log_file.is_none(), !apply, reporting.quiet);
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
        if reporting.emf {
            metrics::emit(&connector, &report, &log);
        }
        report
    });
    log.finish();
    write_report(reporting.output, &report)?;
    Ok(if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where the JSON log lines go: appended to `path`, or stderr.
fn log_lines(path: Option<&str>) -> Result<Box<dyn LogSink>, String> {
    Ok(match path {
        Some(path) => Box::new(JsonLines::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--log-file {path}: cannot open it: {e}"))?,
        )),
        None => Box::new(JsonLines::new(std::io::stderr())),
    })
}

/// The report on stdout, as `output` asks.
fn write_report(output: Format, report: &Collection) -> Result<(), String> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let failed = |e: std::io::Error| format!("cannot write the output: {e}");
    match output {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, report).map_err(|e| e.to_string())?;
            writeln!(stdout).map_err(failed)?;
        }
        Format::Table => print_report(
            &mut stdout,
            report,
            Style::of_stdout(|k| std::env::var(k).ok()),
        ),
        Format::Markdown => write_markdown(&mut stdout, report),
        Format::Html => html::write_run(&mut stdout, report).map_err(failed)?,
    }
    stdout.flush().map_err(failed)
}

fn print_report(out: &mut impl Write, report: &Collection, style: Style) {
    let several = report.targets.len() > 1;
    let problems: Vec<Option<Paint>> = report
        .repositories()
        .map(|(_, r)| {
            let c = r.counts();
            if r.error.is_some() || c.images_failed + c.transitions_failed > 0 {
                Some(Paint::Red)
            } else if r.needs_attention() {
                Some(Paint::Yellow)
            } else {
                None
            }
        })
        .collect();
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
        &[
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
        style,
        |i| problems.get(i).copied().flatten(),
    );
    print_notes(out, report, style);
    print_summary(out, report, style);
}

/// A line for each target that failed, and for each repository's hold,
/// unfinished work, skipped image and failed image.
fn print_notes(out: &mut impl Write, report: &Collection, style: Style) {
    let mut notes = Vec::new();
    write_notes(&mut notes, report);
    for line in String::from_utf8_lossy(&notes).lines() {
        let _ = writeln!(out, "{}", style.fit(line));
    }
}

fn write_notes(out: &mut impl Write, report: &Collection) {
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
