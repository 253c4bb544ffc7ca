//! The SageMaker source through the binary against `moto_server`: a
//! model's primary container and an inference pipeline's containers are in
//! use, an endpoint names its configuration's models, and an unreadable
//! SageMaker fails closed with its remedy. Training jobs in progress and
//! the images an endpoint resolved are in `mocks.rs` (moto finishes every
//! training job at once and reports no deployed images).

use serde_json::{Value, json};

use crate::support::{
    Moto, Proxy, assert_failed_closed, cli_run, digests, keep_newest_reading, protections,
    push_tags, python, remaining_tags,
};

const SEED: &str = r#"
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
sagemaker = boto3.client("sagemaker", **kw)
image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml:"
role = "arn:aws:iam::123456789012:role/sagemaker"
sagemaker.create_model(ModelName="reco-model", PrimaryContainer={"Image": image + "v1"},
                       ExecutionRoleArn=role)
sagemaker.create_model(ModelName="pipeline", ExecutionRoleArn=role,
                       Containers=[{"Image": image + "v2"}, {"Image": image + "v3"}])
sagemaker.create_endpoint_config(EndpointConfigName="reco-config", ProductionVariants=[{
    "VariantName": "main", "ModelName": "reco-model", "InitialInstanceCount": 1,
    "InstanceType": "ml.m5.large"}])
sagemaker.create_endpoint(EndpointName="reco", EndpointConfigName="reco-config")
"#;

/// Keeps the newest image by count; only SageMaker protects.
fn policy() -> Value {
    keep_newest_reading(&["sagemaker"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_endpoints_keep_their_images() {
    let moto = Moto::start();
    let client = moto.ecr();
    let tag_of = push_tags(&client, "ml", &["v0", "v1", "v2", "v3"]).await;
    python(&["-c", SEED, &moto.endpoint]);

    // Unreadable first: nothing is deleted, and the report says what to do.
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({"DescribeEndpointConfig": ["denied*"]}),
    );
    let (code, report) = cli_run(&proxy.endpoint, &policy(), "ml");
    assert_failed_closed(
        code,
        &report,
        &[
            "sagemaker:endpoint/reco",
            "DescribeEndpointConfig",
            "AccessDenied",
            "EnableSageMakerInUse",
            "settings.inUse.sagemaker.enabled",
        ],
    );
    assert_eq!(digests(&client, "ml").await.len(), 5);

    let (code, report) = cli_run(&moto.endpoint, &policy(), "ml");
    assert_eq!(code, Some(0), "{report}");
    let protection = protections(&report, &tag_of);
    let named =
        |tag: &str, workload: &str| protection.get(tag).is_some_and(|p| p.contains(workload));
    assert!(named("v1", "sagemaker:model/reco-model"), "{protection:?}");
    assert!(named("v1", "sagemaker:endpoint/reco"), "{protection:?}");
    assert!(named("v2", "sagemaker:model/pipeline"), "{protection:?}");
    assert!(named("v3", "sagemaker:model/pipeline"), "{protection:?}");
    assert_eq!(report["inUseSources"][0]["source"], "sagemaker");
    assert_eq!(
        remaining_tags(&client, "ml", &tag_of).await,
        ["newest", "v1", "v2", "v3"]
    );
}
