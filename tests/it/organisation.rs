//! A held-out organisation: three accounts behind assumed roles, a fourth
//! whose role cannot be assumed, two regions, hundreds of repositories.
//! It is collected in one invocation, and fanned out through SQS, against
//! moto_server's STS, ECR, SSM and SQS over real HTTP. moto keeps each
//! account's resources apart under assumed-role credentials, and each
//! region's.
//!
//! Everything goes through the proxy in its ECR mode, so listings are paged
//! and delete responses are shaped as ECR shapes them; the proxy also counts
//! every request on the wire, independently of ecr-gc's own counts, and
//! every ECR request that lacks a registry id.

use std::collections::BTreeMap;

use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};
use chrono::Utc;
use serde_json::{Value, json};

use ecr_gc::aws::Connector;
use ecr_gc::lambda::{self, Config, Response};
use ecr_gc::run::lines::Collected;

use crate::support::{Moto, Proxy, connector_at, create_repository, digests, push};

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
/// Its role is refused by the proxy: AccessDenied from STS.
const DENIED: &str = "444444444444";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const REPOSITORIES_PER_TARGET: usize = 50;
/// The account and region whose in-use list names its own `svc-000`
/// images, and account 111111111111's in the same region too: one
/// inventory across the organisation protects both.
const LISTER: (&str, &str) = ("222222222222", "eu-west-1");
/// A central registry, one of whose images (`svc-001`'s oldest untagged)
/// only another target account runs, in another region: RUNNER's ECS
/// service `apps/uses-central`.
const CENTRAL: (&str, &str) = ("111111111111", "us-east-1");
const RUNNER: (&str, &str) = ("333333333333", "eu-west-1");

const POLICY: &str = r#"{
  "rules": [{
    "rulePriority": 1,
    "description": "Keep one untagged image",
    "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
    "action": {"type": "expire"}
  }],
  "settings": {
    "gracePeriodMinutes": 0,
    "concurrency": 8,
    "inUse": {"external": {"ssmParameter": "/ecr-gc/in-use"}, "allowPartialInventory": true}
  }
}"#;

fn targets() -> String {
    let order = [ACCOUNTS[0], DENIED, ACCOUNTS[1], ACCOUNTS[2]];
    let accounts: Vec<Value> = order
        .iter()
        .map(|a| {
            json!({
                "accountId": a,
                "roleArn": format!("arn:aws:iam::{a}:role/ecr-gc"),
                "externalId": "org-test"
            })
        })
        .collect();
    json!({ "regions": REGIONS, "accounts": accounts, "sessionName": "ecr-gc-test" }).to_string()
}

fn config(queue_url: Option<&str>) -> Result<Config, lambda::ConfigError> {
    let targets = targets();
    let queue_url = queue_url.map(str::to_owned);
    Config::from_env(move |name| match name {
        "ECR_GC_POLICY" => Some(POLICY.to_owned()),
        "ECR_GC_DRY_RUN" => Some("false".into()),
        "ECR_GC_TARGETS" => Some(targets.clone()),
        "ECR_GC_FANOUT_QUEUE_URL" => queue_url.clone(),
        // The tests read which images were protected, and why.
        "ECR_GC_REPORT_DETAIL" => Some("images".into()),
        _ => None,
    })
}

/// An SDK configuration for `account` in `region`, through an assumed role.
async fn as_account(moto: &Moto, account: &str, region: &str) -> aws_config::SdkConfig {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/seed"))
        .role_session_name("seed")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "seed",
        ))
        .load()
        .await
}

