//! The CLI: `plan` (offline) and `run` (live), over the same engine as the
//! Lambda function.
//!
//! Exit status: 0 on success; 1 when a repository could not be collected or
//! an image was not deleted; 2 on invalid input, with the message on stderr.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::aws::targets::Targets;
use crate::aws::{Connector, SdkRetry};
use crate::model::{AccountId, Image, RepositoryName, parse_rfc3339};
use crate::plan::{Action, Decision, Plan, plan};
use crate::policy::Policy;
use crate::run::collection;
use crate::run::engine::{Run, Scope};
use crate::run::report::{Cause, Collection, JsonLines, PlannedImage};

#[derive(Debug, Parser)]
#[command(
    name = "ecr-gc",
    version,
    about = "Garbage-collect Amazon ECR images with ECR lifecycle-policy rules"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan offline: which images of a `describe-images` listing the policy expires.
    Plan {
        /// The policy document (ECR lifecycle-policy JSON, plus optional settings).
        #[arg(long)]
        policy: String,
        /// The output of `aws ecr describe-images` (CLI v1 or v2).
        #[arg(long)]
        images: String,
        /// Evaluate as of this time (RFC 3339); defaults to now.
        #[arg(long)]
        now: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Collect live repositories through the standard AWS credential chain. A dry run unless --apply.
    Run {
        #[arg(long)]
        policy: String,
        /// Collect this repository (repeatable). Without it, the policy's settings select repositories.
        #[arg(long = "repository", value_name = "NAME")]
        repositories: Vec<String>,
        /// Delete what the plan expires. Without it, nothing is deleted.
        #[arg(long)]
        apply: bool,
        /// The registry (AWS account id) to collect, when it is not the caller's own.
        #[arg(long, value_name = "ACCOUNT_ID", conflicts_with = "targets")]
        registry_id: Option<String>,
        /// A targets document (regions, and accounts with roles to assume), as in ECR_GC_TARGETS.
        #[arg(long, value_name = "FILE")]
        targets: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Runs the CLI with `args` (the first is the program name) and returns
/// the exit status.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Plan {
            policy,
            images,
            now,
            output,
        } => plan_command(&policy, &images, now.as_deref(), output),
        Command::Run {
            policy,
            repositories,
            apply,
            registry_id,
            targets,
            output,
        } => run_command(&policy, repositories, apply, registry_id, targets, output),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ecr-gc: {message}");
            ExitCode::from(2)
        }
    }
}

fn read(path: &str, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {what} {path}: {e}"))
}

fn load_policy(path: &str) -> Result<Policy, String> {
    Policy::parse(&read(path, "policy file")?).map_err(|e| format!("{path}: invalid policy: {e}"))
}

