//! The planner on the archive storage class: transitions, last-pull and
//! time-in-archive ages, restored and restoring images, and indexes and
//! referrers that go to the archive. Each case is a policy, a repository
//! and what ECR's semantics say it deletes and archives.

use chrono::TimeDelta;

use super::*;
use crate::model::{ImageStatus, parse_rfc3339};
use crate::policy::{Count, Rule};

pub(super) const NOW: &str = "2026-06-30T00:00:00Z";
pub(super) const DAY: i64 = 24 * 60;

pub(super) fn at(minutes_ago: i64) -> DateTime<Utc> {
    parse_rfc3339(NOW).unwrap() - TimeDelta::minutes(minutes_ago)
}

/// An image named `name` (digest `sha256:<name>`), pushed `days_ago`.
pub(super) fn image(name: &str, tags: &[&str], days_ago: i64) -> Image {
    Image::test(&format!("sha256:{name}"), tags).pushed_at(at(days_ago * DAY))
}

fn archived(name: &str, tags: &[&str], pushed_days_ago: i64, archived_days_ago: i64) -> Image {
    image(name, tags, pushed_days_ago).archived_at(at(archived_days_ago * DAY))
}

fn rule(priority: u32, selection: &str, action: &str) -> String {
    format!(r#"{{"rulePriority":{priority},"selection":{selection},"action":{action}}}"#)
}

const EXPIRE: &str = r#"{"type":"expire"}"#;
const ARCHIVE: &str = r#"{"type":"transition","targetStorageClass":"archive"}"#;

fn policy(rules: &[String]) -> Policy {
    Policy::parse(&format!(
        r#"{{"rules":[{}],"settings":{{"gracePeriodMinutes":0}}}}"#,
        rules.join(",")
    ))
    .unwrap()
}

/// Plans and compares what is deleted and what is archived (by name,
/// sorted) with the expected; every image gets one decision.
#[track_caller]
fn check(policy: &Policy, images: &[Image], facts: &Facts, deleted: &[&str], archived: &[&str]) {
    let plan = plan_with(images, policy, parse_rfc3339(NOW).unwrap(), facts);
    assert_eq!(plan.decisions.len(), images.len());
    let names = |action: Action| {
        let mut names: Vec<&str> = plan
            .decisions
            .iter()
            .filter(|d| d.action == action)
            .map(|d| d.image.image_digest.trim_start_matches("sha256:"))
            .collect();
        names.sort();
        names
    };
    fn sorted<'s>(list: &[&'s str]) -> Vec<&'s str> {
        let mut list = list.to_vec();
        list.sort();
        list
    }
    let explain: Vec<String> = plan
        .decisions
        .iter()
        .map(|d| format!("{}: {:?} {}", d.image.image_digest, d.action, d.explain()))
        .collect();
    assert_eq!(
        names(Action::Delete),
        sorted(deleted),
        "deleted\n{explain:#?}"
    );
    assert_eq!(
        names(Action::Transition),
        sorted(archived),
        "archived\n{explain:#?}"
    );
}

const PULLED_30: &str =
    r#"{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30}"#;
const ARCHIVED_90: &str = r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":90}"#;

/// Archive what nobody pulled for 30 days; delete what has been archived
/// for 90: the user guide's archive-then-expire example, over every kind
/// of pull and storage history.
#[test]
fn archive_unpulled_then_expire_from_the_archive() {
    let p = policy(&[rule(1, PULLED_30, ARCHIVE), rule(2, ARCHIVED_90, EXPIRE)]);
    let images = [
        image("pulled-recently", &["a"], 200).pulled_at(at(10 * DAY)),
        image("pulled-long-ago", &["b"], 200).pulled_at(at(40 * DAY)),
        image("pulled-exactly-30", &["c"], 200).pulled_at(at(30 * DAY)),
        image("never-pulled-old", &[], 50),
        image("never-pulled-new", &[], 20),
        // Restored 5 days ago, last pulled before it was archived: ages
        // from the restore.
        image("restored-recently", &["d"], 300)
            .pulled_at(at(200 * DAY))
            .restored_at(at(5 * DAY)),
        image("restored-long-ago", &["e"], 300).restored_at(at(40 * DAY)),
        // Pulled after its restore: ages from the pull.
        image("restored-then-pulled", &["f"], 300)
            .restored_at(at(100 * DAY))
            .pulled_at(at(3 * DAY)),
        archived("archived-100", &["g"], 400, 100),
        archived("archived-90", &["h"], 400, 90),
        archived("archived-10", &[], 400, 10),
        // ECR gave no lastArchivedAt: kept, its age unknown.
        image("archived-no-time", &[], 400).status(ImageStatus::Archived),
        image("restoring", &["i"], 400).status(ImageStatus::Activating),
        image("unknown-status", &["j"], 400).status(ImageStatus::Unknown),
    ];
    check(
        &p,
        &images,
        &Facts::default(),
        &["archived-100"],
        &["pulled-long-ago", "never-pulled-old", "restored-long-ago"],
    );
}

