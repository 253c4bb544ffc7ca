//! Managed services that start an image from ECR themselves.
//!
//! * [`codebuild`]: every CodeBuild project whose build environment is an
//!   image, which each build pulls. Workloads are named
//!   `codebuild:project/<name>`.
//! * [`app_runner`]: every App Runner service whose source is an image (not
//!   a code repository) and that is not DELETED: a paused service pulls its
//!   image again when it resumes, a running one whenever it scales out or
//!   redeploys; one deleted between the listing and its description starts
//!   nothing. Workloads are named `apprunner:service/<name>`.
//!
//! An image outside this registry (CodeBuild's curated `aws/codebuild/...`
//! images, Docker Hub) names nothing here and is ignored as every other
//! source ignores it.

use super::{InUse, in_workload, use_of};
use crate::aws::{CallError, paginate};

/// BatchGetProjects takes at most 100 names.
const BATCH_GET_PROJECTS_MAX: usize = 100;

/// Every CodeBuild project's build image.
pub async fn codebuild(client: &aws_sdk_codebuild::Client) -> Result<Vec<InUse>, CallError> {
    const GET: &str = "BatchGetProjects";
    let names = paginate(
        "ListProjects",
        |token| client.list_projects().set_next_token(token).send(),
        |page| {
            Ok((
                page.projects().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await?;
    let mut uses = Vec::new();
    for chunk in names.chunks(BATCH_GET_PROJECTS_MAX) {
        let out = client
            .batch_get_projects()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| CallError::from_sdk(GET, &e))?;
        for project in out.projects() {
            if let Some(environment) = project.environment() {
                let workload = format!("codebuild:project/{}", project.name().unwrap_or("?"));
                uses.extend(use_of(environment.image(), workload));
            }
        }
    }
    Ok(uses)
}

/// App Runner's largest ListServices page.
const LIST_SERVICES_MAX: i32 = 20;

/// Every App Runner service's image, except deleted services'.
pub async fn app_runner(client: &aws_sdk_apprunner::Client) -> Result<Vec<InUse>, CallError> {
    use aws_sdk_apprunner::types::ServiceStatus;
    const DESCRIBE: &str = "DescribeService";
    let summaries = paginate(
        "ListServices",
        |token| {
            client
                .list_services()
                .max_results(LIST_SERVICES_MAX)
                .set_next_token(token)
                .send()
        },
        |page| {
            Ok((
                page.service_summary_list().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await?;
    let mut uses = Vec::new();
    for summary in summaries {
        if summary.status() == Some(&ServiceStatus::Deleted) {
            continue;
        }
        let workload = format!(
            "apprunner:service/{}",
            summary.service_name().unwrap_or("?")
        );
        let Some(arn) = summary.service_arn() else {
            return Err(in_workload(
                CallError::new(
                    "ListServices",
                    "InvalidResponse",
                    "a service without an ARN",
                ),
                &workload,
            ));
        };
        let out = match client.describe_service().service_arn(arn).send().await {
            Ok(out) => out,
            // Deleted since it was listed: it starts nothing any more.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                continue;
            }
            Err(e) => return Err(in_workload(CallError::from_sdk(DESCRIBE, &e), &workload)),
        };
        let image = out
            .service()
            .and_then(|service| service.source_configuration())
            .and_then(|source| source.image_repository());
        if let Some(image) = image {
            uses.extend(use_of(image.image_identifier(), workload));
        }
    }
    Ok(uses)
}
