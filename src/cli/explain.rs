//! `ecr-gc explain`: one image of a `describe-images` listing, offline:
//! which rule decides it and what that rule counted, what every rule says
//! of it on its own, and which protections apply.
//!
//! Each rule's own say is the plan of a policy of that rule alone: a rule
//! counts and ages over every image it selects, whatever the rules above
//! it decided, so its verdict does not depend on them.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::terminal::Style;
use super::{Listing, Output, emit, print_table, tags};
use crate::model::Image;
use crate::plan::{Action, Decision, Reason, plan};
use crate::policy::Policy;

/// What the offline plan cannot know, said with every explanation.
const OFFLINE: &str = "offline: workloads are not read; `ecr-gc run` also keeps what ECS, Lambda, EKS and the other in-use sources run";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Explanation {
    now: DateTime<Utc>,
    image_digest: String,
    image_tags: Vec<String>,
    image_pushed_at: DateTime<Utc>,
    image_status: String,
    action: Action,
    rule_priority: Option<u32>,
    reason: String,
    protection: Option<String>,
    /// Every rule, in priority order, with what it says of the image on
    /// its own.
    rules: Vec<RuleSay>,
    note: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleSay {
    rule_priority: u32,
    action: &'static str,
    selects: bool,
    decides: bool,
    says: String,
}

pub(super) fn explain_command(
    arguments: &Listing,
    wanted: &str,
    output: Output,
) -> Result<ExitCode, String> {
    let (policy, listing, now) = arguments.load()?;
    let target = find(&listing, wanted).map_err(|e| format!("{}: {e}", arguments.images))?;
    let plan = plan(&listing, &policy, now);
    let decision = decision_of(&plan.decisions, target)?;
    let explanation = Explanation {
        now,
        image_digest: target.image_digest.clone(),
        image_tags: target.image_tags.clone(),
        image_pushed_at: target.image_pushed_at,
        image_status: target.image_status.as_str().to_owned(),
        action: decision.action,
        rule_priority: decision.rule_priority,
        reason: decision.reason.to_string(),
        protection: decision.protection.as_ref().map(ToString::to_string),
        rules: each_rule(&policy, &listing, now, target, decision.rule_priority)?,
        note: OFFLINE,
    };
    emit(output, &explanation, print_explanation)?;
    Ok(ExitCode::SUCCESS)
}

/// The image `wanted` names: a digest, a tag, or the unique image whose
/// digest starts with it.
fn find<'i>(listing: &'i [Image], wanted: &str) -> Result<&'i Image, String> {
    if let Some(image) = listing.iter().find(|i| i.image_digest == wanted) {
        return Ok(image);
    }
    if let Some(image) = listing
        .iter()
        .find(|i| i.image_tags.iter().any(|t| t == wanted))
    {
        return Ok(image);
    }
    let prefixed: Vec<&Image> = listing
        .iter()
        .filter(|i| {
            i.image_digest.starts_with(wanted)
                || i.image_digest
                    .split_once(':')
                    .is_some_and(|(_, hex)| hex.starts_with(wanted))
        })
        .collect();
    match prefixed.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("no image has the tag or digest {wanted:?}")),
        several => Err(format!(
            "{wanted:?} is the start of {} digests ({}); give more of it",
            several.len(),
            several
                .iter()
                .take(3)
                .map(|i| i.image_digest.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn decision_of<'p, 'a>(
    decisions: &'p [Decision<'a>],
    image: &Image,
) -> Result<&'p Decision<'a>, String> {
    decisions
        .iter()
        .find(|d| d.image.image_digest == image.image_digest)
        .ok_or_else(|| format!("the plan has no decision for {}", image.image_digest))
}

/// What each rule says of the image when it is the policy's only rule.
fn each_rule(
    policy: &Policy,
    listing: &[Image],
    now: DateTime<Utc>,
    image: &Image,
    deciding: Option<u32>,
) -> Result<Vec<RuleSay>, String> {
    let mut says = Vec::with_capacity(policy.rules.len());
    for rule in &policy.rules {
        let alone = policy.with_rules(vec![rule.clone()]);
        let plan = plan(listing, &alone, now);
        let decision = decision_of(&plan.decisions, image)?;
        let selects = matches!(decision.reason, Reason::Rule(_));
        says.push(RuleSay {
            rule_priority: rule.priority,
            action: rule.action.imperative(),
            selects,
            decides: selects && deciding == Some(rule.priority),
            says: match &decision.reason {
                Reason::Rule(verdict) => verdict.alone().to_string(),
                Reason::NoRuleSelects => "does not select it".to_owned(),
                other => format!("does not select it: {other}"),
            },
        });
    }
    Ok(says)
}

fn print_explanation(out: &mut impl Write, e: &Explanation) {
    let decided = match e.rule_priority {
        Some(priority) => format!(", decided by rule {priority}"),
        None => String::new(),
    };
    let done = e.action.imperative();
    let _ = writeln!(
        out,
        "image       {} ({}), pushed {}, {}",
        e.image_digest,
        tags(&e.image_tags),
        e.image_pushed_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        e.image_status
    );
    let _ = writeln!(out, "decision    {done}{decided}");
    let _ = writeln!(out, "reason      {}", e.reason);
    let _ = writeln!(
        out,
        "protection  {}",
        e.protection.as_deref().unwrap_or("none")
    );
    let _ = writeln!(out, "\nEach rule on its own:");
    let rows: Vec<[String; 3]> = e
        .rules
        .iter()
        .map(|r| {
            [
                r.rule_priority.to_string(),
                r.action.to_owned(),
                if r.decides {
                    "<- decides".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let says: Vec<String> = e.rules.iter().map(|r| r.says.clone()).collect();
    print_table(
        out,
        &["RULE", "ACTION", ""],
        &rows,
        Some(("SAYS", &says)),
        Style::of_stdout(|k| std::env::var(k).ok()),
        |_| None,
    );
    let _ = writeln!(
        out,
        "\nAs of {}; {}.",
        e.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        e.note
    );
}
