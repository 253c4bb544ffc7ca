//! Fault injection: a proxy in front of moto_server (fault_proxy.py)
//! throttles, fails with 500, resets connections and stalls responses, per
//! operation. After every scenario: nothing protected was deleted, every
//! planned image is deleted or accounted for with a code, and the report
//! matches what the registry holds.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use ecr_gc::aws::SdkRetry;
use ecr_gc::aws::ecr::Ecr;
use ecr_gc::inventory::{InUse, Inventory, Registry, reference};
use ecr_gc::policy::Policy;
use ecr_gc::run::engine::{self, Run, Scope};
use ecr_gc::run::lines::Collected;
use ecr_gc::run::report::Report;
use serde_json::json;

use crate::support::{Moto, Proxy, clients_at, create_repository, digests, push};

const REPOSITORY: &str = "faulty";

/// Runs the sample collection through a proxy with `plan`, checks the
/// invariants, and returns the report with the number of faults served.
async fn scenario(plan: serde_json::Value) -> (Report, usize) {
    let moto = Moto::start();
    let direct = moto.ecr();
    create_repository(&direct, REPOSITORY).await;
    for i in 0..12 {
        push(
            &direct,
            REPOSITORY,
            &format!("faulty-{i}"),
            Some(&format!("b{i}")),
        )
        .await;
    }
    let policy = Policy::parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}],
            "settings":{"gracePeriodMinutes":0}}"#,
    )
    .unwrap();
    let now = Utc::now();
    // One image the rules expire is in use: it must survive every fault.
    let before: BTreeSet<String> = digests(&direct, REPOSITORY).await.into_iter().collect();
    let plain = Ecr::new(direct.clone(), None);
    let surveyed = engine::survey(&plain, &Inventory::none(), &policy, REPOSITORY, now).await;
    let in_use = surveyed.planned[0].image_digest.clone();
    let inventory = Inventory {
        registry: Some(Registry {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }),
        uses: vec![InUse {
            reference: reference::parse(&format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPOSITORY}@{in_use}"
            ))
            .unwrap(),
            workload: "ecs:prod/web".into(),
        }],
        sources: Vec::new(),
    };

    let proxy = Proxy::start(&moto.endpoint, plan);
    let retry = SdkRetry {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        attempt_timeout: Duration::from_millis(1_000),
    };
    let clients = clients_at(&proxy.endpoint, retry).await;
    let ecr = Ecr::new(clients.ecr.clone(), None);
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Selected,
        dry_run: false,
        now,
        stop_at: None,
        detail: Default::default(),
    };
    let report = engine::run(&ecr, &inventory, &policy, &run, &Collected::default())
        .await
        .unwrap();
    let served = proxy.served();
    drop(proxy);

    // The invariants.
    let repo = &report.repositories[0];
    let after: BTreeSet<String> = digests(&direct, REPOSITORY).await.into_iter().collect();
    assert!(after.contains(&in_use), "an image in use was deleted");
    let gone: BTreeSet<String> = repo
        .deleted
        .iter()
        .map(|d| d.image_digest.clone())
        .chain(
            repo.skipped
                .iter()
                .filter(|s| s.reason.starts_with("already gone"))
                .map(|s| s.image_digest.clone()),
        )
        .collect();
    assert_eq!(
        after,
        before.difference(&gone).cloned().collect(),
        "the report matches the registry"
    );
    let failed: BTreeSet<String> = repo
        .failed
        .iter()
        .filter_map(|f| f.image_id.image_digest.clone())
        .collect();
    let skipped: BTreeSet<String> = repo
        .skipped
        .iter()
        .map(|s| s.image_digest.clone())
        .collect();
    for planned in &repo.planned {
        let d = &planned.image_digest;
        assert!(
            gone.contains(d) || failed.contains(d) || skipped.contains(d),
            "{d} was planned but neither deleted nor reported"
        );
    }
    for failure in &repo.failed {
        assert!(!failure.failure_code.is_empty() && !failure.failure_reason.is_empty());
    }
    (report, served)
}

fn everywhere(fault: &str, times: usize) -> serde_json::Value {
    let faults = vec![fault; times];
    json!({
        "DescribeRepositories": faults,
        "DescribeImages": faults,
        "BatchDeleteImage": faults,
        "ListImages": faults,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_burst_on_each_operation_is_ridden_out() {
    // One throttle per operation: the adaptive rate limiter then slows the
    // client down on purpose, which a longer burst makes slow to test.
    let (report, served) = scenario(everywhere("throttle", 1)).await;
    assert!(served >= 2, "{served}");
    assert_eq!(report.repositories[0].deleted.len(), 9);
    assert!(!report.has_failures());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let (report, served) = scenario(everywhere("500", 2)).await;
    assert!(served >= 4, "{served}");
    assert_eq!(report.repositories[0].deleted.len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried() {
    let (report, served) = scenario(everywhere("reset", 1)).await;
    assert!(served >= 2, "{served}");
    assert_eq!(report.repositories[0].deleted.len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_slower_than_the_timeout_are_retried() {
    let (report, served) = scenario(everywhere("slow:2500", 1)).await;
    assert!(served >= 2, "{served}");
    // A stalled delete may still land after its retry: then the retry
    // finds the image gone, which the report says.
    let repo = &report.repositories[0];
    assert_eq!(
        repo.deleted.len()
            + repo
                .skipped
                .iter()
                .filter(|s| s.reason.starts_with("already gone"))
                .count(),
        9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_that_never_ends_leaves_every_image_reported() {
    let (report, served) = scenario(json!({"BatchDeleteImage": ["throttle*"]})).await;
    // The SDK's 4 attempts, then 3 more rounds of them through the pace.
    assert_eq!(
        served, 16,
        "every attempt the SDK makes, in each round, is throttled"
    );
    let repo = &report.repositories[0];
    assert!(repo.deleted.is_empty());
    assert_eq!(repo.failed.len(), 9);
    assert!(
        repo.failed
            .iter()
            .all(|f| f.failure_code == "ThrottlingException"),
        "{:?}",
        repo.failed
    );
    assert!(report.has_failures());
}
