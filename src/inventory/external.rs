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
//! The list is input like any other, and is checked before it is trusted.
//! A list that cannot be read or parsed fails the source, and so stops all
//! deletion: an unreadable list is not an empty one. So does a list with an
//! entry that is not an image reference, a list last written longer ago
//! than `maxAgeMinutes` (its publisher may have died), an S3 object larger
//! than [`MAX_LIST_BYTES`], and an S3 bucket owned by an account other than
//! the one expected (`ExpectedBucketOwner`).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use super::{InUse, invalid_list, reference, stale_list};
use crate::aws::CallError;

/// The largest list ecr-gc reads: checked against S3's `Content-Length`
/// before the body is read, and again while reading it.
pub const MAX_LIST_BYTES: u64 = 8 * 1024 * 1024;

/// How one external list is read: how old it may be, and (for S3) which
/// account must own its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRules {
    pub max_age: TimeDelta,
    /// `ExpectedBucketOwner`: S3 refuses the read when the bucket belongs
    /// to any other account.
    pub bucket_owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum List {
    Bare(Vec<String>),
    Wrapped { images: Vec<String> },
}

/// Parses a published list; `workload` names where it came from. Every
/// entry must be an image reference: a list with anything else in it is
/// not trusted at all, since a publisher that writes garbage may also have
/// left out what runs. `[]` is valid: nothing is in use.
pub fn parse(text: &str, operation: &'static str, workload: &str) -> Result<Vec<InUse>, CallError> {
    let list: List = serde_json::from_str(text).map_err(|e| {
        invalid_list(
            operation,
            format!("{workload} is not a JSON array of image references, nor an object with one under `images`: {e}"),
        )
    })?;
    let (List::Bare(images) | List::Wrapped { images }) = list;
    images
        .iter()
        .enumerate()
        .map(|(i, entry)| match reference::parse(entry) {
            Some(reference) => Ok(InUse {
                reference,
                workload: workload.to_owned(),
            }),
            None => Err(invalid_list(
                operation,
                format!(
                    "{workload}: entry {i} ({}) is not an image reference, so the list is not trusted",
                    quoted(entry)
                ),
            )),
        })
        .collect()
}

/// An entry as JSON, cut short if long.
fn quoted(entry: &str) -> String {
    const MAX: usize = 200;
    let mut cut = entry.len().min(MAX);
    while !entry.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = if cut < entry.len() { "..." } else { "" };
    format!("{}{more}", serde_json::Value::from(&entry[..cut]))
}

/// Fails when the list was last written longer than `max_age` before
/// `now`: the publisher may have stopped, and what it listed may no longer
/// be what runs.
pub fn check_age(
    last_modified: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_age: TimeDelta,
    operation: &'static str,
    workload: &str,
) -> Result<(), CallError> {
    let Some(last_modified) = last_modified else {
        return Err(invalid_list(
            operation,
            format!(
                "{workload}: the response does not say when the list was written, so its age cannot be checked"
            ),
        ));
    };
    let age = now - last_modified;
    if age > max_age {
        return Err(stale_list(
            operation,
            format!(
                "{workload} was last written at {last_modified}, {} ago, longer ago than maxAgeMinutes ({}): is its publisher still running?",
                minutes(age),
                max_age.num_minutes()
            ),
        ));
    }
    Ok(())
}

fn minutes(age: TimeDelta) -> String {
    let minutes = age.num_minutes();
    if minutes >= 120 {
        format!("{} hours {} minutes", minutes / 60, minutes % 60)
    } else {
        format!("{minutes} minutes")
    }
}

fn chrono_time(time: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

pub async fn from_ssm(
    client: &aws_sdk_ssm::Client,
    name: &str,
    rules: &ReadRules,
    now: DateTime<Utc>,
) -> Result<Vec<InUse>, CallError> {
    const OP: &str = "GetParameter";
    let workload = format!("external:ssm:{name}");
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| CallError::from_sdk(OP, &e))?;
    let parameter = out.parameter().ok_or_else(|| {
        invalid_list(OP, format!("parameter {name} is missing from the response"))
    })?;
    check_age(
        parameter.last_modified_date().and_then(chrono_time),
        now,
        rules.max_age,
        OP,
        &workload,
    )?;
    let text = parameter
        .value()
        .ok_or_else(|| invalid_list(OP, format!("parameter {name} has no value")))?;
    parse(text, OP, &workload)
}

