//! Our own vocabulary: images, image ids and per-image failures.
//!
//! These types are what the planner, the report and the CLI speak. They are
//! deliberately not the SDK's types: the ECR adapter (`ecr.rs`) converts at
//! the edge, so nothing else depends on `aws-sdk-ecr`.
//!
//! `Image` deserializes from one entry of `aws ecr describe-images` output,
//! with `imagePushedAt` either a CLI v1 epoch number or a CLI v2 ISO-8601
//! string.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};

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
}

impl Image {
    pub fn is_tagged(&self) -> bool {
        !self.image_tags.is_empty()
    }
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

/// Accepts `imagePushedAt` as the AWS CLI prints it: v1 prints epoch seconds
/// (possibly fractional), v2 prints an ISO-8601 / RFC 3339 string.
fn timestamp<'de, D: Deserializer<'de>>(de: D) -> Result<DateTime<Utc>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    match Raw::deserialize(de)? {
        Raw::Number(secs) => from_epoch_seconds(secs).ok_or_else(|| {
            serde::de::Error::custom(format!("imagePushedAt {secs} is not a valid epoch time"))
        }),
        Raw::Text(text) => parse_rfc3339(&text).map_err(serde::de::Error::custom),
    }
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
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))
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
