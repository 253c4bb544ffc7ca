//! The planner: (images, policy, now) -> Plan, with a reason for every image.
//!
//! This is ECR's lifecycle-policy evaluation, done exactly and in full:
//!
//! * Rules are evaluated in ascending `rulePriority`.
//! * A rule selects only images of its storage class: `standard` rules
//!   `ACTIVE` images, `archive` rules `ARCHIVED` ones. An `ACTIVATING`
//!   image (being restored) is selected, counted and acted on by none.
//! * A rule counts and ages over *every* image it selects, including
//!   images that higher-priority rules selected.
//! * A rule may only act on images that no higher-priority rule selected.
//!   So an image's fate is decided by the first rule (by priority) that
//!   selects it, and an image is expired or archived by one rule or none.
//! * `imageCountMoreThan` orders images newest first by `imagePushedAt`
//!   (by `lastActivatedAt` for an image restored from the archive) and acts
//!   on everything past `countNumber`. Ties are broken by digest,
//!   ascending, so the plan is deterministic.
//! * `sinceImagePushed`, `sinceImagePulled` and `sinceImageTransitioned`
//!   act on images more than `countNumber` days old, measured from
//!   [`Image::activated_at`], [`Image::last_used`] and `lastArchivedAt`.
//!
//! Then the protections, which hold whatever the rules say: an image the
//! rules delete or archive but that a workload uses, or that was pushed
//! inside the grace period, is kept, and the decision says which. Archiving
//! an index archives its children, so a protected child keeps its index
//! from the archive. Protected images still count for the rules, as ECR
//! would count them.
//!
//! The planner performs no I/O and reads no clock: `now` is a parameter.

#[cfg(test)]
mod archive_tests;
#[cfg(test)]
mod extension_tests;
mod reason;
mod rules;
pub mod units;

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Utc};

pub use reason::{Action, Age, Protection, Reason, Relation, Verdict};

use crate::model::{Image, ImageStatus};
use crate::policy::{Policy, RuleAction};
use units::{Children, Place, places};

/// The decision for one image, with the rule that made it and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    pub image: &'a Image,
    pub action: Action,
    /// The deciding rule: the first rule, by priority, that selects the
    /// image. `None` when no rule selects it.
    pub rule_priority: Option<u32>,
    pub reason: Reason<'a>,
    /// Set when the rules delete or archive the image but a protection
    /// keeps it.
    pub protection: Option<Protection>,
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

/// The plan for one repository: every image, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<'a> {
    pub decisions: Vec<Decision<'a>>,
}

impl<'a> Plan<'a> {
    pub fn to_delete(&self) -> impl Iterator<Item = &Decision<'a>> {
        self.decisions.iter().filter(|d| d.action == Action::Delete)
    }

    pub fn to_transition(&self) -> impl Iterator<Item = &Decision<'a>> {
        self.decisions
            .iter()
            .filter(|d| d.action == Action::Transition)
    }

    pub fn to_keep(&self) -> impl Iterator<Item = &Decision<'a>> {
        self.decisions.iter().filter(|d| d.action == Action::Keep)
    }

    /// Images the rules delete or archive but a protection keeps.
    pub fn protected(&self) -> impl Iterator<Item = &Decision<'a>> {
        self.decisions.iter().filter(|d| d.protection.is_some())
    }
}

/// Orders images newest first by when they became active (pushed, or
/// restored); equal times fall back to the digest.
fn newest_first(a: &Image, b: &Image) -> Ordering {
    b.activated_at()
        .cmp(&a.activated_at())
        .then_with(|| a.image_digest.cmp(&b.image_digest))
}

/// Evaluates `policy` over one repository's `images` as of `now`, then
/// applies the grace period. Nothing is known to be in use, and no index's
/// children are known.
pub fn plan<'a>(images: &'a [Image], policy: &'a Policy, now: DateTime<Utc>) -> Plan<'a> {
    plan_with(images, policy, now, &Facts::default())
}

/// The digests in use, each with the workloads that use it (from
/// `inventory::Inventory::in_use`).
pub type UsedBy = HashMap<String, Vec<String>>;

