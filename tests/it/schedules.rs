//! The schedule sources through the binary against `moto_server`:
//! EventBridge rules and EventBridge Scheduler schedules protect the pinned
//! task-definition revisions they would start (enabled or not, templated
//! or universal targets, default and custom buses and groups), name them,
//! fail closed when they cannot be read, and can be switched off.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Moto, Proxy, cli_run, create_repository, digests, push};

/// Pushes jobs v0..v6, then `newest` a second later, and seeds the rules
/// and schedules (see seed_schedules.py). Returns the tag of each digest.
async fn seed(moto: &Moto) -> BTreeMap<String, String> {
    let client = moto.ecr();
    create_repository(&client, "jobs").await;
    let mut tag_of = BTreeMap::new();
    for i in 0..7 {
        let tag = format!("v{i}");
        let digest = push(&client, "jobs", &format!("scheduled-{i}"), Some(&tag)).await;
        tag_of.insert(digest, tag);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let newest = push(&client, "jobs", "scheduled-newest", Some("newest")).await;
    tag_of.insert(newest, "newest".into());
    let script = format!("{}/tests/it/seed_schedules.py", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args([&script, &moto.endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag_of
}

/// Keeps the newest image by count; only a protection keeps another. The
/// other account sources are off, so that only rules and schedules protect.
fn policy(in_use: Value) -> Value {
    let off = json!({"enabled": false});
    let mut sources = json!({"ecs": off, "lambda": off, "batch": off, "codebuild": off});
    if let (Some(all), Value::Object(more)) = (sources.as_object_mut(), in_use) {
        all.extend(more);
    }
    json!({
        "rules": [{
            "rulePriority": 1,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}
        }],
        "settings": {"gracePeriodMinutes": 0, "inUse": sources}
    })
}

/// The tags of a report list's images.
fn tags<'a>(report: &'a Value, list: &str, tag_of: &'a BTreeMap<String, String>) -> Vec<&'a str> {
    let mut tags: Vec<&str> = report["repositories"][0][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| tag_of[i["imageDigest"].as_str().unwrap()].as_str())
        .collect();
    tags.sort();
    tags
}

async fn remaining(moto: &Moto, tag_of: &BTreeMap<String, String>) -> BTreeSet<String> {
    digests(&moto.ecr(), "jobs")
        .await
        .iter()
        .map(|d| tag_of[d].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_schedules_protect_the_revisions_they_start() {
    let moto = Moto::start();
    let tag_of = seed(&moto).await;
    let (code, report) = cli_run(&moto.endpoint, &policy(json!({})), "jobs");
    assert_eq!(code, Some(0), "{report}");

    // Written out: the pinned revisions are protected, the newest revisions
    // that nothing schedules (v3, v6) and v0 are not.
    assert_eq!(
        tags(&report, "protected", &tag_of),
        ["v1", "v2", "v4", "v5"]
    );
    assert_eq!(tags(&report, "deleted", &tag_of), ["v0", "v3", "v6"]);
    let protections: BTreeMap<&str, &str> = report["repositories"][0]["protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                tag_of[p["imageDigest"].as_str().unwrap()].as_str(),
                p["protection"].as_str().unwrap(),
            )
        })
        .collect();
    for (tag, workload) in [
        ("v1", "events:rule/nightly-report"),
        ("v2", "events:rule/ops/cleanup"),
        ("v4", "scheduler:default/nightly"),
        ("v5", "scheduler:ops/weekly"),
    ] {
        assert!(
            protections[tag].contains(workload),
            "{tag}: {}",
            protections[tag]
        );
    }
    let sources: Vec<(&str, u64, bool)> = report["inUseSources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap(),
                s["references"].as_u64().unwrap(),
                s.get("error").is_none(),
            )
        })
        .collect();
    assert_eq!(sources, [("events", 2, true), ("scheduler", 2, true)]);
    assert_eq!(
        remaining(&moto, &tag_of).await,
        ["newest", "v1", "v2", "v4", "v5"].map(String::from).into()
    );
}

/// A rule's targets or a schedule that cannot be read stops every
/// deletion, and the report says which source and how to grant the read or
/// switch it off; switched off, the source is not read at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_schedule_source_holds_the_registry_until_switched_off() {
    let moto = Moto::start();
    let tag_of = seed(&moto).await;
    for (operation, source, switch, unprotected) in [
        (
            "ListTargetsByRule",
            "events",
            "settings.inUse.events.enabled",
            ["v1", "v2"],
        ),
        (
            "GetSchedule",
            "scheduler",
            "settings.inUse.scheduler.enabled",
            ["v4", "v5"],
        ),
    ] {
        let present = remaining(&moto, &tag_of).await;
        let proxy = Proxy::start(&moto.endpoint, json!({ operation: ["denied*"] }));
        let (code, report) = cli_run(&proxy.endpoint, &policy(json!({})), "jobs");
        assert_eq!(code, Some(1), "{report}");
        let failed: Vec<(&str, &str)> = report["inUseSources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| Some((s["source"].as_str()?, s["error"].as_str()?)))
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, source);
        for part in [operation, "AccessDenied", switch] {
            assert!(failed[0].1.contains(part), "{part}: {}", failed[0].1);
        }
        let repo = &report["repositories"][0];
        assert!(repo["held"].as_str().unwrap().contains(source), "{repo}");
        assert_eq!(repo["deleted"].as_array().map_or(0, Vec::len), 0);
        assert_eq!(remaining(&moto, &tag_of).await, present);

        // Switched off, it is not read, and the run goes on without it: what
        // only this source protected is deleted.
        let off = policy(json!({ source: {"enabled": false} }));
        let before = proxy.counts();
        let (code, report) = cli_run(&proxy.endpoint, &off, "jobs");
        assert_eq!(code, Some(0), "{report}");
        let after = proxy.counts();
        assert_eq!(before.get(operation), after.get(operation), "{operation}");
        let sources: Vec<&str> = report["inUseSources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["source"].as_str().unwrap())
            .collect();
        assert!(!sources.contains(&source), "{sources:?}");
        let deleted = tags(&report, "deleted", &tag_of);
        for tag in unprotected {
            assert!(deleted.contains(&tag), "{tag}: {deleted:?}");
        }
    }
}
