//! The failure side of the documented invariants, each through the layer
//! where a user meets it: the real binary where the behaviour is theirs,
//! the engine with a failing fake where only a fault can reach it.
//! Expected values are written out here, never taken from the code under
//! test.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Moto, Proxy, cli_run, create_repository, digests, push, push_index};

const BIN: &str = env!("CARGO_BIN_EXE_ecr-gc");

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
        "settings": {"gracePeriodMinutes": 0, "inUse": {"ecs": {"enabled": false}, "lambda": {"enabled": false}, "events": {"enabled": false}, "scheduler": {"enabled": false}, "batch": {"enabled": false}, "codebuild": {"enabled": false}, "stepfunctions": {"enabled": false}, "apprunner": {"enabled": false}, "sagemaker": {"enabled": false}, "eks": {"enabled": false}}}
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
    // By digest only, never by tag: a tag would untag rather than delete,
    // and moto would delete the whole image where ECR would not.
    assert_eq!(proxy.counts().get("BatchDeleteImage:imageTag"), None);
    assert!(proxy.counts()["BatchDeleteImage"] >= 2);
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
  "settings": {"gracePeriodMinutes": 0, "inUse": {"ecs": {"enabled": false}, "lambda": {"enabled": false}, "events": {"enabled": false}, "scheduler": {"enabled": false}, "batch": {"enabled": false}, "codebuild": {"enabled": false}, "stepfunctions": {"enabled": false}, "apprunner": {"enabled": false}, "sagemaker": {"enabled": false}, "eks": {"enabled": false}}}}"#;

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

/// The environment for the function to reach `endpoint` (moto, or the
/// proxy in front of it) as account 123456789012 in us-east-1, plus `more`.
fn function_env(endpoint: &str, more: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    env.extend(more.iter().cloned());
    env
}

/// Systemic trouble fails the invocation, so that EventBridge retries it
/// and the failure destination catches it: a fan-out whose messages cannot
/// be sent (`FanOutIncomplete`), and a run in which every target fails
/// (`EveryTargetFailed`), inline and fanned out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemic_failures_fail_the_invocation() {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "demo/web").await;
    push(&client, "demo/web", "web-0", None).await;
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({
            "SendMessageBatch": ["denied*"],
            "AssumeRole@role/refused": ["denied*"],
        }),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .endpoint_url(&moto.endpoint)
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    let queue_url = sqs
        .create_queue()
        .queue_name("fanout")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let schedule: Value = serde_json::from_str(include_str!("../../events/schedule.json")).unwrap();

    let function = crate::support::RuntimeLoop::start(&function_env(
        &proxy.endpoint,
        &[
            ("ECR_GC_POLICY_FILE", "examples/demo-policy.json".to_owned()),
            ("ECR_GC_FANOUT_QUEUE_URL", queue_url.clone()),
        ],
    ));
    let error = function.invoke(&schedule).unwrap_err();
    assert!(
        error.contains("FanOutIncomplete") && error.contains("1 of 1 messages could not be sent"),
        "{error}"
    );
    assert!(
        error.contains("AccessDenied"),
        "the first unsent names SQS's code: {error}"
    );
    drop(function);

    let refused = json!({"accounts": [
        {"accountId": "111111111111", "roleArn": "arn:aws:iam::111111111111:role/refused"},
        {"accountId": "222222222222", "roleArn": "arn:aws:iam::222222222222:role/refused"}
    ]})
    .to_string();
    for queue in [None, Some(queue_url)] {
        let mut more = vec![
            ("ECR_GC_POLICY_FILE", "examples/demo-policy.json".to_owned()),
            ("ECR_GC_TARGETS", refused.clone()),
        ];
        more.extend(queue.map(|q| ("ECR_GC_FANOUT_QUEUE_URL", q)));
        let function = crate::support::RuntimeLoop::start(&function_env(&proxy.endpoint, &more));
        let error = function.invoke(&schedule).unwrap_err();
        assert!(
            error.contains("EveryTargetFailed")
                && error.contains("every target failed (2)")
                && error.contains("could not assume arn:aws:iam::111111111111:role/refused"),
            "{error}"
        );
        assert!(
            function
                .lines()
                .iter()
                .any(|l| l["message"] == "invocation failed"
                    && l["errorType"] == "EveryTargetFailed")
        );
    }
}

