//! `ecr-gc validate`: whether a policy document loads, rule by rule what
//! it does, and with `--native` whether ECR's own lifecycle policies would
//! accept its rules (rules that use none of ecr-gc's extensions; the
//! document's `settings` are ecr-gc's own, and are left out of what ECR is
//! given).
//!
//! Exit status: 0 when it loads (and, with `--native`, ECR would accept
//! it); 1 when it does not; 2 when the file cannot be read.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::terminal::Style;
use super::{Output, emit, print_table, read};
use crate::policy::{Count, Policy, Rule, RuleAction, StorageClass};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Validation<'a> {
    policy: &'a str,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Whether ECR would accept the rules (`settings` aside).
    #[serde(skip_serializing_if = "Option::is_none")]
    native: Option<bool>,
    /// Whether the document has ecr-gc's `settings`, which ECR refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<bool>,
    rules: Vec<RuleCheck>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleCheck {
    /// `rules`, or `settings.overrides[i].rules`.
    set: String,
    rule_priority: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// What the rule does, in a sentence.
    summary: String,
    native: bool,
    /// The extensions the rule uses, each in words.
    extensions: Vec<String>,
}

pub(super) fn validate_command(
    path: &str,
    native: bool,
    output: Output,
) -> Result<ExitCode, String> {
    let text = read(path, "policy file")?;
    let has_settings = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .is_some_and(|v| v.get("settings").is_some());
    let validation = match Policy::parse(&text) {
        Err(error) => Validation {
            policy: path,
            valid: false,
            error: Some(error.to_string()),
            native: None,
            settings: None,
            rules: Vec::new(),
        },
        Ok(policy) => Validation {
            policy: path,
            valid: true,
            error: None,
            native: Some(policy.is_native()),
            settings: Some(has_settings),
            rules: policy
                .rule_sets()
                .enumerate()
                .flat_map(|(i, rules)| {
                    let set = match i {
                        0 => "rules".to_owned(),
                        i => format!("settings.overrides[{}].rules", i - 1),
                    };
                    rules.iter().map(move |rule| check_rule(&set, rule))
                })
                .collect(),
        },
    };
    emit(output, &validation, |out, v| {
        print_validation(out, v, native)
    })?;
    let accepted = validation.valid && (!native || validation.native == Some(true));
    Ok(if accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check_rule(set: &str, rule: &Rule) -> RuleCheck {
    RuleCheck {
        set: set.to_owned(),
        rule_priority: rule.priority,
        description: rule.description.clone(),
        summary: summary(rule),
        native: rule.extensions.is_empty(),
        extensions: rule.extensions.iter().map(ToString::to_string).collect(),
    }
}

/// What a rule does, in words: "expire images tagged with prefixes
/// ["v"] beyond the newest 3".
fn summary(rule: &Rule) -> String {
    let class = match rule.storage_class {
        StorageClass::Archive => " in the archive",
        StorageClass::Either => " in either storage class",
        StorageClass::Standard => "",
    };
    let keeps = rule.action == RuleAction::Keep;
    let condition = match rule.count {
        Count::Every => String::new(),
        Count::ImagesMoreThan(n) => {
            let (order, per) = rule.ranking(n);
            let side = if keeps { "the" } else { "beyond the" };
            format!(", {side} {order}{per}")
        }
        Count::PushedMoreThanDaysAgo(d) => days(keeps, "pushed", d),
        Count::PulledMoreThanDaysAgo(d) => days(keeps, "last pulled", d),
        Count::TransitionedMoreThanDaysAgo(d) => days(keeps, "archived", d),
    };
    format!(
        "{} {}{class}{condition}",
        rule.action.imperative(),
        rule.tags
    )
}

fn days(keeps: bool, what: &str, days: u64) -> String {
    let limit = if keeps { "at most" } else { "more than" };
    format!(", {what} {limit} {days} days ago")
}

fn print_validation(out: &mut impl Write, validation: &Validation<'_>, native: bool) {
    if let Some(error) = &validation.error {
        let _ = writeln!(out, "{}: invalid: {error}", validation.policy);
        return;
    }
    let rows: Vec<[String; 2]> = validation
        .rules
        .iter()
        .map(|r| {
            let ecr = if r.native { "yes" } else { "no" };
            let rule = match r.set.as_str() {
                "rules" => r.rule_priority.to_string(),
                set => format!(
                    "{} {}",
                    set.trim_start_matches("settings.")
                        .trim_end_matches(".rules"),
                    r.rule_priority
                ),
            };
            [rule, ecr.to_owned()]
        })
        .collect();
    let sentences: Vec<String> = validation
        .rules
        .iter()
        .map(|r| match r.extensions.as_slice() {
            [] => r.summary.clone(),
            extensions => format!("{}; ecr-gc only: {}", r.summary, extensions.join("; ")),
        })
        .collect();
    print_table(
        out,
        &["RULE", "ECR"],
        &rows,
        Some(("WHAT IT DOES", &sentences)),
        Style::of_stdout(|k| std::env::var(k).ok()),
        |_| None,
    );
    let extended = validation.rules.iter().filter(|r| !r.native).count();
    let _ = writeln!(
        out,
        "\n{}: valid: {} rules, {extended} using ecr-gc's extensions.",
        validation.policy,
        validation.rules.len()
    );
    if !native {
        return;
    }
    let accepted = validation.native == Some(true);
    let verdict = if accepted {
        "ECR would accept these rules as they are"
    } else {
        "ECR would refuse the rules marked `no`"
    };
    let settings = if accepted && validation.settings == Some(true) {
        " (without `settings`, which is ecr-gc's own: ECR's put-lifecycle-policy takes a document of `rules` only)"
    } else {
        ""
    };
    let _ = writeln!(out, "{verdict}{settings}.");
}
