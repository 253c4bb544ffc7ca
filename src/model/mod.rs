//! Our own vocabulary: images, image ids and per-image failures, and the
//! checked names of repositories, accounts and regions ([`RepositoryName`], [`AccountId`], [`Region`]).
//!
//! These types are what the planner, the report and the CLI speak. They are
//! deliberately not the SDK's types: the ECR adapter (`aws::ecr`) converts at
//! the edge, so nothing else depends on `aws-sdk-ecr`.
//!
//! `Image` deserializes from one entry of `aws ecr describe-images` output,
//! with `imagePushedAt` either a CLI v1 epoch number or a CLI v2 ISO-8601
//! string.

mod names;

use std::num::NonZeroI64;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

pub use names::{AccountId, NameError, Region, RepositoryName};

/// One image (one manifest) in a repository, as ECR describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub image_digest: String,
    #[serde(default)]
    pub image_tags: Vec<String>,
    #[serde(deserialize_with = "timestamp")]
    pub image_pushed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size_in_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_manifest_media_type: Option<String>,
    /// For an OCI 1.1 referrer (signature, SBOM, attestation): the digest of
    /// the image it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_manifest_digest: Option<String>,
    /// Its storage class, as `imageStatus` says; `ACTIVE` when the listing
    /// does not say (a listing from before the archive storage class).
    #[serde(default, skip_serializing_if = "ImageStatus::is_active")]
    pub image_status: ImageStatus,
    /// When ECR last recorded a pull of it (refreshed at least once a day).
    #[serde(
        default,
        deserialize_with = "optional_moment",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_recorded_pull_time: Option<Moment>,
    /// When it last moved to the archive storage class.
    #[serde(
        default,
        deserialize_with = "optional_moment",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_archived_at: Option<Moment>,
    /// When it was last restored from the archive to standard storage.
    #[serde(
        default,
        deserialize_with = "optional_moment",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_activated_at: Option<Moment>,
}

/// An instant to the millisecond in eight bytes, with room for "none"
/// (`Option<Moment>` is eight bytes too, where `Option<DateTime<Utc>>` is
/// twelve): the planner holds a million images at once, and each has three
/// of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(NonZeroI64);

impl Moment {
    /// Milliseconds since the epoch, shifted by one at and after it so that
    /// zero never occurs: the mapping is one to one.
    pub fn new(at: DateTime<Utc>) -> Moment {
        let millis = at.timestamp_millis();
        let stored = if millis >= 0 { millis + 1 } else { millis };
        match NonZeroI64::new(stored) {
            Some(stored) => Moment(stored),
            None => unreachable!("a shifted millisecond count is never zero"),
        }
    }

    pub fn at(self) -> DateTime<Utc> {
        let stored = self.0.get();
        let millis = if stored > 0 { stored - 1 } else { stored };
        match Utc.timestamp_millis_opt(millis).single() {
            Some(at) => at,
            None => unreachable!("a Moment is made from a valid DateTime"),
        }
    }
}

impl Serialize for Moment {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        self.at().serialize(out)
    }
}

/// The event an image's age is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Push,
    /// Its restore from the archive (`lastActivatedAt`).
    Restore,
    /// Its last recorded pull.
    Pull,
    /// Its move to the archive (`lastArchivedAt`).
    Archive,
}

/// ECR's `imageStatus`: which storage class an image is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageStatus {
    /// In standard storage: pullable.
    #[default]
    Active,
    /// In the archive storage class: a pull fails with 404.
    Archived,
    /// Being restored from the archive: no rule selects, counts or acts on it.
    Activating,
    /// A status this version of ecr-gc does not know: treated like
    /// `ACTIVATING`, never acted on.
    #[serde(other)]
    Unknown,
}

impl ImageStatus {
    pub fn is_active(&self) -> bool {
        *self == ImageStatus::Active
    }

    /// ECR's spelling, for messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            ImageStatus::Active => "ACTIVE",
            ImageStatus::Archived => "ARCHIVED",
            ImageStatus::Activating => "ACTIVATING",
            ImageStatus::Unknown => "UNKNOWN",
        }
    }

    /// ECR's `imageStatus` string, as the SDK hands it over.
    pub fn parse(text: &str) -> ImageStatus {
        match text {
            "ACTIVE" => ImageStatus::Active,
            "ARCHIVED" => ImageStatus::Archived,
            "ACTIVATING" => ImageStatus::Activating,
            _ => ImageStatus::Unknown,
        }
    }
}

