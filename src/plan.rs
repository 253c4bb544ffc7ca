//! The planner: (images, policy, now) -> Plan, with a reason for every image.
//!
//! This is ECR's lifecycle-policy evaluation, done exactly and in full:
//!
//! * Rules are evaluated in ascending `rulePriority`.
//! * A rule counts and ages over *every* image its tag requirements select,
//!   including images that higher-priority rules selected.
//! * A rule may only expire images that no higher-priority rule selected. So
//!   an image's fate is decided by the first rule (by priority) that selects
//!   it, and an image is expired by one rule or by none.
//! * `imageCountMoreThan` orders images newest first by `imagePushedAt` and
//!   expires everything past `countNumber`. Ties in `imagePushedAt` are
//!   broken by digest, ascending, so the plan is deterministic.
//! * `sinceImagePushed` expires images pushed more than `countNumber` days
//!   before `now`.
//!
//! Then the protections, which hold whatever the rules say: an image the
//! rules expire but that a workload uses, or that was pushed inside the
//! grace period, is kept, and the decision says which. Protected images still count for the rules, as ECR
//! would count them.
//!
//! The planner performs no I/O and reads no clock: `now` is a parameter.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::Image;
use crate::policy::{Count, Policy, Rule};

const MILLIS_PER_DAY: i128 = 86_400_000;

/// What happens to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Delete,
    Keep,
}

/// The decision for one image, with the rule that made it and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    pub image: &'a Image,
    pub action: Action,
    /// The deciding rule: the first rule, by priority, that selects the
    /// image. `None` when no rule selects it.
    pub rule_priority: Option<u32>,
    pub reason: Reason<'a>,
    /// Set when the rules expire the image but a protection keeps it.
    pub protection: Option<Protection>,
}

/// Why an image the rules expire is kept all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// A workload uses it: `workloads` such as `ecs:service/prod/web`.
    InUse { workloads: Vec<String> },
    /// Pushed less than `minutes` ago (or, by a skewed clock, in the future).
    GracePeriod { age_millis: i128, minutes: u64 },
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::InUse { workloads } => write!(f, "in use by {}", workloads.join(", ")),
            Protection::GracePeriod {
                age_millis,
                minutes,
            } => write!(
                f,
                "pushed {:.0} minutes ago, inside the {minutes}-minute grace period",
                (*age_millis as f64 / 60_000.0).max(0.0)
            ),
        }
    }
}

impl Decision<'_> {
    /// The reason and, if any, the protection, as one sentence for people.
    pub fn explain(&self) -> String {
        match &self.protection {
            None => self.reason.to_string(),
            Some(protection) => format!("{}; kept: {protection}", self.reason),
        }
    }
}

/// Why an image is deleted or kept. Displays as a sentence for people.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason<'a> {
    NoRuleSelects,
    /// `imageCountMoreThan`: the image is number `rank` (1-based, newest
    /// first) of the `selected` images that the rule selects.
    Count {
        rule: &'a Rule,
        rank: u64,
        selected: u64,
        keep: u64,
    },
    /// `sinceImagePushed`: the image's age against the rule's limit.
    Age {
        rule: &'a Rule,
        age_millis: i128,
        days: u64,
    },
}

/// The plan for one repository: every image, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<'a> {
    pub decisions: Vec<Decision<'a>>,
}

impl<'a> Plan<'a> {
    pub fn to_delete(&self) -> impl Iterator<Item = &Decision<'a>> {
        self.decisions.iter().filter(|d| d.action == Action::Delete)
    }

    pub fn to_keep(&self) -> impl Iterator<Item = &Decision<'a>> {
        self.decisions.iter().filter(|d| d.action == Action::Keep)
    }

    /// Images the rules expire but a protection keeps.
    pub fn protected(&self) -> impl Iterator<Item = &Decision<'a>> {
        self.decisions.iter().filter(|d| d.protection.is_some())
    }
}

/// Orders images newest first; equal push times fall back to the digest.
fn newest_first(a: &Image, b: &Image) -> Ordering {
    b.image_pushed_at
        .cmp(&a.image_pushed_at)
        .then_with(|| a.image_digest.cmp(&b.image_digest))
}

