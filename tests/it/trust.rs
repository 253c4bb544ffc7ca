//! The trust boundaries, tried as an attacker or an unlucky operator would,
//! through the real binary against `moto_server`: nothing that an event, a
//! queue message or a published in-use list says may make ecr-gc delete
//! more than its operator allowed. Each bad input gets a clear error or a
//! refusal, and nothing is deleted.

use std::process::Command;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use crate::support::{Moto, Proxy, RuntimeLoop, create_repository, digests, push};

const BIN: &str = env!("CARGO_BIN_EXE_ecr-gc");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// moto's account, and so the registry every test here collects.
const ACCOUNT: &str = "123456789012";

/// demo/web, demo/worker and demo/keep-base, with six tagged images each;
/// examples/demo-policy.json keeps three of them and excludes demo/keep-*.
async fn seed_demo(ecr: &aws_sdk_ecr::Client) {
    for repository in ["demo/web", "demo/worker", "demo/keep-base"] {
        create_repository(ecr, repository).await;
        for i in 0..6 {
            push(
                ecr,
                repository,
                &format!("{repository}-{i}"),
                Some(&format!("v{i}")),
            )
            .await;
        }
    }
}

/// The counts of images left in the three demo repositories.
async fn left(ecr: &aws_sdk_ecr::Client) -> [usize; 3] {
    [
        digests(ecr, "demo/web").await.len(),
        digests(ecr, "demo/worker").await.len(),
        digests(ecr, "demo/keep-base").await.len(),
    ]
}

fn demo_function(moto: &Moto, dry_run: &str) -> RuntimeLoop {
    let mut env = moto.env();
    env.push(("ECR_GC_POLICY_FILE", "examples/demo-policy.json".into()));
    env.push(("ECR_GC_DRY_RUN", dry_run.into()));
    RuntimeLoop::start(&env)
}

fn failures(lines: &[Value], error_type: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["message"] == "invocation failed" && l["errorType"] == error_type)
        .count()
}

/// `lambda:InvokeFunction` is not permission to delete: while the function
/// is a dry run, an event that asks to delete is refused, and so is an
/// event naming a repository the settings exclude.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_can_only_brake_and_never_widens_the_settings() {
    let moto = Moto::start();
    let ecr = moto.ecr();
    seed_demo(&ecr).await;
    let function = demo_function(&moto, "true");

    let scheduler_detail = json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "account": ACCOUNT, "time": "2026-11-28T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": "{\"dryRun\": false}"
    });
    for event in [json!({"dryRun": false}), scheduler_detail] {
        let error = function.invoke(&event).unwrap_err();
        assert!(
            error.contains("DeletionNotAllowed") && error.contains("ECR_GC_DRY_RUN is true"),
            "{event}: {error}"
        );
    }
    assert_eq!(left(&ecr).await, [6, 6, 6]);

    // The same event is a dry run's report when it does not ask to delete.
    let report = function
        .invoke(&json!({"repositories": ["demo/web"]}))
        .unwrap();
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["summary"]["imagesPlanned"], 3);

    let function = demo_function(&moto, "false");
    for event in [
        json!({"repositories": ["demo/keep-base"]}),
        json!({"repositories": ["demo/web", "demo/keep-base"], "dryRun": false}),
    ] {
        let error = function.invoke(&event).unwrap_err();
        assert!(
            error.contains("RepositoryNotSelected")
                && error.contains("excluded by settings.repositories.exclude `demo/keep-*`"),
            "{event}: {error}"
        );
    }
    assert_eq!(left(&ecr).await, [6, 6, 6], "nothing was collected");
    assert_eq!(failures(&function.lines(), "RepositoryNotSelected"), 2);

    // A push to it is ignored, not an error: pushes are normal traffic.
    let mut push: Value = serde_json::from_str(include_str!("../../events/ecr-push.json")).unwrap();
    push["detail"]["repository-name"] = "demo/keep-base".into();
    let report = function.invoke(&push).unwrap();
    assert_eq!(report["summary"]["repositories"], 0);
    // And the brake still works when deleting is allowed.
    let report = function
        .invoke(&json!({"repositories": ["demo/web"], "dryRun": true}))
        .unwrap();
    assert_eq!(report["dryRun"], true);
    assert_eq!(left(&ecr).await, [6, 6, 6]);
}

fn sqs_record(message_id: &str, body: &Value) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": "h",
        "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:ecr-gc-fanout"),
        "awsRegion": "us-east-1"
    })
}

