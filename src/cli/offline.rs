//! `ecr-gc plan`: the plan of a `describe-images` listing, offline, as a
//! table or as JSON.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Listing, Output, load_policy, print_table, short_digest, tags};
use crate::model::{Image, parse_rfc3339};
use crate::plan::{Action, Plan, plan};
use crate::policy::Policy;
use crate::run::report::Planned;

/// `aws ecr describe-images` output: `{"imageDetails": [...]}`, with any
/// other fields (`nextToken`) ignored.
#[derive(serde::Deserialize)]
struct DescribeImages {
    #[serde(rename = "imageDetails")]
    image_details: Option<Vec<Image>>,
}

/// Reads `aws ecr describe-images` output, or a bare array of image
/// details, straight into images (no intermediate JSON tree: a listing of
/// a million images is 500 MB of text). A bad entry is reported with its
/// path, as `imageDetails[3].imagePushedAt: ...`: the text is read again
/// then, tracking the path, which costs a third more than reading it
/// without.
fn parse_images(text: &[u8]) -> Result<Vec<Image>, String> {
    match text.trim_ascii_start().first() {
        Some(b'[') => serde_json::from_slice(text)
            .map_err(|_| explain_error::<Vec<Image>>(text, "imageDetails")),
        Some(b'{') => {
            let listing: DescribeImages = serde_json::from_slice(text)
                .map_err(|_| explain_error::<DescribeImages>(text, ""))?;
            listing.image_details.ok_or_else(|| {
                "expected an object with `imageDetails`, the output of `aws ecr describe-images`"
                    .to_owned()
            })
        }
        _ => match serde_json::from_slice::<serde_json::Value>(text) {
            Err(e) => Err(format!("not valid JSON: {e}")),
            Ok(_) => Err("expected the output of `aws ecr describe-images`".into()),
        },
    }
}

/// Why `text` does not read as a `T`, with the path to the bad value
/// (`prefix` before it: a bare array's `[3]` reads as `imageDetails[3]`).
fn explain_error<T: serde::de::DeserializeOwned>(text: &[u8], prefix: &str) -> String {
    let mut de = serde_json::Deserializer::from_slice(text);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => match de.end() {
            Ok(()) => return "the listing could not be read".to_owned(),
            Err(e) => return format!("not valid JSON: {e}"),
        },
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        format!("not valid JSON: {inner}")
    } else if path == "." {
        inner.to_string()
    } else {
        format!("{prefix}{path}: {inner}")
    }
}

/// The plan as `plan --output json` writes it. Each list is written
/// straight from the plan's decisions (`Planned`), so a million images are
/// never copied into a second list first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanOutput<'p, 'a> {
    now: DateTime<Utc>,
    delete: Decisions<'p, 'a>,
    /// Images moved to the archive storage class (`transition` rules).
    transition: Decisions<'p, 'a>,
    keep: Decisions<'p, 'a>,
    summary: PlanSummary,
}

/// The plan's decisions of one action, written as a JSON array.
struct Decisions<'p, 'a> {
    plan: &'p Plan<'a>,
    action: Action,
}

impl Serialize for Decisions<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.plan
                .decisions
                .iter()
                .filter(|d| d.action == self.action)
                .map(Planned),
        )
    }
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
        let text = std::fs::read(&self.images)
            .map_err(|e| format!("cannot read images file {}: {e}", self.images))?;
        let images = parse_images(&text).map_err(|e| format!("{}: {e}", self.images))?;
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
    // Buffered, a megabyte at a time: stdout alone flushes every line, and
    // a plan of a million images is millions of lines.
    let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
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
    let mut summary = PlanSummary {
        images: plan.decisions.len(),
        delete: 0,
        transition: 0,
        keep: 0,
        bytes_planned: 0,
        bytes_to_archive: 0,
    };
    for decision in &plan.decisions {
        let size = decision.image.image_size_in_bytes.unwrap_or(0);
        match decision.action {
            Action::Delete => {
                summary.delete += 1;
                summary.bytes_planned += size;
            }
            Action::Transition => {
                summary.transition += 1;
                summary.bytes_to_archive += size;
            }
            Action::Keep => summary.keep += 1,
        }
    }
    let list = |action| Decisions { plan, action };
    let doc = PlanOutput {
        now,
        delete: list(Action::Delete),
        transition: list(Action::Transition),
        keep: list(Action::Keep),
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