/// What the planner is told beyond the listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub in_use: UsedBy,
    /// Each index's children, read from its manifest.
    pub children: Children,
}

/// Evaluates `policy` over one repository's `images` as of `now`:
/// the rules decide the standalone images (indexes stand for their
/// children; referrers are not counted), children follow their indexes,
/// referrers follow their subjects, and then the protections apply.
pub fn plan_with<'a>(
    images: &'a [Image],
    policy: &'a Policy,
    now: DateTime<Utc>,
    facts: &Facts,
) -> Plan<'a> {
    let places = places(images, &facts.children);
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_unstable_by(|&a, &b| newest_first(&images[a], &images[b]));
    // Only a transition needs an index's children by digest.
    let transitions = policy
        .rules
        .iter()
        .any(|r| r.action == RuleAction::Transition);
    let position: HashMap<&str, usize> = if transitions && !facts.children.is_empty() {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| (image.image_digest.as_str(), i))
            .collect()
    } else {
        HashMap::new()
    };
    let decider = Decider {
        images,
        policy,
        now,
        facts,
        position,
    };
    let mut decisions: Vec<Option<Decision<'a>>> = vec![None; images.len()];
    decider.standalone(&places, &order, &mut decisions);
    decider.children(&places, &mut decisions);
    decider.referrers(&places, &mut decisions);
    decider.orphan_referrers(&places, &mut decisions);
    // Into newest-first order without a second vector of decisions: the
    // collect reuses the allocation (same size, thanks to the niche in
    // `Option<Decision>`), and the permutation is applied in place.
    let mut decisions: Vec<Decision<'a>> = decisions
        .into_iter()
        .enumerate()
        .map(|(index, decision)| {
            decision.unwrap_or_else(|| decider.decide(index, Reason::NoRuleSelects))
        })
        .collect();
    permute(&mut decisions, order);
    Plan { decisions }
}

/// What every phase of the planner decides with: the images, the policy,
/// the time, and the facts. Each phase fills in the decisions of the
/// images in one place, by index into `images`.
struct Decider<'a, 'f> {
    images: &'a [Image],
    policy: &'a Policy,
    now: DateTime<Utc>,
    facts: &'f Facts,
    /// Each image's position by digest, when an index's children must be
    /// found (a policy that archives, with indexes).
    position: HashMap<&'a str, usize>,
}