/// Whoever can send to the queue cannot move the clock, reach an account
/// the function is not configured for, or name an excluded repository:
/// those messages are refused and handed back (so they end in the
/// dead-letter queue, where an alarm sees them); the good one is collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_message_cannot_move_the_clock_or_widen_the_configuration() {
    let moto = Moto::start();
    let ecr = moto.ecr();
    seed_demo(&ecr).await;
    let function = demo_function(&moto, "false");
    let message = |repository: &str, extra: Value| {
        let mut body = json!({"repository": repository, "dryRun": false, "trigger": "schedule"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let now = Utc::now();
    let records = vec![
        sqs_record(
            "future",
            &message("demo/worker", json!({"now": "2999-01-01T00:00:00Z"})),
        ),
        sqs_record(
            "stale",
            &message("demo/worker", json!({"now": now - TimeDelta::hours(25)})),
        ),
        sqs_record(
            "stranger",
            &message("demo/worker", json!({"accountId": "999999999999"})),
        ),
        sqs_record("excluded", &message("demo/keep-base", json!({}))),
        sqs_record("good", &message("demo/web", json!({"now": now}))),
    ];
    let response = function.invoke(&json!({ "Records": records })).unwrap();
    let mut handed_back: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    handed_back.sort();
    assert_eq!(handed_back, ["excluded", "future", "stale", "stranger"]);
    assert_eq!(
        left(&ecr).await,
        [3, 6, 6],
        "only the good message's repository"
    );

    let refusals: Vec<(String, String)> = function
        .lines()
        .iter()
        .filter(|l| l["message"] == "queue message refused")
        .map(|l| {
            (
                l["messageId"].as_str().unwrap().to_owned(),
                l["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (id, part) in [
        ("future", "cannot move the evaluation time forward"),
        ("stale", "longer than the queue keeps messages"),
        (
            "stranger",
            "999999999999/own region is not among the configured targets",
        ),
        ("excluded", "excluded by settings.repositories.exclude"),
    ] {
        assert!(
            refusals.iter().any(|(i, e)| i == id && e.contains(part)),
            "{id}: {refusals:?}"
        );
    }
}

/// A CI burst: the push rule queues each push, and one batch of them is
/// one collection per repository, not one per push. Pushes the function
/// does not act on (another region, an excluded repository, a DELETE) are
/// ignored, not handed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_queued_pushes_is_one_collection_per_repository() {
    let moto = Moto::start();
    let ecr = moto.ecr();
    seed_demo(&ecr).await;
    let function = demo_function(&moto, "false");
    let push: Value = serde_json::from_str(include_str!("../../events/ecr-push.json")).unwrap();
    let event = |repository: &str, region: &str, action: &str| {
        let mut event = push.clone();
        event["region"] = region.into();
        event["detail"]["repository-name"] = repository.into();
        event["detail"]["action-type"] = action.into();
        event
    };
    let mut records = Vec::new();
    for i in 0..20 {
        records.push(sqs_record(
            &format!("web-{i}"),
            &event("demo/web", "us-east-1", "PUSH"),
        ));
    }
    for i in 0..5 {
        records.push(sqs_record(
            &format!("worker-{i}"),
            &event("demo/worker", "us-east-1", "PUSH"),
        ));
    }
    records.push(sqs_record(
        "excluded",
        &event("demo/keep-base", "us-east-1", "PUSH"),
    ));
    records.push(sqs_record(
        "elsewhere",
        &event("demo/keep-base", "eu-west-1", "PUSH"),
    ));
    records.push(sqs_record(
        "delete",
        &event("demo/keep-base", "us-east-1", "DELETE"),
    ));
    let response = function.invoke(&json!({ "Records": records })).unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(left(&ecr).await, [3, 3, 6]);
    let lines = function.lines();
    // Repositories are collected concurrently: their lines come in any order.
    let mut collected: Vec<&str> = lines
        .iter()
        .filter(|l| l["message"] == "repository collected")
        .map(|l| l["repositoryName"].as_str().unwrap())
        .collect();
    collected.sort();
    assert_eq!(
        collected,
        ["demo/web", "demo/worker"],
        "one collection each"
    );
    let runs: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "run finished")
        .collect();
    assert_eq!(runs.len(), 1);
    // One listing per repository, one re-read and one delete each.
    assert_eq!(runs[0]["apiCalls"]["DescribeImages"], 4);
    assert_eq!(runs[0]["apiCalls"]["BatchDeleteImage"], 2);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["message"] == "event ignored")
            .count(),
        3
    );
}

/// An S3 in-use list for the CLI's `run`: everything through the proxy,
/// which ages timestamps and checks bucket owners as S3 does.
struct ListRun {
    moto: Moto,
    proxy: Proxy,
    ecr: aws_sdk_ecr::Client,
    s3: aws_sdk_s3::Client,
    dir: std::path::PathBuf,
    /// The repository's four untagged digests, oldest first.
    untagged: Vec<String>,
}

impl ListRun {
    async fn start(plan: Value) -> ListRun {
        let moto = Moto::start();
        let proxy = Proxy::start(&moto.endpoint, plan);
        let ecr = moto.ecr();
        create_repository(&ecr, "web").await;
        let mut untagged = Vec::new();
        for i in 0..4 {
            untagged.push(push(&ecr, "web", &format!("web-{i}"), None).await);
        }
        push(&ecr, "web", "web-tagged", Some("v1")).await;
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&moto.endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .force_path_style(true)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(config);
        for bucket in ["lists", "foreign"] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        let dir =
            std::env::temp_dir().join(format!("ecr-gc-trust-{}", crate::support::free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        ListRun {
            moto,
            proxy,
            ecr,
            s3,
            dir,
            untagged,
        }
    }

    async fn put(&self, bucket: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key("in-use.json")
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    /// `ecr-gc run --apply` with the list at `s3://bucket/in-use.json`:
    /// the exit status, and the one target's report.
    fn run(&self, bucket: &str) -> (Option<i32>, Value) {
        let policy = json!({
            "rules": [{
                "rulePriority": 1,
                "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"}
            }],
            "settings": {
                "gracePeriodMinutes": 0,
                "inUse": {
                    "ecs": {"enabled": false},
                    "lambda": {"enabled": false},
                    "events": {"enabled": false},
                    "scheduler": {"enabled": false},
                    "batch": {"enabled": false},
                    "codebuild": {"enabled": false},
                    "stepfunctions": {"enabled": false},
                    "apprunner": {"enabled": false},
                    "sagemaker": {"enabled": false},
                    "eks": {"enabled": false},
                    "external": {"s3Object": format!("s3://{bucket}/in-use.json")}
                }
            }
        });
        let path = self.dir.join("policy.json");
        std::fs::write(&path, policy.to_string()).unwrap();
        let mut env = self.moto.env();
        env[0].1 = self.proxy.endpoint.clone();
        let out = Command::new(BIN)
            .args(["run", "--policy"])
            .arg(&path)
            .args(["--repository", "web", "--apply", "--output", "json"])
            .current_dir(ROOT)
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report["targets"][0].clone())
    }
}

fn reference(digest: &str) -> String {
    format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/web@{digest}")
}

/// A published list is input like any other: a stale one, an oversized
/// one, one with an entry that is not a reference, and one in a bucket of
/// another owner each fail the source, so nothing is deleted and the CLI
/// exits 1, naming why. `[]` is valid: nothing is in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_list_that_is_stale_oversized_malformed_or_foreign_fails_closed() {
    let two_hours = 2 * 60 * 60;
    let cases: Vec<(&str, Value, &str, Vec<u8>, &str)> = vec![
        (
            "stale",
            json!({"age": {"GetObject": two_hours}}),
            "lists",
            b"[]".to_vec(),
            "StaleInUseList",
        ),
        (
            "oversized",
            json!({}),
            "lists",
            {
                let entry = format!("\"{}\",", reference(&format!("sha256:{}", "0".repeat(64))));
                let mut list = b"[".to_vec();
                while list.len() <= 8 * 1024 * 1024 {
                    list.extend_from_slice(entry.as_bytes());
                }
                list.extend_from_slice(b"\"nginx\"]");
                list
            },
            "more than ecr-gc reads (8388608)",
        ),
        (
            "bad entry",
            json!({}),
            "lists",
            br#"["nginx:1.27", "not a reference"]"#.to_vec(),
            r#"entry 1 ("not a reference") is not an image reference"#,
        ),
        (
            "another owner",
            json!({"bucketOwners": {"foreign": "999999999999"}}),
            "foreign",
            b"[]".to_vec(),
            "GetObject: AccessDenied",
        ),
    ];
    for (name, plan, bucket, body, part) in cases {
        let run = ListRun::start(plan).await;
        run.put(bucket, body).await;
        let (code, report) = run.run(bucket);
        assert_eq!(code, Some(1), "{name}: {report}");
        let error = report["inUseSources"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains(part), "{name}: {error:?} lacks {part:?}");
        assert_eq!(
            report["repositories"][0]["held"]
                .as_str()
                .map(|h| h.contains("in-use inventory is incomplete")),
            Some(true),
            "{name}: {report}"
        );
        assert_eq!(
            digests(&run.ecr, "web").await.len(),
            5,
            "{name}: nothing deleted"
        );
    }

    // An empty list is valid; a reference through the dual-stack host
    // protects like the standard one.
    let run = ListRun::start(json!({})).await;
    let dual_stack = format!("{ACCOUNT}.dkr-ecr.us-east-1.on.aws/web@{}", run.untagged[0]);
    run.put("lists", serde_json::to_vec(&json!([dual_stack])).unwrap())
        .await;
    let (code, report) = run.run("lists");
    assert_eq!(code, Some(0), "{report}");
    let left = digests(&run.ecr, "web").await;
    assert_eq!(
        left.len(),
        3,
        "the tagged, the newest untagged and the one in use"
    );
    assert!(
        left.contains(&run.untagged[0]),
        "the dual-stack reference protects it"
    );
    assert!(
        report["repositories"][0]["protected"][0]["protection"]
            .as_str()
            .unwrap()
            .contains("external:s3://lists/in-use.json")
    );
    run.put("lists", b"[]".to_vec()).await;
    let (code, _) = run.run("lists");
    assert_eq!(code, Some(0));
    assert_eq!(digests(&run.ecr, "web").await.len(), 2);
}
