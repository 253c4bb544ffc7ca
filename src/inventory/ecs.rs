//! The ECS source: what tasks run, what services deploy, and what the
//! newest task-definition revisions could roll back to.
//!
//! Workloads are named `ecs:<cluster>/<service>`,
//! `ecs:<cluster>/task/<task id>` and `ecs:task-definition/<family>:<revision>`.

use std::collections::HashMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    DesiredStatus, SortOrder, TaskDefinitionFamilyStatus, TaskDefinitionStatus,
};

use super::{InUse, in_workload, invalid_list, use_of};
use crate::aws::CallError;
use crate::aws::paginate;

/// The last segment of an ARN (`.../prod` -> `prod`).
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Collects every ECS reference in the account and region.
pub async fn read(client: &Client, revisions: u32) -> Result<Vec<InUse>, CallError> {
    let mut uses = Vec::new();
    let mut definitions = Definitions::default();
    for cluster in list_clusters(client).await? {
        tasks(client, &cluster, &mut uses).await?;
        services(client, &cluster, &mut definitions, &mut uses).await?;
    }
    task_definition_revisions(client, revisions, &mut definitions, &mut uses).await?;
    Ok(uses)
}

async fn list_clusters(client: &Client) -> Result<Vec<String>, CallError> {
    const OP: &str = "ListClusters";
    paginate(
        OP,
        |token| client.list_clusters().set_next_token(token).send(),
        |page| {
            Ok((
                page.cluster_arns().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await
}

/// RUNNING and PENDING tasks: the digest ECS resolved when it reports one,
/// else the container's image reference.
async fn tasks(client: &Client, cluster: &str, uses: &mut Vec<InUse>) -> Result<(), CallError> {
    const LIST: &str = "ListTasks";
    let mut arns = Vec::new();
    for status in [DesiredStatus::Running, DesiredStatus::Pending] {
        let page = paginate(
            LIST,
            |token| {
                client
                    .list_tasks()
                    .cluster(cluster)
                    .desired_status(status.clone())
                    .set_next_token(token)
                    .send()
            },
            |page| {
                Ok((
                    page.task_arns().to_vec(),
                    page.next_token().map(str::to_owned),
                ))
            },
        )
        .await?;
        arns.extend(page);
    }
    arns.sort();
    arns.dedup();
    for chunk in arns.chunks(100) {
        let tasks = describe_tasks(client, cluster, chunk).await?;
        for task in tasks {
            let workload = format!(
                "ecs:{}/task/{}",
                short(cluster),
                short(task.task_arn.as_deref().unwrap_or("?"))
            );
            for container in task.containers {
                let Some(image) = container.image else {
                    continue;
                };
                let Some(mut used) = use_of(&image, workload.clone()) else {
                    continue;
                };
                if let Some(digest) = container.image_digest {
                    used.reference.digest = Some(digest);
                }
                uses.push(used);
            }
        }
    }
    Ok(())
}

/// Describes these tasks (at most 100), reading only the fields ecr-gc
/// needs.
async fn describe_tasks(
    client: &Client,
    cluster: &str,
    chunk: &[String],
) -> Result<Vec<RunningTask>, CallError> {
    const DESCRIBE: &str = "DescribeTasks";
    let result = client
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(chunk.to_vec()))
        .send()
        .await;
    Ok(match result {
        Ok(out) => out
            .tasks()
            .iter()
            .map(|task| RunningTask {
                task_arn: task.task_arn().map(str::to_owned),
                containers: task
                    .containers()
                    .iter()
                    .map(|c| RunningContainer {
                        image: c.image().map(str::to_owned),
                        image_digest: c.image_digest().map(str::to_owned),
                    })
                    .collect(),
            })
            .collect(),
        // A response the SDK's strict model rejects (an emulator that
        // sends a container's `cpu` as a number, say) is still read for
        // the fields ecr-gc needs; if even that fails, the source fails.
        Err(aws_sdk_ecs::error::SdkError::ResponseError(response)) => {
            lenient_tasks(response.raw().body().bytes().unwrap_or_default()).ok_or_else(|| {
                invalid_list(DESCRIBE, "the DescribeTasks response could not be read")
            })?
        }
        Err(error) => return Err(CallError::from_sdk(DESCRIBE, &error)),
    })
}

/// The fields of a described task that ecr-gc reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunningTask {
    task_arn: Option<String>,
    #[serde(default)]
    containers: Vec<RunningContainer>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunningContainer {
    image: Option<String>,
    image_digest: Option<String>,
}

/// Reads the tasks out of a DescribeTasks response body, ignoring every
/// field ecr-gc does not need.
fn lenient_tasks(body: &[u8]) -> Option<Vec<RunningTask>> {
    #[derive(serde::Deserialize)]
    struct Body {
        tasks: Vec<RunningTask>,
    }
    serde_json::from_slice::<Body>(body).ok().map(|b| b.tasks)
}

/// The images of task definitions, by ARN (or `family:revision`), read at
/// most once per source.
#[derive(Default)]
pub(super) struct Definitions(HashMap<String, Vec<String>>);

impl Definitions {
    pub(super) async fn images(
        &mut self,
        client: &Client,
        arn: &str,
    ) -> Result<&[String], CallError> {
        const OP: &str = "DescribeTaskDefinition";
        if !self.0.contains_key(arn) {
            let out = client
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| CallError::from_sdk(OP, &e))?;
            let images = out
                .task_definition()
                .map(|d| {
                    d.container_definitions()
                        .iter()
                        .filter_map(|c| c.image().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            self.0.insert(arn.to_owned(), images);
        }
        Ok(self.0.get(arn).map(Vec::as_slice).unwrap_or_default())
    }

    /// Adds the images of `task_definition` to `uses` as `workload`'s; a
    /// failure to describe it names the workload.
    pub(super) async fn use_by(
        &mut self,
        client: &Client,
        task_definition: &str,
        workload: &str,
        uses: &mut Vec<InUse>,
    ) -> Result<(), CallError> {
        let images = self
            .images(client, task_definition)
            .await
            .map_err(|e| in_workload(e, workload))?;
        for image in images {
            uses.extend(use_of(image, workload));
        }
        Ok(())
    }
}

/// The task definitions of every service's PRIMARY and ACTIVE deployments.
async fn services(
    client: &Client,
    cluster: &str,
    definitions: &mut Definitions,
    uses: &mut Vec<InUse>,
) -> Result<(), CallError> {
    const LIST: &str = "ListServices";
    const DESCRIBE: &str = "DescribeServices";
    let arns = paginate(
        LIST,
        |token| {
            client
                .list_services()
                .cluster(cluster)
                .set_next_token(token)
                .send()
        },
        |page| {
            Ok((
                page.service_arns().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await?;
    for chunk in arns.chunks(10) {
        let out = client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| CallError::from_sdk(DESCRIBE, &e))?;
        for service in out.services() {
            let workload = format!(
                "ecs:{}/{}",
                short(cluster),
                service.service_name().unwrap_or("?")
            );
            let mut task_definitions: Vec<&str> = service
                .deployments()
                .iter()
                .filter(|d| matches!(d.status(), Some("PRIMARY" | "ACTIVE")))
                .filter_map(|d| d.task_definition())
                .collect();
            // A service with no deployment listed still names its task definition.
            if task_definitions.is_empty()
                && let Some(arn) = service.task_definition()
            {
                task_definitions.push(arn);
            }
            for arn in task_definitions {
                for image in definitions.images(client, arn).await? {
                    uses.extend(use_of(image, workload.clone()));
                }
            }
        }
    }
    Ok(())
}

/// The newest `revisions` revisions of every ACTIVE task-definition family.
async fn task_definition_revisions(
    client: &Client,
    revisions: u32,
    definitions: &mut Definitions,
    uses: &mut Vec<InUse>,
) -> Result<(), CallError> {
    const FAMILIES: &str = "ListTaskDefinitionFamilies";
    const LIST: &str = "ListTaskDefinitions";
    if revisions == 0 {
        return Ok(());
    }
    let families = paginate(
        FAMILIES,
        |token| {
            client
                .list_task_definition_families()
                .status(TaskDefinitionFamilyStatus::Active)
                .set_next_token(token)
                .send()
        },
        |page| {
            Ok((
                page.families().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await?;
    for family in families {
        // familyPrefix also matches longer family names: keep this family's
        // own revisions, newest first.
        let arns = paginate(
            LIST,
            |token| {
                client
                    .list_task_definitions()
                    .family_prefix(&family)
                    .status(TaskDefinitionStatus::Active)
                    .sort(SortOrder::Desc)
                    .set_next_token(token)
                    .send()
            },
            |page| {
                Ok((
                    page.task_definition_arns().to_vec(),
                    page.next_token().map(str::to_owned),
                ))
            },
        )
        .await?;
        let mut own: Vec<(u64, String)> = arns
            .into_iter()
            .filter_map(|arn| {
                let (name, revision) = short(&arn).rsplit_once(':')?;
                (name == family).then(|| Some((revision.parse().ok()?, arn.clone())))?
            })
            .collect();
        own.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
        for (revision, arn) in own.into_iter().take(revisions as usize) {
            let workload = format!("ecs:task-definition/{family}:{revision}");
            for image in definitions.images(client, &arn).await? {
                uses.extend(use_of(image, workload.clone()));
            }
        }
    }
    Ok(())
}
