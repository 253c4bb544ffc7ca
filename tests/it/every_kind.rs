//! One workload of each kind every in-use source reads, each on its own
//! image of one repository, under a policy that would expire all of them:
//! every image survives and is named, and denying any one source's read
//! deletes nothing at all.

use serde_json::{Value, json};

use crate::eks::{KubeApi, pod, seed_clusters};
use crate::support::{
    ACCOUNT_SOURCES, Moto, Proxy, cli_run, digests, keep_newest_reading, protections, push_tags,
    python,
};

/// Each source, the operation the proxy denies to make it unreadable, and
/// the workload that must be named for its image.
const SOURCES: [(&str, &str, &str); 10] = [
    ("ecs", "ListClusters", "ecs:task-definition/nightly:2"),
    ("lambda", "ListFunctions", "lambda:resize:"),
    ("events", "ListEventBuses", "events:rule/nightly-report"),
    ("scheduler", "ListSchedules", "scheduler:default/nightly"),
    (
        "batch",
        "DescribeJobDefinitions",
        "batch:job-definition/etl:1",
    ),
    ("codebuild", "ListProjects", "codebuild:project/ci"),
    (
        "stepfunctions",
        "ListStateMachines",
        "states:stateMachine/etl",
    ),
    (
        "apprunner",
        "apprunner:ListServices",
        "apprunner:service/web-app",
    ),
    ("sagemaker", "ListModels", "sagemaker:model/reco-model"),
    ("eks", "eks:DescribeCluster", "eks:prod/default/pod/web-7d9"),
];

/// Every source on; ECS protects only the newest revision, so that the
/// revisions rules, schedules and state machines pin are theirs alone; EKS
/// reads the cluster the local API serves.
fn policy() -> Value {
    let mut policy = keep_newest_reading(&ACCOUNT_SOURCES);
    policy["settings"]["inUse"]["ecs"] = json!({"taskDefinitionRevisions": 1});
    policy["settings"]["inUse"]["eks"] = json!({"clusters": ["prod"]});
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_workload_keeps_its_image_and_any_unreadable_source_deletes_nothing() {
    assert_eq!(
        SOURCES.map(|s| s.0),
        ACCOUNT_SOURCES,
        "one workload per source"
    );
    let moto = Moto::start();
    let client = moto.ecr();
    let tag_of = push_tags(&client, "app", &ACCOUNT_SOURCES).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/seed_every_kind.py");
    python(&[script, &moto.endpoint]);
    let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let pods = json!({"/api/v1/pods": [pod("default", "web-7d9",
        json!({"containers": [{"image": format!("{host}/app:eks")}]}), json!({}))]});
    let (api, ca) = KubeApi::start(pods, 500, false);
    seed_clusters(&moto.endpoint, &api, &ca);

    for (source, operation, _) in SOURCES {
        let proxy = Proxy::start(&moto.endpoint, json!({ operation: ["denied*"] }));
        let (code, report) = cli_run(&proxy.endpoint, &policy(), "app");
        assert_eq!(code, Some(1), "{source}: {report}");
        let failed: Vec<&str> = report["inUseSources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["error"].is_string())
            .map(|s| s["source"].as_str().unwrap())
            .collect();
        assert_eq!(failed, [source], "{report}");
        assert_eq!(digests(&client, "app").await.len(), 11, "{source}");
    }

    let (code, report) = cli_run(&moto.endpoint, &policy(), "app");
    assert_eq!(code, Some(0), "{report}");
    let protection = protections(&report, &tag_of);
    for (source, _, workload) in SOURCES {
        let said = protection.get(source).copied().unwrap_or_default();
        assert!(
            said.contains(workload),
            "{source}: {workload} in {protection:?}"
        );
    }
    assert_eq!(digests(&client, "app").await.len(), 11, "{report}");
}