impl<'a> Decider<'a, '_> {
    /// The decision for the image at `index` for this reason, with any
    /// protection that keeps it when the reason deletes or archives it.
    fn decide(&self, index: usize, reason: Reason<'a>) -> Decision<'a> {
        let image = &self.images[index];
        let wanted = reason.action();
        let protection = match wanted {
            Action::Keep => None,
            action => self.protect(index, action),
        };
        Decision {
            image,
            action: if protection.is_none() {
                wanted
            } else {
                Action::Keep
            },
            rule_priority: reason.rule_priority(),
            reason,
            protection,
        }
    }

    /// The protection that keeps the image at `index` from `action`, if
    /// any: its status, a workload, the grace period, or (archiving an
    /// index) a protected child.
    fn protect(&self, index: usize, action: Action) -> Option<Protection> {
        let image = &self.images[index];
        let status = image.image_status;
        let allowed = match action {
            Action::Transition => status == ImageStatus::Active,
            _ => matches!(status, ImageStatus::Active | ImageStatus::Archived),
        };
        if !allowed {
            return Some(Protection::Status { status });
        }
        if let Some(protection) = protect(image, self.policy, self.now, &self.facts.in_use) {
            return Some(protection);
        }
        if action != Action::Transition || !image.is_index() {
            return None;
        }
        let children = self.facts.children.get(&image.image_digest)?;
        children.iter().find_map(|digest| {
            let child = &self.images[*self.position.get(digest.as_str())?];
            let protection = protect(child, self.policy, self.now, &self.facts.in_use)?;
            Some(Protection::Child(Box::new((digest.clone(), protection))))
        })
    }

    /// Children: kept while any index that lists them is kept, archived
    /// with an archived index, deleted only with every index.
    fn children(&self, places: &[Place], decisions: &mut [Option<Decision<'a>>]) {
        let images = self.images;
        for (index, place) in places.iter().enumerate() {
            let Place::Child { indexes } = place else {
                continue;
            };
            let fate = |i: &usize| decisions[*i].as_ref().map_or(Action::Keep, |d| d.action);
            let (of, fate) = [Action::Keep, Action::Transition]
                .into_iter()
                .find_map(|wanted| {
                    indexes
                        .iter()
                        .find(|i| fate(i) == wanted)
                        .map(|i| (*i, wanted))
                })
                .unwrap_or((indexes[0], Action::Delete));
            let reason = Reason::Follows {
                relation: Relation::ChildOf,
                of: images[of].image_digest.clone(),
                with: indexes
                    .iter()
                    .map(|i| images[*i].image_digest.clone())
                    .collect(),
                fate,
                priority: decisions[of].as_ref().and_then(|d| d.rule_priority),
            };
            decisions[index] = Some(self.decide(index, reason));
        }
    }

    /// Referrers: with their subjects, which may be referrers themselves;
    /// a cycle of referrers never resolves, and is kept.
    fn referrers(&self, places: &[Place], decisions: &mut [Option<Decision<'a>>]) {
        let images = self.images;
        let mut pending: Vec<(usize, usize)> = places
            .iter()
            .enumerate()
            .filter_map(|(i, place)| match place {
                Place::Referrer { subject } => Some((i, *subject)),
                _ => None,
            })
            .collect();
        let follows = |subject: usize, fate: Action, priority: Option<u32>| Reason::Follows {
            relation: Relation::ReferrerOf,
            of: images[subject].image_digest.clone(),
            with: vec![images[subject].image_digest.clone()],
            fate,
            priority,
        };
        loop {
            let before = pending.len();
            pending.retain(|&(index, subject)| {
                let Some(followed) = decisions[subject].as_ref() else {
                    return true;
                };
                let reason = follows(subject, followed.action, followed.rule_priority);
                decisions[index] = Some(self.decide(index, reason));
                false
            });
            if pending.len() == before {
                break;
            }
        }
        for (index, subject) in pending {
            decisions[index] = Some(self.decide(index, follows(subject, Action::Keep, None)));
        }
    }

    /// Referrers whose subject is gone: as the settings say.
    fn orphan_referrers(&self, places: &[Place], decisions: &mut [Option<Decision<'a>>]) {
        for (index, place) in places.iter().enumerate() {
            if let Place::OrphanReferrer { subject } = place {
                let reason = Reason::OrphanReferrer {
                    subject: subject.clone(),
                    delete: self.policy.settings.safety.delete_orphan_referrers,
                };
                decisions[index] = Some(self.decide(index, reason));
            }
        }
    }
}

/// Rearranges `items` so that `items[k]` becomes the old `items[order[k]]`,
/// in place, following the permutation's cycles. `order` must be a
/// permutation of `0..items.len()`; it is used up as the visited marks.
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    const DONE: usize = usize::MAX;
    for start in 0..order.len() {
        if order[start] == DONE {
            continue;
        }
        let mut at = start;
        loop {
            let next = order[at];
            order[at] = DONE;
            if next == start {
                break;
            }
            items.swap(at, next);
            at = next;
        }
    }
}

/// The protection of a workload or the grace period, if any: what keeps
/// an image whatever the rules say.
fn protect(
    image: &Image,
    policy: &Policy,
    now: DateTime<Utc>,
    in_use: &UsedBy,
) -> Option<Protection> {
    if let Some(workloads) = in_use.get(&image.image_digest) {
        return Some(Protection::UsedBy {
            workloads: workloads.clone(),
        });
    }
    let minutes = policy.settings.safety.grace_period_minutes;
    let age_millis = (now - image.activated_at()).num_milliseconds();
    (i128::from(age_millis) < i128::from(minutes) * 60_000).then_some(Protection::GracePeriod {
        age_millis,
        minutes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_follows_every_cycle() {
        for order in [
            vec![],
            vec![0],
            vec![2, 0, 1],
            vec![1, 0, 3, 2, 4],
            vec![4, 3, 2, 1, 0],
            vec![3, 5, 0, 1, 2, 4],
        ] {
            let mut items: Vec<usize> = (0..order.len()).map(|i| i * 10).collect();
            let want: Vec<usize> = order.iter().map(|&i| i * 10).collect();
            permute(&mut items, order);
            assert_eq!(items, want);
        }
    }
    use crate::model::parse_rfc3339;

    const NOW: &str = "2026-01-31T00:00:00Z";

    /// An image named `name` (its digest is `sha256:<name>`), pushed
    /// `minutes_ago` before NOW.
    fn image(name: &str, tags: &[&str], minutes_ago: i64) -> Image {
        Image::test(&format!("sha256:{name}"), tags)
            .pushed_at(parse_rfc3339(NOW).unwrap() - chrono::TimeDelta::minutes(minutes_ago))
            .sized(1)
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
        // The kept are exactly the others, in the plan's order.
        let kept: Vec<&str> = plan
            .to_keep()
            .map(|d| d.image.image_digest.trim_start_matches("sha256:"))
            .collect();
        let others: Vec<&str> = plan
            .decisions
            .iter()
            .map(|d| d.image.image_digest.trim_start_matches("sha256:"))
            .filter(|d| !expected.contains(d))
            .collect();
        assert_eq!(kept, others);
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
        assert_eq!(fresh.reason.action(), Action::Delete);
        assert_eq!(
            fresh.explain(),
            "rule 1 keeps the newest 1 of any image; this is number 2 of 4, beyond the count; \
             kept: pushed 10 minutes ago, inside the 60-minute grace period"
        );
        assert_eq!(plan.protected().count(), 1);
    }

    /// An image like `image`, but a multi-arch index or with a subject.
    fn index(name: &str, tags: &[&str], minutes_ago: i64) -> Image {
        image(name, tags, minutes_ago).index()
    }

    fn referrer(name: &str, subject: &str, minutes_ago: i64) -> Image {
        image(name, &[], minutes_ago).referring_to(&format!("sha256:{subject}"))
    }

    fn children(pairs: &[(&str, &[&str])]) -> Facts {
        let d = |n: &str| format!("sha256:{n}");
        Facts {
            in_use: UsedBy::new(),
            children: pairs
                .iter()
                .map(|(index, kids)| (d(index), kids.iter().map(|k| d(k)).collect()))
                .collect(),
        }
    }

    /// Like `check`, with facts beyond the listing.
    #[track_caller]
    fn check_with(policy: &str, images: &[Image], facts: &Facts, expected: &[&str]) {
        let policy = Policy::parse(policy).unwrap();
        let plan = plan_with(images, &policy, parse_rfc3339(NOW).unwrap(), facts);
        let mut deleted: Vec<&str> = plan
            .to_delete()
            .map(|d| d.image.image_digest.trim_start_matches("sha256:"))
            .collect();
        deleted.sort();
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(deleted, expected);
    }

    #[test]
    fn an_index_and_its_children_are_one_unit() {
        let p = policy(&[
            rule(
                1,
                r#"{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            rule(
                2,
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#,
            ),
        ]);
        let images = [
            index("i1", &["v1"], 3 * DAY),
            image("i1-amd", &[], 3 * DAY),
            image("i1-arm", &[], 3 * DAY),
            index("i2", &["v2"], DAY),
            image("i2-amd", &[], DAY),
            image("i2-arm", &[], DAY),
            image("shared", &[], 3 * DAY),
            image("orphan-old", &[], 5 * DAY),
            image("orphan-new", &[], 4 * DAY),
        ];
        let facts = children(&[
            ("i1", &["i1-amd", "i1-arm", "shared"]),
            ("i2", &["i2-amd", "i2-arm", "shared"]),
            ("gone-index", &["orphan-old"]),
        ]);
        // v1 is beyond the count: its children go with it, except the one v2
        // (kept) also lists. Children are not untagged images to the
        // untagged rule, so it counts only the two orphans.
        check_with(
            &p,
            &images,
            &facts,
            &["i1", "i1-amd", "i1-arm", "orphan-old"],
        );
        // Without the children known, the untagged rule would count them.
        check_with(
            &p,
            &images,
            &Facts::default(),
            &[
                "i1",
                "i1-amd",
                "i1-arm",
                "i2-arm",
                "shared",
                "orphan-old",
                "orphan-new",
            ],
        );

        let policy = Policy::parse(&p).unwrap();
        let plan = plan_with(&images, &policy, parse_rfc3339(NOW).unwrap(), &facts);
        let child = plan
            .decisions
            .iter()
            .find(|d| d.image.image_digest == "sha256:i1-amd")
            .unwrap();
        assert_eq!(
            child.rule_priority,
            Some(1),
            "the rule that expired its index"
        );
        assert_eq!(
            child.reason.to_string(),
            "a child of index sha256:i1, which is deleted"
        );
        let shared = plan
            .decisions
            .iter()
            .find(|d| d.image.image_digest == "sha256:shared")
            .unwrap();
        assert_eq!(
            shared.reason.to_string(),
            "a child of index sha256:i2, which is kept"
        );

        // With both indexes expired (by age: a count cannot be 0), the
        // shared child goes with both, and says so.
        let both = self::policy(&[rule(
            1,
            r#"{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
        )]);
        let both = Policy::parse(&both).unwrap();
        let images = [
            index("i1", &["v1"], 3 * DAY),
            index("i2", &["v2"], 2 * DAY),
            image("shared", &[], 3 * DAY),
        ];
        let facts = children(&[("i1", &["shared"]), ("i2", &["shared"])]);
        let plan = plan_with(&images, &both, parse_rfc3339(NOW).unwrap(), &facts);
        let shared = plan
            .decisions
            .iter()
            .find(|d| d.image.image_digest == "sha256:shared")
            .unwrap();
        assert_eq!(shared.action, Action::Delete);
        assert_eq!(
            shared.reason.to_string(),
            "a child of indexes sha256:i1, sha256:i2, which are all deleted"
        );
    }

    #[test]
    fn protections_reach_children() {
        let p = policy_with(
            &[rule(
                1,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
            )],
            r#"{"gracePeriodMinutes":60}"#,
        );
        let images = [
            index("old", &["v1"], 3 * DAY),
            image("old-amd", &[], 3 * DAY),
            image("old-arm-late", &[], 30),
            index("new", &["v2"], DAY),
        ];
        let mut facts = children(&[("old", &["old-amd", "old-arm-late", "in-use"])]);
        check_with(&p, &images, &facts, &["old", "old-amd"]);
        facts
            .in_use
            .insert("sha256:old-amd".into(), vec!["ecs:prod/web".into()]);
        check_with(&p, &images, &facts, &["old"]);
    }

    #[test]
    fn referrers_follow_their_subjects_and_are_not_counted() {
        let hex = "ef".repeat(32);
        let p = |orphans: bool| {
            policy_with(
                &[rule(
                    1,
                    r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}"#,
                )],
                &format!(r#"{{"gracePeriodMinutes":0,"deleteOrphanReferrers":{orphans}}}"#),
            )
        };
        let images = [
            image(&hex, &["v1"], 5 * DAY),
            image("cosign-sig", &[&format!("sha256-{hex}.sig")], 30),
            image("v2", &["v2"], 4 * DAY),
            referrer("v2-att", "v2", 10),
            referrer("v2-att-sig", "v2-att", 5),
            image("v3", &["v3"], 3 * DAY),
            referrer("stray-sbom", "deleted-long-ago", 6 * DAY),
        ];
        // Three images count (v1, v2, v3), not the four referrers: v1 goes,
        // and its cosign signature with it; v2's attestation chain stays.
        check_with(&p(false), &images, &Facts::default(), &[&hex, "cosign-sig"]);
        check_with(
            &p(true),
            &images,
            &Facts::default(),
            &[&hex, "cosign-sig", "stray-sbom"],
        );
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