/// Count rules count within their storage class: archived and restoring
/// images are not counted, and a restored image counts as new from its
/// restore.
#[test]
fn counts_are_per_storage_class_and_restores_count_as_pushes() {
    let keep2 = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}"#;
    let p = policy(&[rule(1, keep2, ARCHIVE), rule(2, ARCHIVED_90, EXPIRE)]);
    let images = [
        image("new", &[], 1),
        image("mid", &[], 2),
        image("old", &[], 3),
        image("older", &[], 4),
        archived("in-archive", &[], 0, 0),
        image("restoring", &[], 0).status(ImageStatus::Activating),
        // Pushed long ago, restored yesterday: the newest by activation.
        image("restored", &[], 500).restored_at(at(DAY / 2)),
    ];
    check(
        &p,
        &images,
        &Facts::default(),
        &[],
        &["mid", "old", "older"],
    );
}

/// An image is expired or archived by at most one rule, the first that
/// selects it; lower rules still count it.
#[test]
fn the_first_rule_decides_and_lower_rules_count() {
    let prod = r#"{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1}"#;
    let keep3 = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3}"#;
    let p = policy(&[rule(1, prod, EXPIRE), rule(2, keep3, ARCHIVE)]);
    let images = [
        image("prod-3", &["prod-3"], 1),
        image("dev-2", &["dev-2"], 2),
        image("prod-2", &["prod-2"], 3),
        image("dev-1", &["dev-1"], 4),
        image("prod-1", &["prod-1"], 5),
    ];
    // Rule 1 deletes the older prod images; rule 2 counts all five and
    // archives the 4th and 5th newest, but those are prod images rule 1
    // decided, so only dev-1 (4th) is archived.
    check(
        &p,
        &images,
        &Facts::default(),
        &["prod-2", "prod-1"],
        &["dev-1"],
    );
}

/// Nothing in use, inside the grace period, or already archived is ever
/// archived; a protected child keeps its index from the archive, since
/// archiving an index archives its children; children and referrers go
/// to the archive with what they follow.
#[test]
fn protections_and_units_hold_for_transitions() {
    let p = policy(&[rule(
        1,
        r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":10}"#,
        ARCHIVE,
    )]);
    let hex = "ab".repeat(32);
    let images = [
        image("used", &["u"], 20),
        image("idx", &["v1"], 20).index(),
        image("idx-amd", &[], 20),
        image("idx-arm", &[], 20),
        image("busy-idx", &["v2"], 20).index(),
        image("busy-amd", &[], 20),
        image("sig", &[], 1).referring_to("sha256:idx"),
        image("old-sig", &[], 30)
            .referring_to("sha256:idx")
            .archived_at(at(DAY)),
        image(&hex, &["plain"], 20),
        image("cosign", &[&format!("sha256-{hex}.sig")], 20),
    ];
    let mut facts = Facts::default();
    facts
        .in_use
        .insert("sha256:used".into(), vec!["ecs:prod/web".into()]);
    facts
        .in_use
        .insert("sha256:busy-amd".into(), vec!["eks:c/ns/Pod/p".into()]);
    facts.children.insert(
        "sha256:idx".into(),
        vec!["sha256:idx-amd".into(), "sha256:idx-arm".into()],
    );
    facts
        .children
        .insert("sha256:busy-idx".into(), vec!["sha256:busy-amd".into()]);
    check(
        &p,
        &images,
        &facts,
        &[],
        &["idx", "idx-amd", "idx-arm", "sig", &hex, "cosign"],
    );
    let plan = plan_with(&images, &p, parse_rfc3339(NOW).unwrap(), &facts);
    let explain = |name: &str| {
        plan.decisions
            .iter()
            .find(|d| d.image.image_digest == format!("sha256:{name}"))
            .unwrap()
            .explain()
    };
    assert!(
        explain("used").ends_with("kept: in use by ecs:prod/web"),
        "{}",
        explain("used")
    );
    assert!(
        explain("busy-idx").contains("its child sha256:busy-amd, which archiving the index would archive too, is protected: in use by eks:c/ns/Pod/p"),
        "{}",
        explain("busy-idx")
    );
    assert_eq!(
        explain("idx-amd"),
        "a child of index sha256:idx, which is archived"
    );
    assert_eq!(
        explain("old-sig"),
        "a referrer (signature, SBOM or attestation) of sha256:idx, which is archived; kept: it is already ARCHIVED"
    );
}