pub async fn from_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    rules: &ReadRules,
    now: DateTime<Utc>,
) -> Result<Vec<InUse>, CallError> {
    const OP: &str = "GetObject";
    let workload = format!("external:s3://{bucket}/{key}");
    let mut out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_expected_bucket_owner(rules.bucket_owner.clone())
        .send()
        .await
        .map_err(|e| CallError::from_sdk(OP, &e))?;
    check_age(
        out.last_modified().and_then(chrono_time),
        now,
        rules.max_age,
        OP,
        &workload,
    )?;
    let too_large = |bytes: u64| {
        invalid_list(
            OP,
            format!("{workload} is {bytes} bytes, more than ecr-gc reads ({MAX_LIST_BYTES})"),
        )
    };
    if let Some(length) = out.content_length().and_then(|n| u64::try_from(n).ok())
        && length > MAX_LIST_BYTES
    {
        return Err(too_large(length));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = out
        .body
        .try_next()
        .await
        .map_err(|e| invalid_list(OP, format!("reading {workload}: {e}")))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > MAX_LIST_BYTES {
            return Err(too_large(bytes.len() as u64));
        }
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| invalid_list(OP, format!("{workload} is not UTF-8: {e}")))?;
    parse(text, OP, &workload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
        let bare = format!(r#"["{host}/web:v1", "nginx"]"#);
        let uses = parse(&bare, "GetParameter", "external:ssm:/p").unwrap();
        assert_eq!(uses.len(), 2);
        assert_eq!(uses[0].workload, "external:ssm:/p");
        // The shape deploy/kubernetes/in-use-cronjob.yaml publishes.
        let kubectl = format!(r#"["{host}/web:v1","docker-pullable://{host}/web@sha256:abc"]"#);
        assert_eq!(parse(&kubectl, "GetObject", "x").unwrap().len(), 2);
        let wrapped = format!(r#"{{"images": ["{host}/web:v1"]}}"#);
        assert_eq!(parse(&wrapped, "GetObject", "x").unwrap().len(), 1);
        assert!(parse("[]", "GetObject", "x").unwrap().is_empty());
        assert!(
            parse(r#"{"images": []}"#, "GetObject", "x")
                .unwrap()
                .is_empty()
        );
        for bad in ["", "{", r#"{"pods": []}"#, "[1]", "null"] {
            let error = parse(bad, "GetObject", "external:s3://b/k").unwrap_err();
            assert!(error.to_string().contains("external:s3://b/k"), "{error}");
        }
        // One entry that is not a reference fails the whole list, naming it.
        for (list, part) in [
            (format!(r#"["{host}/web:v1", ""]"#), r#"entry 1 ("")"#),
            (
                format!(r#"["not a reference", "{host}/web:v1"]"#),
                r#"entry 0 ("not a reference")"#,
            ),
            (format!(r#"["{host}/web:"]"#), "is not an image reference"),
            (format!(r#"["{}"]"#, "x ".repeat(300)), "...)"),
        ] {
            let error = parse(&list, "GetObject", "external:s3://b/k")
                .unwrap_err()
                .to_string();
            assert!(error.contains(part), "{error:?} lacks {part:?}");
            assert!(error.contains("InvalidInUseList"), "{error}");
        }
    }

    #[test]
    fn ages() {
        let now = crate::model::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
        let at = |t: &str| Some(crate::model::parse_rfc3339(t).unwrap());
        let hour = TimeDelta::minutes(60);
        assert!(check_age(at("2026-11-28T11:00:00Z"), now, hour, "GetObject", "x").is_ok());
        assert!(check_age(at("2026-11-28T12:01:00Z"), now, hour, "GetObject", "x").is_ok());
        let stale = check_age(
            at("2026-11-21T09:30:00Z"),
            now,
            hour,
            "GetObject",
            "external:s3://b/k",
        )
        .unwrap_err()
        .to_string();
        assert!(stale.contains("StaleInUseList"), "{stale}");
        assert!(stale.contains("170 hours 30 minutes ago"), "{stale}");
        assert!(stale.contains("maxAgeMinutes (60)"), "{stale}");
        let unknown = check_age(None, now, hour, "GetParameter", "x")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("cannot be checked"), "{unknown}");
    }
}