/// Per (account, region): repositories `svc-000`.. with one tagged and three
/// untagged images each, the in-use list, and RUNNER's service that runs
/// CENTRAL's image. Returns the untagged digests of every `svc-000`, by
/// (account, region), and of CENTRAL's `svc-001` under CENTRAL's key with
/// the repository appended to the region.
async fn seed(moto: &Moto) -> BTreeMap<(String, String), Vec<String>> {
    let mut untagged = BTreeMap::new();
    for account in ACCOUNTS {
        for region in REGIONS {
            let config = as_account(moto, account, region).await;
            let ecr = aws_sdk_ecr::Client::new(&config);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..REPOSITORIES_PER_TARGET {
                let ecr = ecr.clone();
                let seed = format!("{account}-{region}-{i}");
                tasks.spawn(async move {
                    let name = format!("svc-{i:03}");
                    create_repository(&ecr, &name).await;
                    push(&ecr, &name, &format!("{seed}-tagged"), Some("v1")).await;
                    let mut digests = Vec::new();
                    for n in 0..3 {
                        digests.push(push(&ecr, &name, &format!("{seed}-u{n}"), None).await);
                    }
                    (i, digests)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (i, digests) = done.unwrap();
                if i == 0 {
                    untagged.insert((account.to_owned(), region.to_owned()), digests);
                } else if i == 1 && (account, region) == CENTRAL {
                    untagged.insert((account.to_owned(), format!("{region}/svc-001")), digests);
                }
            }
        }
    }
    for account in ACCOUNTS {
        for region in REGIONS {
            let list: Vec<String> = if (account, region) == LISTER {
                let mut list = Vec::new();
                for (owner, digests) in [
                    (
                        LISTER.0,
                        &untagged[&(LISTER.0.to_owned(), region.to_owned())],
                    ),
                    (
                        ACCOUNTS[0],
                        &untagged[&(ACCOUNTS[0].to_owned(), region.to_owned())],
                    ),
                ] {
                    for digest in digests {
                        list.push(format!(
                            "{owner}.dkr.ecr.{region}.amazonaws.com/svc-000@{digest}"
                        ));
                    }
                }
                list
            } else {
                Vec::new()
            };
            put_in_use_list(moto, account, region, &list).await;
        }
    }
    let central = &untagged[&(CENTRAL.0.to_owned(), format!("{}/svc-001", CENTRAL.1))][0];
    run_service(
        moto,
        RUNNER,
        &format!(
            "{}.dkr.ecr.{}.amazonaws.com/svc-001@{central}",
            CENTRAL.0, CENTRAL.1
        ),
    )
    .await;
    untagged
}

/// An ECS service `apps/uses-central` in `at` (account, region) that runs
/// `image`.
async fn run_service(moto: &Moto, at: (&str, &str), image: &str) {
    use aws_sdk_ecs::types::ContainerDefinition;
    let ecs = aws_sdk_ecs::Client::new(&as_account(moto, at.0, at.1).await);
    ecs.create_cluster()
        .cluster_name("apps")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("uses-central")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image(image)
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster("apps")
        .service_name("uses-central")
        .task_definition("uses-central")
        .desired_count(1)
        .send()
        .await
        .unwrap();
}

/// What every target must look like afterwards: two images per
/// repository (the tagged one and the newest untagged one), except
/// `svc-000` of the lister and of account 111111111111 in its region, whose
/// images the lister's list names, and CENTRAL's `svc-001`, whose oldest
/// untagged image RUNNER's service runs.
async fn check_end_state(moto: &Moto) {
    for account in ACCOUNTS {
        for region in REGIONS {
            let ecr = aws_sdk_ecr::Client::new(&as_account(moto, account, region).await);
            for i in 0..REPOSITORIES_PER_TARGET {
                let name = format!("svc-{i:03}");
                let listed =
                    i == 0 && region == LISTER.1 && [LISTER.0, ACCOUNTS[0]].contains(&account);
                let central = i == 1 && (account, region) == CENTRAL;
                let want = match (listed, central) {
                    (true, _) => 4,
                    (_, true) => 3,
                    _ => 2,
                };
                assert_eq!(
                    digests(&ecr, &name).await.len(),
                    want,
                    "{account}/{region}/{name}"
                );
            }
        }
    }
}

/// The floor of ECR calls for the seeded organisation: per target, one
/// DescribeRepositories page; per repository, one DescribeImages page, and
/// where something is deleted one compare-and-delete re-read and one
/// BatchDeleteImage (each repository deletes fewer than 100).
fn floor() -> BTreeMap<&'static str, u64> {
    let targets = (ACCOUNTS.len() * REGIONS.len()) as u64;
    let repositories = targets * REPOSITORIES_PER_TARGET as u64;
    // The two svc-000 repositories the lister's list names delete nothing.
    let deleting = repositories - 2;
    BTreeMap::from([
        ("DescribeRepositories", targets),
        ("DescribeImages", repositories + deleting),
        ("BatchDeleteImage", deleting),
        ("ListImages", 0),
        ("BatchGetImage", 0),
    ])
}

fn ecr_counts(calls: &ecr_gc::aws::ecr::ApiCallCounts) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("DescribeRepositories", calls.describe_repositories),
        ("DescribeImages", calls.describe_images),
        ("BatchDeleteImage", calls.batch_delete_image),
        ("ListImages", calls.list_images),
        ("BatchGetImage", calls.batch_get_image),
    ])
}

