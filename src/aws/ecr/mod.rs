//! The ECR adapter: the only module that talks to Amazon ECR.
//!
//! * DescribeRepositories, DescribeImages and ListImages are fully paginated
//!   with `maxResults` 1000, ECR's largest page. A page that hands back the
//!   token it was given is an error, not an endless loop.
//! * BatchDeleteImage goes in chunks of at most 100 image ids, ECR's limit,
//!   and every image is deleted by digest alone, so the whole image goes
//!   with all its tags.
//! * Every entry of a response's `failures` is kept with `failureCode` and
//!   `failureReason` exactly as ECR returned them.
//! * Every call is counted, because API calls are the cost of a run.
//! * Each operation of each registry has its own client and retry partition
//!   (`lanes`), so the SDK backs off per (account, region, operation), as
//!   ECR limits.
//! * The re-read before acting (`reread`) lists the repository again when
//!   that takes fewer calls than reading the planned images by id.
//!
//! SDK types stop here: callers see [`Image`], [`crate::model::ImageFailure`] and
//! [`EcrError`]. Deleting, with its retries, is the `delete` module's.

mod delete;
mod lanes;
mod layers;
mod lifecycle;
mod pace;
mod reread;
mod transition;

pub use delete::{DeleteOutcome, ImageRetry, TRANSIENT_FAILURES};
pub use layers::Blob;
pub use reread::{Current, Listed, Reread};
pub use transition::{TRANSIENT_CALL_FAILURES, TransitionOutcome};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_ecr::Client;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{DescribeImagesFilter, ImageDetail, ImageIdentifier, ImageStatusFilter};
use thiserror::Error;

use crate::aws::{CallError, PageError, paginate};
use crate::model::{
    AccountId, INDEX_MEDIA_TYPES, Image, ImageStatus, Moment, RepositoryName, from_epoch,
};
use lanes::Lanes;

/// ECR's largest page for the list operations.
pub const PAGE_SIZE: i32 = 1000;
/// ECR's limit on image ids per BatchDeleteImage call.
pub const DELETE_BATCH: usize = 100;

/// Why an ECR call failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EcrError {
    #[error("{operation}: RepositoryNotFoundException: {message}")]
    RepositoryNotFound {
        operation: &'static str,
        message: String,
    },
    #[error(transparent)]
    Api(CallError),
    #[error(
        "{operation}: ECR returned the pagination token it was given; stopping rather than looping"
    )]
    RepeatedToken { operation: &'static str },
    #[error("{operation}: ECR returned an image without {field}")]
    Malformed {
        operation: &'static str,
        field: &'static str,
    },
}

impl EcrError {
    /// The error code, as AWS spells it where AWS returned one.
    pub fn code(&self) -> &str {
        match self {
            EcrError::RepositoryNotFound { .. } => "RepositoryNotFoundException",
            EcrError::Api(error) => &error.code,
            EcrError::RepeatedToken { .. } => "RepeatedPaginationToken",
            EcrError::Malformed { .. } => "MalformedResponse",
        }
    }

    fn from_sdk<E, R>(operation: &'static str, error: SdkError<E, R>) -> EcrError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let error = CallError::from_sdk(operation, &error);
        if error.code == "RepositoryNotFoundException" {
            EcrError::RepositoryNotFound {
                operation,
                message: error.message,
            }
        } else {
            EcrError::Api(error)
        }
    }
}

impl PageError for EcrError {
    fn call_failed<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        EcrError::from_sdk(operation, error)
    }

    fn repeated_token(operation: &'static str) -> Self {
        EcrError::RepeatedToken { operation }
    }
}

