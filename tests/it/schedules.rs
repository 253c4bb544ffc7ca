//! The schedule sources through the binary against `moto_server`:
//! EventBridge rules and EventBridge Scheduler schedules protect the pinned
//! task-definition revisions they would start (enabled or not, templated
//! or universal targets, default and custom buses and groups), name them,
//! fail closed when they cannot be read, and can be switched off.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::support::{
    Moto, Proxy, cli_run, digests, keep_newest_reading, protections, push_tags, python,
};

/// Pushes jobs v0..v6, then `newest` a second later, and seeds the rules
/// and schedules (see seed_schedules.py). Returns the tag of each digest.
async fn seed(moto: &Moto) -> BTreeMap<String, String> {
    let tags = ["v0", "v1", "v2", "v3", "v4", "v5", "v6"];
    let tag_of = push_tags(&moto.ecr(), "jobs", &tags).await;
    let script = format!("{}/tests/it/seed_schedules.py", env!("CARGO_MANIFEST_DIR"));
    python(&[&script, &moto.endpoint]);
    tag_of
}

/// The sources under test; the other account sources are switched off,
/// so that only rules and schedules protect.
const RULES_AND_SCHEDULES: [&str; 2] = ["events", "scheduler"];

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
    let (code, report) = cli_run(
        &moto.endpoint,
        &keep_newest_reading(&RULES_AND_SCHEDULES),
        "jobs",
    );
    assert_eq!(code, Some(0), "{report}");

    // Written out: the pinned revisions are protected, the newest revisions
    // that nothing schedules (v3, v6) and v0 are not.
    assert_eq!(
        tags(&report, "protected", &tag_of),
        ["v1", "v2", "v4", "v5"]
    );
    assert_eq!(tags(&report, "deleted", &tag_of), ["v0", "v3", "v6"]);
    let protections = protections(&report, &tag_of);
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
        let (code, report) = cli_run(
            &proxy.endpoint,
            &keep_newest_reading(&RULES_AND_SCHEDULES),
            "jobs",
        );
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
        let others: Vec<&str> = RULES_AND_SCHEDULES
            .into_iter()
            .filter(|s| *s != source)
            .collect();
        let off = keep_newest_reading(&others);
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

const STATE_MACHINES: &str = r#"
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ecs = boto3.client("ecs", **kw)
arns = []
for tag in ("v1", "v2", "v3"):
    out = ecs.register_task_definition(family="flow", containerDefinitions=[
        {"name": "app", "image": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/flows:{tag}", "memory": 128}])
    arns.append(out["taskDefinition"]["taskDefinitionArn"])
run = lambda resource, td: {"Type": "Task", "Resource": resource, "End": True,
                            "Parameters": {"Cluster": "batch", "TaskDefinition": td}}
definition = {"StartAt": "Both", "States": {
    "Both": {"Type": "Parallel", "Next": "Each", "Branches": [
        {"StartAt": "Extract", "States": {"Extract": run("arn:aws:states:::ecs:runTask.sync", "flow:1")}}]},
    "Each": {"Type": "Map", "End": True, "ItemProcessor": {
        "StartAt": "Load", "States": {"Load": run("arn:aws:states:::ecs:runTask", arns[1])}}}}}
sfn = boto3.client("stepfunctions", **kw)
role = "arn:aws:iam::123456789012:role/states"
sfn.create_state_machine(name="etl", definition=json.dumps(definition), roleArn=role)
# Version 1 of "report" pins flow:3; its current definition, flow:1.
pin = lambda td: json.dumps({"StartAt": "Run", "States": {"Run": run("arn:aws:states:::ecs:runTask", td)}})
report = sfn.create_state_machine(name="report", definition=pin("flow:3"), roleArn=role,
                                  publish=True)["stateMachineArn"]
sfn.update_state_machine(stateMachineArn=report, definition=pin("flow:1"))
if len(sys.argv) > 2:
    dynamic = {"StartAt": "Run", "States": {"Run": {
        "Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "End": True,
        "Parameters": {"Cluster": "batch", "TaskDefinition.$": "$.taskDefinition"}}}}
    sfn.create_state_machine(name="dynamic", definition=json.dumps(dynamic), roleArn=role)
"#;

/// Step Functions: the runTask states of a state machine (in a Parallel
/// branch and a Map) protect the revisions they pin, by `family:revision`
/// or ARN; a state machine that picks its task definition at run time
/// holds the registry, saying which state and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_machines_protect_the_revisions_they_run() {
    let only_step_functions = keep_newest_reading(&["stepfunctions"]);
    for dynamic in [true, false] {
        let moto = Moto::start();
        let client = moto.ecr();
        let tag_of = push_tags(&client, "flows", &["v0", "v1", "v2", "v3"]).await;
        let mut seed = vec!["-c", STATE_MACHINES, &moto.endpoint];
        if dynamic {
            seed.push("dynamic");
        }
        python(&seed);

        let (code, report) = cli_run(&moto.endpoint, &only_step_functions, "flows");
        let source = &report["inUseSources"][0];
        assert_eq!(source["source"], "stepfunctions", "{report}");
        if dynamic {
            assert_eq!(code, Some(1), "{report}");
            let error = source["error"].as_str().unwrap();
            for part in [
                "states:stateMachine/dynamic",
                "state `Run` chooses its task definition at run time",
                "settings.inUse.stepfunctions.enabled",
            ] {
                assert!(error.contains(part), "{part}: {error}");
            }
            assert_eq!(digests(&client, "flows").await.len(), 5);
            continue;
        }
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(tags(&report, "protected", &tag_of), ["v1", "v2", "v3"]);
        assert_eq!(tags(&report, "deleted", &tag_of), ["v0"]);
        for protected in report["repositories"][0]["protected"].as_array().unwrap() {
            let why = protected["protection"].as_str().unwrap();
            let by = match tag_of[protected["imageDigest"].as_str().unwrap()].as_str() {
                // Only the published version runs flow:3.
                "v3" => "in use by states:stateMachine/report:1",
                _ => "states:stateMachine/etl",
            };
            assert!(why.contains(by), "{why}");
        }
    }
}