/// Evaluates `policy` over one repository's `images` as of `now`, then
/// applies the grace period. Nothing is known to be in use.
pub fn plan<'a>(images: &'a [Image], policy: &'a Policy, now: DateTime<Utc>) -> Plan<'a> {
    plan_with(images, policy, now, &InUse::new())
}

/// The digests in use, each with the workloads that use it.
pub type InUse = HashMap<String, Vec<String>>;

/// Evaluates `policy` over one repository's `images` as of `now`, then
/// applies the protections: `in_use` digests and the grace period.
pub fn plan_with<'a>(
    images: &'a [Image],
    policy: &'a Policy,
    now: DateTime<Utc>,
    in_use: &InUse,
) -> Plan<'a> {
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_unstable_by(|&a, &b| newest_first(&images[a], &images[b]));

    // For each image, the first rule that selects it (by index) and that
    // rule's reason; and for each rule, how many images it selects.
    let mut decided: Vec<Option<(usize, Reason<'a>)>> = vec![None; images.len()];
    let mut selected_by_rule: Vec<u64> = vec![0; policy.rules.len()];
    for (rule_index, rule) in policy.rules.iter().enumerate() {
        let mut rank: u64 = 0;
        for &index in &order {
            let image = &images[index];
            if !rule.tags.selects(&image.image_tags) {
                continue;
            }
            rank += 1;
            // An image a higher-priority rule selected still counts here,
            // but only its first rule decides it.
            if decided[index].is_none() {
                let reason = match rule.count {
                    Count::ImagesMoreThan(keep) => Reason::Count {
                        rule,
                        rank,
                        selected: 0,
                        keep,
                    },
                    Count::PushedMoreThanDaysAgo(days) => Reason::Age {
                        rule,
                        age_millis: i128::from((now - image.image_pushed_at).num_milliseconds()),
                        days,
                    },
                };
                decided[index] = Some((rule_index, reason));
            }
        }
        selected_by_rule[rule_index] = rank;
    }

    let decisions = order
        .into_iter()
        .map(|index| {
            let reason = match decided[index].take() {
                None => Reason::NoRuleSelects,
                Some((rule_index, mut reason)) => {
                    if let Reason::Count { selected, .. } = &mut reason {
                        *selected = selected_by_rule[rule_index];
                    }
                    reason
                }
            };
            let image = &images[index];
            let protection = if reason.expires() {
                protect(image, policy, now, in_use)
            } else {
                None
            };
            Decision {
                image,
                action: if reason.expires() && protection.is_none() {
                    Action::Delete
                } else {
                    Action::Keep
                },
                rule_priority: reason.rule().map(|rule| rule.priority),
                reason,
                protection,
            }
        })
        .collect();
    Plan { decisions }
}

/// The protection that keeps an image the rules expire, if any.
fn protect(
    image: &Image,
    policy: &Policy,
    now: DateTime<Utc>,
    in_use: &InUse,
) -> Option<Protection> {
    if let Some(workloads) = in_use.get(&image.image_digest) {
        return Some(Protection::InUse {
            workloads: workloads.clone(),
        });
    }
    let minutes = policy.settings.safety.grace_period_minutes;
    let age_millis = i128::from((now - image.image_pushed_at).num_milliseconds());
    (age_millis < i128::from(minutes) * 60_000).then_some(Protection::GracePeriod {
        age_millis,
        minutes,
    })
}

