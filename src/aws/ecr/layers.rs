//! The blobs each image's manifest names (its config and layers), read
//! with BatchGetImage, 100 images a call, for `settings.exactReclaim`.
//!
//! Only image manifests are asked for: an index names manifests, not
//! blobs, and its children are images of their own. An image gone since
//! the listing (`ImageNotFound`) holds nothing; any other failure, an
//! image the answer leaves out, or a manifest that does not read is an
//! error, and the caller falls back to the image sizes.

use std::collections::HashMap;

use super::{DELETE_BATCH, Ecr, EcrError};
use crate::aws::CallError;

/// The manifest media types whose blobs are counted.
const MANIFEST_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// One blob an image's manifest names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// The part of an image manifest ecr-gc reads.
#[derive(serde::Deserialize)]
struct ImageManifest {
    config: Option<Blob>,
    #[serde(default)]
    layers: Vec<Blob>,
}

impl Ecr {
    /// The blobs of each of these images, by digest.
    pub async fn blobs(
        &self,
        repository: &str,
        images: &[String],
    ) -> Result<HashMap<String, Vec<Blob>>, EcrError> {
        const OP: &str = "BatchGetImage";
        let mut blobs = HashMap::with_capacity(images.len());
        for chunk in images.chunks(DELETE_BATCH) {
            let out = self
                .batch_get(repository, chunk, &MANIFEST_MEDIA_TYPES)
                .await?;
            let error =
                |code: &str, message: String| EcrError::Api(CallError::new(OP, code, message));
            for failure in out.failures() {
                let code = failure
                    .failure_code()
                    .map(|c| c.as_str())
                    .unwrap_or_default();
                if code == "ImageNotFound" {
                    if let Some(digest) = failure.image_id().and_then(|id| id.image_digest()) {
                        blobs.insert(digest.to_owned(), Vec::new());
                    }
                } else {
                    return Err(error(
                        code,
                        failure.failure_reason().unwrap_or_default().to_owned(),
                    ));
                }
            }
            for image in out.images() {
                let Some(digest) = image.image_id().and_then(|id| id.image_digest()) else {
                    continue;
                };
                let manifest = image.image_manifest().unwrap_or_default();
                let parsed: ImageManifest = serde_json::from_str(manifest).map_err(|e| {
                    error(
                        "MalformedManifest",
                        format!("image {digest} has no readable manifest: {e}"),
                    )
                })?;
                blobs.insert(
                    digest.to_owned(),
                    parsed.config.into_iter().chain(parsed.layers).collect(),
                );
            }
            if let Some(missing) = chunk.iter().find(|d| !blobs.contains_key(d.as_str())) {
                return Err(error(
                    "ImageNotAnswered",
                    format!("the answer leaves out image {missing}"),
                ));
            }
        }
        Ok(blobs)
    }
}
