//! Property tests for the archive: random repositories (ACTIVE, ARCHIVED
//! and ACTIVATING images, multi-arch indexes) and random policies with
//! transitions and archive rules, through the real engine against a fake
//! ECR that records every BatchDeleteImage and UpdateImageStorageClass.
//! Whatever the scenario: nothing in use or inside the grace period is
//! deleted or archived; only ACTIVE images are archived, never a child on
//! its own nor an index whose child is protected; nothing restoring is
//! touched; archived images are deleted only by archive rules, after 90
//! days in the archive; the limits count both.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::update_image_storage_class::UpdateImageStorageClassOutput;
use aws_sdk_ecr::types::{ImageDetail, ImageStatus};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use serde_json::json;

use crate::properties::{NOW, Rng, deleted, index_image, run_engine};

const DAY: i64 = 86_400;
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Clone, Debug)]
struct Img {
    digest: String,
    tags: Vec<String>,
    pushed: i64,
    pulled: Option<i64>,
    status: &'static str,
    archived: Option<i64>,
    children: Vec<String>,
}

#[derive(Debug)]
struct Scenario {
    images: Vec<Img>,
    policy: String,
    in_use: BTreeSet<String>,
    grace_minutes: i64,
    max_per_repository: Option<u64>,
}

fn scenario(seed: u64) -> Scenario {
    let mut rng = Rng(seed | 1);
    let mut images: Vec<Img> = Vec::new();
    let pool = ["v1", "v2", "prod", "dev", "rc"];
    let image = |rng: &mut Rng, n: usize, tags: Vec<String>| {
        let status = [
            "ACTIVE",
            "ACTIVE",
            "ACTIVE",
            "ARCHIVED",
            "ARCHIVED",
            "ACTIVATING",
        ][rng.below(6) as usize];
        Img {
            digest: format!("sha256:{n:064x}"),
            tags,
            pushed: NOW - rng.below(400) as i64 * DAY / 2,
            pulled: rng
                .chance(50)
                .then(|| NOW - rng.below(200) as i64 * DAY / 2),
            status,
            archived: (status != "ACTIVE").then(|| NOW - rng.below(300) as i64 * DAY),
            children: Vec::new(),
        }
    };
    for n in 0..rng.below(20) as usize {
        let tags = (0..rng.below(3))
            .map(|_| format!("{}{n}", pool[rng.below(5) as usize]))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        images.push(image(&mut rng, n + 1, tags));
    }
    // Indexes over fresh children, in the index's storage class.
    for i in 0..rng.below(3) as usize {
        let mut index = image(&mut rng, 100 + i, vec![format!("v9{i}")]);
        for c in 0..1 + rng.below(2) as usize {
            let mut child = image(&mut rng, 200 + 10 * i + c, Vec::new());
            (child.status, child.archived, child.pushed) =
                (index.status, index.archived, index.pushed);
            index.children.push(child.digest.clone());
            images.push(child);
        }
        images.push(index);
    }
    let mut rules = Vec::new();
    let mut priority = 1;
    let transition = json!({"type": "transition", "targetStorageClass": "archive"});
    for status in ["tagged", "untagged", "any"] {
        if rng.chance(40) {
            continue;
        }
        let mut selection = match rng.below(4) {
            0 => json!({"countType": "imageCountMoreThan", "countNumber": 1 + rng.below(4)}),
            1 => {
                json!({"countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1 + rng.below(100)})
            }
            _ => {
                json!({"countType": "sinceImagePulled", "countUnit": "days", "countNumber": 1 + rng.below(100)})
            }
        };
        let action = if selection["countType"] == "sinceImagePulled" || rng.chance(60) {
            transition.clone()
        } else {
            json!({"type": "expire"})
        };
        selection["tagStatus"] = status.into();
        if status == "tagged" {
            selection["tagPrefixList"] = json!([pool[rng.below(5) as usize]]);
        }
        rules.push(json!({"rulePriority": priority, "selection": selection, "action": action}));
        priority += 1;
    }
    for status in ["untagged", "any"] {
        if rng.chance(50) {
            rules.push(json!({"rulePriority": priority, "selection": {
                "tagStatus": status, "storageClass": "archive", "countType": "sinceImageTransitioned",
                "countUnit": "days", "countNumber": 90 + rng.below(150)}, "action": {"type": "expire"}}));
            priority += 1;
        }
    }
    if rules.is_empty() {
        rules.push(json!({"rulePriority": 1, "selection": {"tagStatus": "any",
            "countType": "imageCountMoreThan", "countNumber": 1}, "action": transition}));
    }
    let grace_minutes = [0, 60, 2_880][rng.below(3) as usize];
    let max_per_repository = rng.chance(30).then(|| rng.below(8));
    let mut settings =
        json!({"gracePeriodMinutes": grace_minutes, "allowDeletingEveryImage": rng.chance(50)});
    if let Some(max) = max_per_repository {
        settings["maxDeletesPerRepository"] = json!(max);
    }
    let in_use = images
        .iter()
        .filter(|_| rng.chance(15))
        .map(|i| i.digest.clone())
        .collect();
    Scenario {
        images,
        policy: json!({"rules": rules, "settings": settings}).to_string(),
        in_use,
        grace_minutes,
        max_per_repository,
    }
}

fn detail(image: &Img) -> ImageDetail {
    ImageDetail::builder()
        .image_digest(&image.digest)
        .set_image_tags(Some(image.tags.clone()))
        .image_pushed_at(DateTime::from_secs(image.pushed))
        .image_size_in_bytes(1)
        .set_image_manifest_media_type((!image.children.is_empty()).then(|| INDEX.to_owned()))
        .image_status(ImageStatus::from(image.status))
        .set_last_recorded_pull_time(image.pulled.map(DateTime::from_secs))
        .set_last_archived_at(image.archived.map(DateTime::from_secs))
        .build()
}

/// What the engine sent: the deleted and the archived digests.
#[derive(Default)]
struct Sent {
    deleted: Vec<String>,
    archived: Vec<String>,
}

/// Runs the engine over the scenario against a fake ECR that behaves like
/// ECR's archive: listings by status, archived indexes unreadable, an index
/// archived with its children.
fn run(s: &Scenario) -> Sent {
    let registry = Arc::new(Mutex::new(s.images.clone()));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let listing = registry.clone();
    let describe = mock!(Client::describe_images).then_compute_output(move |req| {
        let images = listing.lock().unwrap();
        let any = req.filter().and_then(|f| f.image_status()).is_some();
        let ids: Vec<&str> = req
            .image_ids()
            .iter()
            .filter_map(|i| i.image_digest())
            .collect();
        let details = images
            .iter()
            .filter(|i| {
                if ids.is_empty() {
                    any || i.status == "ACTIVE"
                } else {
                    ids.contains(&i.digest.as_str())
                }
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
            let image = images
                .iter()
                .find(|i| Some(i.digest.as_str()) == id.image_digest())
                .filter(|i| i.status == "ACTIVE")
                .expect("only ACTIVE indexes are read");
            out = out.images(index_image(&image.digest, &image.children));
        }
        out.build()
    });
    let (store, seen) = (registry.clone(), sent.clone());
    let delete = mock!(Client::batch_delete_image).then_compute_output(move |req| {
        let (digests, out) = deleted(req);
        seen.lock().unwrap().deleted.extend(digests.clone());
        store
            .lock()
            .unwrap()
            .retain(|i| !digests.contains(&i.digest));
        out
    });
    let (store, seen) = (registry.clone(), sent.clone());
    let archive = mock!(Client::update_image_storage_class).then_compute_output(move |req| {
        let digest = req
            .image_id()
            .and_then(|i| i.image_digest())
            .unwrap()
            .to_owned();
        seen.lock().unwrap().archived.push(digest.clone());
        let mut images = store.lock().unwrap();
        let children = images
            .iter()
            .find(|i| i.digest == digest)
            .map(|i| i.children.clone())
            .unwrap_or_default();
        for image in images
            .iter_mut()
            .filter(|i| i.digest == digest || children.contains(&i.digest))
        {
            image.status = "ARCHIVED";
            image.archived = Some(NOW);
        }
        UpdateImageStorageClassOutput::builder()
            .image_status(ImageStatus::Archived)
            .build()
    });
    let client = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&describe, &get, &delete, &archive]
    );
    run_engine(client, &s.in_use, &s.policy);
    std::mem::take(&mut *sent.lock().unwrap())
}

fn check(s: &Scenario) -> (usize, usize) {
    let sent = run(s);
    let by_digest: BTreeMap<&str, &Img> = s.images.iter().map(|i| (i.digest.as_str(), i)).collect();
    let children: BTreeSet<&str> = s
        .images
        .iter()
        .flat_map(|i| i.children.iter().map(String::as_str))
        .collect();
    let protected =
        |image: &Img| s.in_use.contains(&image.digest) || image.pushed > NOW - s.grace_minutes * 60;
    for d in &sent.archived {
        let image = by_digest[d.as_str()];
        assert_eq!(
            image.status, "ACTIVE",
            "archived {d}, which was {}",
            image.status
        );
        assert!(!protected(image), "archived {d}, which is protected");
        assert!(
            !children.contains(d.as_str()),
            "archived the child {d} on its own"
        );
        for child in &image.children {
            assert!(
                !protected(by_digest[child.as_str()]),
                "archived {d}, whose child {child} is protected"
            );
        }
    }
    for d in &sent.deleted {
        let image = by_digest[d.as_str()];
        assert_ne!(
            image.status, "ACTIVATING",
            "deleted {d}, which is being restored"
        );
        assert!(!s.in_use.contains(d), "deleted {d}, which is in use");
        if image.status == "ARCHIVED" {
            assert!(
                image.archived.is_some_and(|at| at <= NOW - 90 * DAY),
                "deleted {d}, archived less than 90 days ago"
            );
        } else {
            assert!(!protected(image), "deleted {d}, inside the grace period");
        }
    }
    let unique: BTreeSet<&String> = sent.archived.iter().chain(&sent.deleted).collect();
    assert_eq!(
        unique.len(),
        sent.archived.len() + sent.deleted.len(),
        "an image acted on twice"
    );
    if let Some(max) = s.max_per_repository {
        assert!(
            unique.len() as u64 <= max,
            "{} changes over the limit {max}",
            unique.len()
        );
    }
    (sent.archived.len(), sent.deleted.len())
}

/// Many random scenarios, and the generator covers what they guard: some
/// archive, some delete from the archive.
#[test]
fn no_archive_or_delete_ever_breaks_a_protection() {
    let (mut archived, mut deleted) = (0, 0);
    for seed in 1..=400u64 {
        let (a, d) = check(&scenario(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        archived += a;
        deleted += d;
    }
    assert!(archived > 200, "{archived}");
    assert!(deleted > 100, "{deleted}");
}