/// The one builder of images for the unit tests.
#[cfg(test)]
impl Image {
    /// An image with this digest and these tags, pushed at the start of
    /// 2026, of unknown size, standalone.
    pub(crate) fn test(digest: &str, tags: &[&str]) -> Image {
        Image {
            image_digest: digest.into(),
            image_tags: tags.iter().map(|t| t.to_string()).collect(),
            image_pushed_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            image_size_in_bytes: None,
            image_manifest_media_type: None,
            subject_manifest_digest: None,
            image_status: ImageStatus::Active,
            last_recorded_pull_time: None,
            last_archived_at: None,
            last_activated_at: None,
        }
    }

    /// In this storage class.
    pub(crate) fn status(self, image_status: ImageStatus) -> Image {
        Image {
            image_status,
            ..self
        }
    }

    /// Last pulled at this time.
    pub(crate) fn pulled_at(self, at: DateTime<Utc>) -> Image {
        Image {
            last_recorded_pull_time: Some(Moment::new(at)),
            ..self
        }
    }

    /// Archived at this time (and so `ARCHIVED`).
    pub(crate) fn archived_at(self, at: DateTime<Utc>) -> Image {
        Image {
            last_archived_at: Some(Moment::new(at)),
            image_status: ImageStatus::Archived,
            ..self
        }
    }

    /// Restored from the archive at this time (and so `ACTIVE`).
    pub(crate) fn restored_at(self, at: DateTime<Utc>) -> Image {
        Image {
            last_activated_at: Some(Moment::new(at)),
            image_status: ImageStatus::Active,
            ..self
        }
    }

    pub(crate) fn pushed_at(self, at: DateTime<Utc>) -> Image {
        Image {
            image_pushed_at: at,
            ..self
        }
    }

    pub(crate) fn sized(self, bytes: i64) -> Image {
        Image {
            image_size_in_bytes: Some(bytes),
            ..self
        }
    }

    /// A multi-arch index.
    pub(crate) fn index(self) -> Image {
        Image {
            image_manifest_media_type: Some(INDEX_MEDIA_TYPES[0].into()),
            ..self
        }
    }

    /// A referrer of the image with this digest.
    pub(crate) fn referring_to(self, subject: &str) -> Image {
        Image {
            subject_manifest_digest: Some(subject.into()),
            ..self
        }
    }
}

/// The manifest media types of a multi-arch image: an OCI image index and a
/// Docker manifest list.
pub const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

impl Image {
    pub fn is_tagged(&self) -> bool {
        !self.image_tags.is_empty()
    }

    /// When the image last became active: its push, or its restore from
    /// the archive if that came later. ECR treats a restored image like a
    /// newly pushed one: count rules order it by `lastActivatedAt` instead
    /// of `imagePushedAt` (the user guide's lifecycle evaluation rules), and
    /// ecr-gc ages it from there for `sinceImagePushed` and the grace
    /// period too, so a restore is never undone by the next run.
    pub fn activated_at(&self) -> DateTime<Utc> {
        match self.last_activated_at.map(Moment::at) {
            Some(at) if at > self.image_pushed_at => at,
            _ => self.image_pushed_at,
        }
    }

    /// What `sinceImagePulled` ages from, and which it is: the last
    /// recorded pull; an image never pulled, from its push; one restored and
    /// not pulled since, from its restore. The latest of the three, so a
    /// missing or stale pull time can only make the image younger.
    pub fn last_used(&self) -> (DateTime<Utc>, Since) {
        let activated = self.activated_at();
        match self.last_recorded_pull_time.map(Moment::at) {
            Some(at) if at > activated => (at, Since::Pull),
            _ => (activated, self.activated_since()),
        }
    }

    /// Whether [`Image::activated_at`] is the push or the restore.
    pub fn activated_since(&self) -> Since {
        match self.last_activated_at.map(Moment::at) {
            Some(at) if at > self.image_pushed_at => Since::Restore,
            _ => Since::Push,
        }
    }

    /// Whether this is a multi-arch index (or manifest list).
    pub fn is_index(&self) -> bool {
        self.image_manifest_media_type
            .as_deref()
            .is_some_and(|t| INDEX_MEDIA_TYPES.contains(&t))
    }

