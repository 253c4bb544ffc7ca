//! The external source: a JSON list of image references that something
//! else publishes (a Kubernetes CronJob, a CI pipeline), read from an SSM
//! parameter or an S3 object.
//!
//! The format is a JSON array of references, or an object whose `images`
//! is one:
//!
//! ```json
//! {"images": ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:v1",
//!             "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web@sha256:..."]}
//! ```
//!
//! A list that cannot be read or parsed fails the source, and so stops all
//! deletion: an unreadable list is not an empty one.

use serde::Deserialize;

use super::{InUse, SourceError, use_of};

#[derive(Deserialize)]
#[serde(untagged)]
enum List {
    Bare(Vec<String>),
    Wrapped { images: Vec<String> },
}

/// Parses a published list; `workload` names where it came from.
pub fn parse(
    text: &str,
    operation: &'static str,
    workload: &str,
) -> Result<Vec<InUse>, SourceError> {
    let list: List = serde_json::from_str(text).map_err(|e| {
        SourceError::invalid(
            operation,
            format!("{workload} is not a JSON array of image references, nor an object with one under `images`: {e}"),
        )
    })?;
    let (List::Bare(images) | List::Wrapped { images }) = list;
    Ok(images.iter().filter_map(|r| use_of(r, workload)).collect())
}

pub async fn from_ssm(client: &aws_sdk_ssm::Client, name: &str) -> Result<Vec<InUse>, SourceError> {
    const OP: &str = "GetParameter";
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| SourceError::from_sdk(OP, e))?;
    let text = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| SourceError::invalid(OP, format!("parameter {name} has no value")))?;
    parse(text, OP, &format!("external:ssm:{name}"))
}

pub async fn from_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<InUse>, SourceError> {
    const OP: &str = "GetObject";
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| SourceError::from_sdk(OP, e))?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| SourceError::invalid(OP, format!("reading s3://{bucket}/{key}: {e}")))?
        .into_bytes();
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| SourceError::invalid(OP, format!("s3://{bucket}/{key} is not UTF-8: {e}")))?;
    parse(text, OP, &format!("external:s3://{bucket}/{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        let bare = format!(r#"["{host}/web:v1", "nginx", "not a reference"]"#);
        let uses = parse(&bare, "GetParameter", "external:ssm:/p").unwrap();
        assert_eq!(uses.len(), 2);
        assert_eq!(uses[0].workload, "external:ssm:/p");
        // The shape deploy/kubernetes/in-use-cronjob.yaml publishes.
        let kubectl = format!(r#"["{host}/web:v1","docker-pullable://{host}/web@sha256:abc",""]"#);
        assert_eq!(parse(&kubectl, "GetObject", "x").unwrap().len(), 2);
        let wrapped = format!(r#"{{"images": ["{host}/web:v1"]}}"#);
        assert_eq!(parse(&wrapped, "GetObject", "x").unwrap().len(), 1);
        for bad in ["", "{", r#"{"pods": []}"#, "[1]", "null"] {
            let error = parse(bad, "GetObject", "external:s3://b/k").unwrap_err();
            assert!(error.to_string().contains("external:s3://b/k"), "{error}");
        }
    }
}
