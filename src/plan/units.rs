//! Images that are not alone: multi-arch indexes with their children, and
//! referrers (signatures, SBOMs, attestations) with their subjects.
//!
//! The rules see units, not manifests: an index stands for its children,
//! and a referrer is never counted or expired on its own. This module says
//! which image plays which part; the planner then decides the standalone
//! images by the rules and lets the others follow. No I/O.

use std::collections::HashMap;

use crate::model::Image;

/// Each present index's child digests, as its manifest lists them.
pub type Children = HashMap<String, Vec<String>>;

/// The part an image plays, by position in the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Decided by the rules: a single-platform image, an index, or an
    /// orphan (a child whose index is gone).
    Standalone,
    /// Listed by these present indexes (positions, ascending).
    Child { indexes: Vec<usize> },
    /// Refers to the image at this position.
    Referrer { subject: usize },
    /// Refers to a digest that is not in the repository.
    OrphanReferrer { subject: String },
}

/// Works out every image's place.
pub fn places(images: &[Image], children: &Children) -> Vec<Place> {
    // Most repositories have neither indexes nor referrers, so the map of
    // positions by digest (a million inserts at a million images) is built
    // only when the first lookup needs it.
    let mut position: Option<HashMap<&str, usize>> = None;
    let mut position_of = |digest: &str| {
        position
            .get_or_insert_with(|| {
                images
                    .iter()
                    .enumerate()
                    .map(|(i, image)| (image.image_digest.as_str(), i))
                    .collect()
            })
            .get(digest)
            .copied()
    };
    let mut parents: Vec<Vec<usize>> = Vec::new();
    for (index_digest, child_digests) in children {
        let Some(index) = position_of(index_digest) else {
            continue;
        };
        for child in child_digests {
            if let Some(child) = position_of(child)
                && child != index
            {
                if parents.is_empty() {
                    parents = vec![Vec::new(); images.len()];
                }
                parents[child].push(index);
            }
        }
    }
    images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            if let Some(subject) = image.subject() {
                return match position_of(&subject) {
                    Some(s) if s != i => Place::Referrer { subject: s },
                    _ => Place::OrphanReferrer { subject },
                };
            }
            match parents.get_mut(i).map(std::mem::take) {
                Some(mut indexes) if !indexes.is_empty() => {
                    indexes.sort_unstable();
                    indexes.dedup();
                    Place::Child { indexes }
                }
                _ => Place::Standalone,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(digest: &str, tags: &[&str], index: bool, subject: Option<&str>) -> Image {
        let image = Image::test(digest, tags);
        let image = if index { image.index() } else { image };
        match subject {
            Some(subject) => image.referring_to(subject),
            None => image,
        }
    }

    #[test]
    fn roles_of_a_mixed_repository() {
        let hex = "cd".repeat(32);
        let cosign = format!("sha256-{hex}.sig");
        let images = [
            image("sha256:i1", &["v1"], true, None),
            image("sha256:i2", &["v2"], true, None),
            image("sha256:amd", &[], false, None),
            image("sha256:arm", &[], false, None),
            image("sha256:orphan", &[], false, None),
            image("sha256:att", &[], false, Some("sha256:i1")),
            image("sha256:gone-att", &[], false, Some("sha256:nothere")),
            image(&format!("sha256:{hex}"), &["plain"], false, None),
            image("sha256:sig", &[&cosign], false, None),
            // A manifest naming itself as its subject refers to nothing else.
            image("sha256:self", &[], false, Some("sha256:self")),
        ];
        let children: Children = [
            (
                "sha256:i1".to_owned(),
                vec!["sha256:amd".to_owned(), "sha256:arm".to_owned()],
            ),
            (
                "sha256:i2".to_owned(),
                vec!["sha256:arm".to_owned(), "sha256:missing".to_owned()],
            ),
            (
                "sha256:deleted-index".to_owned(),
                vec!["sha256:orphan".to_owned()],
            ),
        ]
        .into();
        assert_eq!(
            places(&images, &children),
            [
                Place::Standalone,
                Place::Standalone,
                Place::Child { indexes: vec![0] },
                Place::Child {
                    indexes: vec![0, 1]
                },
                Place::Standalone,
                Place::Referrer { subject: 0 },
                Place::OrphanReferrer {
                    subject: "sha256:nothere".into()
                },
                Place::Standalone,
                Place::Referrer { subject: 7 },
                Place::OrphanReferrer {
                    subject: "sha256:self".into()
                },
            ]
        );
    }
}
