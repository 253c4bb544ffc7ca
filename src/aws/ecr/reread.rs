//! The re-read just before acting (compare-and-delete,
//! compare-and-transition): the tags and storage class each planned image
//! has now.
//!
//! It reads by whichever costs fewer calls: DescribeImages by image id, 100
//! a call, or the repository's listing again, 1,000 a page
//! (`min(⌈listed / 1000⌉, ⌈planned / 100⌉)`). Either way every planned
//! image is looked at in an answer ECR gave after the plan, so the
//! guarantee is the same: nothing is acted on whose tags or storage class
//! changed, or that is gone.

use std::collections::HashMap;

use aws_sdk_ecr::types::ImageDetail;

use super::{DELETE_BATCH, Ecr, EcrError, PAGE_SIZE, bump, by_digest, status_of};
use crate::aws::CallError;
use crate::model::ImageStatus;

/// An image as re-read just before acting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub tags: Vec<String>,
    pub status: ImageStatus,
}

/// The listing a repository's plan was made from: how many images the
/// re-read would list again, and whether it must see the archive (some
/// planned image is not `ACTIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub images: u64,
    pub archived: bool,
}

/// What the re-read found.
#[derive(Debug, Default)]
pub struct Reread {
    found: HashMap<String, Current>,
    /// The repository was listed again with ECR's default filter, which
    /// shows `ACTIVE` images only: an image absent from it may have been
    /// archived rather than deleted.
    pub active_only: bool,
}

impl Reread {
    /// The image now, or `None` when it is gone (or, with `active_only`,
    /// no longer `ACTIVE`).
    pub fn get(&self, digest: &str) -> Option<&Current> {
        self.found.get(digest)
    }
}

/// Whether listing the repository again takes fewer calls than reading
/// `planned` images by id. A tie goes to the ids: smaller answers.
pub fn by_listing(listed: Listed, planned: usize) -> bool {
    let pages = listed.images.div_ceil(PAGE_SIZE as u64).max(1);
    pages < planned.div_ceil(DELETE_BATCH) as u64
}

impl Ecr {
    /// Re-reads these planned images, whatever costs fewer calls (see the
    /// module's doc).
    pub async fn current(
        &self,
        repository: &str,
        digests: &[String],
        listed: Listed,
    ) -> Result<Reread, EcrError> {
        if by_listing(listed, digests.len()) {
            self.current_by_listing(repository, listed.archived).await
        } else {
            Ok(Reread {
                found: self.current_by_id(repository, digests).await?,
                active_only: false,
            })
        }
    }

    /// Every image in the repository now, listed as the survey lists (the
    /// archive too only when it must be seen).
    async fn current_by_listing(
        &self,
        repository: &str,
        archived: bool,
    ) -> Result<Reread, EcrError> {
        let found = self
            .list_details(repository, archived, |detail| Ok(current_of(detail)))
            .await?;
        Ok(Reread {
            found: found.into_iter().flatten().collect(),
            active_only: !archived,
        })
    }

    /// DescribeImages with `imageIds`, at most [`DELETE_BATCH`] per call,
    /// whatever their storage class; a digest that is gone is absent.
    async fn current_by_id(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, Current>, EcrError> {
        let mut current = HashMap::with_capacity(digests.len());
        for chunk in digests.chunks(DELETE_BATCH) {
            match self.describe_ids(repository, chunk).await {
                Ok(found) => current.extend(found),
                // ECR fails the whole call when one id is missing: ask for
                // each of this chunk's images alone to learn which.
                Err(EcrError::Api(CallError { code, .. })) if code == "ImageNotFoundException" => {
                    for digest in chunk {
                        match self
                            .describe_ids(repository, std::slice::from_ref(digest))
                            .await
                        {
                            Ok(found) => current.extend(found),
                            Err(EcrError::Api(CallError { code, .. }))
                                if code == "ImageNotFoundException" => {}
                            Err(other) => return Err(other),
                        }
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Ok(current)
    }

    async fn describe_ids(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<(String, Current)>, EcrError> {
        const OP: &str = "DescribeImages";
        bump(&self.calls.describe_images);
        let page = self
            .lanes
            .describe_images
            .paced(
                self.lanes
                    .describe_images
                    .describe_images()
                    .set_registry_id(self.registry_id.clone())
                    .repository_name(repository)
                    .set_image_ids(Some(by_digest(digests))),
                |request| request.send(),
            )
            .await
            .map_err(|e| EcrError::from_sdk(OP, e))?;
        Ok(page.image_details().iter().filter_map(current_of).collect())
    }
}

fn current_of(detail: &ImageDetail) -> Option<(String, Current)> {
    let current = Current {
        tags: detail.image_tags().to_vec(),
        status: status_of(detail),
    };
    Some((detail.image_digest()?.to_owned(), current))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer's shape and ECR's page sizes: each row is (images listed,
    /// planned, whether to list again).
    #[test]
    fn the_reread_takes_the_cheaper_way() {
        fn check(images: u64, planned: usize, want: bool) {
            let listed = Listed {
                images,
                archived: false,
            };
            assert_eq!(
                by_listing(listed, planned),
                want,
                "{images} listed, {planned} planned"
            );
        }
        for (images, planned, want) in [
            (4_000, 3_900, true),  // 4 pages against 39 calls by id
            (10_000, 9_000, true), // 10 against 90
            (150, 120, true),      // 1 against 2
            (20, 15, false),       // 1 against 1: a tie goes to the ids
            (1_000, 100, false),   // 1 against 1
            (1_001, 101, false),   // 2 against 2
            (1_001, 201, true),    // 2 against 3
            (100_000, 50, false),  // 100 against 1
            (0, 0, false),         // nothing planned: nothing read
        ] {
            check(images, planned, want);
        }
    }
}
