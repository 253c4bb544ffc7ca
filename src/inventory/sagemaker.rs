//! The SageMaker source: the images SageMaker hosts and trains with.
//!
//! * Every model: its primary container and each container of an inference
//!   pipeline, by image or through the model package it names. Any
//!   endpoint configuration or transform job may deploy a model, so every
//!   model counts. Workloads are named `sagemaker:model/<name>`.
//! * Every endpoint: the images its variants (shadow variants too) run, as
//!   SageMaker resolved them (by digest), and the images of its endpoint
//!   configuration's models, which it starts when it scales out. Workloads
//!   are named `sagemaker:endpoint/<name>`.
//! * Every training job in progress: its training image. Workloads are
//!   named `sagemaker:training-job/<name>`.
//!
//! A model, model package or endpoint configuration deleted between the
//! listing and its description starts nothing, so it protects nothing;
//! any other failure fails the source.

use std::collections::HashMap;

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::error::ProvideErrorMetadata;
use aws_sdk_sagemaker::types::{ContainerDefinition, TrainingJobStatus};

use super::{InUse, in_workload, use_of};
use crate::aws::{CallError, paginate};

/// The largest page SageMaker's list calls return.
const PAGE: i32 = 100;

/// Collects every SageMaker reference in the account and region.
pub async fn read(client: &Client) -> Result<Vec<InUse>, CallError> {
    let models = models(client).await?;
    let mut uses = Vec::new();
    for (name, images) in &models {
        let workload = format!("sagemaker:model/{name}");
        uses.extend(images.iter().filter_map(|i| use_of(i, workload.clone())));
    }
    uses.extend(endpoints(client, &models).await?);
    uses.extend(training_jobs(client).await?);
    Ok(uses)
}

/// SageMaker's answer for a resource that does not exist: a
/// ValidationException that says it could not find it.
fn is_missing<E: ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("ValidationException")
        && error
            .message()
            .is_some_and(|m| m.contains("Could not find") || m.contains("does not exist"))
}

