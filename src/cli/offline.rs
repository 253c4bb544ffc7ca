//! `ecr-gc plan`: the plan of a `describe-images` listing, offline, as a
//! table or as JSON.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};

use super::figures;
use super::listing::read_images;
use super::plan_json::{plan_freed, write_plan};
use super::{Listing, Output, load_policy, print_table, short_digest, tags};
use crate::model::{Image, parse_rfc3339};
use crate::plan::{Plan, plan};
use crate::policy::Policy;

impl Listing {
    /// The policy (the rules of `--repository`, if given), the listing and
    /// the time, each checked.
    pub(super) fn load(&self) -> Result<(Policy, Vec<Image>, DateTime<Utc>), String> {
        let policy = load_policy(&self.policy)?;
        let policy = match &self.repository {
            Some(name) => policy.for_repository(name).0.into_owned(),
            None => policy,
        };
        let images = read_images(&self.images)?;
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
        Output::Json => write_plan(&mut stdout, &plan, now, &policy.settings.prices)?,
        Output::Table => plan_table(&mut stdout, &plan, &policy, now),
    }
    stdout
        .flush()
        .map_err(|e| format!("cannot write the plan: {e}"))?;
    Ok(ExitCode::SUCCESS)
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
    let freed = plan_freed(plan);
    let prices = &policy.settings.prices;
    let _ = writeln!(
        out,
        "Up to {} freed (image sizes; layers shared with kept images are counted, so it can be less); {}.",
        figures::bytes(freed.standard + freed.archive),
        figures::saving(prices.monthly_saving(freed), prices)
    );
}
