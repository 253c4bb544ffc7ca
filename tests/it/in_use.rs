//! The in-use inventory against `moto_server`: ECS tasks, services and
//! task-definition revisions, a Lambda image function, and external lists
//! in SSM and S3 protect exactly the images they name; a failing source
//! stops every deletion.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use chrono::Utc;
use ecr_gc::lambda::{self, Config};
use ecr_gc::run::lines::Collected;
use ecr_gc::run::report::Report;
use serde_json::{Value, json};

use crate::support::{Moto, create_repository, digests, push, report_of};

/// Pushes shop v0..v8 and seeds the workloads (see seed_in_use.py).
/// Returns the digest of each tag.
async fn seed(moto: &Moto) -> BTreeMap<String, String> {
    let client = moto.ecr();
    create_repository(&client, "shop").await;
    let mut by_tag = BTreeMap::new();
    for i in 0..9 {
        let tag = format!("v{i}");
        let digest = push(&client, "shop", &format!("in-use-{i}"), Some(&tag)).await;
        by_tag.insert(tag, digest);
    }
    let script = format!("{}/tests/it/seed_in_use.py", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args([&script, &moto.endpoint, &by_tag["v7"]])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    by_tag
}

fn policy(in_use: Value) -> String {
    json!({
        "rules": [{
            "rulePriority": 1,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}
        }],
        "settings": {"gracePeriodMinutes": 0, "inUse": in_use}
    })
    .to_string()
}

