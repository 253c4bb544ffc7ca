//! Managed services that start an image from ECR themselves.
//!
//! * [`codebuild`]: every CodeBuild project whose build environment is an
//!   image, which each build pulls. Workloads are named
//!   `codebuild:project/<name>`.
//!
//! An image outside this registry (CodeBuild's curated `aws/codebuild/...`
//! images, Docker Hub) names nothing here and is ignored as every other
//! source ignores it.

use super::{InUse, use_of};
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
