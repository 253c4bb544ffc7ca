//! The CodeBuild source through the binary against `moto_server`: a
//! project's build image is in use, a curated image names nothing here,
//! and an unreadable CodeBuild fails closed with its remedy.

use serde_json::{Value, json};

use crate::support::{
    Moto, Proxy, assert_failed_closed, cli_run, digests, keep_newest_reading, protections,
    push_tags, python, remaining_tags,
};

const SEED: &str = r#"
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
codebuild = boto3.client("codebuild", **kw)
for name, image in (("ci", "123456789012.dkr.ecr.us-east-1.amazonaws.com/tools:v1"),
                    ("lint", "aws/codebuild/standard:7.0")):
    codebuild.create_project(
        name=name, source={"type": "S3", "location": "builds/source.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": image, "computeType": "BUILD_GENERAL1_SMALL"},
        serviceRole="arn:aws:iam::123456789012:role/codebuild")
"#;

/// Keeps the newest image by count; only CodeBuild protects.
fn policy() -> Value {
    keep_newest_reading(&["codebuild"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_build_image_is_in_use() {
    let moto = Moto::start();
    let client = moto.ecr();
    let tag_of = push_tags(&client, "tools", &["v0", "v1"]).await;
    python(&["-c", SEED, &moto.endpoint]);

    // Unreadable first: nothing is deleted, and the report says what to do.
    let proxy = Proxy::start(&moto.endpoint, json!({"BatchGetProjects": ["denied*"]}));
    let (code, report) = cli_run(&proxy.endpoint, &policy(), "tools");
    assert_failed_closed(
        code,
        &report,
        &[
            "BatchGetProjects",
            "AccessDenied",
            "settings.inUse.codebuild.enabled",
        ],
    );
    assert_eq!(digests(&client, "tools").await.len(), 3);

    let (code, report) = cli_run(&moto.endpoint, &policy(), "tools");
    assert_eq!(code, Some(0), "{report}");
    let protected = protections(&report, &tag_of);
    assert_eq!(
        protected.keys().collect::<Vec<_>>(),
        [&"v1"],
        "{protected:?}"
    );
    assert!(protected["v1"].contains("codebuild:project/ci"));
    assert_eq!(report["inUseSources"][0]["source"], "codebuild");
    // Both projects' images are references; only ci's is in this registry.
    assert_eq!(report["inUseSources"][0]["references"], 2);
    assert_eq!(
        remaining_tags(&client, "tools", &tag_of).await,
        ["newest", "v1"]
    );
}
