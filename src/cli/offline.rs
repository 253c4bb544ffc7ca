//! `ecr-gc plan`: the plan of a `describe-images` listing, offline, as a
//! table or as JSON.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};

use super::listing::read_images;
use super::plan_json::{plan_freed, write_plan};
use super::summary::markdown_table;
use super::terminal::{Paint, Style};
use super::{Format, Listing, load_policy, print_table, short_digest, tags};
use super::{figures, html};
use crate::model::{Image, parse_rfc3339};
use crate::plan::{Action, Plan, plan};
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

pub(super) fn plan_command(listing: &Listing, output: Format) -> Result<ExitCode, String> {
    let env = |k: &str| std::env::var(k).ok();
    let (policy, images, now) = listing.load()?;
    let plan = plan(&images, &policy, now);
    // Buffered, a megabyte at a time: stdout alone flushes every line, and
    // a plan of a million images is millions of lines.
    let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    match output {
        Format::Json => write_plan(&mut stdout, &plan, now, &policy.settings.prices)?,
        Format::Table => plan_table(&mut stdout, &plan, &policy, now, Style::of_stdout(env)),
        Format::Markdown => plan_markdown(
            &mut stdout,
            &plan,
            &policy,
            now,
            listing.repository.as_deref(),
        ),
        Format::Html => html::write_plan(
            &mut stdout,
            &plan,
            &policy,
            now,
            listing.repository.as_deref(),
        )
        .map_err(|e| format!("cannot write the plan: {e}"))?,
    }
    stdout
        .flush()
        .map_err(|e| format!("cannot write the plan: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// The plan as a table, a row per image with its reason, and a count.
fn plan_table(
    out: &mut impl Write,
    plan: &Plan<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
    style: Style,
) {
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
    let paint = |i: usize| match plan.decisions.get(i) {
        Some(d) if d.action == Action::Delete => Some(Paint::Red),
        Some(d) if d.action == Action::Transition => Some(Paint::Yellow),
        Some(d) if d.protection.is_some() => Some(Paint::Green),
        _ => None,
    };
    print_table(
        out,
        &["ACTION", "DIGEST", "TAGS", "PUSHED", "RULE"],
        &rows,
        Some(("REASON", &reasons)),
        style,
        paint,
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

/// The most images the Markdown plan lists by name.
const MARKDOWN_IMAGES: usize = 200;

/// The plan as Markdown: its totals (protections by kind, bytes, the
/// estimated saving), then the images it deletes, archives or protects.
fn plan_markdown(
    out: &mut impl Write,
    plan: &Plan<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
    repository: Option<&str>,
) {
    let of = repository.map(|r| format!(" of `{r}`")).unwrap_or_default();
    let _ = writeln!(
        out,
        "## ecr-gc plan{of} (as of {})\n",
        now.format("%Y-%m-%d %H:%M UTC")
    );
    let count = |a: Action| plan.decisions.iter().filter(|d| d.action == a).count();
    let protected: std::collections::BTreeMap<&str, usize> = plan
        .protected()
        .filter_map(|d| d.protection.as_ref())
        .fold(Default::default(), |mut m, p| {
            *m.entry(p.kind()).or_default() += 1;
            m
        });
    let freed = plan_freed(plan);
    let prices = &policy.settings.prices;
    let protected_text = if protected.is_empty() {
        "0".to_owned()
    } else {
        protected
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    markdown_table(
        out,
        &[
            "images",
            "delete",
            "archive",
            "keep",
            "protected",
            "freed (up to)",
        ],
        &[vec![
            plan.decisions.len().to_string(),
            count(Action::Delete).to_string(),
            count(Action::Transition).to_string(),
            count(Action::Keep).to_string(),
            protected_text,
            figures::bytes(freed.standard + freed.archive),
        ]],
    );
    let _ = writeln!(
        out,
        "\n- Up to {} freed (image sizes; layers shared with kept images stay); {}.",
        figures::bytes(freed.standard + freed.archive),
        figures::saving(prices.monthly_saving(freed), prices)
    );
    markdown_images(out, plan);
}

/// The images a plan deletes, archives or protects, as a Markdown table
/// (at most [`MARKDOWN_IMAGES`], the rest counted).
fn markdown_images(out: &mut impl Write, plan: &Plan<'_>) {
    let worth = |d: &&crate::plan::Decision<'_>| d.action != Action::Keep || d.protection.is_some();
    let total = plan.decisions.iter().filter(worth).count();
    // Only the rows shown are formatted: a million reasons would take
    // longer than the whole plan.
    let listed: Vec<Vec<String>> = plan
        .decisions
        .iter()
        .filter(worth)
        .take(MARKDOWN_IMAGES)
        .map(|d| {
            let action = match (d.action, &d.protection) {
                (Action::Keep, Some(_)) => "keep (protected)",
                (a, _) => a.imperative(),
            };
            vec![
                action.to_owned(),
                format!("`{}`", short_digest(&d.image.image_digest)),
                tags(&d.image.image_tags),
                d.image
                    .image_pushed_at
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                d.rule_priority
                    .map_or_else(|| "-".into(), |p| p.to_string()),
                d.explain(),
            ]
        })
        .collect();
    if listed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Images deleted, archived or protected\n");
    markdown_table(
        out,
        &["action", "digest", "tags", "pushed", "rule", "reason"],
        &listed,
    );
    if total > listed.len() {
        let _ = writeln!(
            out,
            "\n…and {} more; `--output json` has every image.",
            total - listed.len()
        );
    }
}
