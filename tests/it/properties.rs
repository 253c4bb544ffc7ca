//! Property tests: random registries, policies and inventories, run through
//! the real engine against a fake ECR (aws-smithy-mocks) that records every
//! BatchDeleteImage batch. Whatever the scenario, no batch may hold an
//! image in use, a child of a kept index, a referrer of a kept subject, or
//! an image inside the grace period; indexes go before their children;
//! batches hold at most 100 ids; and the limits hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::types::{Image as EcrImage, ImageDetail, ImageIdentifier};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use chrono::{TimeZone, Utc};
use ecr_gc::aws::ecr::Ecr;
use ecr_gc::inventory::{InUse, Inventory, Registry, reference};
use ecr_gc::policy::Policy;
use ecr_gc::run::engine::{self, Run, Scope};
use ecr_gc::run::lines::Collected;
use proptest::prelude::*;
use serde_json::json;

pub const NOW: i64 = 1_800_000_000;
const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A tiny deterministic generator: the scenario is a function of the seed.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Debug)]
struct Img {
    digest: String,
    tags: Vec<String>,
    pushed: i64,
    index_of: Vec<String>,
    subject: Option<String>,
}

#[derive(Debug)]
struct Scenario {
    images: Vec<Img>,
    policy: String,
    in_use: BTreeSet<String>,
    grace_minutes: i64,
    max_per_repository: Option<u64>,
    allow_everything: bool,
}

fn digest(n: u64) -> String {
    format!("sha256:{n:064x}")
}