fn sqs_batch(messages: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, repository)| {
            let body = json!({"repository": repository, "dryRun": false, "trigger": "schedule"});
            json!({
                "messageId": id, "receiptHandle": "h", "body": body.to_string(),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "md5OfBody": "x", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ecr-gc-fanout",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The consumer hands a message back when its repository did not finish
/// cleanly: when an in-use source failed (every message of the target), and
/// when a delete failed (only that repository's); the others are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_hands_back_what_a_failed_source_or_delete_left() {
    let moto = Moto::start();
    let client = moto.ecr();
    let mut oldest = Vec::new();
    for repository in ["repo-a", "repo-b"] {
        create_repository(&client, repository).await;
        let mut digests = Vec::new();
        for i in 0..3 {
            digests.push(push(&client, repository, &format!("{repository}-{i}"), None).await);
        }
        oldest.push(digests);
    }
    // Keep one untagged image; every delete in repo-a is refused (pushes
    // share a second, so which one the rule keeps is up to the digests).
    let policy = |in_use: Value| {
        json!({"rules": [{"rulePriority": 1,
            "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}}],
          "settings": {"gracePeriodMinutes": 0, "inUse": in_use}})
        .to_string()
    };
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({"ecr": true, "refuseDelete": oldest[0]
            .iter()
            .map(|d| (d.clone(), json!("ImageDeleteRefusedByTest")))
            .collect::<serde_json::Map<String, Value>>()}),
    );
    let batch = sqs_batch(&[("a", "repo-a"), ("b", "repo-b")]);

    // A source that cannot be read (the SSM parameter does not exist):
    // nothing is deleted, and both messages go back.
    let missing = policy(
        json!({"ecs": {"enabled": false}, "lambda": {"enabled": false}, "events": {"enabled": false}, "scheduler": {"enabled": false}, "batch": {"enabled": false}, "codebuild": {"enabled": false}, "stepfunctions": {"enabled": false}, "apprunner": {"enabled": false}, "sagemaker": {"enabled": false}, "eks": {"enabled": false},
        "external": {"ssmParameter": "/ecr-gc/missing"}}),
    );
    let function = crate::support::RuntimeLoop::start(&function_env(
        &proxy.endpoint,
        &[
            ("ECR_GC_POLICY", missing),
            ("ECR_GC_DRY_RUN", "false".to_owned()),
        ],
    ));
    let response = function.invoke(&batch).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]})
    );
    assert_eq!(digests(&client, "repo-a").await.len(), 3);
    assert_eq!(digests(&client, "repo-b").await.len(), 3);
    assert!(
        function
            .lines()
            .iter()
            .any(|l| l["message"] == "in-use inventory incomplete")
    );
    drop(function);

    // Sources read: b finishes; a's refused delete sends only a back.
    let none = policy(
        json!({"ecs": {"enabled": false}, "lambda": {"enabled": false}, "events": {"enabled": false}, "scheduler": {"enabled": false}, "batch": {"enabled": false}, "codebuild": {"enabled": false}, "stepfunctions": {"enabled": false}, "apprunner": {"enabled": false}, "sagemaker": {"enabled": false}, "eks": {"enabled": false}}),
    );
    let function = crate::support::RuntimeLoop::start(&function_env(
        &proxy.endpoint,
        &[
            ("ECR_GC_POLICY", none),
            ("ECR_GC_DRY_RUN", "false".to_owned()),
        ],
    ));
    let response = function.invoke(&batch).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "a"}]})
    );
    assert_eq!(digests(&client, "repo-a").await.len(), 3, "refused");
    assert_eq!(digests(&client, "repo-b").await.len(), 1);
}

mod index_reads {
    //! "If an index cannot be read, nothing in that repository is deleted":
    //! BatchGetImage failing, a malformed manifest, an answer that leaves an
    //! index out; and BatchGetImage chunked at 100. Through the engine with
    //! `aws-smithy-mocks`, since moto produces none of these faults.

    use std::sync::{Arc, Mutex};

