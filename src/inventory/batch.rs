//! The AWS Batch source: what Batch may start, and what it is running.
//!
//! * Every ACTIVE job definition: anything may submit a job to it at any
//!   time. Workloads are named `batch:job-definition/<name>:<revision>`.
//! * Every job not yet finished (SUBMITTED, PENDING, RUNNABLE, STARTING,
//!   RUNNING) in every job queue: a queued job pulls its image when it
//!   starts, even if its job definition was deregistered since. Workloads
//!   are named `batch:<queue>/job/<job id>`.
//!
//! An image counts wherever it appears: a container job's image, an EKS
//! job's containers and init containers, an ECS-properties job's task
//! containers, and each node range of a multi-node job.

use aws_sdk_batch::Client;
use aws_sdk_batch::types::{
    EcsProperties, EcsPropertiesDetail, EksProperties, EksPropertiesDetail, JobDefinition,
    JobDetail, JobStatus, NodeProperties,
};

use super::{InUse, use_of};
use crate::aws::{CallError, paginate};

/// Job statuses before a job has pulled its last image.
const UNFINISHED: [JobStatus; 5] = [
    JobStatus::Submitted,
    JobStatus::Pending,
    JobStatus::Runnable,
    JobStatus::Starting,
    JobStatus::Running,
];

/// DescribeJobs takes at most 100 job ids.
const DESCRIBE_JOBS_MAX: usize = 100;

/// Collects every Batch reference in the account and region.
pub async fn read(client: &Client) -> Result<Vec<InUse>, CallError> {
    let mut uses = Vec::new();
    for definition in job_definitions(client).await? {
        let workload = format!(
            "batch:job-definition/{}:{}",
            definition.job_definition_name().unwrap_or("?"),
            definition.revision().unwrap_or_default()
        );
        for image in definition_images(&definition) {
            uses.extend(use_of(image, workload.clone()));
        }
    }
    for queue in job_queues(client).await? {
        for job in unfinished_jobs(client, &queue).await? {
            let workload = format!("batch:{queue}/job/{}", job.job_id().unwrap_or("?"));
            for image in job_images(&job) {
                uses.extend(use_of(image, workload.clone()));
            }
        }
    }
    Ok(uses)
}

async fn job_definitions(client: &Client) -> Result<Vec<JobDefinition>, CallError> {
    paginate(
        "DescribeJobDefinitions",
        |token| {
            client
                .describe_job_definitions()
                .status("ACTIVE")
                .set_next_token(token)
                .send()
        },
        |page| {
            Ok((
                page.job_definitions().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await
}

async fn job_queues(client: &Client) -> Result<Vec<String>, CallError> {
    paginate(
        "DescribeJobQueues",
        |token| client.describe_job_queues().set_next_token(token).send(),
        |page| {
            let names = page
                .job_queues()
                .iter()
                .filter_map(|q| q.job_queue_name().map(str::to_owned))
                .collect();
            Ok((names, page.next_token().map(str::to_owned)))
        },
    )
    .await
}

/// The queue's jobs in every unfinished status, described a hundred at a
/// time.
async fn unfinished_jobs(client: &Client, queue: &str) -> Result<Vec<JobDetail>, CallError> {
    const DESCRIBE: &str = "DescribeJobs";
    let mut ids = Vec::new();
    for status in UNFINISHED {
        let listed = paginate(
            "ListJobs",
            |token| {
                client
                    .list_jobs()
                    .job_queue(queue)
                    .job_status(status.clone())
                    .set_next_token(token)
                    .send()
            },
            |page| {
                let ids = page
                    .job_summary_list()
                    .iter()
                    .filter_map(|j| j.job_id().map(str::to_owned))
                    .collect();
                Ok((ids, page.next_token().map(str::to_owned)))
            },
        )
        .await?;
        ids.extend(listed);
    }
    let mut jobs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(DESCRIBE_JOBS_MAX) {
        let out = client
            .describe_jobs()
            .set_jobs(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| CallError::from_sdk(DESCRIBE, &e))?;
        jobs.extend(out.jobs().iter().cloned());
    }
    Ok(jobs)
}

/// Every image a job definition names.
fn definition_images(definition: &JobDefinition) -> Vec<&str> {
    let mut images: Vec<&str> = definition
        .container_properties()
        .and_then(|c| c.image())
        .into_iter()
        .collect();
    images.extend(eks_images(definition.eks_properties()));
    images.extend(ecs_images(definition.ecs_properties()));
    images.extend(node_images(definition.node_properties()));
    images
}

/// Every image a job runs.
fn job_images(job: &JobDetail) -> Vec<&str> {
    let mut images: Vec<&str> = job
        .container()
        .and_then(|c| c.image())
        .into_iter()
        .collect();
    images.extend(eks_detail_images(job.eks_properties()));
    images.extend(ecs_detail_images(job.ecs_properties()));
    images.extend(node_images(job.node_properties()));
    images
}

fn node_images(nodes: Option<&NodeProperties>) -> Vec<&str> {
    let mut images = Vec::new();
    for range in nodes
        .map(NodeProperties::node_range_properties)
        .unwrap_or_default()
    {
        images.extend(range.container().and_then(|c| c.image()));
        images.extend(eks_images(range.eks_properties()));
        images.extend(ecs_images(range.ecs_properties()));
    }
    images
}

fn eks_images(eks: Option<&EksProperties>) -> impl Iterator<Item = &str> {
    eks.and_then(|e| e.pod_properties())
        .into_iter()
        .flat_map(|pod| pod.containers().iter().chain(pod.init_containers()))
        .filter_map(|c| c.image())
}

fn ecs_images(ecs: Option<&EcsProperties>) -> impl Iterator<Item = &str> {
    ecs.into_iter()
        .flat_map(|e| e.task_properties())
        .flat_map(|task| task.containers())
        .filter_map(|c| c.image())
}

fn eks_detail_images(eks: Option<&EksPropertiesDetail>) -> impl Iterator<Item = &str> {
    eks.and_then(|e| e.pod_properties())
        .into_iter()
        .flat_map(|pod| pod.containers().iter().chain(pod.init_containers()))
        .filter_map(|c| c.image())
}

fn ecs_detail_images(ecs: Option<&EcsPropertiesDetail>) -> impl Iterator<Item = &str> {
    ecs.into_iter()
        .flat_map(|e| e.task_properties())
        .flat_map(|task| task.containers())
        .filter_map(|c| c.image())
}

#[cfg(test)]
mod tests {
    use aws_sdk_batch::types::{
        ContainerProperties, EksContainer, EksPodProperties, NodeRangeProperty,
    };

    use super::*;

    #[test]
    fn every_place_a_definition_names_an_image_counts() {
        let eks = |image: &str| EksContainer::builder().image(image).build();
        let definition = JobDefinition::builder()
            .job_definition_name("etl")
            .revision(7)
            .container_properties(ContainerProperties::builder().image("container").build())
            .eks_properties(
                EksProperties::builder()
                    .pod_properties(
                        EksPodProperties::builder()
                            .containers(eks("pod"))
                            .init_containers(eks("init"))
                            .build(),
                    )
                    .build(),
            )
            .node_properties(
                NodeProperties::builder()
                    .node_range_properties(
                        NodeRangeProperty::builder()
                            .target_nodes("0:")
                            .container(ContainerProperties::builder().image("node").build())
                            .build(),
                    )
                    .build(),
            )
            .build();
        assert_eq!(
            definition_images(&definition),
            ["container", "pod", "init", "node"]
        );
    }
}
