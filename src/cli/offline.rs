//! `ecr-gc plan`: the plan of a `describe-images` listing, offline, as a
//! table or as JSON.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Listing, Output, load_policy, print_table, read, short_digest, tags};
use crate::model::{Image, parse_rfc3339};
use crate::plan::{Decision, Plan, plan};
use crate::policy::Policy;
use crate::run::report::PlannedImage;

/// `aws ecr describe-images` output: `{"imageDetails": [...]}`, with any
/// other fields (`nextToken`) ignored.
#[derive(serde::Deserialize)]
struct DescribeImages {
    #[serde(rename = "imageDetails")]
    image_details: Option<Vec<Image>>,
}

/// Reads `aws ecr describe-images` output, or a bare array of image
/// details, straight into images (no intermediate JSON tree: a listing of
/// a million images is 300 MB of text). A bad entry is reported with its
/// path, as `imageDetails[3].imagePushedAt: ...`.
fn parse_images(text: &str) -> Result<Vec<Image>, String> {
    // `[3].imagePushedAt` in a bare array reads as `imageDetails[3]...`.
    let path_error = |prefix: &str, e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {inner}")
        } else if path == "." {
            inner.to_string()
        } else {
            format!("{prefix}{path}: {inner}")
        }
    };
    let mut de = serde_json::Deserializer::from_str(text);
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            serde_path_to_error::deserialize(&mut de).map_err(|e| path_error("imageDetails", e))
        }
        Some(b'{') => {
            let listing: DescribeImages =
                serde_path_to_error::deserialize(&mut de).map_err(|e| path_error("", e))?;
            listing.image_details.ok_or_else(|| {
                "expected an object with `imageDetails`, the output of `aws ecr describe-images`"
                    .to_owned()
            })
        }
        _ => match serde_json::from_str::<serde_json::Value>(text) {
            Err(e) => Err(format!("not valid JSON: {e}")),
            Ok(_) => Err("expected the output of `aws ecr describe-images`".into()),
        },
    }
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

impl Listing {
    /// The policy (the rules of `--repository`, if given), the listing and
    /// the time, each checked.
    pub(super) fn load(&self) -> Result<(Policy, Vec<Image>, DateTime<Utc>), String> {
        let policy = load_policy(&self.policy)?;
        let policy = match &self.repository {
            Some(name) => policy.for_repository(name).0.into_owned(),
            None => policy,
        };
        let images = parse_images(&read(&self.images, "images file")?)
            .map_err(|e| format!("{}: {e}", self.images))?;
        let now = match &self.now {
            Some(text) => parse_rfc3339(text).map_err(|e| format!("--now: {e}"))?,
            None => Utc::now(),
        };
        Ok((policy, images, now))
    }
}

pub(super) fn plan_command(listing: &Listing, output: Output) -> Result<ExitCode, String> {
    let (policy, images, now) = listing.load()?;
    let plan = plan(&images, &policy, now);
    // Buffered: stdout alone flushes every line, and a plan of a million
    // images is millions of lines.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        Output::Json => plan_json(&mut stdout, &plan, now)?,
        Output::Table => plan_table(&mut stdout, &plan, &policy, now),
    }
    stdout
        .flush()
        .map_err(|e| format!("cannot write the plan: {e}"))?;
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
                d.action.imperative().to_owned(),
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
        Some(("REASON", &reasons)),
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