    use aws_sdk_ecr::Client;
    use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
    use aws_sdk_ecr::operation::batch_get_image::{BatchGetImageError, BatchGetImageOutput};
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::types::{Image, ImageDetail, ImageIdentifier};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;
    use chrono::Utc;
    use ecr_gc::aws::ecr::Ecr;
    use ecr_gc::inventory::Inventory;
    use ecr_gc::policy::Policy;
    use ecr_gc::run::engine::{self, Run, Scope};
    use ecr_gc::run::lines::Collected;

    const INDEX: &str = "application/vnd.oci.image.index.v1+json";

    fn digest(kind: &str, i: usize) -> String {
        let hex = format!("{i:x}");
        format!(
            "sha256:{kind}{}",
            "0".repeat(64 - kind.len() - hex.len()) + &hex
        )
    }

    /// `indexes` tagged indexes, each over one untagged child; the newest
    /// index is kept by the policy, the rest expire with their children.
    fn listing(indexes: usize) -> Vec<ImageDetail> {
        let mut details = Vec::new();
        for i in 0..indexes {
            details.push(
                ImageDetail::builder()
                    .image_digest(digest("a", i))
                    .image_tags(format!("v{i}"))
                    .image_pushed_at(DateTime::from_secs(1_700_000_000 + i as i64))
                    .image_manifest_media_type(INDEX)
                    .build(),
            );
            details.push(
                ImageDetail::builder()
                    .image_digest(digest("c", i))
                    .image_pushed_at(DateTime::from_secs(1_700_000_000 + i as i64))
                    .build(),
            );
        }
        details
    }