/// The proxy's own count of the ECR operations, and the ECR requests that
/// lacked a registry id.
fn wire_counts(proxy: &Proxy) -> (BTreeMap<&'static str, u64>, u64) {
    let counts = proxy.counts();
    let get = |op: &str| counts.get(op).copied().unwrap_or(0);
    let without: u64 = counts
        .iter()
        .filter(|(k, _)| k.ends_with(":noRegistryId"))
        .map(|(_, v)| v)
        .sum();
    (floor().keys().map(|op| (*op, get(op))).collect(), without)
}

/// Writes the in-use list that the policy's `ssmParameter` names, in
/// `account` and `region`.
async fn put_in_use_list(moto: &Moto, account: &str, region: &str, list: &[String]) {
    aws_sdk_ssm::Client::new(&as_account(moto, account, region).await)
        .put_parameter()
        .name("/ecr-gc/in-use")
        .value(serde_json::to_string(list).unwrap())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
}

/// One SQS record, as Lambda delivers it.
fn sqs_record(message_id: &str, body: &str) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": "h",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ecr-gc-fanout",
        "awsRegion": "us-east-1"
    })
}

/// Hands `records` to the handler as one SQS batch: its partial batch
/// response, and the log lines.
async fn consume(
    connector: &Connector,
    config: &Result<Config, lambda::ConfigError>,
    records: Vec<Value>,
) -> (aws_lambda_events::sqs::SqsBatchResponse, Collected) {
    let log = Collected::default();
    let event = json!({ "Records": records });
    let response = lambda::handle(connector, config, &event, Utc::now(), &log)
        .await
        .unwrap();
    let Response::Batch(batch) = response else {
        panic!("expected a batch response, got {response:?}")
    };
    (batch, log)
}