/// A deleted archived index takes its children; a child of an index that
/// is archived while another index that lists it is deleted goes to the
/// archive, never deleted.
#[test]
fn children_follow_the_gentlest_fate_of_their_indexes() {
    let p = policy(&[
        rule(
            1,
            r#"{"tagStatus":"tagged","tagPrefixList":["old"],"countType":"sinceImagePushed","countUnit":"days","countNumber":10}"#,
            EXPIRE,
        ),
        rule(
            2,
            r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":10}"#,
            ARCHIVE,
        ),
    ]);
    let images = [
        image("gone", &["old-1"], 20).index(),
        image("kept", &["new"], 5).index(),
        image("shelved", &["v"], 20).index(),
        image("only-gone", &[], 20),
        image("gone-and-kept", &[], 20),
        image("gone-and-shelved", &[], 20),
    ];
    let facts = Facts {
        children: [
            (
                "sha256:gone",
                vec!["only-gone", "gone-and-kept", "gone-and-shelved"],
            ),
            ("sha256:kept", vec!["gone-and-kept"]),
            ("sha256:shelved", vec!["gone-and-shelved"]),
        ]
        .into_iter()
        .map(|(index, kids)| {
            (
                index.to_owned(),
                kids.iter().map(|k| format!("sha256:{k}")).collect(),
            )
        })
        .collect(),
        ..Facts::default()
    };
    check(
        &p,
        &images,
        &facts,
        &["gone", "only-gone"],
        &["shelved", "gone-and-shelved"],
    );
}

