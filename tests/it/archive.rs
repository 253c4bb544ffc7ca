//! The archive storage class end to end: the binary against the emulator
//! (which serves what moto lacks of it), behind the counting proxy that
//! pages like ECR. A run archives and deletes exactly what ECR's semantics
//! say, in the fewest calls; a dry run changes nothing; an archive that
//! ECR refuses is reported with ECR's own words.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::support::policy_file;
use crate::support::{
    Moto, Proxy, ago, cli, create_repository, external_list_only, publish_in_use, push, push_index,
    seed,
};

/// Archive what nobody pulled for 30 days; delete what has been archived
/// for 90. The account's own in-use sources are off but for the external
/// list, which names `used`.
fn policy() -> Value {
    let sources = external_list_only();
    json!({
        "rules": [
            {"rulePriority": 1, "description": "archive what nobody pulls",
             "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30},
             "action": {"type": "transition", "targetStorageClass": "archive"}},
            {"rulePriority": 2, "description": "delete what has been archived for 90 days",
             "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90},
             "action": {"type": "expire"}}
        ],
        "settings": {"inUse": sources}
    })
}

/// `ecr-gc run` on `shelf` through `endpoint`: the exit status, the
/// target's report and the log lines.
fn run(endpoint: &str, apply: bool, env: &[(&str, &str)]) -> (Option<i32>, Value, Vec<Value>) {
    let path = policy_file(&policy());
    let mut args = vec![
        "run",
        "--output",
        "json",
        "--registry-id",
        "123456789012",
        "--repository",
        "shelf",
    ];
    if apply {
        args.push("--apply");
    }
    args.push("--policy");
    let out = cli(endpoint, &args, &path, env);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.code(), report["targets"][0].clone(), lines)
}

/// The repository `shelf`: every kind of pull and storage history, an
/// index of two children, and one image in use. Returns each name's digest.
async fn shelf(moto: &Moto) -> BTreeMap<&'static str, String> {
    let ecr = moto.ecr();
    create_repository(&ecr, "shelf").await;
    let mut digests = BTreeMap::new();
    for name in [
        "hot",
        "cold",
        "never",
        "used",
        "amd",
        "arm",
        "old-archive",
        "young-archive",
        "restoring",
        "restored",
    ] {
        let tag = (!matches!(name, "amd" | "arm")).then_some(name);
        digests.insert(name, push(&ecr, "shelf", name, tag).await);
    }
    let children = [digests["amd"].clone(), digests["arm"].clone()];
    digests.insert("multi", push_index(&ecr, "shelf", &children, "multi").await);
    let states: [(&str, Value); 11] = [
        ("hot", json!({"lastRecordedPullTime": ago(1.0)})),
        ("cold", json!({"lastRecordedPullTime": ago(60.0)})),
        ("never", json!({})),
        ("used", json!({"lastRecordedPullTime": ago(60.0)})),
        ("amd", json!({})),
        ("arm", json!({})),
        ("multi", json!({})),
        (
            "old-archive",
            json!({"imageStatus": "ARCHIVED", "lastArchivedAt": ago(120.0)}),
        ),
        (
            "young-archive",
            json!({"imageStatus": "ARCHIVED", "lastArchivedAt": ago(30.0)}),
        ),
        (
            "restoring",
            json!({"imageStatus": "ACTIVATING", "lastArchivedAt": ago(300.0)}),
        ),
        (
            "restored",
            json!({"lastRecordedPullTime": ago(150.0), "lastActivatedAt": ago(2.0)}),
        ),
    ];
    for (name, mut state) in states {
        state["imagePushedAt"] = json!(ago(200.0));
        seed(&moto.endpoint, "shelf", &digests[name], state);
    }
    let used = format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/shelf@{}",
        digests["used"]
    );
    publish_in_use(&moto.endpoint, &[used]).await;
    digests
}

/// The names of a report list's images.
fn names(list: &Value, digests: &BTreeMap<&'static str, String>) -> BTreeSet<&'static str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let digest = image["imageDigest"].as_str().unwrap();
            *digests
                .iter()
                .find(|(_, d)| d.as_str() == digest)
                .unwrap_or_else(|| panic!("an unknown digest {digest}"))
                .0
        })
        .collect()
}

/// Every image's status, by name, as ECR now lists it (gone ones absent).
async fn statuses(
    moto: &Moto,
    digests: &BTreeMap<&'static str, String>,
) -> BTreeMap<&'static str, String> {
    let out = moto
        .ecr()
        .describe_images()
        .repository_name("shelf")
        .filter(
            aws_sdk_ecr::types::DescribeImagesFilter::builder()
                .image_status(aws_sdk_ecr::types::ImageStatusFilter::Any)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.image_details()
        .iter()
        .map(|d| {
            let digest = d.image_digest().unwrap();
            let name = *digests
                .iter()
                .find(|(_, x)| x.as_str() == digest)
                .unwrap()
                .0;
            (name, d.image_status().unwrap().as_str().to_owned())
        })
        .collect()
}