async fn start() -> (Moto, Proxy, Connector) {
    let moto = Moto::start();
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({ "ecr": true, format!("AssumeRole@{DENIED}"): ["denied*"] }),
    );
    let connector = connector_at(&proxy.endpoint, ecr_gc::aws::SdkRetry::default()).await;
    (moto, proxy, connector)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organisation_is_collected_in_one_invocation_at_the_floor() {
    let (moto, proxy, connector) = start().await;
    let untagged = seed(&moto).await;
    let log = Collected::default();
    let event: Value = serde_json::from_str(include_str!("../../events/schedule.json")).unwrap();
    let response = lambda::handle(&connector, &config(None), &event, Utc::now(), &log)
        .await
        .unwrap();
    let Response::Collection(collection) = response else {
        panic!("expected a collection, got {response:?}")
    };

    // Targets in order: accounts outermost; the denied account is second.
    let names: Vec<String> = collection
        .targets
        .iter()
        .map(|t| t.target.to_string())
        .collect();
    assert_eq!(names.len(), 8);
    assert_eq!(names[2], format!("{DENIED}/us-east-1"));
    for target in &collection.targets {
        let is_denied = target.target.account_id.as_deref() == Some(DENIED);
        assert_eq!(target.error.is_some(), is_denied, "{target:?}");
        if is_denied {
            let error = target.error.as_deref().unwrap();
            assert!(error.contains("AssumeRole: AccessDenied"), "{error}");
            continue;
        }
        let report = target.report.as_ref().unwrap();
        assert_eq!(report.repositories.len(), REPOSITORIES_PER_TARGET);
        assert!(report.in_use_sources.iter().all(|s| s.error.is_none()));
    }
    assert_eq!(collection.targets_failed, 2);
    assert_eq!(
        collection.assume_role_calls, 4,
        "once per account, not per target"
    );
    let repositories = (ACCOUNTS.len() * REGIONS.len() * REPOSITORIES_PER_TARGET) as u64;
    assert_eq!(collection.summary.repositories, repositories);
    // Every repository deletes two, but the two listed svc-000 (none) and
    // CENTRAL's svc-001 (one).
    assert_eq!(
        collection.summary.counts.images_deleted,
        2 * (repositories - 3) + 1
    );
    // Of each listed svc-000's three untagged images the rule keeps one and
    // two are in use; one of CENTRAL's svc-001 is.
    assert_eq!(collection.summary.counts.images_protected, 5);

    // One inventory across the organisation: the lister's list protects
    // account 1's svc-000 as well as its own, and RUNNER's service
    // protects CENTRAL's image, from another account and region.
    let report_of = |(account, region): (&str, &str)| {
        collection
            .targets
            .iter()
            .find(|t| {
                t.target.account_id.as_deref() == Some(account)
                    && t.target.region.as_deref() == Some(region)
            })
            .and_then(|t| t.report.as_ref())
            .unwrap()
    };
    for account in [LISTER.0, ACCOUNTS[0]] {
        let report = report_of((account, LISTER.1));
        assert_eq!(
            report.repositories[0].counts().images_protected,
            2,
            "{account}"
        );
        assert_eq!(
            report.repositories[0].counts().images_deleted,
            0,
            "{account}"
        );
    }
    let first_account = &untagged[&(ACCOUNTS[0].to_owned(), LISTER.1.to_owned())];
    let ecr = aws_sdk_ecr::Client::new(&as_account(&moto, ACCOUNTS[0], LISTER.1).await);
    let left = digests(&ecr, "svc-000").await;
    assert!(first_account.iter().all(|d| left.contains(d)));
    let central = &report_of(CENTRAL).repositories[1];
    assert_eq!(central.repository_name, "svc-001");
    assert_eq!(central.counts().images_protected, 1);
    let protection = central.protected[0].protection.as_deref().unwrap();
    assert!(
        protection.contains(&format!("{}/{}:ecs:apps/uses-central", RUNNER.0, RUNNER.1)),
        "{protection}"
    );
    assert_eq!(
        central.protected[0].image_digest,
        untagged[&(CENTRAL.0.to_owned(), format!("{}/svc-001", CENTRAL.1))][0]
    );
    // The denied account's workloads are out of sight: every report says
    // so, and the settings allow going on without them.
    let notes: Vec<&str> = report_of(CENTRAL)
        .in_use_sources
        .iter()
        .filter_map(|s| s.note.as_deref())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes
            .iter()
            .all(|n| n.contains(DENIED) && n.contains("allowPartialInventory"))
    );
    check_end_state(&moto).await;

    // Every ECR call at the floor, by ecr-gc's count and on the wire; and
    // every one carries its registry id.
    assert_eq!(ecr_counts(&collection.api_calls), floor());
    let (wire, without_registry) = wire_counts(&proxy);
    assert_eq!(wire, floor());
    assert_eq!(without_registry, 0);
    assert_eq!(
        proxy.counts().get("BatchDeleteImage:imageTag"),
        None,
        "images are deleted by digest only"
    );
    // One inventory per target, not per repository; one AssumeRole per
    // account, not per target.
    let counts = proxy.counts();
    assert_eq!(counts["GetParameter"], 6);
    assert_eq!(counts["ListClusters"], 6);
    assert_eq!(counts["ListEventBuses"], 6);
    assert_eq!(counts["ListSchedules"], 6);
    assert_eq!(counts["eks:ListClusters"], 6);
    assert_eq!(counts["AssumeRole"], 4);
    // Each log line of a target says which.
    assert!(
        log.lines()
            .iter()
            .any(|l| l["message"] == "repository collected"
                && l["accountId"] == LISTER.0
                && l["region"] == LISTER.1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organisation_fanned_out_through_sqs_ends_the_same_at_the_floor() {
    let (moto, proxy, connector) = start().await;
    seed(&moto).await;
    let sqs = connector.home().sqs.clone();
    let queue_url = sqs
        .create_queue()
        .queue_name("ecr-gc-fanout")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let config = config(Some(&queue_url));
    let log = Collected::default();
    let event: Value = serde_json::from_str(include_str!("../../events/schedule.json")).unwrap();
    let response = lambda::handle(&connector, &config, &event, Utc::now(), &log)
        .await
        .unwrap();
    let Response::FanOut(fan_out) = response else {
        panic!("expected a fan-out, got {response:?}")
    };
    let repositories = ACCOUNTS.len() * REGIONS.len() * REPOSITORIES_PER_TARGET;
    // What BENCHMARKS.md says of the fanned-out run: the scheduled
    // invocation reaches each account once and reads every inventory it can.
    let scheduled = proxy.counts();
    assert_eq!(scheduled["AssumeRole"], 4);
    assert_eq!(scheduled["ListClusters"], 6);
    assert_eq!(scheduled["GetParameter"], 6);
    assert_eq!(fan_out.sent.messages_sent, repositories as u64);
    assert!(fan_out.sent.failed.is_empty());
    assert_eq!(
        fan_out.sent.send_message_batch_calls,
        repositories.div_ceil(10) as u64
    );
    let denied: Vec<_> = fan_out
        .targets
        .iter()
        .filter(|t| t.error.is_some())
        .collect();
    assert_eq!(denied.len(), 2);
    assert_eq!(fan_out.api_calls.describe_repositories, 6);
    assert_eq!(
        fan_out.api_calls.describe_images, 0,
        "the scheduled run only lists"
    );

    // Play Lambda's SQS poller: batches of up to 10, partial batch
    // responses honoured.
    let mut calls = fan_out.api_calls;
    let mut batches = 0;
    let mut carried_central = false;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        batches += 1;
        // The scheduled run read every inventory: each message carries
        // what other accounts' workloads use of its repository.
        for m in messages {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert!(body["foreign"].is_object(), "{body}");
            if body["accountId"] == CENTRAL.0
                && body["region"] == CENTRAL.1
                && body["repository"] == "svc-001"
            {
                carried_central = true;
                let uses = body["foreign"]["uses"].as_array().unwrap();
                assert!(
                    uses.iter().any(|u| u["workload"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{}/{}:ecs:", RUNNER.0, RUNNER.1))),
                    "{body}"
                );
            }
        }
        let records = messages
            .iter()
            .map(|m| sqs_record(m.message_id().unwrap(), m.body().unwrap()))
            .collect();
        let (batch, batch_log) = consume(&connector, &config, records).await;
        assert!(batch.batch_item_failures.is_empty(), "{batch:?}");
        for line in batch_log.lines() {
            if line["message"] == "run finished" {
                let counts: ecr_gc::aws::ecr::ApiCallCounts =
                    serde_json::from_value(line["apiCalls"].clone()).unwrap();
                calls += &counts;
            }
        }
        for m in messages {
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert!(batches >= repositories / 10, "{batches} batches");
    assert!(carried_central);
    check_end_state(&moto).await;
    assert_eq!(ecr_counts(&calls), floor());
    let (wire, without_registry) = wire_counts(&proxy);
    assert_eq!(wire, floor());
    assert_eq!(without_registry, 0);
}

/// A message for an account that is not configured is refused and handed
/// back (so it ends in the dead-letter queue), and so is a malformed one;
/// the others in the batch are collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_hands_back_only_the_messages_that_did_not_finish() {
    let (moto, _proxy, connector) = start().await;
    seed(&moto).await;
    let config = config(None);
    let body = |account: &str, repository: &str| {
        json!({
            "accountId": account, "region": "us-east-1", "repository": repository,
            "dryRun": false, "now": Utc::now(), "trigger": "schedule"
        })
        .to_string()
    };
    let bodies = [
        ("ok", body(ACCOUNTS[0], "svc-001")),
        ("stranger", body("999999999999", "svc-001")),
        ("missing", body(ACCOUNTS[0], "svc-999")),
        ("denied", body(DENIED, "svc-001")),
        ("junk", "{".to_owned()),
    ];
    let records = bodies
        .iter()
        .map(|(id, body)| sqs_record(id, body))
        .collect();
    let (batch, _) = consume(&connector, &config, records).await;
    let failed: Vec<&str> = batch
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["denied", "junk", "missing", "stranger"]);
    let ecr = aws_sdk_ecr::Client::new(&as_account(&moto, ACCOUNTS[0], "us-east-1").await);
    // CENTRAL's svc-001: the rule keeps one untagged image, RUNNER's
    // service another. These messages carry no other accounts' uses, so
    // the consumer read every account's inventory itself.
    assert_eq!((ACCOUNTS[0], "us-east-1"), CENTRAL);
    assert_eq!(digests(&ecr, "svc-001").await.len(), 3);
    assert_eq!(digests(&ecr, "svc-002").await.len(), 4, "not in the batch");
    assert_eq!(
        serde_json::to_value(&batch).unwrap()["batchItemFailures"][0],
        json!({"itemIdentifier": "denied"})
    );
}

/// An account listed without a role is reached with the caller's own
/// credentials, as ECR_GC_REGISTRY_ID always allowed (a registry whose
/// policy lets the caller in). Its in-use inventory can only see the
/// caller's workloads, and the run says so; the caller's own account, listed
/// the same way, raises no warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_without_a_role_is_collected_with_a_warning_unless_it_is_our_own() {
    let moto = Moto::start();
    let connector = connector_at(&moto.endpoint, ecr_gc::aws::SdkRetry::default()).await;
    let targets =
        json!({"accounts": [{"accountId": "123456789012"}, {"accountId": "999999999999"}]})
            .to_string();
    let config = Config::from_env(move |name| match name {
        "ECR_GC_POLICY" => Some(POLICY.to_owned()),
        "ECR_GC_TARGETS" => Some(targets.clone()),
        _ => None,
    });
    let log = Collected::default();
    let event: Value = serde_json::from_str(include_str!("../../events/schedule.json")).unwrap();
    let response = lambda::handle(&connector, &config, &event, Utc::now(), &log)
        .await
        .unwrap();
    let Response::Collection(collection) = response else {
        panic!("expected a collection")
    };
    assert_eq!(collection.targets_failed, 0);
    assert_eq!(collection.assume_role_calls, 0);
    let warnings: Vec<Value> = log
        .lines()
        .into_iter()
        .filter(|l| l["message"] == "in-use sources limited to the caller's account")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["accountId"], "999999999999");
    let warning = warnings[0]["warning"].as_str().unwrap();
    assert!(
        warning.contains("account 123456789012's workloads, not account 999999999999's"),
        "{warning}"
    );
    // With an external list, it is collected and the report says through
    // what its workloads are seen.
    let line = |collection: &ecr_gc::run::report::Collection| {
        collection.targets[1]
            .report
            .as_ref()
            .unwrap()
            .in_use_sources
            .iter()
            .find(|s| s.source == "workloads of 999999999999")
            .cloned()
            .unwrap()
    };
    let seen = line(&collection);
    assert!(seen.error.is_none());
    assert!(
        seen.note
            .unwrap()
            .contains("seen only through the external in-use list")
    );

    // Without one, nothing is deleted in it, and the report says why and
    // what to do; the function's own account is not held by it.
    let policy = POLICY.replace(
        r#""external": {"ssmParameter": "/ecr-gc/in-use"}, "allowPartialInventory": true"#,
        r#""lambda": {"enabled": true}"#,
    );
    assert_ne!(policy, POLICY);
    let targets =
        json!({"accounts": [{"accountId": "123456789012"}, {"accountId": "999999999999"}]})
            .to_string();
    let config = Config::from_env(move |name| match name {
        "ECR_GC_POLICY" => Some(policy.clone()),
        "ECR_GC_TARGETS" => Some(targets.clone()),
        _ => None,
    });
    let response = lambda::handle(
        &connector,
        &config,
        &event,
        Utc::now(),
        &Collected::default(),
    )
    .await
    .unwrap();
    let Response::Collection(collection) = response else {
        panic!("expected a collection")
    };
    let blind = line(&collection).error.unwrap();
    assert!(
        blind.contains("so nothing is deleted in it: give it a roleArn"),
        "{blind}"
    );
    let own = collection.targets[0].report.as_ref().unwrap();
    assert!(
        own.in_use_sources.iter().all(|s| s.error.is_none()),
        "{:?}",
        own.in_use_sources
    );
}

/// When one account's inventory cannot be read (here its role is refused),
/// its workloads may run any registry's images: by default nothing is
/// deleted anywhere, in one invocation or fanned out, and every report
/// names the account. (The organisation tests above allow partial
/// inventories.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_inventory_holds_every_registry_unless_partial_inventories_are_allowed() {
    let (moto, _proxy, connector) = start().await;
    for account in ACCOUNTS {
        for region in REGIONS {
            let ecr = aws_sdk_ecr::Client::new(&as_account(&moto, account, region).await);
            create_repository(&ecr, "svc-000").await;
            push(
                &ecr,
                "svc-000",
                &format!("{account}-{region}-t"),
                Some("v1"),
            )
            .await;
            for n in 0..3 {
                push(&ecr, "svc-000", &format!("{account}-{region}-{n}"), None).await;
            }
        }
    }
    let strict = POLICY.replace(
        r#""external": {"ssmParameter": "/ecr-gc/in-use"}, "allowPartialInventory": true"#,
        r#""lambda": {"enabled": true}"#,
    );
    let sqs = connector.home().sqs.clone();
    let queue_url = sqs
        .create_queue()
        .queue_name("ecr-gc-strict")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let config_with = |queue: Option<String>| {
        let targets = targets();
        let strict = strict.clone();
        Config::from_env(move |name| match name {
            "ECR_GC_POLICY" => Some(strict.clone()),
            "ECR_GC_DRY_RUN" => Some("false".into()),
            "ECR_GC_TARGETS" => Some(targets.clone()),
            "ECR_GC_FANOUT_QUEUE_URL" => queue.clone(),
            _ => None,
        })
    };
    let event: Value = serde_json::from_str(include_str!("../../events/schedule.json")).unwrap();
    let response = lambda::handle(
        &connector,
        &config_with(None),
        &event,
        Utc::now(),
        &Collected::default(),
    )
    .await
    .unwrap();
    let Response::Collection(collection) = response else {
        panic!("expected a collection")
    };
    assert_eq!(collection.summary.counts.images_deleted, 0);
    assert_eq!(collection.summary.repositories_held, 6);
    for target in collection.targets.iter().filter(|t| t.error.is_none()) {
        let held = target.report.as_ref().unwrap().repositories[0]
            .held
            .as_deref()
            .unwrap();
        for part in [
            "the in-use inventory is incomplete",
            &format!("{DENIED}/us-east-1"),
            &format!("{DENIED}/eu-west-1"),
            "could not assume",
            "allowPartialInventory",
        ] {
            assert!(
                held.contains(part),
                "{}: {held:?} lacks {part:?}",
                target.target
            );
        }
    }

    // Fanned out: every message carries the unreadable inventories, so the
    // consumer holds its repository and hands the message back.
    let response = lambda::handle(
        &connector,
        &config_with(Some(queue_url.clone())),
        &event,
        Utc::now(),
        &Collected::default(),
    )
    .await
    .unwrap();
    let Response::FanOut(fan_out) = response else {
        panic!("expected a fan-out")
    };
    assert_eq!(fan_out.sent.messages_sent, 6);
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = received
        .messages()
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(
                body["foreign"]["incomplete"].as_array().unwrap().len(),
                2,
                "{body}"
            );
            sqs_record(m.message_id().unwrap(), m.body().unwrap())
        })
        .collect();
    assert_eq!(records.len(), 6);
    let (batch, _) = consume(&connector, &config_with(None), records).await;
    assert_eq!(batch.batch_item_failures.len(), 6, "every one handed back");
    for account in ACCOUNTS {
        for region in REGIONS {
            let ecr = aws_sdk_ecr::Client::new(&as_account(&moto, account, region).await);
            assert_eq!(
                digests(&ecr, "svc-000").await.len(),
                4,
                "{account}/{region}"
            );
        }
    }
}

