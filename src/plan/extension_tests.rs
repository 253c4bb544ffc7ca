//! The planner on ecr-gc's extensions: expiring by last pull, keep rules,
//! regular expressions, semantic-version order and groups. Each case is a
//! policy, a repository and what the README's semantics say it deletes;
//! then random policies against a naive reading of those semantics.

use super::archive_tests::{DAY, NOW, Rng, at, image};
use super::*;
use crate::model::parse_rfc3339;
use crate::policy::rank::OrderBy;
use crate::policy::{Count, Rule, RuleAction};
use std::cmp::Ordering;

/// `tags`, each its own image named after the tag, pushed one day apart,
/// the first the oldest.
fn pushed_in_order(tags: &[&str]) -> Vec<Image> {
    let n = tags.len() as i64;
    (0..n)
        .map(|i| image(tags[i as usize], &[tags[i as usize]], n - i))
        .collect()
}

fn rule(priority: u32, selection: &str, action: &str) -> String {
    format!(
        r#"{{"rulePriority":{priority},"selection":{selection},"action":{{"type":"{action}"}}}}"#
    )
}

fn policy(rules: &[String]) -> Policy {
    let text = format!(
        r#"{{"rules":[{}],"settings":{{"gracePeriodMinutes":0}}}}"#,
        rules.join(",")
    );
    Policy::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Plans and compares the deleted images (by name, sorted) with `deleted`;
/// every image gets one decision, and the explanations are shown on failure.
#[track_caller]
fn check(rules: &[String], images: &[Image], deleted: &[&str]) {
    let policy = policy(rules);
    let plan = plan(images, &policy, parse_rfc3339(NOW).unwrap());
    assert_eq!(plan.decisions.len(), images.len());
    let mut got: Vec<&str> = plan
        .to_delete()
        .map(|d| d.image.image_digest.trim_start_matches("sha256:"))
        .collect();
    got.sort();
    let mut want = deleted.to_vec();
    want.sort();
    let explain: Vec<String> = plan
        .decisions
        .iter()
        .map(|d| format!("{}: {:?} {}", d.image.image_digest, d.action, d.explain()))
        .collect();
    assert_eq!(got, want, "\n{explain:#?}");
}

/// The sentence the plan gives for the image named `name`.
fn reason_for(rules: &[String], images: &[Image], name: &str) -> String {
    let policy = policy(rules);
    let plan = plan(images, &policy, parse_rfc3339(NOW).unwrap());
    plan.decisions
        .iter()
        .find(|d| d.image.image_digest == format!("sha256:{name}"))
        .map(|d| d.explain())
        .unwrap()
}

const PULLED_30: &str =
    r#"{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30}"#;

#[test]
fn expire_by_last_pull() {
    let images = [
        image("pulled-recently", &["a"], 200).pulled_at(at(10 * DAY)),
        image("pulled-long-ago", &["b"], 200).pulled_at(at(40 * DAY)),
        image("pulled-exactly-30", &["c"], 200).pulled_at(at(30 * DAY)),
        image("never-pulled-old", &[], 50),
        image("never-pulled-new", &[], 20),
        image("restored-recently", &["d"], 300)
            .pulled_at(at(200 * DAY))
            .restored_at(at(5 * DAY)),
        image("archived", &["e"], 300).archived_at(at(100 * DAY)),
    ];
    check(
        &[rule(1, PULLED_30, "expire")],
        &images,
        &["pulled-long-ago", "never-pulled-old"],
    );
}

#[test]
fn keep_rules_claim_what_they_keep_and_lower_rules_still_count_it() {
    let newest2 = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2}"#;
    let releases = r#"{"tagStatus":"tagged","tagPrefixList":["release-"]}"#;
    let images = pushed_in_order(&["release-1", "a", "release-2", "b", "c"]);
    // The two releases are claimed; the count still ranks them, so only
    // the newest two (b, c) are within it.
    check(
        &[rule(1, releases, "keep"), rule(2, newest2, "expire")],
        &images,
        &["a"],
    );
    // Without the keep rule, ECR's semantics.
    check(
        &[rule(2, newest2, "expire")],
        &images,
        &["release-1", "a", "release-2"],
    );
    // A keep rule below cannot undo what a higher rule decided.
    let untagged = r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#;
    let untagged_images = [
        image("u1", &[], 3),
        image("u2", &[], 2),
        image("t", &["x"], 1),
    ];
    check(
        &[
            rule(1, untagged, "expire"),
            rule(2, r#"{"tagStatus":"any"}"#, "keep"),
        ],
        &untagged_images,
        &["u1"],
    );
}

#[test]
fn keep_by_count_leaves_the_rest_to_lower_rules() {
    let main2 = r#"{"tagStatus":"tagged","tagPrefixList":["main-"],"countType":"imageCountMoreThan","countNumber":2}"#;
    let older7 =
        r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":7}"#;
    let images = [
        image("main-1", &["main-1"], 40),
        image("main-2", &["main-2"], 30),
        image("main-3", &["main-3"], 20),
        image("main-4", &["main-4"], 10),
        image("dev", &["dev"], 10),
        image("new", &["main-5"], 1),
    ];
    // main-5 (new) and main-4 are the two newest main images; the others
    // fall to the age rule, and only the new one is young enough.
    check(
        &[rule(1, main2, "keep"), rule(2, older7, "expire")],
        &images,
        &["main-1", "main-2", "main-3", "dev"],
    );
    let rules = [rule(1, main2, "keep"), rule(2, older7, "expire")];
    assert!(reason_for(&rules, &images, "main-4").contains("claims them from the rules below"));
    // Selected by the keep rule but beyond its count, and no lower rule
    // acts: kept, and the sentence says both.
    let only_keep = [rule(1, main2, "keep")];
    let reason = reason_for(&only_keep, &images, "main-1");
    assert!(
        reason.contains("number 5 of 5, beyond the count")
            && reason.contains("no lower rule expires or archives it"),
        "{reason}"
    );
}

#[test]
fn keep_by_age_keeps_exactly_n_days() {
    let pulled_within_30 = PULLED_30;
    let older_than_1 = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#;
    let images = [
        image("pulled-29", &["a"], 100).pulled_at(at(29 * DAY)),
        image("pulled-30", &["b"], 100).pulled_at(at(30 * DAY)),
        image("pulled-31", &["c"], 100).pulled_at(at(31 * DAY)),
        image("never-pulled", &["d"], 50),
        image("newest", &["e"], 40),
    ];
    check(
        &[
            rule(1, pulled_within_30, "keep"),
            rule(2, older_than_1, "expire"),
        ],
        &images,
        &["pulled-31", "never-pulled"],
    );
}

#[test]
fn regular_expressions_match_whole_tags_and_every_entry() {
    let older1 = r#""countType":"sinceImagePushed","countUnit":"days","countNumber":1"#;
    let sel = |list: &str| format!(r#"{{"tagStatus":"tagged","tagRegexList":{list},{older1}}}"#);
    let images = [
        image("sha", &["main-abc1234"], 5),
        image("dirty", &["main-abc1234-dirty"], 5),
        image("prefixed", &["xmain-abc1234"], 5),
        image("both", &["main-0000000", "prod"], 5),
        image("untagged", &[], 5),
    ];
    check(
        &[rule(1, &sel(r#"["main-[0-9a-f]{7}"]"#), "expire")],
        &images,
        &["sha", "both"],
    );
    // Each entry must match one of the image's tags.
    check(
        &[rule(
            1,
            &sel(r#"["main-[0-9a-f]{7}", "prod|staging"]"#),
            "expire",
        )],
        &images,
        &["both"],
    );
    // A pattern that matches nothing selects nothing.
    check(
        &[rule(1, &sel(r#"["release-.*"]"#), "expire")],
        &images,
        &[],
    );
}

#[test]
fn semver_order_keeps_the_highest_versions() {
    let highest = |n: u32| {
        format!(
            r#"{{"tagStatus":"any","orderBy":"semver","countType":"imageCountMoreThan","countNumber":{n}}}"#
        )
    };
    // Pushed oldest first: a hotfix to an old branch is the newest push.
    let images = pushed_in_order(&[
        "v2.0.0",
        "v2.0.0-rc.1",
        "2.1.0-beta.11",
        "2.1.0-beta.2",
        "latest",
        "1.2",
        "v1.9.9",
    ]);
    // 2.1.0-beta.11 > 2.1.0-beta.2 > 2.0.0 > 2.0.0-rc.1 > 1.9.9, then the
    // unversioned, newest push first (1.2, latest).
    check(
        &[rule(1, &highest(3), "expire")],
        &images,
        &["v2.0.0-rc.1", "v1.9.9", "1.2", "latest"],
    );
    check(&[rule(1, &highest(6), "expire")], &images, &["latest"]);
    let rules = [rule(1, &highest(6), "expire")];
    let reason = reason_for(&rules, &images, "latest");
    assert!(
        reason.contains("number 7 of 7 (no version among its tags"),
        "{reason}"
    );
    assert!(reason_for(&rules, &images, "v1.9.9").contains("(version v1.9.9)"));
}

#[test]
fn an_images_version_is_its_highest_matching_tag_and_ties_go_by_push() {
    let rules = |tags: &str| {
        [rule(
            1,
            &format!(
                r#"{{{tags},"orderBy":"semver","countType":"imageCountMoreThan","countNumber":1}}"#
            ),
            "expire",
        )]
    };
    let prefixes = |list: &str| format!(r#""tagStatus":"tagged","tagPrefixList":{list}"#);
    let images = [
        image("several", &["1.0.0", "v3.0.0", "latest"], 10),
        image("two", &["2.0.0"], 5),
        // The same version as "two", spelled differently, pushed later.
        image("two-again", &["v2.0.0"], 1),
    ];
    // Every tag matches `any`: "several" is 3.0.0, the highest.
    check(
        &rules(r#""tagStatus":"any""#),
        &images,
        &["two", "two-again"],
    );
    // Only tags starting with "v" count: "several" is 3.0.0 still, and
    // "two" has no matching tag, so the rule does not select it.
    check(&rules(&prefixes(r#"["v"]"#)), &images, &["two-again"]);
    // Only tags starting with 1 or 2: "several" is 1.0.0, below "two";
    // "two-again" is not selected.
    // (Entries are ANDed, so one regex, not two prefixes.)
    check(
        &rules(r#""tagStatus":"tagged","tagRegexList":["[12][.].*"]"#),
        &images,
        &["several"],
    );
    let tie = [
        image("older", &["2.0.0"], 5),
        image("newer", &["v2.0.0"], 1),
    ];
    let any = [rule(
        1,
        r#"{"tagStatus":"any","orderBy":"semver","countType":"imageCountMoreThan","countNumber":1}"#,
        "expire",
    )];
    check(&any, &tie, &["older"]);
}

#[test]
fn groups_by_regex_count_each_branch() {
    let per_branch = |n: u32| {
        format!(
            r#"{{"tagStatus":"any","groupBy":{{"tagRegex":"(?P<group>[a-z]+)-[0-9a-f]{{7}}"}},"countType":"imageCountMoreThan","countNumber":{n}}}"#
        )
    };
    let images = [
        image("main-1", &["main-0000001"], 6),
        image("main-2", &["main-0000002"], 5),
        image("main-3", &["main-0000003"], 4),
        image("dev-1", &["dev-0000001"], 3),
        // Two branches' tags: the first in ascending order decides (dev).
        image("both", &["main-0000004", "dev-0000002"], 2),
        image("latest", &["latest"], 10),
        image("untagged", &[], 10),
    ];
    check(
        &[rule(1, &per_branch(1), "expire")],
        &images,
        &["main-1", "main-2", "dev-1"],
    );
    let rules = [rule(1, &per_branch(1), "expire")];
    let reason = reason_for(&rules, &images, "main-2");
    assert!(reason.contains("in group \"main\""), "{reason}");
    // Images without a group are not selected: no rule decides them.
    assert_eq!(
        reason_for(&rules, &images, "latest"),
        "no rule selects this image"
    );
}

#[test]
fn groups_by_minor_keep_the_newest_patch_of_each() {
    let newest_patch = r#"{"tagStatus":"any","orderBy":"semver","groupBy":{"semver":"minor"},"countType":"imageCountMoreThan","countNumber":1}"#;
    let images = pushed_in_order(&[
        "1.2.10",
        "1.2.3",
        "1.2.0",
        "1.3.0",
        "1.3.1-rc.1",
        "2.0.0",
        "latest",
    ]);
    check(
        &[
            rule(1, newest_patch, "keep"),
            rule(
                2,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
                "expire",
            ),
        ],
        &images,
        &["1.2.3", "1.2.0", "1.3.0"],
    );
    let by_major = r#"{"tagStatus":"any","groupBy":{"semver":"major"},"countType":"imageCountMoreThan","countNumber":1}"#;
    // By push within each major: 1.x's newest push is 1.3.1-rc.1.
    check(
        &[rule(1, by_major, "expire")],
        &images,
        &["1.2.10", "1.2.3", "1.2.0", "1.3.0"],
    );
}

#[test]
fn an_index_claimed_by_a_keep_rule_keeps_its_children() {
    let keep_prod = r#"{"tagStatus":"tagged","tagRegexList":["prod-.*"]}"#;
    let any =
        r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#;
    let index = image("index", &["prod-1"], 10).index();
    let children = [image("amd64", &[], 10), image("arm64", &[], 10)];
    let mut images = vec![index, image("other", &["x"], 10)];
    images.extend(children);
    let policy = policy(&[rule(1, keep_prod, "keep"), rule(2, any, "expire")]);
    let facts = Facts {
        children: [(
            "sha256:index".to_owned(),
            vec!["sha256:amd64".to_owned(), "sha256:arm64".to_owned()],
        )]
        .into_iter()
        .collect(),
        ..Facts::default()
    };
    let plan = plan_with(&images, &policy, parse_rfc3339(NOW).unwrap(), &facts);
    let deleted: Vec<&str> = plan
        .to_delete()
        .map(|d| d.image.image_digest.as_str())
        .collect();
    assert_eq!(deleted, ["sha256:other"]);
}

// Random policies against a naive reading of the semantics.

const POOL: [&str; 12] = [
    "v1.0.0",
    "1.0.0",
    "v2.0.0-rc.1",
    "2.0.0",
    "1.10.0",
    "2.0.0-rc.2",
    "main-abc1234",
    "dev-0000000",
    "main-fff0000",
    "latest",
    "1.2",
    "v01.2.3",
];

fn random_selection(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => r#""tagStatus":"any""#.into(),
        1 => r#""tagStatus":"tagged","tagPrefixList":["v"]"#.into(),
        2 => r#""tagStatus":"tagged","tagRegexList":["[0-9.]+(-rc\\.[0-9]+)?"]"#.into(),
        3 => r#""tagStatus":"tagged","tagRegexList":["(main|dev)-.*"]"#.into(),
        _ => r#""tagStatus":"tagged","tagPatternList":["*.*"]"#.into(),
    }
}

fn random_count(rng: &mut Rng, keep: bool) -> String {
    match rng.below(if keep { 4 } else { 3 }) {
        0 => {
            let order = ["", r#""orderBy":"semver","#][rng.below(2) as usize];
            let group = [
                "",
                r#""groupBy":{"semver":"major"},"#,
                r#""groupBy":{"semver":"minor"},"#,
                r#""groupBy":{"tagRegex":"(?P<group>[a-z]+)-.*"},"#,
            ][rng.below(4) as usize];
            format!(
                r#",{order}{group}"countType":"imageCountMoreThan","countNumber":{}"#,
                rng.below(3) + 1
            )
        }
        1 => format!(
            r#","countType":"sinceImagePushed","countUnit":"days","countNumber":{}"#,
            rng.below(20) + 1
        ),
        2 => format!(
            r#","countType":"sinceImagePulled","countUnit":"days","countNumber":{}"#,
            rng.below(20) + 1
        ),
        _ => String::new(),
    }
}

/// Up to five rules, each keep or expire; any rule with `any` and no
/// count is made a tagged one, so the cross-rule checks pass.
fn random_policy(rng: &mut Rng) -> Policy {
    let rules: Vec<String> = (1..=1 + rng.below(5) as u32)
        .map(|priority| {
            let keep = rng.below(2) == 0;
            let mut selection = random_selection(rng);
            let count = random_count(rng, keep);
            if selection.contains("any") && (count.is_empty() || !keep) {
                selection = r#""tagStatus":"tagged","tagPrefixList":["1", "2"]"#.into();
            }
            rule(
                priority,
                &format!("{{{selection}{count}}}"),
                if keep { "keep" } else { "expire" },
            )
        })
        .collect();
    policy(&rules)
}

fn random_images(rng: &mut Rng) -> Vec<Image> {
    (0..rng.below(25))
        .map(|n| {
            let tags: Vec<&str> = (0..rng.below(3))
                .map(|_| POOL[rng.below(POOL.len() as u64) as usize])
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut image = image(&format!("{n:04}"), &tags, rng.below(30) as i64);
            if rng.below(2) == 0 {
                image = image.pulled_at(at(rng.below(30 * DAY as u64) as i64));
            }
            image
        })
        .collect()
}

/// The README's semantics, the naive way: rules in priority order; a rule
/// that selects an image (tags, and a group when it groups) ranks it among
/// every image it selects in its group (by version, then push, then
/// digest) or ages it; an expire rule decides, a keep rule decides only
/// within its count or age; the first rule to decide wins.
fn oracle(policy: &Policy, images: &[Image], now: DateTime<Utc>) -> Vec<Action> {
    fn group<'i>(rule: &Rule, image: &'i Image) -> Option<crate::policy::rank::Group<'i>> {
        rule.rank_key(&image.image_tags).map(|k| k.group)
    }
    fn version<'i>(rule: &Rule, image: &'i Image) -> Option<crate::policy::version::Version<'i>> {
        match rule.order_by {
            OrderBy::Semver => rule.version(&image.image_tags),
            OrderBy::PushedAt => None,
        }
    }
    let selects = |rule: &Rule, image: &Image| {
        rule.tags.selects(&image.image_tags) && group(rule, image).is_some()
    };
    let before = |rule: &Rule, a: &Image, b: &Image| {
        let by_version = match (version(rule, a), version(rule, b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_version
            .then(b.image_pushed_at.cmp(&a.image_pushed_at))
            .then(a.image_digest.cmp(&b.image_digest))
            == Ordering::Less
    };
    let older =
        |at: DateTime<Utc>, days: u64| (now - at).num_milliseconds() > days as i64 * 86_400_000;
    images
        .iter()
        .map(|image| {
            for rule in policy.rules.iter().filter(|r| selects(r, image)) {
                let beyond = match rule.count {
                    Count::ImagesMoreThan(n) => {
                        let rank = 1 + images
                            .iter()
                            .filter(|o| {
                                selects(rule, o)
                                    && group(rule, o) == group(rule, image)
                                    && before(rule, o, image)
                            })
                            .count() as u64;
                        rank > n
                    }
                    Count::PushedMoreThanDaysAgo(d) => older(image.image_pushed_at, d),
                    Count::PulledMoreThanDaysAgo(d) => {
                        let pulled = image.last_recorded_pull_time.map(|m| m.at());
                        older(
                            pulled
                                .unwrap_or(image.image_pushed_at)
                                .max(image.image_pushed_at),
                            d,
                        )
                    }
                    Count::TransitionedMoreThanDaysAgo(_) | Count::Every => false,
                };
                match (rule.action, beyond) {
                    (RuleAction::Keep, true) => continue,
                    (RuleAction::Keep, false) | (_, false) => return Action::Keep,
                    (_, true) => return Action::Delete,
                }
            }
            Action::Keep
        })
        .collect()
}

/// 2,000 random policies of keep and expire rules, with regexes, versions
/// and groups, over random repositories: the planner agrees with the
/// naive reading image by image.
#[test]
fn random_policies_plan_as_the_semantics_say() {
    let now = parse_rfc3339(NOW).unwrap();
    for seed in 1..=2_000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let policy = random_policy(&mut rng);
        let images = random_images(&mut rng);
        let plan = plan(&images, &policy, now);
        let expected = oracle(&policy, &images, now);
        for decision in &plan.decisions {
            let at = images
                .iter()
                .position(|i| i.image_digest == decision.image.image_digest)
                .unwrap();
            assert_eq!(
                decision.action,
                expected[at],
                "seed {seed}: {} {:?}: {}\n{policy:#?}",
                decision.image.image_digest,
                decision.image.image_tags,
                decision.explain()
            );
        }
    }
}
