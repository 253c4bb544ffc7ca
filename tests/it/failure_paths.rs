//! The failure side of the documented invariants, each through the layer
//! where a user meets it: the real binary where the behaviour is theirs,
//! the engine with a failing fake where only a fault can reach it.
//! Expected values are written out here, never taken from the code under
//! test.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Moto, Proxy, create_repository, digests, push, push_index};

const BIN: &str = env!("CARGO_BIN_EXE_ecr-gc");

/// `ecr-gc run --apply --output json` through `endpoint`, with `policy`:
/// the exit status and the one target's report.
fn cli_run(endpoint: &str, policy: &Value, repository: &str) -> (Option<i32>, Value) {
    let dir = std::env::temp_dir().join(format!("ecr-gc-failure-{}", crate::support::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    let out = Command::new(BIN)
        .args([
            "run",
            "--apply",
            "--output",
            "json",
            "--repository",
            repository,
            "--policy",
        ])
        .arg(&path)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report["targets"][0].clone())
}

/// Two indexes, m1 (amd, shared) and m2 (arm, shared), both expire; ECR
/// refuses to delete m2. The shared child is listed by m2, which stays, so
/// it must not be sent for deletion at all (moto would delete it: it does
/// not check an index's children, so a bug here shows as a lost image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_shared_by_two_indexes_stays_while_either_stays() {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "multi").await;
    let amd = push(&client, "multi", "amd", None).await;
    let arm = push(&client, "multi", "arm", None).await;
    let shared = push(&client, "multi", "shared", None).await;
    let m1 = push_index(&client, "multi", &[amd.clone(), shared.clone()], "v1").await;
    let m2 = push_index(&client, "multi", &[arm.clone(), shared.clone()], "v2").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let newest = push(&client, "multi", "newest", Some("v3")).await;
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({"ecr": true, "refuseDelete": {&m2: "ImageDeleteRefusedByTest"}}),
    );
    let policy = json!({
        "rules": [{
            "rulePriority": 1,
            "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}
        }],
        "settings": {"gracePeriodMinutes": 0, "inUse": {"ecs": {"enabled": false}, "lambda": {"enabled": false}}}
    });
    let (code, report) = cli_run(&proxy.endpoint, &policy, "multi");
    assert_eq!(code, Some(1), "a refused delete is a failure: {report}");
    let repo = &report["repositories"][0];
    let deleted: Vec<&str> = repo["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["imageDigest"].as_str().unwrap())
        .collect();
    let mut deleted = deleted;
    deleted.sort();
    let mut want = vec![m1.as_str(), amd.as_str()];
    want.sort();
    assert_eq!(deleted, want, "m1 and the child only m1 lists");
    assert_eq!(repo["failed"][0]["imageId"]["imageDigest"], m2.as_str());
    assert_eq!(repo["failed"][0]["failureCode"], "ImageDeleteRefusedByTest");
    // Both of m2's children are held, each naming the index that stays.
    let held: Vec<(&str, &str)> = repo["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["imageDigest"].as_str().unwrap(),
                s["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    for child in [&arm, &shared] {
        let reason = held.iter().find(|(d, _)| *d == child.as_str()).unwrap().1;
        assert_eq!(reason, format!("its index {m2} was not deleted"));
    }
    let mut left = digests(&client, "multi").await;
    left.sort();
    let mut want = vec![m2, arm, shared, newest];
    want.sort();
    assert_eq!(left, want);
}

/// Keep three tagged images; nothing else (no grace period, no in-use
/// source) stands between the listing and the deletes.
const DEADLINE_POLICY: &str = r#"{"rules": [{"rulePriority": 1,
    "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 3},
    "action": {"type": "expire"}}],
  "settings": {"gracePeriodMinutes": 0, "inUse": {"ecs": {"enabled": false}, "lambda": {"enabled": false}}}}"#;

/// demo/web with six tagged images (DEADLINE_POLICY expires three) behind
/// the proxy, whose first `listings` listings stall for six seconds; and
/// the function under a runtime loop whose invocations leave it three
/// seconds before its deadline margin.
/// Each run lists the repository past its stop time, so the planned
/// deletions are not attempted.
async fn past_the_deadline(listings: usize) -> (Moto, Proxy, crate::support::RuntimeLoop) {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "demo/web").await;
    for i in 0..6 {
        push(
            &client,
            "demo/web",
            &format!("web-{i}"),
            Some(&format!("v{i}")),
        )
        .await;
    }
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({ "DescribeImages@maxResults": vec!["slow:6000"; listings] }),
    );
    let env = vec![
        ("AWS_ENDPOINT_URL", proxy.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("ECR_GC_POLICY", DEADLINE_POLICY.to_owned()),
        ("ECR_GC_DRY_RUN", "false".to_owned()),
        // cargo lambda watch gives every invocation 600000 ms (it sends the
        // deadline as a duration): this margin leaves the run three seconds,
        // ample to start the listing, which the proxy then stalls past them.
        ("ECR_GC_DEADLINE_MARGIN_MS", "597000".to_owned()),
    ];
    let function = crate::support::RuntimeLoop::start(&env);
    (moto, proxy, function)
}

/// A deadline that falls after the listing but before the deletes is not
/// a clean finish: a queue message for the repository is handed back, and
/// a direct invocation's response says the repository is unfinished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_between_listing_and_deleting_leaves_the_repository_unfinished() {
    let (moto, proxy, function) = past_the_deadline(2).await;
    let body = json!({"repository": "demo/web", "dryRun": false, "trigger": "schedule"});
    let batch = json!({"Records": [{
        "messageId": "web", "receiptHandle": "h", "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ecr-gc-fanout", "awsRegion": "us-east-1"
    }]});
    let response = function.invoke(&batch).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "web"}]}),
        "the message goes back to the queue"
    );
    assert_eq!(digests(&moto.ecr(), "demo/web").await.len(), 6);

    let response = function
        .invoke(&json!({"repositories": ["demo/web"]}))
        .unwrap();
    assert_eq!(
        response["summary"]["repositoriesUnfinished"], 1,
        "{response}"
    );
    assert_eq!(response["summary"]["imagesPlanned"], 3);
    assert_eq!(response["summary"]["imagesDeleted"], 0);
    let repo = &response["targets"][0]["repositories"][0];
    assert!(
        repo["unfinished"]
            .as_str()
            .unwrap()
            .contains("3 planned deletions were not attempted"),
        "{repo}"
    );
    assert_eq!(digests(&moto.ecr(), "demo/web").await.len(), 6);
    assert!(
        function
            .lines()
            .iter()
            .any(|l| l["message"] == "repository not finished" && l["repositoryName"] == "demo/web")
    );
    assert!(proxy.served() >= 1, "the listing was stalled");
}
