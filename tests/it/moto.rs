//! The engine and the Lambda handler against `moto_server` over real HTTP.

use std::collections::BTreeSet;

use chrono::Utc;
use ecr_gc::aws::ecr::Ecr;
use ecr_gc::inventory::Inventory;
use ecr_gc::lambda::{self, Config, Response};
use ecr_gc::policy::Policy;
use ecr_gc::run::engine::{self, Run, Scope};
use ecr_gc::run::lines::Collected;
use ecr_gc::run::report::Report;
use serde_json::Value;

use crate::support::{Moto, create_repository, digests, push, push_index, report_of};

fn keep_newest(n: u32) -> Policy {
    Policy::parse(&format!(
        r#"{{"rules":[{{"rulePriority":1,"selection":{{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":{n}}},"action":{{"type":"expire"}}}}],"settings":{{"gracePeriodMinutes":0}}}}"#
    ))
    .unwrap()
}

/// Pushes `count` tagged images `build-0..` concurrently.
async fn push_many(ecr: &aws_sdk_ecr::Client, repository: &str, count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..count)
        .collect::<Vec<_>>()
        .chunks(count.div_ceil(8).max(1))
    {
        let (ecr, repository, chunk) = (ecr.clone(), repository.to_owned(), chunk.to_vec());
        tasks.spawn(async move {
            for i in chunk {
                push(
                    &ecr,
                    &repository,
                    &format!("{repository}-{i}"),
                    Some(&format!("build-{i}")),
                )
                .await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_repository_loses_exactly_what_the_plan_says_in_the_fewest_calls() {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "big").await;
    push_many(&client, "big", 1_250).await;

    let policy = keep_newest(100);
    let now = Utc::now();
    let before = Ecr::new(client.clone(), None).images("big").await.unwrap();
    assert_eq!(before.len(), 1_250);
    // ECR's rule, written out: newest first by push time, a tie going to
    // the smaller digest; everything past the first 100 expires.
    let mut newest_first: Vec<(chrono::DateTime<Utc>, String)> = before
        .iter()
        .map(|i| (i.image_pushed_at, i.image_digest.clone()))
        .collect();
    newest_first.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let expected = set(newest_first.into_iter().skip(100).map(|(_, d)| d));
    assert_eq!(expected.len(), 1_150);

    let ecr = Ecr::new(client.clone(), None);
    let log = Collected::default();
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Named(vec![crate::support::repo("big")]),
        dry_run: false,
        now,
        stop_at: None,
        detail: Default::default(),
    };
    let report = engine::run(&ecr, &Inventory::none(), &policy, &run, &log)
        .await
        .unwrap();

    let repo = &report.repositories[0];
    assert_eq!(
        set(repo.planned.iter().map(|p| p.image_digest.clone())),
        expected
    );
    assert_eq!(
        set(repo.deleted.iter().map(|p| p.image_digest.clone())),
        expected
    );
    assert!(repo.failed.is_empty(), "{:?}", repo.failed);
    assert_eq!(repo.bytes_reclaimed, 1_150 * 1_000);

    // The registry now holds exactly the kept images.
    let after = set(digests(&client, "big").await);
    let kept = set(before.iter().map(|i| i.image_digest.clone()))
        .difference(&expected)
        .cloned()
        .collect();
    assert_eq!(after, kept);

    // One DescribeImages page here (moto ignores maxResults; the pagination
    // itself is tested in `mocks`), the compare-and-delete re-read as one
    // listing again (2 of ECR's pages, against 12 calls by id: moto answers
    // it in one too), and one BatchDeleteImage per 100.
    let calls = report.api_calls;
    assert_eq!(
        (calls.describe_repositories, calls.describe_images),
        (0, 1 + 1)
    );
    assert_eq!(calls.batch_delete_image, 12);
    assert_eq!(calls.list_images, 0);

    // One log line per deleted image, with the fields AWS spells.
    let lines = log.lines();
    let deleted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "image deleted")
        .collect();
    assert_eq!(deleted.len(), 1_150);
    for line in &deleted {
        assert_eq!(line["repositoryName"], "big");
        assert!(line["imageDigest"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(line["imageTags"].as_array().unwrap().len(), 1);
        assert_eq!(line["rulePriority"], 1);
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "repository collected" && l["imagesDeleted"] == 1_150)
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "run finished" && l["bytesReclaimed"] == 1_150_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untagged_deletions_are_confirmed_even_when_the_response_omits_them() {
    // moto leaves images deleted by digest out of `imageIds` when they have
    // no tag (ECR lists them). The adapter must not guess: it lists the
    // repository once to find out.
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "uu").await;
    for i in 0..5 {
        push(&client, "uu", &format!("u{i}"), None).await;
    }
    let ecr = Ecr::new(client.clone(), None);
    let policy = keep_newest(1);
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Named(vec![crate::support::repo("uu")]),
        dry_run: false,
        now: Utc::now(),
        stop_at: None,
        detail: Default::default(),
    };
    let report = engine::run(
        &ecr,
        &Inventory::none(),
        &policy,
        &run,
        &Collected::default(),
    )
    .await
    .unwrap();
    let repo = &report.repositories[0];
    assert_eq!(repo.counts().images_deleted, 4);
    assert!(repo.failed.is_empty());
    assert_eq!(digests(&client, "uu").await.len(), 1);
    assert_eq!(report.api_calls.list_images, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_keep_ecrs_code_and_reason() {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "f").await;
    let present = push(&client, "f", "present", Some("v1")).await;
    let missing = format!("sha256:{}", "ab".repeat(32));
    let malformed = "sha256:not-hex".to_owned();
    let outcome = Ecr::new(client.clone(), None)
        .delete("f", &[present.clone(), missing.clone(), malformed.clone()])
        .await;
    assert_eq!(outcome.deleted, vec![present]);
    // ImageNotFound means someone else deleted it first: not a failure.
    assert_eq!(outcome.already_gone, vec![missing]);
    assert_eq!(outcome.failures.len(), 1);
    let failure = &outcome.failures[0];
    assert_eq!(
        failure.image_id.image_digest.as_deref(),
        Some(malformed.as_str())
    );
    assert_eq!(failure.failure_code, "InvalidImageDigest");
    assert!(
        failure
            .failure_reason
            .starts_with("Invalid request parameters: image digest should satisfy the regex"),
        "{}",
        failure.failure_reason
    );
}

fn config(policy: &str, dry_run: bool) -> Result<Config, lambda::ConfigError> {
    let policy = policy.to_owned();
    Config::from_env(move |name| match name {
        "ECR_GC_POLICY" => Some(policy.clone()),
        "ECR_GC_DRY_RUN" => Some(dry_run.to_string()),
        _ => None,
    })
}

/// Two selected repositories with garbage, and one the settings exclude.
async fn demo_registry(client: &aws_sdk_ecr::Client) {
    for repository in ["demo/web", "demo/worker", "demo/keep-base"] {
        create_repository(client, repository).await;
        for i in 0..6 {
            push(
                client,
                repository,
                &format!("{repository}-{i}"),
                Some(&format!("v{i}")),
            )
            .await;
        }
    }
}

fn event(name: &str) -> Value {
    let text =
        std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

const POLICY: &str = include_str!("../../examples/demo-policy.json");

/// Invokes the handler with the sample policy, discarding the log lines.
async fn invoke(
    client: &ecr_gc::aws::Connector,
    dry_run: bool,
    event: &Value,
) -> Result<Response, lambda::HandlerError> {
    lambda::handle(
        client,
        &config(POLICY, dry_run),
        event,
        Utc::now(),
        &Collected::default(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_deletes_nothing_and_says_what_it_would_delete() {
    let moto = Moto::start();
    let clients = moto.connector().await;
    let client = clients.home().ecr.clone();
    demo_registry(&client).await;
    let log = Collected::default();
    let response = lambda::handle(
        &clients,
        &config(POLICY, true),
        &event("schedule.json"),
        Utc::now(),
        &log,
    )
    .await
    .unwrap();
    let report = report_of(response);
    assert!(report.dry_run);
    let names: Vec<&str> = report
        .repositories
        .iter()
        .map(|r| r.repository_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["demo/web", "demo/worker"],
        "settings exclude demo/keep-*"
    );
    for repo in &report.repositories {
        assert_eq!(repo.counts().images_planned, 3);
        assert_eq!(repo.counts().images_deleted, 0);
        assert!(repo.dropped.is_some(), "the Lambda's default is a summary");
        assert_eq!(digests(&client, &repo.repository_name).await.len(), 6);
    }
    assert_eq!(report.api_calls.batch_delete_image, 0);
    let would: Vec<Value> = log
        .lines()
        .into_iter()
        .filter(|l| l["message"] == "image would be deleted (dry run)")
        .collect();
    assert_eq!(would.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_event_collects_only_its_repository() {
    let moto = Moto::start();
    let clients = moto.connector().await;
    let client = clients.home().ecr.clone();
    demo_registry(&client).await;
    let response = invoke(&clients, false, &event("ecr-push.json"))
        .await
        .unwrap();
    let report = report_of(response);
    assert_eq!(report.trigger, ecr_gc::run::report::Cause::EcrPush);
    assert_eq!(report.repositories.len(), 1);
    assert_eq!(report.repositories[0].counts().images_deleted, 3);
    assert_eq!(digests(&client, "demo/web").await.len(), 3);
    assert_eq!(digests(&client, "demo/worker").await.len(), 6);
    assert_eq!(report.api_calls.describe_repositories, 0);

    // A push to a repository the settings exclude does nothing.
    let mut excluded = event("ecr-push.json");
    excluded["detail"]["repository-name"] = "demo/keep-base".into();
    let report = report_of(invoke(&clients, false, &excluded).await.unwrap());
    assert!(report.repositories.is_empty());
    assert_eq!(digests(&client, "demo/keep-base").await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_repository_is_reported_and_the_run_goes_on() {
    let moto = Moto::start();
    let clients = moto.connector().await;
    let client = clients.home().ecr.clone();
    demo_registry(&client).await;
    let event = serde_json::json!({"repositories": ["demo/gone", "demo/web"], "dryRun": false});
    let log = Collected::default();
    let report = report_of(
        lambda::handle(&clients, &config(POLICY, false), &event, Utc::now(), &log)
            .await
            .unwrap(),
    );
    let gone = &report.repositories[0];
    assert_eq!(gone.repository_name, "demo/gone");
    assert_eq!(
        gone.error.as_ref().unwrap().error_code,
        "RepositoryNotFoundException"
    );
    assert_eq!(report.repositories[1].counts().images_deleted, 3);
    assert!(report.has_failures());
    assert!(
        log.lines()
            .iter()
            .any(|l| l["message"] == "repository not collected"
                && l["errorCode"] == "RepositoryNotFoundException")
    );
}

/// Every collection writes its CloudWatch metrics (Embedded Metric Format)
/// to the function's log, and they say what the report says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_lines_say_what_the_report_says() {
    let moto = Moto::start();
    let clients = moto.connector().await;
    let client = clients.home().ecr.clone();
    demo_registry(&client).await;
    let log = Collected::default();
    let report = report_of(
        lambda::handle(
            &clients,
            &config(POLICY, false),
            &event("schedule.json"),
            Utc::now(),
            &log,
        )
        .await
        .unwrap(),
    );
    let metrics: Vec<Value> = log
        .lines()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert_eq!(metrics.len(), 1, "one line for the one target");
    let line = &metrics[0];
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "ECRGC");
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([["AccountId", "Region"], []])
    );
    assert!(line["_aws"]["Timestamp"].is_i64());
    let named: Vec<&str> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    let s = &report.summary;
    assert_eq!(s.counts.images_deleted, 6, "3 in each of two repositories");
    let expected = [
        ("ImagesDeleted", s.counts.images_deleted),
        ("ImagesArchived", s.counts.images_transitioned),
        ("BytesReclaimed", s.bytes_reclaimed as u64),
        (
            "ImagesFailed",
            s.counts.images_failed + s.counts.transitions_failed,
        ),
        ("ImagesProtected", s.counts.images_protected),
        ("RepositoriesHeld", s.repositories_held),
        ("InventoryIncomplete", 0),
        ("DurationMs", report.duration_ms),
    ];
    assert_eq!(named, expected.map(|(name, _)| name));
    for (name, value) in expected {
        assert_eq!(line[name], value, "{name}");
    }
    assert!(s.bytes_reclaimed > 0);
    assert_eq!(line["AccountId"], "own");
    assert_eq!(line["Region"], "us-east-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_events_and_bad_configuration_delete_nothing() {
    let moto = Moto::start();
    let clients = moto.connector().await;
    let client = clients.home().ecr.clone();
    demo_registry(&client).await;
    let ignored = invoke(&clients, false, &event("ecr-delete.json"))
        .await
        .unwrap();
    assert!(matches!(ignored, Response::Ignored { .. }));

    let bad = config(r#"{"rules":[{"rulePriority":1}]}"#, false);
    let error = lambda::handle(
        &clients,
        &bad,
        &event("schedule.json"),
        Utc::now(),
        &Collected::default(),
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("invalid configuration"),
        "{error}"
    );
    let error = invoke(
        &clients,
        false,
        &serde_json::json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("aws.s3"), "{error}");
    for repository in ["demo/web", "demo/worker", "demo/keep-base"] {
        assert_eq!(digests(&client, repository).await.len(), 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_added_between_plan_and_delete_saves_the_image() {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "race").await;
    let mut pushed = Vec::new();
    for i in 0..4 {
        let seed = format!("race-{i}");
        let digest = push(&client, "race", &seed, None).await;
        pushed.push((seed, digest));
    }
    let ecr = Ecr::new(client.clone(), None);
    let policy = keep_newest(1);
    let mut surveyed = engine::survey(&ecr, &Inventory::none(), &policy, "race", Utc::now()).await;
    assert_eq!(surveyed.planned.len(), 3);

    // Between plan and delete: a deployment tags one planned image (pushing
    // the same manifest with a new tag), and someone else deletes another.
    let rescued = surveyed.planned[0].image_digest.clone();
    let (seed, _) = pushed.iter().find(|(_, d)| *d == rescued).unwrap();
    push(&client, "race", seed, Some("hotfix")).await;
    let vanished = surveyed.planned[1].image_digest.clone();
    Ecr::new(client.clone(), None)
        .delete("race", std::slice::from_ref(&vanished))
        .await;

    let log = Collected::default();
    engine::apply(&ecr, &mut surveyed, &log).await;

    let after = digests(&client, "race").await;
    assert!(after.contains(&rescued), "the re-tagged image survives");
    assert_eq!(after.len(), 2, "the newest and the rescued image remain");
    assert_eq!(surveyed.deleted.len(), 1);
    assert!(surveyed.failed.is_empty(), "{:?}", surveyed.failed);
    let skipped: Vec<(&str, Option<&Vec<String>>)> = surveyed
        .skipped
        .iter()
        .map(|s| (s.image_digest.as_str(), s.current_image_tags.as_ref()))
        .collect();
    let hotfix = vec!["hotfix".to_owned()];
    assert_eq!(
        skipped,
        [(rescued.as_str(), Some(&hotfix)), (vanished.as_str(), None)]
    );
    let lines = log.lines();
    let logged = lines
        .iter()
        .filter(|l| l["message"] == "image skipped: changed since the plan")
        .count();
    assert_eq!(logged, 2);
}

/// Runs `settings` over two repositories of six tagged images, under the
/// sample rules (keep 3 `v*` images), and returns the report.
async fn run_with_settings(settings: &str, dry_run: bool) -> (Report, Vec<Value>, Vec<usize>) {
    let moto = Moto::start();
    let client = moto.ecr();
    demo_registry(&client).await;
    let mut document: Value = serde_json::from_str(POLICY).unwrap();
    document["settings"] = serde_json::from_str(settings).unwrap();
    let policy = Policy::from_value(document).unwrap();
    let ecr = Ecr::new(client.clone(), None);
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Named(vec![
            crate::support::repo("demo/web"),
            crate::support::repo("demo/worker"),
        ]),
        dry_run,
        now: Utc::now(),
        stop_at: None,
        detail: Default::default(),
    };
    let log = Collected::default();
    let report = engine::run(&ecr, &Inventory::none(), &policy, &run, &log)
        .await
        .unwrap();
    let mut left = Vec::new();
    for repository in ["demo/web", "demo/worker"] {
        left.push(digests(&client, repository).await.len());
    }
    (report, log.lines(), left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_keeps_fresh_images_by_default() {
    let (report, lines, left) = run_with_settings("{}", false).await;
    assert_eq!(left, [6, 6]);
    assert_eq!(report.summary.counts.images_planned, 0);
    assert_eq!(report.summary.counts.images_protected, 6);
    let protected = &report.repositories[0].protected[0];
    assert_eq!(protected.rule_priority, Some(1));
    assert!(
        protected
            .protection
            .as_deref()
            .unwrap()
            .contains("60-minute grace period"),
        "{protected:?}"
    );
    let logged = lines
        .iter()
        .filter(|l| l["message"] == "image kept by a protection")
        .count();
    assert_eq!(logged, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_over_its_limit_gets_no_deletions() {
    let (report, lines, left) = run_with_settings(
        r#"{"gracePeriodMinutes":0,"maxDeletesPerRepository":2}"#,
        false,
    )
    .await;
    assert_eq!(left, [6, 6]);
    for repository in &report.repositories {
        assert_eq!(repository.planned.len(), 3);
        assert!(repository.deleted.is_empty());
        let held = repository.held.as_deref().unwrap();
        assert!(held.contains("maxDeletesPerRepository (2)"), "{held}");
    }
    assert_eq!(report.summary.repositories_held, 2);
    assert_eq!(report.api_calls.batch_delete_image, 0);
    assert!(lines.iter().any(|l| {
        l["message"] == "repository held: nothing deleted"
            && l["heldBecause"]
                .as_str()
                .unwrap()
                .contains("maxDeletesPerRepository")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_limit_holds_the_repository_that_would_pass_it() {
    for dry_run in [true, false] {
        let settings = r#"{"gracePeriodMinutes":0,"maxDeletesPerRun":4}"#;
        let (report, _, left) = run_with_settings(settings, dry_run).await;
        let held: Vec<bool> = report
            .repositories
            .iter()
            .map(|r| r.held.is_some())
            .collect();
        assert_eq!(held, [false, true], "dry run {dry_run}");
        let held = report.repositories[1].held.as_deref().unwrap();
        assert!(held.contains("the 1 left of maxDeletesPerRun"), "{held}");
        assert_eq!(left, if dry_run { [6, 6] } else { [3, 6] });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_index_goes_with_its_children_and_signature_and_a_new_one_stays() {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "multi").await;
    let mut old_children = Vec::new();
    for arch in ["amd", "arm"] {
        old_children.push(push(&client, "multi", &format!("old-{arch}"), None).await);
    }
    let shared = push(&client, "multi", "shared", None).await;
    old_children.push(shared.clone());
    let old = push_index(&client, "multi", &old_children, "v1").await;
    let signature = push(
        &client,
        "multi",
        "old-sig",
        Some(&format!("sha256-{}.sig", old.trim_start_matches("sha256:"))),
    )
    .await;
    // One second later, so "newest" is not left to the digest.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let new_amd = push(&client, "multi", "new-amd", None).await;
    let new = push_index(&client, "multi", &[new_amd.clone(), shared.clone()], "v2").await;

    let policy = Policy::parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                     {"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}],
            "settings":{"gracePeriodMinutes":0}}"#,
    )
    .unwrap();
    let ecr = Ecr::new(client.clone(), None);
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Named(vec![crate::support::repo("multi")]),
        dry_run: false,
        now: Utc::now(),
        stop_at: None,
        detail: Default::default(),
    };
    let log = Collected::default();
    let report = engine::run(&ecr, &Inventory::none(), &policy, &run, &log)
        .await
        .unwrap();
    let repo = &report.repositories[0];
    assert!(
        repo.failed.is_empty() && repo.skipped.is_empty(),
        "{repo:?}"
    );

    let expected: BTreeSet<String> = [
        old.clone(),
        old_children[0].clone(),
        old_children[1].clone(),
        signature,
    ]
    .into();
    assert_eq!(
        set(repo.deleted.iter().map(|p| p.image_digest.clone())),
        expected
    );
    let left = set(digests(&client, "multi").await);
    assert_eq!(left, [new.clone(), new_amd, shared].into_iter().collect());

    // The index and the signature went in the first call, the children in
    // a later one; BatchGetImage read both indexes in one call.
    assert_eq!(report.api_calls.batch_delete_image, 2);
    assert_eq!(report.api_calls.batch_get_image, 1);
    let order: Vec<String> = log
        .lines()
        .iter()
        .filter(|l| l["message"] == "image deleted")
        .map(|l| l["imageDigest"].as_str().unwrap().to_owned())
        .collect();
    let index_at = order.iter().position(|d| *d == old).unwrap();
    for child in &old_children[..2] {
        assert!(order.iter().position(|d| d == child).unwrap() > index_at);
    }
}

/// Lambda's split: per-repository trouble goes in the report, but when
/// every repository fails the invocation fails, so EventBridge retries it
/// or the failure destination catches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invocation_fails_only_when_every_repository_fails() {
    let moto = Moto::start();
    let clients = moto.connector().await;
    demo_registry(&clients.home().ecr).await;
    let all_gone = serde_json::json!({"repositories": ["demo/gone", "demo/lost"]});
    let error = invoke(&clients, false, &all_gone).await.unwrap_err();
    assert!(
        error.to_string().contains("every repository failed (2)"),
        "{error}"
    );
    let diagnostic: lambda_runtime::Diagnostic = error.into();
    assert_eq!(diagnostic.error_type, "EveryRepositoryFailed");

    let one_gone = serde_json::json!({"repositories": ["demo/gone", "demo/web"]});
    assert!(invoke(&clients, false, &one_gone).await.is_ok());
}