/// Every index asked for must be answered: read, or gone since the listing
/// (ImageNotFound, so its children are orphans). Any other failure, or an
/// index the answer leaves out, is an error: its children cannot be told,
/// and must not be taken for orphans.
fn check_index_answer(
    chunk: &[String],
    out: &aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput,
) -> Result<(), EcrError> {
    const OP: &str = "BatchGetImage";
    if let Some(failure) = out
        .failures()
        .iter()
        .find(|f| f.failure_code().map(|c| c.as_str()) != Some("ImageNotFound"))
    {
        return Err(EcrError::Api(CallError::new(
            OP,
            failure
                .failure_code()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            failure.failure_reason().unwrap_or_default().to_owned(),
        )));
    }
    // Every index asked for is answered: read, or gone since the
    // listing (ImageNotFound, so its children are orphans). One the
    // answer leaves out cannot be read, and its children must not be
    // taken for orphans.
    let answered: HashSet<&str> = out
        .images()
        .iter()
        .filter_map(|i| i.image_id().and_then(|id| id.image_digest()))
        .chain(
            out.failures()
                .iter()
                .filter_map(|f| f.image_id().and_then(|id| id.image_digest())),
        )
        .collect();
    if let Some(missing) = chunk.iter().find(|d| !answered.contains(d.as_str())) {
        return Err(EcrError::Api(CallError::new(
            OP,
            "IndexNotAnswered",
            format!("the answer leaves out index {missing}, so its children cannot be told"),
        )));
    }
    Ok(())
}

/// An ECR client for one registry, counting its calls.
pub struct Ecr {
    lanes: Lanes,
    registry_id: Option<String>,
    retry: ImageRetry,
    stop_at: Option<std::time::Instant>,
    calls: Calls,
}

#[derive(Default)]
struct Calls {
    describe_repositories: AtomicU64,
    describe_images: AtomicU64,
    list_images: AtomicU64,
    batch_get_image: AtomicU64,
    batch_delete_image: AtomicU64,
    update_image_storage_class: AtomicU64,
    get_lifecycle_policy: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Ecr {
    /// `registry_id` `None` means the caller's own registry.
    pub fn new(client: Client, registry_id: Option<AccountId>) -> Ecr {
        let registry_id = registry_id.map(String::from);
        Ecr {
            lanes: Lanes::new(&client, registry_id.as_deref()),
            registry_id,
            retry: ImageRetry::default(),
            stop_at: None,
            calls: Calls::default(),
        }
    }

    /// Sets when to stop starting delete calls (the Lambda deadline less its
    /// margin); digests left then are reported as not attempted.
    pub fn with_stop_at(mut self, stop_at: Option<std::time::Instant>) -> Ecr {
        self.stop_at = stop_at;
        self
    }

    /// Whether the stop time has come: no new call should start.
    pub fn time_is_up(&self) -> bool {
        self.stop_at
            .is_some_and(|stop| std::time::Instant::now() >= stop)
    }

    /// Sets how transient per-image failures are retried.
    pub fn with_image_retry(mut self, retry: ImageRetry) -> Ecr {
        self.retry = retry;
        self
    }

    pub fn api_calls(&self) -> ApiCallCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ApiCallCounts {
            describe_repositories: get(&self.calls.describe_repositories),
            describe_images: get(&self.calls.describe_images),
            list_images: get(&self.calls.list_images),
            batch_get_image: get(&self.calls.batch_get_image),
            batch_delete_image: get(&self.calls.batch_delete_image),
            update_image_storage_class: get(&self.calls.update_image_storage_class),
            get_lifecycle_policy: get(&self.calls.get_lifecycle_policy),
        }
    }

    /// The names of every repository in the registry.
    pub async fn repository_names(&self) -> Result<Vec<RepositoryName>, EcrError> {
        const OP: &str = "DescribeRepositories";
        paginate(
            OP,
            |token| {
                bump(&self.calls.describe_repositories);
                self.lanes.describe_repositories.paced(
                    self.lanes
                        .describe_repositories
                        .describe_repositories()
                        .set_registry_id(self.registry_id.clone())
                        .max_results(PAGE_SIZE)
                        .set_next_token(token),
                    |request| request.send(),
                )
            },
            |page| {
                let names = page
                    .repositories()
                    .iter()
                    .filter_map(|r| r.repository_name())
                    .map(|name| RepositoryName::from_ecr(name.to_owned()))
                    .collect();
                Ok((names, page.next_token().map(str::to_owned)))
            },
        )
        .await
    }

