//! The Lambda source: every version of every function packaged as an image
//! (aliases point at versions, so versions cover them).

use aws_sdk_lambda::Client;
use aws_sdk_lambda::types::{FunctionVersion, PackageType};

use super::{InUse, use_of};
use crate::aws::CallError;
use crate::aws::paginate;

pub async fn read(client: &Client) -> Result<Vec<InUse>, CallError> {
    const LIST: &str = "ListFunctions";
    const GET: &str = "GetFunction";
    let functions = paginate(
        LIST,
        |marker| {
            client
                .list_functions()
                .function_version(FunctionVersion::All)
                .set_marker(marker)
                .send()
        },
        |page| {
            let images: Vec<(String, String)> = page
                .functions()
                .iter()
                .filter(|f| f.package_type() == Some(&PackageType::Image))
                .filter_map(|f| {
                    Some((
                        f.function_name()?.to_owned(),
                        f.version().unwrap_or("$LATEST").to_owned(),
                    ))
                })
                .collect();
            Ok((images, page.next_marker().map(str::to_owned)))
        },
    )
    .await?;
    let mut uses = Vec::new();
    for (name, version) in functions {
        let out = client
            .get_function()
            .function_name(&name)
            .qualifier(&version)
            .send()
            .await
            .map_err(|e| CallError::from_sdk(GET, &e))?;
        let workload = format!("lambda:{name}:{version}");
        if let Some(code) = out.code() {
            // The URI as configured (often a tag) and as resolved at deploy
            // time (a digest): both are in use.
            for uri in [code.image_uri(), code.resolved_image_uri()]
                .into_iter()
                .flatten()
            {
                uses.extend(use_of(uri, workload.clone()));
            }
        }
    }
    Ok(uses)
}
