//! Rules per repository, end to end against the emulator behind the
//! counting proxy: `settings.overrides` choose other rules for some
//! repositories, and `settings.policySource: "repository"` adopts each
//! repository's own lifecycle policy, read once. A policy that cannot be
//! read or does not load leaves its repository alone, loudly; the others
//! go on.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{
    ACCOUNT_SOURCES, Moto, Proxy, RuntimeLoop, cli, digests, free_port, push_tags,
};

/// Each repository, with 4 images.
const REPOSITORIES: [&str; 5] = ["team-a/web", "team-b/web", "legacy", "broken", "denied"];

fn keep_newest(n: u32) -> Value {
    json!({"rulePriority": 1,
           "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": n},
           "action": {"type": "expire"}})
}

/// Keep 3 by default, 1 in team-a's repositories; no in-use source, no
/// grace period, so only the rules decide.
fn policy(source: &str) -> Value {
    let sources: serde_json::Map<String, Value> = ACCOUNT_SOURCES
        .iter()
        .map(|s| (s.to_string(), json!({"enabled": false})))
        .collect();
    json!({
        "rules": [keep_newest(3)],
        "settings": {
            "gracePeriodMinutes": 0,
            "inUse": sources,
            "policySource": source,
            "overrides": [{"repositories": ["team-a/*"], "rules": [keep_newest(1)]}]
        }
    })
}

/// The registry: every repository with 4 images; `legacy` keeps 2 by its
/// own lifecycle policy, and `broken` has one with two rules of the same
/// priority (which ECR refuses, and the emulator stores).
async fn registry(moto: &Moto) {
    let ecr = moto.ecr();
    for name in REPOSITORIES {
        push_tags(&ecr, name, &["a", "b", "c"]).await;
    }
    let mut duplicate = keep_newest(1);
    duplicate["selection"]["tagStatus"] = json!("untagged");
    let policies = [
        ("legacy", json!({"rules": [keep_newest(2)]})),
        ("broken", json!({"rules": [keep_newest(1), duplicate]})),
    ];
    for (name, text) in policies {
        ecr.put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(text.to_string())
            .send()
            .await
            .unwrap();
    }
}

/// Each repository's report, by name.
fn by_repository(target: &Value) -> BTreeMap<String, Value> {
    target["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["repositoryName"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[tokio::test]
async fn each_repository_takes_its_own_rules_and_an_unreadable_one_deletes_nothing() {
    let moto = Moto::start();
    registry(&moto).await;
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({"ecr": true, "GetLifecyclePolicy@\"repositoryName\":\"denied\"": ["denied*"]}),
    );
    let path = std::env::temp_dir().join(format!("ecr-gc-per-repo-{}.json", free_port()));
    std::fs::write(&path, policy("repository").to_string()).unwrap();
    let out = cli(
        &proxy.endpoint,
        &[
            "run",
            "--apply",
            "--output",
            "json",
            "--registry-id",
            "123456789012",
            "--policy",
        ],
        &path,
        &[],
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        out.status.code(),
        Some(1),
        "two repositories failed: {report:#}"
    );
    let repositories = by_repository(&report["targets"][0]);
    // (deleted, rulesFrom, error code)
    let expected: [(&str, usize, Option<&str>, Option<&str>); 5] = [
        ("broken", 0, None, Some("InvalidLifecyclePolicy")),
        ("denied", 0, None, Some("AccessDenied")),
        (
            "legacy",
            2,
            Some("the repository's own lifecycle policy"),
            None,
        ),
        ("team-a/web", 3, Some("settings.overrides[0]"), None),
        ("team-b/web", 1, None, None),
    ];
    for (name, deleted, from, error) in expected {
        let r = &repositories[name];
        assert_eq!(
            r["deleted"].as_array().unwrap().len(),
            deleted,
            "{name}: {r:#}"
        );
        assert_eq!(r["rulesFrom"].as_str(), from, "{name}");
        let code = r["error"]["errorCode"].as_str();
        assert!(
            code.unwrap_or_default()
                .starts_with(error.unwrap_or_default())
                && code.is_some() == error.is_some(),
            "{name}: {code:?}"
        );
        assert_eq!(
            digests(&moto.ecr(), name).await.len(),
            4 - deleted,
            "{name}"
        );
    }
    assert!(
        repositories["broken"]["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("duplicates the rulePriority of rules[0]"),
        "{:#}",
        repositories["broken"]
    );
    // One read of each repository's policy, naming the registry.
    let counts = proxy.counts();
    assert_eq!(counts.get("GetLifecyclePolicy"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("GetLifecyclePolicy:noRegistryId"), None);
    assert_eq!(
        report["targets"][0]["apiCalls"]["GetLifecyclePolicy"],
        json!(5)
    );
}

/// With the default `policySource`, the Lambda plans by the document and
/// its overrides and reads no repository's policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_applies_overrides_without_reading_repository_policies() {
    let moto = Moto::start();
    registry(&moto).await;
    let proxy = Proxy::start(&moto.endpoint, json!({"ecr": true}));
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint.clone()));
    env.push(("ECR_GC_POLICY", policy("document").to_string()));
    env.push(("ECR_GC_DRY_RUN", "false".into()));
    let function = RuntimeLoop::start(&env);
    function
        .invoke(&json!({"repositories": ["team-a/web", "team-b/web", "legacy"]}))
        .unwrap();
    for (name, left) in [("team-a/web", 1), ("team-b/web", 3), ("legacy", 3)] {
        assert_eq!(digests(&moto.ecr(), name).await.len(), left, "{name}");
    }
    assert_eq!(proxy.counts().get("GetLifecyclePolicy"), None);
    let summaries: BTreeMap<String, Option<String>> = function
        .lines()
        .iter()
        .filter(|l| l["message"] == "repository collected")
        .map(|l| {
            (
                l["repositoryName"].as_str().unwrap().to_owned(),
                l["rulesFrom"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        summaries,
        BTreeMap::from([
            ("legacy".to_owned(), None),
            (
                "team-a/web".to_owned(),
                Some("settings.overrides[0]".to_owned())
            ),
            ("team-b/web".to_owned(), None),
        ])
    );
}