    /// Every `ACTIVE` image in the repository.
    pub async fn images(&self, repository: &str) -> Result<Vec<Image>, EcrError> {
        self.images_with(repository, false).await
    }

    /// Every image in the repository: `ACTIVE` ones, and with `archived`
    /// the `ARCHIVED` and `ACTIVATING` ones too (`imageStatus: ANY`), which
    /// only a policy with rules for the archive needs.
    pub async fn images_with(
        &self,
        repository: &str,
        archived: bool,
    ) -> Result<Vec<Image>, EcrError> {
        self.list_details(repository, archived, convert).await
    }

    /// The repository's listing, every page of it (ACTIVE images, and with
    /// `archived` the archive too), each image detail read by `read`.
    async fn list_details<T>(
        &self,
        repository: &str,
        archived: bool,
        read: impl Fn(&ImageDetail) -> Result<T, EcrError>,
    ) -> Result<Vec<T>, EcrError> {
        const OP: &str = "DescribeImages";
        let filter = archived.then(|| {
            DescribeImagesFilter::builder()
                .image_status(ImageStatusFilter::Any)
                .build()
        });
        paginate(
            OP,
            |token| {
                bump(&self.calls.describe_images);
                self.lanes.describe_images.paced(
                    self.lanes
                        .describe_images
                        .describe_images()
                        .set_registry_id(self.registry_id.clone())
                        .repository_name(repository)
                        .set_filter(filter.clone())
                        .max_results(PAGE_SIZE)
                        .set_next_token(token),
                    |request| request.send(),
                )
            },
            |page| {
                let items = page
                    .image_details()
                    .iter()
                    .map(&read)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((items, page.next_token().map(str::to_owned)))
            },
        )
        .await
    }

    /// The child digests of each of these indexes, read from their
    /// manifests with BatchGetImage, at most [`DELETE_BATCH`] per call. An
    /// index that is gone by now is left out; any other failure is an
    /// error, because not knowing an index's children means not knowing
    /// what deleting an image would break.
    pub async fn index_children(
        &self,
        repository: &str,
        indexes: &[String],
    ) -> Result<HashMap<String, Vec<String>>, EcrError> {
        const OP: &str = "BatchGetImage";
        let mut children = HashMap::with_capacity(indexes.len());
        for chunk in indexes.chunks(DELETE_BATCH) {
            let out = self
                .batch_get(repository, chunk, &INDEX_MEDIA_TYPES)
                .await?;
            check_index_answer(chunk, &out)?;
            for image in out.images() {
                let Some(digest) = image.image_id().and_then(|id| id.image_digest()) else {
                    continue;
                };
                let manifest = image.image_manifest().unwrap_or_default();
                let parsed: IndexManifest = serde_json::from_str(manifest).map_err(|e| {
                    EcrError::Api(CallError::new(
                        OP,
                        "MalformedManifest",
                        format!("index {digest} is not a readable image index: {e}"),
                    ))
                })?;
                children.insert(
                    digest.to_owned(),
                    parsed.manifests.into_iter().map(|m| m.digest).collect(),
                );
            }
        }
        Ok(children)
    }

    /// One BatchGetImage of these digests (at most [`DELETE_BATCH`]),
    /// accepting these manifest media types.
    async fn batch_get(
        &self,
        repository: &str,
        digests: &[String],
        media_types: &[&str],
    ) -> Result<aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput, EcrError> {
        bump(&self.calls.batch_get_image);
        self.lanes
            .batch_get_image
            .paced(
                self.lanes
                    .batch_get_image
                    .batch_get_image()
                    .set_registry_id(self.registry_id.clone())
                    .repository_name(repository)
                    .set_image_ids(Some(by_digest(digests)))
                    .set_accepted_media_types(Some(
                        media_types.iter().map(|t| (*t).to_owned()).collect(),
                    )),
                |request| request.send(),
            )
            .await
            .map_err(|e| EcrError::from_sdk("BatchGetImage", e))
    }