/// Setting the consumer's ECR_GC_DRY_RUN=true brakes messages already
/// queued with `"dryRun": false`: they are collected as dry runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_dry_run_brakes_messages_already_queued() {
    let (moto, _proxy, connector) = start().await;
    let ecr = aws_sdk_ecr::Client::new(&as_account(&moto, ACCOUNTS[0], "us-east-1").await);
    create_repository(&ecr, "svc-000").await;
    for n in 0..3 {
        push(&ecr, "svc-000", &format!("brake-{n}"), None).await;
    }
    put_in_use_list(&moto, ACCOUNTS[0], "us-east-1", &[]).await;
    let targets = targets();
    let config = Config::from_env(move |name| match name {
        "ECR_GC_POLICY" => Some(POLICY.to_owned()),
        "ECR_GC_DRY_RUN" => Some("true".into()),
        "ECR_GC_TARGETS" => Some(targets.clone()),
        _ => None,
    });
    let body = json!({
        "accountId": ACCOUNTS[0], "region": "us-east-1", "repository": "svc-000",
        "dryRun": false, "now": Utc::now(), "trigger": "schedule"
    })
    .to_string();
    let (batch, log) = consume(&connector, &config, vec![sqs_record("m", &body)]).await;
    assert!(batch.batch_item_failures.is_empty());
    assert_eq!(digests(&ecr, "svc-000").await.len(), 3, "nothing deleted");
    assert!(log.lines().iter().any(
        |l| l["message"] == "image would be deleted (dry run)" && l["accountId"] == ACCOUNTS[0]
    ));
}