/// Every model's images, by model name; a model deleted since the listing
/// is left out.
async fn models(client: &Client) -> Result<Vec<(String, Vec<String>)>, CallError> {
    const DESCRIBE: &str = "DescribeModel";
    let names = paginate(
        "ListModels",
        |token| {
            client
                .list_models()
                .max_results(PAGE)
                .set_next_token(token)
                .send()
        },
        |page| {
            let names = page.models().iter().filter_map(|m| m.model_name());
            Ok((
                names.map(str::to_owned).collect(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await?;
    let mut packages = HashMap::new();
    let mut models = Vec::new();
    for name in names {
        let workload = format!("sagemaker:model/{name}");
        let model = match client.describe_model().model_name(&name).send().await {
            Ok(model) => model,
            Err(e) if e.as_service_error().is_some_and(is_missing) => continue,
            Err(e) => return Err(in_workload(CallError::from_sdk(DESCRIBE, &e), &workload)),
        };
        let containers = model
            .primary_container()
            .into_iter()
            .chain(model.containers());
        let mut images = Vec::new();
        for container in containers {
            images.extend(container_images(client, container, &mut packages, &workload).await?);
        }
        models.push((name, images));
    }
    Ok(models)
}

/// A model container's images: its own, or its model package's (each
/// package described once per run).
async fn container_images(
    client: &Client,
    container: &ContainerDefinition,
    packages: &mut HashMap<String, Vec<String>>,
    workload: &str,
) -> Result<Vec<String>, CallError> {
    const DESCRIBE: &str = "DescribeModelPackage";
    if let Some(image) = container.image() {
        return Ok(vec![image.to_owned()]);
    }
    let Some(package) = container.model_package_name() else {
        return Ok(Vec::new());
    };
    if let Some(images) = packages.get(package) {
        return Ok(images.clone());
    }
    let images = match client
        .describe_model_package()
        .model_package_name(package)
        .send()
        .await
    {
        Ok(out) => out
            .inference_specification()
            .map(|spec| spec.containers().iter().filter_map(|c| c.image()))
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect(),
        Err(e) if e.as_service_error().is_some_and(is_missing) => Vec::new(),
        Err(e) => return Err(in_workload(CallError::from_sdk(DESCRIBE, &e), workload)),
    };
    packages.insert(package.to_owned(), images.clone());
    Ok(images)
}

/// Every endpoint's deployed images and its configuration's models'.
async fn endpoints(
    client: &Client,
    models: &[(String, Vec<String>)],
) -> Result<Vec<InUse>, CallError> {
    const DESCRIBE: &str = "DescribeEndpoint";
    const CONFIG: &str = "DescribeEndpointConfig";
    let names = paginate(
        "ListEndpoints",
        |token| {
            client
                .list_endpoints()
                .max_results(PAGE)
                .set_next_token(token)
                .send()
        },
        |page| {
            let names = page.endpoints().iter().filter_map(|e| e.endpoint_name());
            Ok((
                names.map(str::to_owned).collect(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await?;
    let images_of: HashMap<&str, &Vec<String>> =
        models.iter().map(|(n, i)| (n.as_str(), i)).collect();
    let mut uses = Vec::new();
    for name in names {
        let workload = format!("sagemaker:endpoint/{name}");
        let endpoint = match client.describe_endpoint().endpoint_name(&name).send().await {
            Ok(endpoint) => endpoint,
            Err(e) if e.as_service_error().is_some_and(is_missing) => continue,
            Err(e) => return Err(in_workload(CallError::from_sdk(DESCRIBE, &e), &workload)),
        };
        let variants = endpoint
            .production_variants()
            .iter()
            .chain(endpoint.shadow_production_variants());
        for image in variants.flat_map(|v| v.deployed_images()) {
            let reference = image.resolved_image().or(image.specified_image());
            uses.extend(reference.and_then(|r| use_of(r, workload.clone())));
        }
        let Some(config) = endpoint.endpoint_config_name() else {
            continue;
        };
        let config = match client
            .describe_endpoint_config()
            .endpoint_config_name(config)
            .send()
            .await
        {
            Ok(config) => config,
            // Its deployed images above are what it runs.
            Err(e) if e.as_service_error().is_some_and(is_missing) => continue,
            Err(e) => return Err(in_workload(CallError::from_sdk(CONFIG, &e), &workload)),
        };
        let variants = config
            .production_variants()
            .iter()
            .chain(config.shadow_production_variants());
        for model in variants.filter_map(|v| v.model_name()) {
            for image in images_of.get(model).into_iter().flat_map(|i| i.iter()) {
                uses.extend(use_of(image, workload.clone()));
            }
        }
    }
    Ok(uses)
}

/// Every training job in progress: its training image.
async fn training_jobs(client: &Client) -> Result<Vec<InUse>, CallError> {
    const DESCRIBE: &str = "DescribeTrainingJob";
    let names = paginate(
        "ListTrainingJobs",
        |token| {
            client
                .list_training_jobs()
                .status_equals(TrainingJobStatus::InProgress)
                .max_results(PAGE)
                .set_next_token(token)
                .send()
        },
        |page| {
            let jobs = page.training_job_summaries().iter();
            Ok((
                jobs.filter_map(|j| j.training_job_name())
                    .map(str::to_owned)
                    .collect(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await?;
    let mut uses = Vec::new();
    for name in names {
        let workload = format!("sagemaker:training-job/{name}");
        let job = match client
            .describe_training_job()
            .training_job_name(&name)
            .send()
            .await
        {
            Ok(job) => job,
            Err(e) if e.as_service_error().is_some_and(is_missing) => continue,
            Err(e) => return Err(in_workload(CallError::from_sdk(DESCRIBE, &e), &workload)),
        };
        let image = job
            .algorithm_specification()
            .and_then(|a| a.training_image());
        uses.extend(image.and_then(|i| use_of(i, workload)));
    }
    Ok(uses)
}