impl Reason<'_> {
    /// Whether this reason expires the image: the one place the count and
    /// age comparisons are made.
    pub fn expires(&self) -> bool {
        match self {
            Reason::NoRuleSelects => false,
            Reason::Count { rank, keep, .. } => rank > keep,
            Reason::Age {
                age_millis, days, ..
            } => *age_millis > i128::from(*days) * MILLIS_PER_DAY,
        }
    }

    /// The deciding rule, if any rule selects the image.
    pub fn rule(&self) -> Option<&Rule> {
        match self {
            Reason::NoRuleSelects => None,
            Reason::Count { rule, .. } | Reason::Age { rule, .. } => Some(rule),
        }
    }
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoRuleSelects => f.write_str("no rule selects this image"),
            Reason::Count {
                rule,
                rank,
                selected,
                keep,
            } => {
                let verdict = if self.expires() { "beyond" } else { "within" };
                write!(
                    f,
                    "rule {} keeps the newest {keep} of {}; this is number {rank} of {selected}, {verdict} the count",
                    rule.priority, rule.tags
                )
            }
            Reason::Age {
                rule,
                age_millis,
                days,
            } => {
                let age_days = *age_millis as f64 / MILLIS_PER_DAY as f64;
                let verdict = if self.expires() {
                    "older than"
                } else {
                    "not older than"
                };
                write!(
                    f,
                    "rule {} expires {} pushed more than {days} days ago; this was pushed {age_days:.1} days ago, {verdict} that",
                    rule.priority, rule.tags
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_rfc3339;

    const NOW: &str = "2026-01-31T00:00:00Z";

    /// An image named `name` (its digest is `sha256:<name>`), pushed
    /// `minutes_ago` before NOW.
    fn image(name: &str, tags: &[&str], minutes_ago: i64) -> Image {
        Image {
            image_digest: format!("sha256:{name}"),
            image_tags: tags.iter().map(|t| t.to_string()).collect(),
            image_pushed_at: parse_rfc3339(NOW).unwrap() - chrono::TimeDelta::minutes(minutes_ago),
            image_size_in_bytes: Some(1),
            image_manifest_media_type: None,
        }
    }

    const DAY: i64 = 24 * 60;

    /// Plans `images` under `policy` and compares the deleted images (by
    /// name, in plan order: newest first) with `expected`.
    #[track_caller]
    fn check(policy: &str, images: &[Image], expected: &[&str]) {
        let policy = Policy::parse(policy).unwrap();
        let plan = plan(images, &policy, parse_rfc3339(NOW).unwrap());
        assert_eq!(
            plan.decisions.len(),
            images.len(),
            "every image gets a decision"
        );
        let deleted: Vec<&str> = plan
            .to_delete()
            .map(|d| d.image.image_digest.trim_start_matches("sha256:"))
            .collect();
        assert_eq!(deleted, expected);
    }

    fn rule(priority: u32, selection: &str) -> String {
        format!(
            r#"{{"rulePriority":{priority},"selection":{selection},"action":{{"type":"expire"}}}}"#
        )
    }

    /// A policy of `rules` with the grace period off, so the tests see
    /// ECR's semantics alone.
    fn policy(rules: &[String]) -> String {
        policy_with(rules, r#"{"gracePeriodMinutes":0}"#)
    }

    fn policy_with(rules: &[String], settings: &str) -> String {
        format!(r#"{{"rules":[{}],"settings":{settings}}}"#, rules.join(","))
    }

    // The worked examples of the ECR user guide, "Examples of lifecycle
    // policies in Amazon ECR".

    #[test]
    fn docs_filtering_on_image_age() {
        let p = policy(&[rule(
            1,
            r#"{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14}"#,
        )]);
        let images = [
            image("old-prod", &["prod-1"], 15 * DAY),
            image("new-prod", &["prod-2"], 13 * DAY),
            image("old-dev", &["dev-1"], 30 * DAY),
            image("old-untagged", &[], 30 * DAY),
            image("exactly-14", &["prod-0"], 14 * DAY),
        ];
        check(&p, &images, &["old-prod"]);
    }

    #[test]
    fn docs_filtering_on_image_count() {
        let p = policy(&[rule(
            1,
            r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#,
        )]);
        let images = [
            image("u1", &[], 3),
            image("u2", &[], 2),
            image("u3", &[], 1),
            image("t", &["latest"], 10),
        ];
        check(&p, &images, &["u2", "u1"]);
    }

    /// Example A: the second rule may not expire B, which the first rule
    /// selected, though it counts it.
    #[test]
    fn docs_multiple_rules_example_a() {
        let p = policy(&[
            rule(
                1,
                r#"{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            rule(
                2,
                r#"{"tagStatus":"tagged","tagPatternList":["beta*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
        ]);
        let images = [
            image("A", &["beta-1", "prod-1"], 10 * DAY),
            image("B", &["beta-2", "prod-2"], 9 * DAY),
            image("C", &["beta-3"], 8 * DAY),
        ];
        check(&p, &images, &["A"]);
    }

    /// Example B: four images, the second rule's count sees A, B, C and D.
    #[test]
    fn docs_multiple_rules_example_b() {
        let p = policy(&[
            rule(
                1,
                r#"{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            rule(
                2,
                r#"{"tagStatus":"tagged","tagPatternList":["beta*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
        ]);
        let images = [
            image("A", &["beta-1", "prod-1"], 10 * DAY),
            image("B", &["beta-2", "prod-2"], 9 * DAY),
            image("C", &["beta-3", "prod-3"], 8 * DAY),
            image("D", &["beta-4"], 7 * DAY),
        ];
        check(&p, &images, &["B", "A"]);
    }

    /// "Filtering on multiple tags in a single rule": every pattern must
    /// match one of the image's tags.
    #[test]
    fn docs_multiple_tags_in_one_rule() {
        let age = rule(
            1,
            r#"{"tagStatus":"tagged","tagPatternList":["alpha*","beta*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":5}"#,
        );
        let count = rule(
            1,
            r#"{"tagStatus":"tagged","tagPatternList":["alpha*","beta*"],"countType":"imageCountMoreThan","countNumber":1}"#,
        );
        let images = [
            image("A", &["alpha-1"], 12 * DAY),
            image("B", &["beta-1"], 11 * DAY),
            image("C", &["alpha-2", "beta-2"], 10 * DAY),
            image("D", &["alpha-3"], 4 * DAY),
            image("E", &["beta-3"], 3 * DAY),
            image("F", &["alpha-4", "beta-4"], 2 * DAY),
        ];
        check(&policy(&[age]), &images, &["C"]);
        check(&policy(&[count]), &images, &["C"]);
    }

    /// "Filtering on all images": `any` counts everything, but may expire
    /// only what no earlier rule selected.
    #[test]
    fn docs_filtering_on_all_images() {
        let any = rule(
            1,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
        );
        let images = [
            image("A", &["alpha-1"], 4 * DAY),
            image("B", &[], 3 * DAY),
            image("C", &["alpha-2"], 2 * DAY),
            image("D", &["git-hash"], DAY),
        ];
        check(&policy(&[any]), &images, &["C", "B", "A"]);

        let p = policy(&[
            rule(
                1,
                r#"{"tagStatus":"tagged","tagPatternList":["alpha*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            rule(
                2,
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            rule(
                3,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
            ),
        ]);
        check(&p, &images, &["A"]);
    }

    #[test]
    fn rules_apply_by_priority_not_document_order() {
        let keep_prod = rule(
            10,
            r#"{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":100}"#,
        );
        let any = rule(
            20,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
        );
        let images = [
            image("prod-old", &["prod-1"], 3 * DAY),
            image("dev-old", &["dev-1"], 2 * DAY),
            image("newest", &["dev-2"], DAY),
        ];
        check(
            &policy(&[keep_prod.clone(), any.clone()]),
            &images,
            &["dev-old"],
        );
        check(&policy(&[any, keep_prod]), &images, &["dev-old"]);
    }

    #[test]
    fn prefixes_match_by_prefix_and_are_anded() {
        let p = policy(&[rule(
            1,
            r#"{"tagStatus":"tagged","tagPrefixList":["release","v1"],"countType":"imageCountMoreThan","countNumber":1}"#,
        )]);
        let images = [
            image("both-old", &["release-a", "v1.0"], 30),
            image("both-new", &["v1.1", "release-b"], 20),
            image("one-tag-has-both", &["release-v1"], 40),
            image("only-release", &["release-c"], 50),
            image("prefix-not-infix", &["xrelease", "xv1"], 60),
        ];
        check(&p, &images, &["both-old"]);
    }

    #[test]
    fn ties_in_push_time_are_broken_by_digest() {
        let p = policy(&[rule(
            1,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}"#,
        )]);
        let images = [
            image("c", &[], 5),
            image("a", &[], 5),
            image("b", &[], 5),
            image("d", &[], 5),
        ];
        // Newest first, ties by ascending digest: a, b, c, d. Keep a and b.
        check(&p, &images, &["c", "d"]);
        let mut reversed = images.to_vec();
        reversed.reverse();
        check(&p, &reversed, &["c", "d"]);
    }

    #[test]
    fn age_is_strictly_more_than_the_limit() {
        let p = policy(&[rule(
            1,
            r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
        )]);
        let images = [
            image("exactly-a-day", &[], DAY),
            image("a-day-and-a-minute", &[], DAY + 1),
            image("in-the-future", &[], -DAY),
        ];
        check(&p, &images, &["a-day-and-a-minute"]);
    }

    #[test]
    fn huge_counts_keep_everything() {
        let p = policy(&[
            rule(
                1,
                r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":18446744073709551615}"#,
            ),
            rule(
                2,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":18446744073709551615}"#,
            ),
        ]);
        check(
            &p,
            &[image("a", &[], 1_000_000 * DAY), image("b", &["x"], 3)],
            &[],
        );
    }

    #[test]
    fn an_empty_repository_has_an_empty_plan() {
        check(
            &policy(&[rule(
                1,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
            )]),
            &[],
            &[],
        );
    }

    #[test]
    fn the_grace_period_keeps_fresh_images_which_still_count() {
        let any = rule(
            1,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
        );
        let images = [
            image("future", &[], -5),
            image("fresh", &[], 10),
            image("at-the-edge", &[], 60),
            image("old", &[], 61),
        ];
        // The default is 60 minutes: "future" is kept by the count, "fresh"
        // by the grace period; both still count, so "old" is expired.
        check(
            &policy_with(std::slice::from_ref(&any), "{}"),
            &images,
            &["at-the-edge", "old"],
        );
        check(
            &policy_with(std::slice::from_ref(&any), r#"{"gracePeriodMinutes":120}"#),
            &images,
            &[],
        );
        check(
            &policy_with(&[any], r#"{"gracePeriodMinutes":0}"#),
            &images,
            &["fresh", "at-the-edge", "old"],
        );

        let p = Policy::parse(&policy_with(
            &[rule(
                1,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
            )],
            "{}",
        ))
        .unwrap();
        let plan = plan(&images, &p, parse_rfc3339(NOW).unwrap());
        let fresh = &plan.decisions[1];
        assert_eq!((fresh.action, fresh.rule_priority), (Action::Keep, Some(1)));
        assert!(fresh.reason.expires());
        assert_eq!(
            fresh.explain(),
            "rule 1 keeps the newest 1 of any image; this is number 2 of 4, beyond the count; \
             kept: pushed 10 minutes ago, inside the 60-minute grace period"
        );
        assert_eq!(plan.protected().count(), 1);
    }

    #[test]
    fn every_image_gets_a_rule_and_a_readable_reason() {
        let p = Policy::parse(&policy(&[
            rule(1, r#"{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1}"#),
            rule(2, r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7}"#),
        ]))
        .unwrap();
        let images = [
            image("p2", &["prod-2"], DAY),
            image("p1", &["prod-1"], 2 * DAY),
            image("u", &[], 8 * DAY),
            image("dev", &["dev"], 9 * DAY),
        ];
        let plan = plan(&images, &p, parse_rfc3339(NOW).unwrap());
        let lines: Vec<String> = plan
            .decisions
            .iter()
            .map(|d| format!("{:?} {:?} {}", d.action, d.rule_priority, d.reason))
            .collect();
        assert_eq!(
            lines,
            [
                r#"Keep Some(1) rule 1 keeps the newest 1 of images tagged with prefixes ["prod"]; this is number 1 of 2, within the count"#,
                r#"Delete Some(1) rule 1 keeps the newest 1 of images tagged with prefixes ["prod"]; this is number 2 of 2, beyond the count"#,
                "Delete Some(2) rule 2 expires untagged images pushed more than 7 days ago; this was pushed 8.0 days ago, older than that",
                "Keep None no rule selects this image",
            ]
        );
    }
}
