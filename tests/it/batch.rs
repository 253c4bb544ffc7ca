//! The AWS Batch source through the binary against `moto_server`: ACTIVE
//! job definitions protect every image they name (an EKS job's init
//! containers too), a deregistered revision does not, and an unreadable
//! Batch fails closed with its remedy. Unfinished jobs, which moto would
//! try to run in Docker, are covered in `mocks`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::support::{
    Moto, Proxy, assert_failed_closed, cli_run, digests, keep_newest_reading, protections,
    push_tags, python,
};

const SEED: &str = r#"
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
image = lambda tag: f"123456789012.dkr.ecr.us-east-1.amazonaws.com/etl:{tag}"
batch = boto3.client("batch", **kw)
container = lambda tag: {"image": image(tag), "vcpus": 1, "memory": 128}
batch.register_job_definition(jobDefinitionName="etl", type="container", containerProperties=container("v1"))
batch.register_job_definition(jobDefinitionName="etl", type="container", containerProperties=container("v2"))
batch.deregister_job_definition(jobDefinition="etl:1")
batch.register_job_definition(jobDefinitionName="train", type="container", eksProperties={"podProperties": {
    "containers": [{"name": "main", "image": image("v3")}],
    "initContainers": [{"name": "fetch", "image": image("v4")}]}})
"#;

/// Pushes etl v0..v4, then `newest` a second later, and registers the job
/// definitions. Returns the tag of each digest.
async fn seed(moto: &Moto) -> BTreeMap<String, String> {
    let tag_of = push_tags(&moto.ecr(), "etl", &["v0", "v1", "v2", "v3", "v4"]).await;
    python(&["-c", SEED, &moto.endpoint]);
    tag_of
}

/// Keeps the newest image by count; only Batch protects.
fn policy() -> Value {
    keep_newest_reading(&["batch"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_job_definitions_protect_their_images() {
    let moto = Moto::start();
    let tag_of = seed(&moto).await;

    // Unreadable first: nothing is deleted, and the report says what to do.
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({"DescribeJobDefinitions": ["denied*"]}),
    );
    let (code, report) = cli_run(&proxy.endpoint, &policy(), "etl");
    assert_failed_closed(
        code,
        &report,
        &[
            "DescribeJobDefinitions",
            "AccessDenied",
            "settings.inUse.batch.enabled",
        ],
    );
    assert_eq!(digests(&moto.ecr(), "etl").await.len(), tag_of.len());

    let (code, report) = cli_run(&moto.endpoint, &policy(), "etl");
    assert_eq!(code, Some(0), "{report}");
    let protected = protections(&report, &tag_of);
    assert_eq!(
        protected.keys().copied().collect::<Vec<_>>(),
        ["v2", "v3", "v4"]
    );
    for (tag, workload) in [
        ("v2", "batch:job-definition/etl:2"),
        ("v3", "batch:job-definition/train:1"),
        ("v4", "batch:job-definition/train:1"),
    ] {
        assert!(
            protected[tag].contains(workload),
            "{tag}: {}",
            protected[tag]
        );
    }
    let found = digests(&moto.ecr(), "etl").await;
    let remaining: BTreeSet<&str> = found.iter().map(|d| tag_of[d].as_str()).collect();
    assert_eq!(remaining, ["newest", "v2", "v3", "v4"].into());
    assert_eq!(report["inUseSources"][0]["source"], "batch");
    assert_eq!(report["inUseSources"][0]["references"], 3);
}