async fn run(moto: &Moto, policy: String) -> (Report, Vec<Value>) {
    let config = Config::from_env(|name| match name {
        "ECR_GC_POLICY" => Some(policy.clone()),
        "ECR_GC_DRY_RUN" => Some("false".into()),
        // The tests read which images were protected and deleted.
        "ECR_GC_REPORT_DETAIL" => Some("images".into()),
        _ => None,
    });
    let log = Collected::default();
    let event = json!({"repositories": ["shop"]});
    let response = lambda::handle(&moto.connector().await, &config, &event, Utc::now(), &log)
        .await
        .unwrap();
    (report_of(response), log.lines())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_protects_what_it_names_and_nothing_else() {
    let moto = Moto::start();
    let by_tag = seed(&moto).await;
    let tag_of: BTreeMap<&str, &str> = by_tag
        .iter()
        .map(|(t, d)| (d.as_str(), t.as_str()))
        .collect();

    // The rule keeps one image, the newest: pushed a second after the
    // others, so that every one of v0..v8 is expired by the rules alone and
    // only a protection can keep it.
    let client = moto.ecr();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let newest = push(&client, "shop", "in-use-newest", Some("newest")).await;
    let mut tag_of = tag_of;
    tag_of.insert(newest.as_str(), "newest");

    let sources = json!({
        "ecs": {"taskDefinitionRevisions": 1},
        "lambda": {"enabled": true},
        "external": {"ssmParameter": "/ecr-gc/in-use", "s3Object": "s3://in-use/list.json"}
    });
    let (report, lines) = run(&moto, policy(sources)).await;
    let repo = &report.repositories[0];
    assert!(
        repo.held.is_none(),
        "{:?} {:?}",
        repo.held,
        report.in_use_sources
    );

    // Written out: v1..v3 and v5..v7 are in use; v0 nothing uses, v4 is an
    // older revision than the one protected, and v8 is referenced only in
    // another account's registry.
    let protected: BTreeMap<&str, &str> = repo
        .protected
        .iter()
        .map(|p| {
            (
                tag_of[p.image_digest.as_str()],
                p.protection.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        protected.keys().copied().collect::<BTreeSet<_>>(),
        ["v1", "v2", "v3", "v5", "v6", "v7"].into()
    );
    let deleted: BTreeSet<&str> = repo
        .deleted
        .iter()
        .map(|p| tag_of[p.image_digest.as_str()])
        .collect();
    assert_eq!(deleted, ["v0", "v4", "v8"].into());

    // Each protection names its workload.
    let workloads = [
        ("v1", "ecs:prod/task/"),
        ("v2", "ecs:prod/web"),
        ("v3", "ecs:task-definition/old:2"),
        ("v5", "lambda:resize:"),
        ("v6", "external:ssm:/ecr-gc/in-use"),
        ("v7", "external:s3://in-use/list.json"),
    ];
    for (tag, workload) in workloads {
        assert!(
            protected[tag].contains(workload),
            "{tag}: {}",
            protected[tag]
        );
    }
    let mut remaining: Vec<&str> = digests(&client, "shop")
        .await
        .iter()
        .map(|d| tag_of[d.as_str()])
        .collect();
    remaining.sort();
    assert_eq!(remaining, ["newest", "v1", "v2", "v3", "v5", "v6", "v7"]);

    let sources: Vec<(&str, bool)> = report
        .in_use_sources
        .iter()
        .map(|s| (s.source.as_str(), s.error.is_none()))
        .collect();
    assert_eq!(
        sources,
        [
            ("ecs", true),
            ("lambda", true),
            ("events", true),
            ("scheduler", true),
            ("batch", true),
            ("codebuild", true),
            ("stepfunctions", true),
            ("apprunner", true),
            ("sagemaker", true),
            ("eks", true),
            ("ssm:/ecr-gc/in-use", true),
            ("s3://in-use/list.json", true)
        ]
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "image kept by a protection")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_stops_every_deletion_and_is_named() {
    let moto = Moto::start();
    let by_tag = seed(&moto).await;
    let sources = json!({"external": {"ssmParameter": "/ecr-gc/missing"}});
    let (report, lines) = run(&moto, policy(sources)).await;

    let failed: Vec<&str> = report
        .in_use_sources
        .iter()
        .filter(|s| s.error.is_some())
        .map(|s| s.source.as_str())
        .collect();
    assert_eq!(failed, ["ssm:/ecr-gc/missing"]);
    let error = report
        .in_use_sources
        .iter()
        .find_map(|s| s.error.as_deref())
        .unwrap();
    assert!(error.contains("ParameterNotFound"), "{error}");

    let repo = &report.repositories[0];
    assert!(!repo.planned.is_empty());
    assert!(repo.deleted.is_empty());
    assert!(
        repo.held
            .as_deref()
            .unwrap()
            .contains("ssm:/ecr-gc/missing")
    );
    assert_eq!(report.api_calls.batch_delete_image, 0);
    assert_eq!(digests(&moto.ecr(), "shop").await.len(), by_tag.len());
    assert!(report.has_failures());
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "in-use inventory incomplete"
                && l["error"].as_str().unwrap().contains("ssm:/ecr-gc/missing"))
    );
}

/// The publisher script of deploy/kubernetes/in-use-cronjob.yaml, run with
/// bash as the CronJob runs it, with `curl` answering a real-shaped pod list
/// and `aws` keeping what it would upload: the list it writes is one that
/// ecr-gc accepts, with every image and resolved imageID in it once.
#[test]
fn the_cronjobs_publisher_writes_a_list_ecr_gc_accepts() {
    let yaml = std::fs::read_to_string(format!(
        "{}/deploy/kubernetes/in-use-cronjob.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let script: String = yaml
        .lines()
        .skip_while(|l| l.trim() != "publish.sh: |")
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    let dir = std::env::temp_dir().join(format!("ecr-gc-publisher-{}", std::process::id()));
    let bin = dir.join("bin");
    let sa = dir.join("serviceaccount");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), "the-token").unwrap();
    std::fs::write(sa.join("ca.crt"), "").unwrap();
    let host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    let digest = format!("sha256:{}", "ab".repeat(32));
    // The API server's compact JSON: a running pod with an init container,
    // a pending one whose imageID is still empty.
    let pods = json!({
        "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
        "items": [
            {"metadata": {"name": "web-1", "namespace": "prod"},
             "spec": {"initContainers": [{"name": "migrate", "image": format!("{host}/web:v2")}],
                      "containers": [{"name": "web", "image": format!("{host}/web:v2")},
                                     {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"}]},
             "status": {"initContainerStatuses": [{"name": "migrate", "image": format!("{host}/web:v2"), "imageID": format!("{host}/web@{digest}")}],
                        "containerStatuses": [{"name": "web", "image": format!("{host}/web:v2"), "imageID": format!("{host}/web@{digest}")},
                                              {"name": "proxy", "image": "docker.io/envoyproxy/envoy:v1.31.0", "imageID": "docker.io/envoyproxy/envoy@sha256:0123"}]}},
            {"metadata": {"name": "worker-1", "namespace": "prod"},
             "spec": {"containers": [{"name": "worker", "image": format!("{host}/worker:v9")}]},
             "status": {"containerStatuses": [{"name": "worker", "image": format!("{host}/worker:v9"), "imageID": ""}]}}
        ]
    });
    std::fs::write(dir.join("pods.json"), pods.to_string()).unwrap();
    // The script as the CronJob runs it, with the fakes first on the PATH.
    let publish = || {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("SERVICE_ACCOUNT_DIR", &sa)
            .env("KUBERNETES_SERVICE_HOST", "10.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", "443")
            .env("BUCKET", "lists")
            .env("KEY", "in-use/prod.json")
            .output()
            .unwrap()
    };
    let fake = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    };
    fake(
        "curl",
        &format!(
            r#"for a in "$@"; do [ "$a" = "Authorization: Bearer the-token" ] && ok=1; done; [ -n "$ok" ] || exit 22; cat {}"#,
            dir.join("pods.json").display()
        ),
    );
    fake(
        "aws",
        &format!(
            r#"[ "$1 $2 $4" = "s3 cp s3://lists/in-use/prod.json" ] || exit 1; cp "$3" {}"#,
            dir.join("uploaded.json").display()
        ),
    );
    let out = publish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uploaded = std::fs::read_to_string(dir.join("uploaded.json")).unwrap();
    let uses = ecr_gc::inventory::external::parse(
        &uploaded,
        "GetObject",
        "external:s3://lists/in-use/prod.json",
    )
    .unwrap_or_else(|e| panic!("{e}: {uploaded}"));
    let mut references: Vec<String> = serde_json::from_str(&uploaded).unwrap();
    references.sort();
    assert_eq!(uses.len(), references.len());
    let mut want = vec![
        format!("{host}/web:v2"),
        format!("{host}/web@{digest}"),
        format!("{host}/worker:v9"),
        "docker.io/envoyproxy/envoy:v1.31.0".to_owned(),
        "docker.io/envoyproxy/envoy@sha256:0123".to_owned(),
        "envoyproxy/envoy:v1.31.0".to_owned(),
    ];
    want.sort();
    assert_eq!(references, want);

    // No pods at all: an empty list, still valid JSON.
    std::fs::write(dir.join("pods.json"), r#"{"kind":"PodList","items":[]}"#).unwrap();
    let out = publish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("uploaded.json")).unwrap(),
        "[]\n"
    );
}

/// The defaults, with more than one of each: of a family's seven
/// task-definition revisions the newest five are in use (rollbacks), the
/// oldest two are not; every published version of an image function is in
/// use, whichever alias points where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sources_protect_five_revisions_and_every_lambda_version() {
    let moto = Moto::start();
    let client = moto.ecr();
    create_repository(&client, "revs").await;
    let mut by_tag = BTreeMap::new();
    for tag in ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "m1", "m2", "m3"] {
        by_tag.insert(push(&client, "revs", tag, Some(tag)).await, tag);
    }
    // The newest, a second later, which the rule keeps on its own.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    by_tag.insert(
        push(&client, "revs", "newest", Some("newest")).await,
        "newest",
    );
    let script = format!("{}/tests/it/seed_versions.py", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args([&script, &moto.endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let versions: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        versions,
        ["$LATEST", "1", "2", "3"],
        "the seeding is as described"
    );

    // The defaults: ECS with 5 revisions, Lambda on.
    let config = Config::from_env(|name| match name {
        "ECR_GC_POLICY" => Some(policy(json!({}))),
        "ECR_GC_DRY_RUN" => Some("false".into()),
        // The tests read which images were protected and deleted.
        "ECR_GC_REPORT_DETAIL" => Some("images".into()),
        _ => None,
    });
    let event = json!({"repositories": ["revs"]});
    let report = report_of(
        lambda::handle(
            &moto.connector().await,
            &config,
            &event,
            Utc::now(),
            &Collected::default(),
        )
        .await
        .unwrap(),
    );
    let repo = &report.repositories[0];
    let tags = |images: &[ecr_gc::run::report::PlannedImage]| -> BTreeSet<&str> {
        images
            .iter()
            .map(|p| by_tag[p.image_digest.as_str()])
            .collect()
    };
    assert_eq!(tags(&repo.deleted), ["r0", "r1"].into());
    assert_eq!(
        tags(&repo.protected),
        ["r2", "r3", "r4", "r5", "r6", "m1", "m2", "m3"].into()
    );
    let protection = |tag: &str| {
        repo.protected
            .iter()
            .find(|p| by_tag[p.image_digest.as_str()] == tag)
            .and_then(|p| p.protection.clone())
            .unwrap()
    };
    assert_eq!(protection("r6"), "in use by ecs:task-definition/revs:7");
    assert_eq!(protection("r2"), "in use by ecs:task-definition/revs:3");
    assert_eq!(protection("m1"), "in use by lambda:multi:1");
    assert!(
        protection("m3").contains("lambda:multi:3"),
        "{}",
        protection("m3")
    );
    let mut left: Vec<&str> = digests(&client, "revs")
        .await
        .iter()
        .map(|d| by_tag[d.as_str()])
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["m1", "m2", "m3", "newest", "r2", "r3", "r4", "r5", "r6"]
    );
}