/// A decision stays as small as before the archive (a million are held at
/// once), and an image grows by no more than its status and three
/// eight-byte times.
#[test]
fn decisions_and_images_stay_small() {
    assert_eq!(std::mem::size_of::<Decision<'_>>(), 112);
    assert!(
        std::mem::size_of::<Image>() <= 152,
        "{}",
        std::mem::size_of::<Image>()
    );
}

/// The reasons say what was measured.
#[test]
fn reasons_name_the_time_each_rule_measures() {
    let p = policy(&[rule(1, PULLED_30, ARCHIVE), rule(2, ARCHIVED_90, EXPIRE)]);
    let images = [
        image("a", &[], 100).pulled_at(at(45 * DAY)),
        image("e", &[], 300).restored_at(at(40 * DAY)),
        image("f", &[], 50),
        archived("b", &[], 400, 120),
        image("c", &[], 400).status(ImageStatus::Archived),
        image("d", &[], 400).status(ImageStatus::Activating),
    ];
    let plan = plan(&images, &p, parse_rfc3339(NOW).unwrap());
    let lines: Vec<String> = plan
        .decisions
        .iter()
        .map(|d| format!("{:?} {}", d.action, d.explain()))
        .collect();
    assert_eq!(
        lines,
        [
            "Transition rule 1 archives any image last pulled more than 30 days ago; this was restored from the archive 40.0 days ago and not pulled since, older than that",
            "Transition rule 1 archives any image last pulled more than 30 days ago; this was never pulled; it was pushed 50.0 days ago, older than that",
            "Transition rule 1 archives any image last pulled more than 30 days ago; this was last pulled 45.0 days ago, older than that",
            "Delete rule 2 expires any image archived more than 90 days ago; this was archived 120.0 days ago, older than that",
            "Keep rule 2 expires any image archived more than 90 days ago; ECR gave no lastArchivedAt for this one, so it is kept",
            "Keep its imageStatus is ACTIVATING: no rule selects, counts or acts on it until it is ACTIVE or ARCHIVED",
        ]
    );
}

/// A tiny deterministic generator: each scenario is a function of its seed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A random valid policy over both storage classes, in ECR's syntax.
fn random_policy(rng: &mut Rng) -> String {
    let mut rules = Vec::new();
    let mut priority = 1 + rng.below(3) as u32;
    let tags = |rng: &mut Rng, status: &str| match status {
        "tagged" => format!(
            r#""tagStatus":"tagged","tagPatternList":["{}"]"#,
            ["v*", "prod-*", "*-rc", "v1*"][rng.below(4) as usize]
        ),
        other => format!(r#""tagStatus":"{other}""#),
    };
    for status in ["tagged", "tagged", "untagged", "any"] {
        if rng.below(3) == 0 {
            continue;
        }
        let (count, action) = match rng.below(5) {
            0 => (
                format!(
                    r#""countType":"imageCountMoreThan","countNumber":{}"#,
                    1 + rng.below(4)
                ),
                EXPIRE,
            ),
            1 => (
                format!(
                    r#""countType":"imageCountMoreThan","countNumber":{}"#,
                    1 + rng.below(4)
                ),
                ARCHIVE,
            ),
            2 => (
                format!(
                    r#""countType":"sinceImagePushed","countUnit":"days","countNumber":{}"#,
                    1 + rng.below(60)
                ),
                EXPIRE,
            ),
            3 => (
                format!(
                    r#""countType":"sinceImagePushed","countUnit":"days","countNumber":{}"#,
                    1 + rng.below(60)
                ),
                ARCHIVE,
            ),
            _ => (
                format!(
                    r#""countType":"sinceImagePulled","countUnit":"days","countNumber":{}"#,
                    1 + rng.below(60)
                ),
                ARCHIVE,
            ),
        };
        rules.push(rule(
            priority,
            &format!("{{{},{count}}}", tags(rng, status)),
            action,
        ));
        priority += 1 + rng.below(2) as u32;
    }
    for status in ["tagged", "untagged", "any"] {
        if rng.below(2) == 0 {
            continue;
        }
        let days = 90 + rng.below(200);
        let selection = format!(
            r#"{{{},"storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":{days}}}"#,
            tags(rng, status)
        );
        rules.push(rule(priority, &selection, EXPIRE));
        priority += 1;
    }
    if rules.is_empty() {
        rules.push(rule(
            1,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}"#,
            ARCHIVE,
        ));
    }
    format!(
        r#"{{"rules":[{}],"settings":{{"gracePeriodMinutes":{}}}}}"#,
        rules.join(","),
        [0, 60, 1_440][rng.below(3) as usize]
    )
}

/// A random repository of standalone images with every storage history.
fn random_images(rng: &mut Rng) -> Vec<Image> {
    let pool = ["v1.0", "v2.3", "prod-a", "prod-b", "x-rc", "dev", "v10"];
    (0..rng.below(30))
        .map(|n| {
            let mut tags: Vec<&str> = Vec::new();
            for _ in 0..rng.below(3) {
                let tag = pool[rng.below(pool.len() as u64) as usize];
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            // Coarse times, so that ties in push time happen.
            let minutes = |rng: &mut Rng| (rng.below(400) as i64) * DAY / 4;
            let mut image =
                Image::test(&format!("sha256:{n:04}"), &tags).pushed_at(at(minutes(rng)));
            if rng.below(2) == 0 {
                image = image.pulled_at(at(minutes(rng)));
            }
            match rng.below(6) {
                0 | 1 => image.archived_at(at(minutes(rng))),
                2 => image.restored_at(at(minutes(rng))),
                3 => image.status(ImageStatus::Activating),
                _ => image,
            }
        })
        .collect()
}

/// What ECR's documented semantics say of each image, computed the naive
/// way: the first rule (by priority) that selects it decides; count rules
/// rank it among every image they select, newest first (a restore counts
/// as a push, ties by digest); ages are measured from what the count type
/// names; then protections keep it.
fn oracle(policy: &Policy, images: &[Image], in_use: &UsedBy, now: DateTime<Utc>) -> Vec<Action> {
    let selects = |rule: &Rule, image: &Image| {
        rule.storage_class.holds(image.image_status) && rule.tags.selects(&image.image_tags)
    };
    let newer = |a: &Image, b: &Image| {
        (a.activated_at(), std::cmp::Reverse(&a.image_digest))
            > (b.activated_at(), std::cmp::Reverse(&b.image_digest))
    };
    let older_than = |at: Option<DateTime<Utc>>, days: u64| {
        at.is_some_and(|at| (now - at).num_milliseconds() > days as i64 * 86_400_000)
    };
    images
        .iter()
        .map(|image| {
            let Some(rule) = policy.rules.iter().find(|r| selects(r, image)) else {
                return Action::Keep;
            };
            let met = match rule.count {
                Count::ImagesMoreThan(n) => {
                    let rank = 1 + images
                        .iter()
                        .filter(|other| selects(rule, other) && newer(other, image))
                        .count() as u64;
                    rank > n
                }
                Count::PushedMoreThanDaysAgo(d) => older_than(Some(image.activated_at()), d),
                Count::PulledMoreThanDaysAgo(d) => {
                    let used = [
                        image.last_recorded_pull_time.map(|m| m.at()),
                        Some(image.image_pushed_at),
                        image.last_activated_at.map(|m| m.at()),
                    ]
                    .into_iter()
                    .flatten()
                    .max();
                    older_than(used, d)
                }
                Count::TransitionedMoreThanDaysAgo(d) => {
                    older_than(image.last_archived_at.map(|m| m.at()), d)
                }
                Count::Every => unreachable!("random_policy writes no keep rules"),
            };
            let grace = policy.settings.safety.grace_period_minutes as i64;
            let protected = in_use.contains_key(&image.image_digest)
                || (now - image.activated_at()).num_minutes() < grace
                    && (now - image.activated_at()).num_milliseconds() < grace * 60_000;
            match (met, rule.action) {
                (false, _) => Action::Keep,
                _ if protected => Action::Keep,
                (true, crate::policy::RuleAction::Expire) => Action::Delete,
                (true, crate::policy::RuleAction::Transition) => Action::Transition,
                (true, crate::policy::RuleAction::Keep) => {
                    unreachable!("random_policy writes no keep rules")
                }
            }
        })
        .collect()
}

/// Random policies over both storage classes and random repositories:
/// the planner agrees with the naive reading of ECR's semantics, image by
/// image, and never archives what is not ACTIVE nor acts on what is
/// restoring.
#[test]
fn random_policies_plan_as_the_semantics_say() {
    let now = parse_rfc3339(NOW).unwrap();
    for seed in 1..=2_000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let policy = Policy::parse(&random_policy(&mut rng)).unwrap();
        let images = random_images(&mut rng);
        let mut facts = Facts::default();
        for image in &images {
            if rng.below(8) == 0 {
                facts
                    .in_use
                    .insert(image.image_digest.clone(), vec!["ecs:x".into()]);
            }
        }
        let plan = plan_with(&images, &policy, now, &facts);
        let expected = oracle(&policy, &images, &facts.in_use, now);
        for decision in &plan.decisions {
            let at = images
                .iter()
                .position(|i| i.image_digest == decision.image.image_digest)
                .unwrap();
            assert_eq!(
                decision.action,
                expected[at],
                "seed {seed}: {} ({:?}): {}\n{policy:#?}",
                decision.image.image_digest,
                decision.image.image_status,
                decision.explain()
            );
            match decision.action {
                Action::Transition => assert!(decision.image.image_status.is_active()),
                Action::Delete => assert!(matches!(
                    decision.image.image_status,
                    ImageStatus::Active | ImageStatus::Archived
                )),
                Action::Keep => {}
            }
        }
    }
}