    /// The digests of every image in `repository`, from ListImages.
    async fn digests(&self, repository: &str) -> Result<HashSet<String>, EcrError> {
        const OP: &str = "ListImages";
        let digests = paginate(
            OP,
            |token| {
                bump(&self.calls.list_images);
                self.lanes.list_images.paced(
                    self.lanes
                        .list_images
                        .list_images()
                        .set_registry_id(self.registry_id.clone())
                        .repository_name(repository)
                        .max_results(PAGE_SIZE)
                        .set_next_token(token),
                    |request| request.send(),
                )
            },
            |page| {
                let digests = page
                    .image_ids()
                    .iter()
                    .filter_map(|id| id.image_digest().map(str::to_owned))
                    .collect();
                Ok((digests, page.next_token().map(str::to_owned)))
            },
        )
        .await?;
        Ok(digests.into_iter().collect())
    }
}

/// The part of an OCI image index or Docker manifest list ecr-gc reads.
#[derive(serde::Deserialize)]
struct IndexManifest {
    manifests: Vec<IndexEntry>,
}

#[derive(serde::Deserialize)]
struct IndexEntry {
    digest: String,
}

fn convert(detail: &ImageDetail) -> Result<Image, EcrError> {
    const OP: &str = "DescribeImages";
    let digest = detail.image_digest().ok_or(EcrError::Malformed {
        operation: OP,
        field: "imageDigest",
    })?;
    let pushed = detail
        .image_pushed_at()
        .and_then(|t| from_epoch(t.secs(), t.subsec_nanos()))
        .ok_or(EcrError::Malformed {
            operation: OP,
            field: "imagePushedAt",
        })?;
    Ok(Image {
        image_digest: digest.to_owned(),
        image_tags: detail.image_tags().to_vec(),
        image_pushed_at: pushed,
        image_size_in_bytes: detail.image_size_in_bytes(),
        image_manifest_media_type: detail.image_manifest_media_type().map(str::to_owned),
        subject_manifest_digest: detail.subject_manifest_digest().map(str::to_owned),
        image_status: status_of(detail),
        last_recorded_pull_time: detail.last_recorded_pull_time().and_then(moment),
        last_archived_at: detail.last_archived_at().and_then(moment),
        last_activated_at: detail.last_activated_at().and_then(moment),
    })
}

/// An image's storage class; `ACTIVE` when ECR does not say.
fn status_of(detail: &ImageDetail) -> ImageStatus {
    detail
        .image_status()
        .map_or(ImageStatus::Active, |s| ImageStatus::parse(s.as_str()))
}

/// Image ids naming these digests, for the calls that take `imageIds`.
fn by_digest(digests: &[String]) -> Vec<ImageIdentifier> {
    digests
        .iter()
        .map(|digest| ImageIdentifier::builder().image_digest(digest).build())
        .collect()
}

fn moment(at: &aws_smithy_types::DateTime) -> Option<Moment> {
    from_epoch(at.secs(), at.subsec_nanos()).map(Moment::new)
}

/// ECR API calls by operation: the cost of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiCallCounts {
    pub describe_repositories: u64,
    pub describe_images: u64,
    pub list_images: u64,
    pub batch_get_image: u64,
    pub batch_delete_image: u64,
    /// One per image archived (or tried).
    pub update_image_storage_class: u64,
    /// One per repository, with `settings.policySource: repository`.
    #[serde(default)]
    pub get_lifecycle_policy: u64,
}

impl ApiCallCounts {
    pub fn total(&self) -> u64 {
        self.describe_repositories
            + self.describe_images
            + self.list_images
            + self.batch_get_image
            + self.batch_delete_image
            + self.update_image_storage_class
            + self.get_lifecycle_policy
    }
}

impl std::ops::AddAssign<&ApiCallCounts> for ApiCallCounts {
    fn add_assign(&mut self, o: &ApiCallCounts) {
        self.describe_repositories += o.describe_repositories;
        self.describe_images += o.describe_images;
        self.list_images += o.list_images;
        self.batch_get_image += o.batch_get_image;
        self.batch_delete_image += o.batch_delete_image;
        self.update_image_storage_class += o.update_image_storage_class;
        self.get_lifecycle_policy += o.get_lifecycle_policy;
    }
}