/// CENTRAL's `svc-001` alone, with one tagged and three untagged images,
/// the oldest untagged of which RUNNER's service runs: CENTRAL's client,
/// and the untagged digests, oldest first.
async fn seed_central(moto: &Moto) -> (aws_sdk_ecr::Client, Vec<String>) {
    let ecr = aws_sdk_ecr::Client::new(&as_account(moto, CENTRAL.0, CENTRAL.1).await);
    create_repository(&ecr, "svc-001").await;
    push(&ecr, "svc-001", "central-tagged", Some("v1")).await;
    let mut untagged = Vec::new();
    for n in 0..3 {
        untagged.push(push(&ecr, "svc-001", &format!("central-{n}"), None).await);
    }
    let image = format!(
        "{}.dkr.ecr.{}.amazonaws.com/svc-001@{}",
        CENTRAL.0, CENTRAL.1, untagged[0]
    );
    run_service(moto, RUNNER, &image).await;
    (ecr, untagged)
}

/// Through the CLI, as a user runs it: `run --targets` over two accounts
/// behind roles in two regions. The central registry's image that only the
/// other account's ECS service runs, from another region, is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_keeps_a_central_image_that_only_another_account_runs() {
    let (moto, proxy, _connector) = start().await;
    let (ecr, untagged) = seed_central(&moto).await;

    let dir = std::env::temp_dir().join(format!("ecr-gc-org-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let role =
        |a: &str| json!({"accountId": a, "roleArn": format!("arn:aws:iam::{a}:role/ecr-gc")});
    std::fs::write(
        dir.join("targets.json"),
        json!({"regions": REGIONS, "accounts": [role(CENTRAL.0), role(RUNNER.0)]}).to_string(),
    )
    .unwrap();
    let policy = POLICY.replace(
        r#""external": {"ssmParameter": "/ecr-gc/in-use"}, "allowPartialInventory": true"#,
        r#""lambda": {"enabled": true}"#,
    );
    std::fs::write(dir.join("policy.json"), policy).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecr-gc"))
        .args(["run", "--apply", "--output", "json", "--policy"])
        .arg(dir.join("policy.json"))
        .arg("--targets")
        .arg(dir.join("targets.json"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["imagesDeleted"], 1, "{report}");
    assert_eq!(report["summary"]["imagesProtected"], 1, "{report}");
    let left = digests(&ecr, "svc-001").await;
    assert_eq!(left.len(), 3);
    assert!(left.contains(&untagged[0]), "the image RUNNER runs is kept");
    assert!(!left.contains(&untagged[1]));
}

/// Fanned out through the real binary: the runtime loop under `cargo lambda
/// watch` lists the targets and reads every inventory on the schedule event,
/// sends the messages, then consumes them as one SQS batch. The central
/// image that only RUNNER's service runs is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_loop_fans_out_and_keeps_a_central_image() {
    let (moto, proxy, connector) = start().await;
    let (ecr, untagged) = seed_central(&moto).await;
    let sqs = connector.home().sqs.clone();
    let queue_url = sqs
        .create_queue()
        .queue_name("ecr-gc-loop")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let role =
        |a: &str| json!({"accountId": a, "roleArn": format!("arn:aws:iam::{a}:role/ecr-gc")});
    let targets = json!({"regions": REGIONS, "accounts": [role(CENTRAL.0), role(RUNNER.0)]});
    let policy = POLICY.replace(
        r#""external": {"ssmParameter": "/ecr-gc/in-use"}, "allowPartialInventory": true"#,
        r#""lambda": {"enabled": true}"#,
    );
    let env = vec![
        ("AWS_ENDPOINT_URL", proxy.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("ECR_GC_POLICY", policy),
        ("ECR_GC_DRY_RUN", "false".to_owned()),
        ("ECR_GC_TARGETS", targets.to_string()),
        ("ECR_GC_FANOUT_QUEUE_URL", queue_url.clone()),
    ];
    let function = crate::support::RuntimeLoop::start(&env);
    let schedule: Value = serde_json::from_str(include_str!("../../events/schedule.json")).unwrap();
    let fanned = function.invoke(&schedule).unwrap();
    assert_eq!(fanned["messagesSent"], 1, "{fanned}");
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = received
        .messages()
        .iter()
        .map(|m| sqs_record(m.message_id().unwrap(), m.body().unwrap()))
        .collect();
    assert_eq!(records.len(), 1);
    let batch = function.invoke(&json!({ "Records": records })).unwrap();
    assert_eq!(batch, json!({"batchItemFailures": []}));
    let left = digests(&ecr, "svc-001").await;
    assert_eq!(
        left.len(),
        3,
        "the tagged, the newest untagged, and the one RUNNER runs"
    );
    assert!(left.contains(&untagged[0]));
    let kept = function
        .lines()
        .into_iter()
        .find(|l| l["message"] == "image kept by a protection")
        .unwrap();
    assert!(
        kept["protection"]
            .as_str()
            .unwrap()
            .contains(&format!("{}/{}:ecs:apps/uses-central", RUNNER.0, RUNNER.1)),
        "{kept}"
    );
}