    /// The digest of the image this one refers to, if it is a referrer: the
    /// OCI `subject`, or cosign's tag scheme (`sha256-<hex>.sig`, `.att`,
    /// `.sbom`).
    pub fn subject(&self) -> Option<String> {
        if let Some(subject) = &self.subject_manifest_digest {
            return Some(subject.clone());
        }
        self.image_tags.iter().find_map(|tag| cosign_subject(tag))
    }
}

/// `sha256-<64 hex>.sig` (or `.att`, `.sbom`) -> `sha256:<64 hex>`.
fn cosign_subject(tag: &str) -> Option<String> {
    // `sha256-` and 64 hex digits, then `.sig`, `.att` or `.sbom`: most tags
    // are refused by their length alone.
    if !(75..=76).contains(&tag.len()) {
        return None;
    }
    let stem = [".sig", ".att", ".sbom"]
        .iter()
        .find_map(|s| tag.strip_suffix(s))?;
    let hex = stem.strip_prefix("sha256-")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// ECR's `ImageIdentifier`: a digest, a tag, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

/// ECR's `ImageFailure`, kept exactly as ECR returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFailure {
    pub image_id: ImageId,
    pub failure_code: String,
    pub failure_reason: String,
}

/// An optional timestamp, in either of the CLI's shapes; `null` is absent.
fn optional_moment<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Moment>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "timestamp")] DateTime<Utc>);
    Ok(Option::<Wrapped>::deserialize(de)?.map(|Wrapped(at)| Moment::new(at)))
}

/// Accepts `imagePushedAt` as the AWS CLI prints it: v1 prints epoch seconds
/// (possibly fractional), v2 prints an ISO-8601 / RFC 3339 string.
///
/// A visitor rather than an untagged enum: an untagged enum buffers each
/// value and copies the text, and a listing has a million of them.
fn timestamp<'de, D: Deserializer<'de>>(de: D) -> Result<DateTime<Utc>, D::Error> {
    struct Timestamp;
    impl serde::de::Visitor<'_> for Timestamp {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("epoch seconds or an RFC 3339 timestamp")
        }
        fn visit_f64<E: serde::de::Error>(self, secs: f64) -> Result<Self::Value, E> {
            from_epoch_seconds(secs)
                .ok_or_else(|| E::custom(format!("imagePushedAt {secs} is not a valid epoch time")))
        }
        fn visit_i64<E: serde::de::Error>(self, secs: i64) -> Result<Self::Value, E> {
            self.visit_f64(secs as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Self::Value, E> {
            self.visit_f64(secs as f64)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse_rfc3339(text).map_err(E::custom)
        }
    }
    de.deserialize_any(Timestamp)
}

fn from_epoch_seconds(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    if whole < i64::MIN as f64 || whole > i64::MAX as f64 {
        return None;
    }
    Utc.timestamp_opt(whole as i64, nanos).single()
}