    fn manifest(i: usize) -> String {
        serde_json::json!({"schemaVersion": 2, "mediaType": INDEX,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest("c", i), "size": 1}]})
        .to_string()
    }

    const POLICY: &str = r#"{"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}], "settings": {"gracePeriodMinutes": 0}}"#;

    /// Runs the engine (not a dry run) over repository `r` with these
    /// BatchGetImage answers: the repository's report, and how many delete
    /// calls were made.
    async fn run(
        indexes: usize,
        batch_get: aws_smithy_mocks::Rule,
    ) -> (ecr_gc::run::report::RepositoryReport, usize) {
        let details = listing(indexes);
        let describe = mock!(Client::describe_images).then_compute_output(move |req| {
            let ids: Vec<String> = req
                .image_ids()
                .iter()
                .filter_map(|i| i.image_digest().map(str::to_owned))
                .collect();
            let details = details
                .iter()
                .filter(|d| {
                    ids.is_empty() || ids.iter().any(|i| Some(i.as_str()) == d.image_digest())
                })
                .cloned()
                .collect();
            DescribeImagesOutput::builder()
                .set_image_details(Some(details))
                .build()
        });
        let deletes = Arc::new(Mutex::new(0));
        let counted = deletes.clone();
        let delete = mock!(Client::batch_delete_image).then_compute_output(move |req| {
            *counted.lock().unwrap() += 1;
            assert!(
                req.image_ids().iter().all(|i| i.image_tag().is_none()),
                "images are deleted by digest only: {req:?}"
            );
            BatchDeleteImageOutput::builder()
                .set_image_ids(Some(req.image_ids().to_vec()))
                .build()
        });
        let client = mock_client!(
            aws_sdk_ecr,
            RuleMode::MatchAny,
            [&describe, &batch_get, &delete]
        );
        let ecr = Ecr::new(client, None);
        let run = Run {
            trigger: ecr_gc::run::report::Cause::Manual,
            scope: Scope::Named(vec![crate::support::repo("repo")]),
            dry_run: false,
            now: Utc::now(),
            stop_at: None,
            detail: Default::default(),
        };
        let policy = Policy::parse(POLICY).unwrap();
        let report = engine::run(
            &ecr,
            &Inventory::none(),
            &policy,
            &run,
            &Collected::default(),
        )
        .await
        .unwrap();
        let deletes = *deletes.lock().unwrap();
        (report.repositories.into_iter().next().unwrap(), deletes)
    }

    fn image(i: usize, manifest: String) -> Image {
        Image::builder()
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(digest("a", i))
                    .build(),
            )
            .image_manifest(manifest)
            .build()
    }

    #[track_caller]
    fn check_nothing_deleted(
        report: &ecr_gc::run::report::RepositoryReport,
        deletes: usize,
        code: &str,
    ) {
        assert_eq!(deletes, 0, "no BatchDeleteImage call");
        let error = report
            .error
            .as_ref()
            .expect("the repository is not collected");
        assert_eq!(error.error_code, code, "{error:?}");
        assert!(
            error.error_message.contains("nothing is deleted"),
            "{error:?}"
        );
        assert!(report.deleted.is_empty());
    }

    #[tokio::test]
    async fn a_failed_batch_get_image_deletes_nothing() {
        let rule = mock!(Client::batch_get_image).then_error(|| {
            BatchGetImageError::generic(
                aws_sdk_ecr::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not allowed")
                    .build(),
            )
        });
        let (report, deletes) = run(3, rule).await;
        check_nothing_deleted(&report, deletes, "AccessDeniedException");
    }

    #[tokio::test]
    async fn a_malformed_manifest_deletes_nothing() {
        let rule = mock!(Client::batch_get_image).then_compute_output(|req| {
            let images = req
                .image_ids()
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    image(
                        i,
                        if i == 1 {
                            "{not an index".into()
                        } else {
                            manifest(i)
                        },
                    )
                })
                .collect();
            BatchGetImageOutput::builder()
                .set_images(Some(images))
                .build()
        });
        let (report, deletes) = run(3, rule).await;
        check_nothing_deleted(&report, deletes, "MalformedManifest");
    }

    #[tokio::test]
    async fn an_index_left_out_of_the_answer_deletes_nothing() {
        let rule = mock!(Client::batch_get_image).then_compute_output(|req| {
            // Index 0 is neither returned nor reported as a failure.
            let images = (1..req.image_ids().len())
                .map(|i| image(i, manifest(i)))
                .collect();
            BatchGetImageOutput::builder()
                .set_images(Some(images))
                .build()
        });
        let (report, deletes) = run(3, rule).await;
        check_nothing_deleted(&report, deletes, "IndexNotAnswered");
    }

    /// 150 indexes: read in two calls, of 100 and 50; then the 149 old
    /// indexes are deleted before their children, in later calls.
    #[tokio::test]
    async fn indexes_are_read_a_hundred_at_a_time() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let rule = mock!(Client::batch_get_image).then_compute_output(move |req| {
            seen.lock().unwrap().push(req.image_ids().len());
            let images = req
                .image_ids()
                .iter()
                .map(|id| {
                    let d = id.image_digest().unwrap();
                    let i = usize::from_str_radix(
                        d.trim_start_matches("sha256:a").trim_start_matches('0'),
                        16,
                    )
                    .unwrap_or(0);
                    image(i, manifest(i))
                })
                .collect();
            BatchGetImageOutput::builder()
                .set_images(Some(images))
                .build()
        });
        let (report, deletes) = run(150, rule).await;
        assert_eq!(*sizes.lock().unwrap(), [100, 50]);
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(
            report.deleted.len(),
            2 * 149,
            "the old indexes and their children"
        );
        // 149 indexes in two calls, then their children in two more.
        assert_eq!(deletes, 4);
    }
}

