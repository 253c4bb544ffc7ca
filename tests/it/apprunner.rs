//! The App Runner source through the binary against the emulator
//! (`scripts/emulator.py` serves App Runner, which moto lacks): a service's
//! image is in use on any page of the listing, a deleted service's is not,
//! and an unreadable App Runner fails closed with its remedy.

use serde_json::{Value, json};

use crate::support::{
    Moto, Proxy, assert_failed_closed, cli_run, digests, keep_newest_reading, protections,
    push_tags, python, remaining_tags,
};

/// Twenty services on a public image fill App Runner's first page; `web-app`,
/// on the second, runs tag v1; `gone` ran v2 and was deleted.
const SEED: &str = r#"
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
apprunner = boto3.client("apprunner", **kw)
def create(name, image, kind="ECR"):
    return apprunner.create_service(ServiceName=name, SourceConfiguration={"ImageRepository": {
        "ImageIdentifier": image, "ImageRepositoryType": kind}})["Service"]["ServiceArn"]
for i in range(20):
    create(f"filler-{i:02}", "public.ecr.aws/nginx/nginx:latest", "ECR_PUBLIC")
create("web-app", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1")
apprunner.delete_service(ServiceArn=create("gone", "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v2"))
"#;

/// Keeps the newest image by count; only App Runner protects.
fn policy() -> Value {
    keep_newest_reading(&["apprunner"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_image_is_in_use_and_a_deleted_services_is_not() {
    let moto = Moto::start();
    let client = moto.ecr();
    let tag_of = push_tags(&client, "app", &["v1", "v2"]).await;
    python(&["-c", SEED, &moto.endpoint]);

    // Unreadable first: nothing is deleted, and the report says what to do.
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({"apprunner:DescribeService": ["denied*"]}),
    );
    let (code, report) = cli_run(&proxy.endpoint, &policy(), "app");
    assert_failed_closed(
        code,
        &report,
        &[
            "apprunner:service/filler-00",
            "DescribeService",
            "AccessDenied",
            "apprunner:DescribeService",
            "settings.inUse.apprunner.enabled",
        ],
    );
    assert_eq!(digests(&client, "app").await.len(), 3);

    let (code, report) = cli_run(&moto.endpoint, &policy(), "app");
    assert_eq!(code, Some(0), "{report}");
    let protected = protections(&report, &tag_of);
    assert_eq!(
        protected.keys().collect::<Vec<_>>(),
        [&"v1"],
        "{protected:?}"
    );
    assert!(protected["v1"].contains("apprunner:service/web-app"));
    assert_eq!(report["inUseSources"][0]["source"], "apprunner");
    // The fillers' public image and web-app's: the deleted service's is not one.
    assert_eq!(report["inUseSources"][0]["references"], 21);
    assert_eq!(
        remaining_tags(&client, "app", &tag_of).await,
        ["newest", "v1"]
    );
}