/// Parses an RFC 3339 timestamp such as `2026-11-27T10:00:00Z` or
/// `2026-11-27T10:00:00.123000+01:00` (the AWS CLI v2 shape).
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, TimestampError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|source| TimestampError {
            text: text.to_owned(),
            source,
        })
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{text}` is not an RFC 3339 timestamp: {source}")]
pub struct TimestampError {
    pub text: String,
    #[source]
    pub source: chrono::ParseError,
}

/// Converts epoch seconds plus nanoseconds (the SDK's representation) into
/// our timestamp type.
pub fn from_epoch(secs: i64, nanos: u32) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, nanos).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(json: &str, expected_pushed: &str, expected_tags: &[&str]) {
        let image: Image = serde_json::from_str(json).unwrap();
        assert_eq!(
            image.image_pushed_at,
            parse_rfc3339(expected_pushed).unwrap()
        );
        assert_eq!(image.image_tags, expected_tags);
    }

    #[test]
    fn describe_images_entries_from_both_cli_versions() {
        // CLI v1: epoch seconds, fractional.
        check(
            r#"{"imageDigest":"sha256:a","imageTags":["v1"],"imagePushedAt":1700000000.5}"#,
            "2023-11-14T22:13:20.5Z",
            &["v1"],
        );
        // CLI v2: ISO-8601 with offset.
        check(
            r#"{"imageDigest":"sha256:a","imagePushedAt":"2023-11-14T23:13:20+01:00"}"#,
            "2023-11-14T22:13:20Z",
            &[],
        );
        // Integer epoch; unknown fields (registryId, imageScanStatus...) ignored.
        check(
            r#"{"registryId":"123456789012","repositoryName":"r","imageDigest":"sha256:a",
                "imagePushedAt":1700000000,"imageScanStatus":{"status":"COMPLETE"}}"#,
            "2023-11-14T22:13:20Z",
            &[],
        );
    }

    /// The archive storage class's fields, as `describe-images` prints
    /// them (either CLI's timestamps); an image without them is ACTIVE and
    /// never pulled.
    #[test]
    fn storage_class_and_pull_times() {
        let image: Image = serde_json::from_str(
            r#"{"imageDigest":"sha256:a","imagePushedAt":1700000000,"imageStatus":"ARCHIVED",
                "lastRecordedPullTime":"2024-01-02T00:00:00Z","lastArchivedAt":1710000000.5,
                "lastActivatedAt":null}"#,
        )
        .unwrap();
        assert_eq!(image.image_status, ImageStatus::Archived);
        assert_eq!(
            image.last_recorded_pull_time.map(Moment::at),
            Some(parse_rfc3339("2024-01-02T00:00:00Z").unwrap())
        );
        assert_eq!(
            image.last_archived_at.map(Moment::at),
            Some(parse_rfc3339("2024-03-09T16:00:00.5Z").unwrap())
        );
        // A Moment keeps the millisecond, on either side of the epoch.
        for text in [
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00.001Z",
            "1969-12-31T23:59:59.999Z",
            "2026-11-28T10:11:12.345Z",
        ] {
            let at = parse_rfc3339(text).unwrap();
            assert_eq!(Moment::new(at).at(), at, "{text}");
        }
        assert_eq!(std::mem::size_of::<Option<Moment>>(), 8);
        assert_eq!(image.last_activated_at, None);
        for (status, expected) in [
            ("ACTIVE", ImageStatus::Active),
            ("ACTIVATING", ImageStatus::Activating),
            ("DELETING", ImageStatus::Unknown),
        ] {
            let json = format!(
                r#"{{"imageDigest":"sha256:a","imagePushedAt":1,"imageStatus":"{status}"}}"#
            );
            let image: Image = serde_json::from_str(&json).unwrap();
            assert_eq!(image.image_status, expected);
            assert_eq!(ImageStatus::parse(status), expected);
        }
        let plain: Image =
            serde_json::from_str(r#"{"imageDigest":"sha256:a","imagePushedAt":1}"#).unwrap();
        assert_eq!(plain.image_status, ImageStatus::Active);
        assert_eq!(plain.last_used().0, plain.image_pushed_at);
        assert!(
            serde_json::from_str::<Image>(
                r#"{"imageDigest":"sha256:a","imagePushedAt":1,"lastArchivedAt":"soon"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn indexes_and_referrers() {
        let hex = "ab".repeat(32);
        let image = |tags: &[&str], media: Option<&str>, subject: Option<&str>| Image {
            image_digest: "sha256:x".into(),
            image_tags: tags.iter().map(|t| t.to_string()).collect(),
            image_pushed_at: parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
            image_size_in_bytes: None,
            image_manifest_media_type: media.map(Into::into),
            subject_manifest_digest: subject.map(Into::into),
            ..Image::test("sha256:x", &[])
        };
        assert!(image(&[], Some(INDEX_MEDIA_TYPES[0]), None).is_index());
        assert!(image(&[], Some(INDEX_MEDIA_TYPES[1]), None).is_index());
        assert!(
            !image(
                &[],
                Some("application/vnd.oci.image.manifest.v1+json"),
                None
            )
            .is_index()
        );
        let subject = format!("sha256:{hex}");
        assert_eq!(
            image(&[], None, Some(&subject)).subject(),
            Some(subject.clone())
        );
        for suffix in ["sig", "att", "sbom"] {
            let tag = format!("sha256-{hex}.{suffix}");
            assert_eq!(image(&[&tag], None, None).subject(), Some(subject.clone()));
        }
        for tag in [
            "v1",
            "sha256-abc.sig",
            &format!("sha256-{hex}.txt"),
            &format!("sha512-{hex}.sig"),
        ] {
            assert_eq!(image(&[tag], None, None).subject(), None, "{tag}");
        }
    }

    #[test]
    fn bad_timestamps_are_refused() {
        for json in [
            r#"{"imageDigest":"sha256:a","imagePushedAt":"yesterday"}"#,
            r#"{"imageDigest":"sha256:a","imagePushedAt":1e300}"#,
            r#"{"imageDigest":"sha256:a"}"#,
        ] {
            assert!(serde_json::from_str::<Image>(json).is_err(), "{json}");
        }
    }
}