fn set(items: &[&'static str]) -> BTreeSet<&'static str> {
    items.iter().copied().collect()
}

#[tokio::test]
async fn a_run_archives_and_deletes_exactly_the_plan_in_the_fewest_calls() {
    let moto = Moto::start();
    let digests = shelf(&moto).await;
    let before = statuses(&moto, &digests).await;

    // A dry run plans, logs what it would do, and changes nothing.
    let proxy = Proxy::start(&moto.endpoint, json!({"ecr": true}));
    let (status, target, lines) = run(&proxy.endpoint, false, &[]);
    assert_eq!(status, Some(0), "{target:#}");
    let repository = &target["repositories"][0];
    let archived = set(&["cold", "never", "multi", "amd", "arm"]);
    assert_eq!(names(&repository["plannedTransitions"], &digests), archived);
    assert_eq!(
        names(&repository["planned"], &digests),
        set(&["old-archive"])
    );
    assert_eq!(names(&repository["protected"], &digests), set(&["used"]));
    assert_eq!(
        repository["protected"][0]["protection"],
        json!("in use by external:ssm:/ecr-gc/in-use")
    );
    assert_eq!(repository["imagesScanned"], json!(11));
    let would: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["message"] == "image would be archived (dry run)")
        .filter_map(|l| l["imageDigest"].as_str())
        .map(|d| *digests.iter().find(|(_, x)| x.as_str() == d).unwrap().0)
        .collect();
    assert_eq!(would, archived);
    assert_eq!(statuses(&moto, &digests).await, before);
    assert_eq!(proxy.counts().get("UpdateImageStorageClass"), None);
    assert_eq!(proxy.counts().get("BatchDeleteImage"), None);
    drop(proxy);

    // Applied: the index goes with its children in one call.
    let proxy = Proxy::start(&moto.endpoint, json!({"ecr": true}));
    let (status, target, lines) = run(&proxy.endpoint, true, &[]);
    assert_eq!(status, Some(0), "{target:#}");
    let repository = &target["repositories"][0];
    assert_eq!(names(&repository["transitioned"], &digests), archived);
    assert_eq!(
        names(&repository["deleted"], &digests),
        set(&["old-archive"])
    );
    assert_eq!(repository["transitionFailed"], json!([]));
    assert_eq!(target["summary"]["imagesTransitioned"], json!(5));
    assert_eq!(target["summary"]["imagesDeleted"], json!(1));
    let after = statuses(&moto, &digests).await;
    let mut expected = before.clone();
    expected.remove("old-archive");
    for name in &archived {
        expected.insert(name, "ARCHIVED".into());
    }
    assert_eq!(after, expected);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["message"] == "image archived")
            .count(),
        5
    );
    // The floor: one listing page, one BatchGetImage for the index's
    // children, one re-read of the six planned images, one archive call per
    // unit (the index's children go with it), one delete.
    let counts = proxy.counts();
    let ecr_calls: BTreeMap<&str, u64> = [
        "DescribeRepositories",
        "DescribeImages",
        "ListImages",
        "BatchGetImage",
        "BatchDeleteImage",
        "UpdateImageStorageClass",
    ]
    .into_iter()
    .filter_map(|op| counts.get(op).map(|n| (op, *n)))
    .collect();
    assert_eq!(
        ecr_calls,
        BTreeMap::from([
            ("DescribeImages", 2),
            ("BatchGetImage", 1),
            ("BatchDeleteImage", 1),
            ("UpdateImageStorageClass", 3),
        ])
    );
    // Every call names the registry.
    assert!(
        counts.keys().all(|k| !k.ends_with(":noRegistryId")),
        "{counts:?}"
    );
    assert_eq!(target["apiCalls"]["UpdateImageStorageClass"], json!(3));
}

#[tokio::test]
async fn an_archive_ecr_refuses_is_reported_verbatim_and_a_transient_one_retried() {
    let moto = Moto::start();
    let digests = shelf(&moto).await;
    let plan = json!({
        "ecr": true,
        format!("UpdateImageStorageClass@{}", digests["cold"]): ["denied*"],
        format!("UpdateImageStorageClass@{}", digests["never"]): ["500", "500", "500"],
    });
    let proxy = Proxy::start(&moto.endpoint, plan);
    let env = [
        ("ECR_GC_MAX_ATTEMPTS", "2"),
        ("ECR_GC_INITIAL_BACKOFF_MS", "10"),
    ];
    let (status, target, lines) = run(&proxy.endpoint, true, &env);
    assert_eq!(
        status,
        Some(1),
        "a failed archive fails the run: {target:#}"
    );
    let repository = &target["repositories"][0];
    assert_eq!(
        names(&repository["transitioned"], &digests),
        set(&["never", "multi", "amd", "arm"])
    );
    let failed = &repository["transitionFailed"];
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed:#}");
    assert_eq!(failed[0]["imageId"]["imageDigest"], json!(digests["cold"]));
    assert_eq!(failed[0]["failureCode"], json!("AccessDeniedException"));
    assert_eq!(failed[0]["failureReason"], json!("denied by the test"));
    assert_eq!(target["summary"]["transitionsFailed"], json!(1));
    let line = lines
        .iter()
        .find(|l| l["message"] == "image not archived")
        .expect("a log line for the refused archive");
    assert_eq!(line["failureCode"], json!("AccessDeniedException"));
    assert_eq!(line["action"], json!("transition"));
    // The refused one was tried once (AccessDenied is not transient); the
    // one that failed three times (past the SDK's two attempts) was tried
    // again, and archived.
    let counts = proxy.counts();
    assert_eq!(counts["UpdateImageStorageClass"], 1 + 4 + 1);
    let after = statuses(&moto, &digests).await;
    assert_eq!(after["cold"], "ACTIVE");
    assert_eq!(after["never"], "ARCHIVED");
}