/// Reads `aws ecr describe-images` output: `{"imageDetails": [...]}`, or a
/// bare array of image details.
fn parse_images(text: &str) -> Result<Vec<Image>, String> {
    // Parse once as a value so a bad entry is reported with its own error,
    // not serde's "did not match any variant".
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let entries = match &value {
        serde_json::Value::Object(map) => map.get("imageDetails").cloned().ok_or(
            "expected an object with `imageDetails`, the output of `aws ecr describe-images`",
        )?,
        serde_json::Value::Array(_) => value.clone(),
        _ => return Err("expected the output of `aws ecr describe-images`".into()),
    };
    let serde_json::Value::Array(entries) = entries else {
        return Err("`imageDetails` must be an array".into());
    };
    let mut images = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        images.push(serde_json::from_value(entry).map_err(|e| format!("imageDetails[{i}]: {e}"))?);
    }
    Ok(images)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanOutput {
    now: DateTime<Utc>,
    delete: Vec<PlannedImage>,
    /// Images moved to the archive storage class (`transition` rules).
    transition: Vec<PlannedImage>,
    keep: Vec<PlannedImage>,
    summary: PlanSummary,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanSummary {
    images: usize,
    delete: usize,
    transition: usize,
    keep: usize,
    bytes_planned: i64,
    bytes_to_archive: i64,
}

fn plan_command(
    policy: &str,
    images: &str,
    now: Option<&str>,
    output: Output,
) -> Result<ExitCode, String> {
    let policy = load_policy(policy)?;
    let images =
        parse_images(&read(images, "images file")?).map_err(|e| format!("{images}: {e}"))?;
    let now = match now {
        Some(text) => parse_rfc3339(text).map_err(|e| format!("--now: {e}"))?,
        None => Utc::now(),
    };
    let plan = plan(&images, &policy, now);
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Json => plan_json(&mut stdout, &plan, now)?,
        Output::Table => plan_table(&mut stdout, &plan, &policy, now),
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan as one JSON object: `delete`, `transition` and `keep`, and a
/// summary.
fn plan_json(out: &mut impl Write, plan: &Plan<'_>, now: DateTime<Utc>) -> Result<(), String> {
    let list = |decisions: &mut dyn Iterator<Item = &Decision<'_>>| -> Vec<PlannedImage> {
        decisions.map(PlannedImage::from_decision).collect()
    };
    let delete = list(&mut plan.to_delete());
    let transition = list(&mut plan.to_transition());
    let keep = list(&mut plan.to_keep());
    let bytes = |list: &[PlannedImage]| list.iter().filter_map(|d| d.image_size_in_bytes).sum();
    let summary = PlanSummary {
        images: plan.decisions.len(),
        delete: delete.len(),
        transition: transition.len(),
        keep: keep.len(),
        bytes_planned: bytes(&delete),
        bytes_to_archive: bytes(&transition),
    };
    let doc = PlanOutput {
        now,
        delete,
        transition,
        keep,
        summary,
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| e.to_string())?;
    let _ = writeln!(out);
    Ok(())
}

/// The plan as a table, a row per image with its reason, and a count.
fn plan_table(out: &mut impl Write, plan: &Plan<'_>, policy: &Policy, now: DateTime<Utc>) {
    let rows: Vec<[String; 5]> = plan
        .decisions
        .iter()
        .map(|d| {
            [
                match d.action {
                    Action::Delete => "delete".into(),
                    Action::Transition => "archive".into(),
                    Action::Keep => "keep".into(),
                },
                short_digest(&d.image.image_digest),
                tags(&d.image.image_tags),
                d.image
                    .image_pushed_at
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                d.rule_priority
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let reasons: Vec<String> = plan.decisions.iter().map(|d| d.explain()).collect();
    print_table(
        out,
        ["ACTION", "DIGEST", "TAGS", "PUSHED", "RULE"],
        &rows,
        Some(&reasons),
    );
    let deletes = plan.to_delete().count();
    let archives = plan.to_transition().count();
    let archived = if archives > 0 || policy.transitions() {
        format!(" and {archives} archived")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\n{deletes} of {} images would be deleted{archived} (as of {}).",
        plan.decisions.len(),
        now.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
}

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

fn run_command(
    policy: &str,
    repositories: Vec<String>,
    apply: bool,
    registry_id: Option<String>,
    targets: Option<String>,
    output: Output,
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
        collection::collect(
            &connector,
            &targets,
            &policy,
            &run,
            work,
            collection::Others::Read,
            &log,
        )
        .await
    });
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report).map_err(|e| e.to_string())?;
            let _ = writeln!(stdout);
        }
        Output::Table => print_report(&mut stdout, &report),
    }
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
            [
                if several {
                    format!("{target}:{}", r.repository_name)
                } else {
                    r.repository_name.clone()
                },
                r.images_scanned.to_string(),
                r.protected.len().to_string(),
                r.planned.len().to_string(),
                r.skipped.len().to_string(),
                r.deleted.len().to_string(),
                match &r.error {
                    Some(e) => format!("error: {}", e.error_code),
                    None => r.failed.len().to_string(),
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
        "\n{} repositories ({} held), {} images: {} protected, {} planned, {} skipped, {} deleted, {} failed, {} bytes reclaimed ({mode}).",
        s.repositories,
        s.repositories_held,
        s.images_scanned,
        s.images_protected,
        s.images_planned,
        s.images_skipped,
        s.images_deleted,
        s.images_failed,
        s.bytes_reclaimed
    );
    if s.transitions_planned > 0 {
        let _ = writeln!(
            out,
            "Archive: {} planned, {} archived, {} not archived.",
            s.transitions_planned, s.images_transitioned, s.transitions_failed
        );
    }
}

fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}", &hex[..12]),
        _ => digest.to_owned(),
    }
}

fn tags(tags: &[String]) -> String {
    if tags.is_empty() {
        "<untagged>".into()
    } else {
        tags.join(",")
    }
}

/// Prints aligned columns, then an optional free-text last column.
fn print_table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
    last: Option<&[String]>,
) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>, extra: &str| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            text.push_str(&format!("{cell:<w$}  "));
        }
        text.push_str(extra);
        text.trim_end().to_owned()
    };
    let _ = writeln!(
        out,
        "{}",
        line(header.to_vec(), if last.is_some() { "REASON" } else { "" })
    );
    for (i, row) in rows.iter().enumerate() {
        let extra = last
            .and_then(|l| l.get(i))
            .map(String::as_str)
            .unwrap_or("");
        let _ = writeln!(
            out,
            "{}",
            line(row.iter().map(String::as_str).collect(), extra)
        );
    }
}