fn scenario(seed: u64) -> Scenario {
    let mut rng = Rng(seed | 1);
    let mut images = Vec::new();
    let mut next = 1u64;
    let pool = ["v1", "v2", "v3", "prod-a", "prod-b", "dev-x", "latest"];
    let age = |rng: &mut Rng| NOW - rng.below(60 * 86_400) as i64;
    for _ in 0..rng.below(25) {
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..rng.below(3) {
            let tag = format!(
                "{}{}",
                pool[rng.below(pool.len() as u64) as usize],
                rng.below(4)
            );
            if !tags.contains(&tag) && !images.iter().any(|i: &Img| i.tags.contains(&tag)) {
                tags.push(tag);
            }
        }
        images.push(Img {
            digest: digest(next),
            tags,
            pushed: age(&mut rng),
            index_of: Vec::new(),
            subject: None,
        });
        next += 1;
    }
    // Multi-arch indexes over fresh children, sometimes sharing one.
    let mut children_so_far: Vec<String> = Vec::new();
    for i in 0..rng.below(4) {
        let pushed = age(&mut rng);
        let mut kids = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let child = digest(next);
            next += 1;
            images.push(Img {
                digest: child.clone(),
                tags: Vec::new(),
                pushed,
                index_of: Vec::new(),
                subject: None,
            });
            kids.push(child);
        }
        if let Some(shared) = children_so_far.first().filter(|_| rng.chance(40)) {
            kids.push(shared.clone());
        }
        children_so_far.extend(kids.clone());
        let tags = if rng.chance(70) {
            vec![format!("v{}{}", 5 + i, rng.below(9))]
        } else {
            Vec::new()
        };
        images.push(Img {
            digest: digest(next),
            tags,
            pushed,
            index_of: kids,
            subject: None,
        });
        next += 1;
    }
    // Referrers: of an existing image (by subject or cosign tag), or of a
    // digest that is gone.
    for _ in 0..rng.below(4) {
        let subject = if images.is_empty() || rng.chance(20) {
            digest(9_999)
        } else {
            images[rng.below(images.len() as u64) as usize]
                .digest
                .clone()
        };
        let (tags, subject_field) = if rng.chance(50) {
            (
                vec![format!(
                    "sha256-{}.sig",
                    subject.trim_start_matches("sha256:")
                )],
                None,
            )
        } else {
            (Vec::new(), Some(subject))
        };
        images.push(Img {
            digest: digest(next),
            tags,
            pushed: age(&mut rng),
            index_of: Vec::new(),
            subject: subject_field,
        });
        next += 1;
    }

    // A valid policy: tagged rules, at most one untagged, `any` last.
    let mut rules = Vec::new();
    let mut priority = 1;
    let count = |rng: &mut Rng| {
        if rng.chance(60) {
            json!({"countType": "imageCountMoreThan", "countNumber": 1 + rng.below(5)})
        } else {
            json!({"countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1 + rng.below(30)})
        }
    };
    for _ in 0..rng.below(3) {
        let prefixes = ["v", "prod", "dev", "latest"];
        let mut selection = count(&mut rng);
        selection["tagStatus"] = "tagged".into();
        selection["tagPrefixList"] = json!([prefixes[rng.below(4) as usize]]);
        rules.push(
            json!({"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}),
        );
        priority += 1 + rng.below(3);
    }
    for status in ["untagged", "any"] {
        if rules.is_empty() || rng.chance(50) {
            let mut selection = count(&mut rng);
            selection["tagStatus"] = status.into();
            rules.push(json!({"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}));
            priority += 1;
        }
    }
    let grace_minutes = [0, 60, 1_440][rng.below(3) as usize];
    let max_per_repository = rng.chance(30).then(|| rng.below(10));
    let allow_everything = rng.chance(50);
    let policy = json!({
        "rules": rules,
        "settings": {
            "gracePeriodMinutes": grace_minutes,
            "maxDeletesPerRepository": max_per_repository,
            "allowDeletingEveryImage": allow_everything,
            "deleteOrphanReferrers": rng.chance(50),
        }
    });
    let in_use = images
        .iter()
        .filter(|_| rng.chance(15))
        .map(|i| i.digest.clone())
        .collect();
    Scenario {
        images,
        policy: policy
            .to_string()
            .replace("\"maxDeletesPerRepository\":null,", ""),
        in_use,
        grace_minutes,
        max_per_repository,
        allow_everything,
    }
}

fn detail(image: &Img) -> ImageDetail {
    ImageDetail::builder()
        .image_digest(&image.digest)
        .set_image_tags(Some(image.tags.clone()))
        .image_pushed_at(DateTime::from_secs(image.pushed))
        .image_size_in_bytes(1)
        .set_image_manifest_media_type((!image.index_of.is_empty()).then(|| INDEX.to_owned()))
        .set_subject_manifest_digest(image.subject.clone())
        .build()
}

/// Runs the engine over the scenario against a fake ECR; returns the
/// BatchDeleteImage batches, in order.
fn batches_of(s: &Scenario) -> Vec<Vec<String>> {
    let registry = Arc::new(Mutex::new(s.images.clone()));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let listing = registry.clone();
    let describe = mock!(Client::describe_images).then_compute_output(move |req| {
        let images = listing.lock().unwrap();
        let wanted: Option<BTreeSet<&str>> = (!req.image_ids().is_empty()).then(|| {
            req.image_ids()
                .iter()
                .filter_map(|i| i.image_digest())
                .collect()
        });
        let details = images
            .iter()
            .filter(|i| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(i.digest.as_str()))
            })
            .map(detail)
            .collect();
        DescribeImagesOutput::builder()
            .set_image_details(Some(details))
            .build()
    });
    let manifests = registry.clone();
    let get = mock!(Client::batch_get_image).then_compute_output(move |req| {
        let images = manifests.lock().unwrap();
        let mut out = BatchGetImageOutput::builder();
        for id in req.image_ids() {
            if let Some(image) = images
                .iter()
                .find(|i| Some(i.digest.as_str()) == id.image_digest())
            {
                out = out.images(index_image(&image.digest, &image.index_of));
            }
        }
        out.build()
    });
    let (store, seen) = (registry.clone(), batches.clone());
    let delete = mock!(Client::batch_delete_image).then_compute_output(move |req| {
        let (digests, out) = deleted(req);
        seen.lock().unwrap().push(digests.clone());
        store
            .lock()
            .unwrap()
            .retain(|i| !digests.contains(&i.digest));
        out
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &get, &delete]);
    run_engine(client, &s.in_use, &s.policy);
    batches.lock().unwrap().clone()
}

/// ECR's image of a multi-arch index listing `children`.
pub fn index_image(digest: &str, children: &[String]) -> EcrImage {
    let entries: Vec<_> = children.iter().map(|d| json!({"digest": d})).collect();
    EcrImage::builder()
        .image_id(ImageIdentifier::builder().image_digest(digest).build())
        .image_manifest(
            json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).to_string(),
        )
        .build()
}

/// A BatchDeleteImage request's digests, and ECR's answer deleting them all.
pub fn deleted(
    req: &aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageInput,
) -> (Vec<String>, BatchDeleteImageOutput) {
    let digests: Vec<String> = req
        .image_ids()
        .iter()
        .filter_map(|i| i.image_digest().map(str::to_owned))
        .collect();
    let mut out = BatchDeleteImageOutput::builder();
    for d in &digests {
        out = out.image_ids(ImageIdentifier::builder().image_digest(d).build());
    }
    (digests, out.build())
}

/// Runs the engine, not in a dry run, on the repository `rr` of `client`
/// under `policy`, at `NOW`, with `in_use` the digests an ECS workload
/// uses; the repository must be collected without error.
pub fn run_engine(client: Client, in_use: &BTreeSet<String>, policy: &str) {
    let inventory = Inventory {
        registry: Some(Registry {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }),
        uses: in_use
            .iter()
            .map(|d| InUse {
                reference: reference::parse(&format!("{HOST}/rr@{d}")).unwrap(),
                workload: "ecs:test".into(),
            })
            .collect(),
        sources: Vec::new(),
    };
    let policy = Policy::parse(policy).unwrap_or_else(|e| panic!("{e}: {policy}"));
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Named(vec![crate::support::repo("rr")]),
        dry_run: false,
        now: Utc.timestamp_opt(NOW, 0).unwrap(),
        stop_at: None,
        detail: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(engine::run(
            &Ecr::new(client, None),
            &inventory,
            &policy,
            &run,
            &Collected::default(),
        ))
        .unwrap();
    assert!(
        report.repositories[0].error.is_none(),
        "{:?}",
        report.repositories[0].error
    );
}

fn check(s: &Scenario) {
    let batches = batches_of(s);
    let by_digest: BTreeMap<&str, &Img> = s.images.iter().map(|i| (i.digest.as_str(), i)).collect();
    // When each digest was deleted: the batch number.
    let mut deleted_in: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, batch) in batches.iter().enumerate() {
        assert!(batch.len() <= 100, "a batch of {}", batch.len());
        for d in batch {
            deleted_in.insert(d, n);
        }
    }
    for (&d, &n) in &deleted_in {
        let image = by_digest[d];
        assert!(!s.in_use.contains(d), "deleted an image in use: {d}");
        assert!(
            image.pushed <= NOW - s.grace_minutes * 60,
            "deleted {d}, pushed inside the grace period"
        );
        for index in s
            .images
            .iter()
            .filter(|i| i.index_of.iter().any(|c| c == d))
        {
            let at = deleted_in.get(index.digest.as_str());
            assert!(
                at.is_some(),
                "deleted {d}, a child of kept index {}",
                index.digest
            );
            assert!(
                at < Some(&n),
                "deleted child {d} no later than its index {}",
                index.digest
            );
        }
        let subject = image.subject.clone().or_else(|| {
            image.tags.iter().find_map(|t| {
                t.strip_suffix(".sig")?
                    .strip_prefix("sha256-")
                    .map(|h| format!("sha256:{h}"))
            })
        });
        if let Some(subject) = subject
            && by_digest.contains_key(subject.as_str())
        {
            assert!(
                deleted_in.contains_key(subject.as_str()),
                "deleted {d}, a referrer of kept {subject}"
            );
        }
    }
    if let Some(max) = s.max_per_repository {
        assert!(
            deleted_in.len() as u64 <= max,
            "{} deletions over the limit {max}",
            deleted_in.len()
        );
    }
    if !s.allow_everything && !s.images.is_empty() {
        assert!(deleted_in.len() < s.images.len(), "emptied the repository");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_batch_ever_breaks_a_protection(seed in any::<u64>()) {
        check(&scenario(seed));
    }
}

/// The generator does produce the cases the properties are about.
#[test]
fn scenarios_cover_what_the_properties_guard() {
    let (mut deletions, mut children_deleted, mut referrers_deleted) = (0, 0, 0);
    for seed in 1..300u64 {
        let s = scenario(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let deleted: BTreeSet<String> = batches_of(&s).into_iter().flatten().collect();
        deletions += deleted.len();
        children_deleted += s
            .images
            .iter()
            .filter(|i| !i.index_of.is_empty())
            .flat_map(|i| i.index_of.iter())
            .filter(|c| deleted.contains(*c))
            .count();
        referrers_deleted += s
            .images
            .iter()
            .filter(|i| i.subject.is_some() || i.tags.iter().any(|t| t.ends_with(".sig")))
            .filter(|i| deleted.contains(&i.digest))
            .count();
    }
    assert!(deletions > 500, "{deletions}");
    assert!(children_deleted > 20, "{children_deleted}");
    assert!(referrers_deleted > 10, "{referrers_deleted}");
}

/// Arbitrary JSON, biased towards the shapes the parsers look for.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let keys = prop_oneof![
        Just("rules".to_owned()),
        Just("rulePriority".to_owned()),
        Just("selection".to_owned()),
        Just("action".to_owned()),
        Just("tagStatus".to_owned()),
        Just("countNumber".to_owned()),
        Just("settings".to_owned()),
        Just("source".to_owned()),
        Just("detail-type".to_owned()),
        Just("detail".to_owned()),
        Just("repositories".to_owned()),
        Just("dryRun".to_owned()),
        "[a-zA-Z-]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(1e300)),
        prop_oneof![
            Just("tagged"),
            Just("untagged"),
            Just("any"),
            Just("expire"),
            Just("aws.ecr"),
            Just("aws.events"),
            Just("aws.scheduler"),
            Just("Scheduled Event"),
            Just("ECR Image Action"),
            Just("imageCountMoreThan"),
            Just("sinceImagePushed"),
            Just("days"),
            Just("{}"),
        ]
        .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// No input makes the policy parser panic, and every refusal says why.
    #[test]
    fn the_policy_parser_never_panics(value in json_value(), text in ".{0,200}") {
        for input in [value.to_string(), text] {
            if let Err(error) = Policy::parse(&input) {
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }

    /// No event makes the event parser panic, and every refusal quotes it.
    #[test]
    fn the_event_parser_never_panics(value in json_value()) {
        if let Err(error) = ecr_gc::lambda::parse_event(&value) {
            prop_assert!(error.to_string().contains("unrecognised event"));
        }
    }
}

/// Every truncation of the sample policy is refused, not half-read.
#[test]
fn truncated_documents_are_refused() {
    let root = env!("CARGO_MANIFEST_DIR");
    let policy = std::fs::read_to_string(format!("{root}/examples/policy.json")).unwrap();
    let full = policy.trim_end();
    for cut in 0..full.len() {
        if full.is_char_boundary(cut) {
            assert!(
                Policy::parse(&full[..cut]).is_err(),
                "accepted {cut} characters"
            );
        }
    }
}

/// Every field of a JSON value, as the path to it: a cut-down event is one
/// with one of these removed, or one of its strings cut short.
fn paths(value: &serde_json::Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
    if let serde_json::Value::Object(map) = value {
        for (key, child) in map {
            let mut path = at.clone();
            path.push(key.clone());
            out.push(path.clone());
            paths(child, path, out);
        }
    }
}

fn without(value: &serde_json::Value, path: &[String]) -> serde_json::Value {
    let mut value = value.clone();
    let (last, parents) = path.split_last().unwrap();
    let mut at = &mut value;
    for key in parents {
        at = at.get_mut(key).unwrap();
    }
    at.as_object_mut().unwrap().remove(last);
    value
}

/// Cut-down sample events reach the event parser (a cut JSON text never
/// does: no prefix of an object is JSON): with any one field removed, or
/// any string cut short, the parser never panics, and a push stays a push
/// only when nothing it needs was taken: its source, detail-type, detail,
/// action, result and repository name are each required.
#[test]
fn cut_down_events_are_refused_or_read_as_what_is_left() {
    use ecr_gc::lambda::{Trigger, parse_event};
    let root = env!("CARGO_MANIFEST_DIR");
    for name in [
        "schedule",
        "scheduler",
        "ecr-push",
        "ecr-delete",
        "manual",
        "sqs",
        "sqs-ecr-push",
    ] {
        let text = std::fs::read_to_string(format!("{root}/events/{name}.json")).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        paths(&event, Vec::new(), &mut all);
        assert!(!all.is_empty(), "{name}");
        for path in &all {
            let cut = without(&event, path);
            let parsed = parse_event(&cut);
            if name == "ecr-push" {
                let required = [
                    "source",
                    "detail-type",
                    "detail",
                    "action-type",
                    "result",
                    "repository-name",
                ];
                let needed = required.contains(&path.last().unwrap().as_str());
                let still_push = matches!(parsed, Ok(Trigger::Push { .. }));
                assert_eq!(still_push, !needed, "{name} without {path:?}: {parsed:?}");
            }
            if let Err(error) = parsed {
                assert!(error.to_string().contains("unrecognised event"), "{error}");
            }
            // Each string of the event cut to every shorter length.
            if let Some(serde_json::Value::String(text)) =
                path.iter().try_fold(&event, |v, k| v.get(k))
            {
                for cut in 0..text.len() {
                    if !text.is_char_boundary(cut) {
                        continue;
                    }
                    let mut shorter = event.clone();
                    let mut at = &mut shorter;
                    for key in path {
                        at = at.get_mut(key).unwrap();
                    }
                    *at = serde_json::Value::String(text[..cut].to_owned());
                    let _ = parse_event(&shorter);
                }
            }
        }
    }
}