/// An ECS or Lambda source that cannot be read fails closed: over several
/// repositories, nothing is deleted in any, each is held naming the source,
/// and the CLI exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ecs_or_lambda_source_holds_every_repository() {
    let moto = Moto::start();
    let client = moto.ecr();
    for repository in ["repo-a", "repo-b"] {
        create_repository(&client, repository).await;
        for i in 0..3 {
            push(&client, repository, &format!("{repository}-{i}"), None).await;
        }
    }
    let policy = json!({"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}], "settings": {"gracePeriodMinutes": 0}});
    let dir = std::env::temp_dir().join(format!("ecr-gc-sources-{}", crate::support::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    for (operation, source) in [("ListClusters", "ecs"), ("ListFunctions", "lambda")] {
        let proxy = Proxy::start(&moto.endpoint, json!({ operation: ["denied*"] }));
        let out = Command::new(BIN)
            .args(["run", "--apply", "--output", "json", "--policy"])
            .arg(&path)
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .envs(function_env(&proxy.endpoint, &[]))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{source}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let target = &report["targets"][0];
        let failed: Vec<&str> = target["inUseSources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["error"].is_string())
            .map(|s| s["source"].as_str().unwrap())
            .collect();
        assert_eq!(failed, [source]);
        let repositories = target["repositories"].as_array().unwrap();
        assert_eq!(repositories.len(), 2);
        for repo in repositories {
            let held = repo["held"].as_str().unwrap_or_default();
            assert!(
                held.contains(&format!("{source}: {operation}: AccessDenied")),
                "{source}: {held:?}"
            );
            assert_eq!(repo["deleted"], json!([]));
        }
        assert_eq!(report["summary"]["repositoriesHeld"], 2);
        assert_eq!(digests(&client, "repo-a").await.len(), 3);
        assert_eq!(digests(&client, "repo-b").await.len(), 3);
    }
}

/// maxDeletesPerRun is spent in name order: a repository that would pass
/// it is held, and later, smaller ones still fit. The outcome does not
/// depend on how many repositories are worked on at once: dry runs at
/// concurrency 1, 4 and 16 hold and plan the same, and so does the run
/// that deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_budget_lets_later_smaller_repositories_fit_at_any_concurrency() {
    let moto = Moto::start();
    let client = moto.ecr();
    // (repository, untagged images); the rule keeps one, so each plans one
    // fewer: 3, 5, 1, 2, 1, 4 against a budget of 7.
    let layout = [
        ("r-a", 4),
        ("r-b", 6),
        ("r-c", 2),
        ("r-d", 3),
        ("r-e", 2),
        ("r-f", 5),
    ];
    for (repository, images) in layout {
        create_repository(&client, repository).await;
        for i in 0..images {
            push(&client, repository, &format!("{repository}-{i}"), None).await;
        }
    }
    // In name order: r-a 3 (4 left), r-b 5 held, r-c 1 (3 left), r-d 2
    // (1 left), r-e 1 (0 left), r-f 4 held.
    let held_want = ["r-b", "r-f"];
    let deleted_want = [("r-a", 3), ("r-c", 1), ("r-d", 2), ("r-e", 1)];
    let dir = std::env::temp_dir().join(format!("ecr-gc-budget-{}", crate::support::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |concurrency: u32, apply: bool| {
        let policy = json!({"rules": [{"rulePriority": 1,
            "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}}],
            "settings": {"gracePeriodMinutes": 0, "maxDeletesPerRun": 7, "concurrency": concurrency,
                "inUse": {"ecs": {"enabled": false}, "lambda": {"enabled": false}, "events": {"enabled": false}, "scheduler": {"enabled": false}, "batch": {"enabled": false}, "codebuild": {"enabled": false}, "stepfunctions": {"enabled": false}, "apprunner": {"enabled": false}, "sagemaker": {"enabled": false}, "eks": {"enabled": false}}}});
        let path = dir.join(format!("policy-{concurrency}.json"));
        std::fs::write(&path, policy.to_string()).unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["run", "--output", "json", "--policy"])
            .arg(&path)
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .envs(function_env(&moto.endpoint, &[]));
        if apply {
            command.arg("--apply");
        }
        let out = command.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let repositories = report["targets"][0]["repositories"]
            .as_array()
            .unwrap()
            .clone();
        let held: Vec<String> = repositories
            .iter()
            .filter(|r| r["held"].is_string())
            .map(|r| r["repositoryName"].as_str().unwrap().to_owned())
            .collect();
        let planned: Vec<(String, Vec<String>)> = repositories
            .iter()
            .map(|r| {
                let mut digests: Vec<String> = r["planned"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["imageDigest"].as_str().unwrap().to_owned())
                    .collect();
                digests.sort();
                (r["repositoryName"].as_str().unwrap().to_owned(), digests)
            })
            .collect();
        (held, planned, report)
    };
    let (held, planned, _) = run(1, false);
    assert_eq!(held, held_want);
    for concurrency in [4, 16] {
        let (h, p, _) = run(concurrency, false);
        assert_eq!(
            (h, p),
            (held.clone(), planned.clone()),
            "concurrency {concurrency}"
        );
    }
    let (h, _, report) = run(16, true);
    assert_eq!(h, held_want);
    assert_eq!(report["summary"]["imagesDeleted"], 7);
    for (repository, images) in layout {
        let deleted = deleted_want
            .iter()
            .find(|(r, _)| *r == repository)
            .map_or(0, |(_, n)| *n);
        assert_eq!(
            digests(&client, repository).await.len(),
            images - deleted,
            "{repository}"
        );
    }
}

mod engine_rules {
    //! The engine's own decisions, through a fake ECR (`aws-smithy-mocks`)
    //! so that they are tried in milliseconds (and by `make mutants`):
    //! holds for an incomplete inventory, the run budget in name order,
    //! dry-run lines only where nothing holds, the counts, the stop time,
    //! and durations measured.

    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use aws_sdk_ecr::Client;
    use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::types::ImageDetail;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;
    use chrono::Utc;
    use ecr_gc::aws::ecr::Ecr;
    use ecr_gc::inventory::{Inventory, SourceReport};
    use ecr_gc::policy::Policy;
    use ecr_gc::run::engine::{self, Run, Scope};
    use ecr_gc::run::lines::Collected;
    use ecr_gc::run::report::Report;

    /// Repositories by name, each with this many untagged images; every
    /// DescribeImages answer takes `delay`.
    fn client(layout: &[(&str, usize)], delay: Duration) -> Client {
        client_retagging(layout, delay, None)
    }

    /// As [`client`], but the re-read (the engine's compare-and-delete, by
    /// id or by listing the repository again) finds the image `retag`
    /// names tagged since.
    fn client_retagging(
        layout: &[(&str, usize)],
        delay: Duration,
        retag: Option<(&str, usize, &str)>,
    ) -> Client {
        let retag = retag.map(|(name, i, tag)| (digest(name, i), tag.to_owned()));
        let listings: BTreeMap<String, Vec<ImageDetail>> = layout
            .iter()
            .map(|(name, count)| {
                let details = (0..*count)
                    .map(|i| {
                        ImageDetail::builder()
                            .image_digest(digest(name, i))
                            .image_pushed_at(DateTime::from_secs(1_700_000_000 + i as i64))
                            .image_size_in_bytes(10)
                            .build()
                    })
                    .collect();
                ((*name).to_owned(), details)
            })
            .collect();
        let listed = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
        let describe = mock!(Client::describe_images).then_compute_output(move |req| {
            std::thread::sleep(delay);
            let name = req.repository_name().unwrap();
            let all = listings[name].clone();
            let ids: Vec<&str> = req
                .image_ids()
                .iter()
                .filter_map(|i| i.image_digest())
                .collect();
            let reread = !ids.is_empty() || {
                let mut listed = listed.lock().unwrap();
                let times = listed.entry(name.to_owned()).or_default();
                *times += 1;
                *times > 1
            };
            let details = all
                .into_iter()
                .filter(|d| ids.is_empty() || ids.contains(&d.image_digest().unwrap()))
                .map(|d| match &retag {
                    Some((digest, tag)) if reread && d.image_digest() == Some(digest) => {
                        ImageDetail::builder()
                            .set_image_digest(d.image_digest().map(str::to_owned))
                            .set_image_pushed_at(d.image_pushed_at().cloned())
                            .set_image_size_in_bytes(d.image_size_in_bytes())
                            .image_tags(tag)
                            .build()
                    }
                    _ => d,
                })
                .collect();
            DescribeImagesOutput::builder()
                .set_image_details(Some(details))
                .build()
        });
        let delete = mock!(Client::batch_delete_image).then_compute_output(|req| {
            BatchDeleteImageOutput::builder()
                .set_image_ids(Some(req.image_ids().to_vec()))
                .build()
        });
        mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &delete])
    }

    /// The digest of a repository's `i`th image (the oldest is 0).
    fn digest(name: &str, i: usize) -> String {
        format!("sha256:{name:0>8}{i:056x}").replace('-', "0")
    }

    /// Keep one untagged image; `settings` beside it.
    fn policy(settings: &str) -> Policy {
        Policy::parse(&format!(
            r#"{{"rules": [{{"rulePriority": 1, "selection": {{"tagStatus": "untagged",
                "countType": "imageCountMoreThan", "countNumber": 1}}, "action": {{"type": "expire"}}}}],
              "settings": {{"gracePeriodMinutes": 0, "allowDeletingEveryImage": true{settings}}}}}"#
        ))
        .unwrap()
    }

    async fn run_with(
        layout: &[(&str, usize)],
        policy: &Policy,
        inventory: &Inventory,
        dry_run: bool,
        stop_at: Option<Instant>,
    ) -> (Report, Collected) {
        let ecr = Ecr::new(client(layout, Duration::ZERO), None);
        let names: Vec<&str> = layout.iter().map(|(n, _)| *n).collect();
        run_on(&ecr, &names, policy, inventory, dry_run, stop_at).await
    }

    /// One engine run over the named repositories through `ecr`.
    async fn run_on(
        ecr: &Ecr,
        names: &[&str],
        policy: &Policy,
        inventory: &Inventory,
        dry_run: bool,
        stop_at: Option<Instant>,
    ) -> (Report, Collected) {
        let run = Run {
            trigger: ecr_gc::run::report::Cause::Manual,
            scope: Scope::Named(names.iter().map(|n| crate::support::repo(n)).collect()),
            dry_run,
            now: Utc::now(),
            stop_at,
            detail: Default::default(),
        };
        let log = Collected::default();
        let report = engine::run(ecr, inventory, policy, &run, &log)
            .await
            .unwrap();
        (report, log)
    }

    fn held(report: &Report) -> Vec<(&str, bool)> {
        report
            .repositories
            .iter()
            .map(|r| (r.repository_name.as_str(), r.held.is_some()))
            .collect()
    }

    /// An incomplete inventory holds every repository with something
    /// planned, and only those: one with nothing to delete is not "held".
    #[tokio::test]
    async fn an_incomplete_inventory_holds_what_has_deletions_planned() {
        let inventory = Inventory {
            registry: None,
            uses: Vec::new(),
            sources: vec![SourceReport {
                source: "ecs".into(),
                references: 0,
                error: Some("ListClusters: AccessDenied: no".into()),
                note: None,
            }],
        };
        let (report, _) = run_with(
            &[("plans", 3), ("quiet", 1)],
            &policy(""),
            &inventory,
            false,
            None,
        )
        .await;
        assert_eq!(held(&report), [("plans", true), ("quiet", false)]);
        let reason = report.repositories[0].held.as_deref().unwrap();
        assert!(
            reason.contains("ecs: ListClusters: AccessDenied: no"),
            "{reason}"
        );
        assert_eq!(report.summary.counts.images_deleted, 0);
    }

    /// The budget is spent in name order by the repositories that go
    /// ahead: 2, then 3 (held: 1 left), then 1 (fits: 0 left), then 1
    /// (held).
    #[tokio::test]
    async fn the_budget_is_spent_in_name_order() {
        let layout = [("r-a", 3), ("r-b", 4), ("r-c", 2), ("r-d", 2)];
        let (report, _) = run_with(
            &layout,
            &policy(r#", "maxDeletesPerRun": 3"#),
            &Inventory::none(),
            false,
            None,
        )
        .await;
        assert_eq!(
            held(&report),
            [("r-a", false), ("r-b", true), ("r-c", false), ("r-d", true)]
        );
        assert_eq!(report.summary.counts.images_deleted, 3);
        let reason = report.repositories[3].held.as_deref().unwrap();
        assert!(
            reason.contains("more than the 0 left of maxDeletesPerRun"),
            "{reason}"
        );
    }

    /// A dry run says what it would delete, only where nothing holds; the
    /// counts add up: kept is scanned less planned.
    #[tokio::test]
    async fn a_dry_run_says_what_it_would_delete_where_nothing_holds() {
        let layout = [("big", 4), ("small", 2)];
        let (report, log) = run_with(
            &layout,
            &policy(r#", "maxDeletesPerRepository": 2"#),
            &Inventory::none(),
            true,
            None,
        )
        .await;
        assert_eq!(held(&report), [("big", true), ("small", false)]);
        let would: Vec<String> = log
            .lines()
            .iter()
            .filter(|l| l["message"] == "image would be deleted (dry run)")
            .map(|l| l["repositoryName"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(would, ["small"]);
        let big = &report.repositories[0];
        assert_eq!(
            (big.images_scanned, big.planned.len(), big.images_kept),
            (4, 3, 1)
        );
        let small = &report.repositories[1];
        assert_eq!(
            (small.images_scanned, small.planned.len(), small.images_kept),
            (2, 1, 1)
        );
    }

    /// Past the stop time no repository is started, whatever the ECR
    /// adapter's own stop time says.
    #[tokio::test]
    async fn past_the_stop_time_nothing_is_started() {
        let (report, log) = run_with(
            &[("r-a", 3), ("r-b", 3)],
            &policy(""),
            &Inventory::none(),
            false,
            Some(Instant::now()),
        )
        .await;
        assert!(report.repositories.is_empty());
        assert_eq!(report.not_started, ["r-a", "r-b"]);
        assert!(
            log.lines()
                .iter()
                .any(|l| l["message"] == "deadline near: no further repository is started")
        );
    }

    /// Durations are measured: a listing that takes 50 ms makes the run,
    /// and the repository, take at least that.
    #[tokio::test]
    async fn durations_are_measured() {
        let ecr = Ecr::new(client(&[("slow", 2)], Duration::from_millis(50)), None);
        let (report, _) =
            run_on(&ecr, &["slow"], &policy(""), &Inventory::none(), true, None).await;
        assert!(report.duration_ms >= 50, "{}", report.duration_ms);
        assert!(report.repositories[0].duration_ms >= 50);
    }
    /// Compare-and-delete: an image tagged after the plan is skipped and
    /// kept, the others go, and the run finished; whether the re-read goes
    /// by id (2 planned: one call) or lists the repository again (249
    /// planned: one page, where by id would take 3 calls).
    #[tokio::test]
    async fn an_image_tagged_since_the_plan_is_kept_however_it_is_reread() {
        for (images, rereads) in [(3, 1), (250, 1)] {
            let ecr = Ecr::new(
                client_retagging(&[("web", images)], Duration::ZERO, Some(("web", 0, "v1"))),
                None,
            );
            let (report, _) =
                run_on(&ecr, &["web"], &policy(""), &Inventory::none(), false, None).await;
            let web = &report.repositories[0];
            let deleted: Vec<String> = web.deleted.iter().map(|p| p.image_digest.clone()).collect();
            let want: Vec<String> = (1..images - 1).rev().map(|i| digest("web", i)).collect();
            assert_eq!(deleted.len(), want.len(), "{images}");
            assert_eq!(set(deleted), set(want), "{images}");
            let skipped: Vec<(&str, &str)> = web
                .skipped
                .iter()
                .map(|s| (s.image_digest.as_str(), s.reason.as_str()))
                .collect();
            let first = digest("web", 0);
            assert_eq!(
                skipped,
                [(first.as_str(), "its tags changed since the plan")],
                "{images}"
            );
            assert_eq!(
                web.skipped[0].current_image_tags,
                Some(vec!["v1".to_owned()])
            );
            assert_eq!(web.unfinished, None, "nothing was left undone");
            assert_eq!(
                report.api_calls.describe_images,
                1 + rereads,
                "{images}: the listing, then the re-read"
            );
        }
    }

    fn set(digests: Vec<String>) -> std::collections::BTreeSet<String> {
        digests.into_iter().collect()
    }

    /// The ECR adapter's stop time falling after the listing (before the
    /// re-read) or after the re-read (before the delete): either way
    /// nothing is deleted, and the repository says it did not finish and
    /// how many deletions it left.
    #[tokio::test]
    async fn a_stop_time_after_listing_leaves_the_repository_unfinished() {
        // Each DescribeImages answer takes 400 ms: the listing ends at about
        // 400 ms, the re-read at about 800 ms. On a slow machine the first
        // stop may fall before the re-read too; the outcome is the same.
        for (stop_after, what) in [(200, "before the re-read"), (600, "before the delete")] {
            let started = Instant::now();
            let ecr = Ecr::new(client(&[("web", 3)], Duration::from_millis(400)), None)
                .with_stop_at(Some(started + Duration::from_millis(stop_after)));
            let (report, _) =
                run_on(&ecr, &["web"], &policy(""), &Inventory::none(), false, None).await;
            let web = &report.repositories[0];
            assert!(web.deleted.is_empty(), "{what}");
            assert_eq!(
                web.unfinished.as_deref(),
                Some(
                    "2 planned deletions were not attempted: the invocation's deadline was near; the next run finishes them"
                ),
                "{what}"
            );
            let reasons: Vec<&str> = web.skipped.iter().map(|s| s.reason.as_str()).collect();
            assert_eq!(
                reasons,
                ["not attempted: the invocation's deadline was near; the next run finishes it"; 2],
                "{what}"
            );
        }
    }
}
