//! The JSON log lines: one object per line, written as the run goes, with
//! field names as AWS spells them, so that a run cut short still leaves a
//! trail. Every image's outcome has its line, whatever the report keeps
//! ([`Detail`](super::report::Detail)).

use std::io::Write;
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::aws::targets::Target;
use crate::model::ImageFailure;
use crate::run::report::{PlannedImage, Report, RepositoryReport, SkippedImage};

/// A log sink that adds a target's account and region to every line, so a
/// multi-account run's lines can be told apart.
pub struct ForTarget<'a> {
    pub inner: &'a dyn LogSink,
    pub target: &'a Target,
}

impl LogSink for ForTarget<'_> {
    fn emit(&self, mut line: Value) {
        if let Value::Object(map) = &mut line {
            if let Some(account) = &self.target.account_id {
                map.insert("accountId".into(), Value::String(account.to_string()));
            }
            if let Some(region) = &self.target.region {
                map.insert("region".into(), Value::String(region.to_string()));
            }
        }
        self.inner.emit(line);
    }
}

/// Where the JSON log lines go.
pub trait LogSink: Send + Sync {
    fn emit(&self, line: Value);
}

/// Writes each line as one JSON object followed by a newline.
pub struct JsonLines<W: Write + Send>(Mutex<W>);

impl<W: Write + Send> JsonLines<W> {
    pub fn new(writer: W) -> Self {
        JsonLines(Mutex::new(writer))
    }
}

impl<W: Write + Send> LogSink for JsonLines<W> {
    fn emit(&self, line: Value) {
        // One write a line, serialised before the lock is taken: stderr is
        // unbuffered, and writing the JSON straight to it made a system
        // call of every token (2.6M for 27,000 lines). Logging must never
        // abort a collection: a line that fails is dropped.
        let Ok(mut text) = serde_json::to_vec(&line) else {
            return;
        };
        text.push(b'\n');
        // A poisoned lock only means another thread panicked mid-write; the
        // writer itself is still usable.
        let mut out = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = out.write_all(&text);
        let _ = out.flush();
    }
}

/// Keeps the lines in memory, for tests.
#[derive(Default)]
pub struct Collected(pub Mutex<Vec<Value>>);

impl LogSink for Collected {
    fn emit(&self, line: Value) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }
}

impl Collected {
    pub fn lines(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// How much a log line matters, as its `level` field says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    /// `Warn` when something went wrong, else `Info`.
    pub fn warn_if(problem: bool) -> Level {
        if problem { Level::Warn } else { Level::Info }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Builds one log line: timestamp, level and message first, then `fields`.
pub fn line(level: Level, message: &str, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "timestamp".into(),
        Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)),
    );
    out.insert("level".into(), Value::String(level.as_str().into()));
    out.insert("message".into(), Value::String(message.into()));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// The line for one deleted image (or, in a dry run, one image that would be).
pub fn image_deleted(repository_name: &str, image: &PlannedImage, dry_run: bool) -> Value {
    line(
        Level::Info,
        if dry_run {
            "image would be deleted (dry run)"
        } else {
            "image deleted"
        },
        json!({
            "repositoryName": repository_name,
            "imageDigest": image.image_digest,
            "imageTags": image.image_tags,
            "rulePriority": image.rule_priority,
            "imageSizeInBytes": image.image_size_in_bytes,
            "reason": image.reason,
            "dryRun": dry_run,
        }),
    )
}

/// The line for one archived image (or, in a dry run, one that would be).
pub fn image_transitioned(repository_name: &str, image: &PlannedImage, dry_run: bool) -> Value {
    line(
        Level::Info,
        if dry_run {
            "image would be archived (dry run)"
        } else {
            "image archived"
        },
        json!({
            "repositoryName": repository_name,
            "action": "transition",
            "targetStorageClass": "ARCHIVE",
            "imageDigest": image.image_digest,
            "imageTags": image.image_tags,
            "rulePriority": image.rule_priority,
            "imageSizeInBytes": image.image_size_in_bytes,
            "reason": image.reason,
            "dryRun": dry_run,
        }),
    )
}

/// The line for one per-image failure, with ECR's code and reason verbatim.
pub fn image_failed(repository_name: &str, failure: &ImageFailure) -> Value {
    failure_line("image not deleted", "expire", repository_name, failure)
}

/// The line for one image not archived, with ECR's code and message
/// verbatim.
pub fn image_not_transitioned(repository_name: &str, failure: &ImageFailure) -> Value {
    failure_line("image not archived", "transition", repository_name, failure)
}

fn failure_line(
    message: &str,
    action: &str,
    repository_name: &str,
    failure: &ImageFailure,
) -> Value {
    line(
        Level::Error,
        message,
        json!({
            "repositoryName": repository_name,
            "action": action,
            "imageDigest": failure.image_id.image_digest,
            "imageTag": failure.image_id.image_tag,
            "failureCode": failure.failure_code,
            "failureReason": failure.failure_reason,
        }),
    )
}

/// The line for one planned image left alone by compare-and-delete.
pub fn image_skipped(repository_name: &str, image: &SkippedImage) -> Value {
    line(
        Level::Warn,
        "image skipped: changed since the plan",
        json!({
            "repositoryName": repository_name,
            "imageDigest": image.image_digest,
            "imageTags": image.image_tags,
            "currentImageTags": image.current_image_tags,
            "reason": image.reason,
        }),
    )
}

/// The line for one planned image that someone else deleted first.
pub fn image_already_gone(repository_name: &str, image: &SkippedImage) -> Value {
    line(
        Level::Info,
        "image already gone",
        json!({
            "repositoryName": repository_name,
            "imageDigest": image.image_digest,
            "imageTags": image.image_tags,
            "reason": image.reason,
        }),
    )
}

/// The line for one image the rules expire but a protection keeps.
pub fn image_protected(repository_name: &str, image: &PlannedImage) -> Value {
    line(
        Level::Info,
        "image kept by a protection",
        json!({
            "repositoryName": repository_name,
            "imageDigest": image.image_digest,
            "imageTags": image.image_tags,
            "rulePriority": image.rule_priority,
            "reason": image.reason,
            "protection": image.protection,
        }),
    )
}

/// The summary line for one repository.
pub fn repository_summary(r: &RepositoryReport, dry_run: bool) -> Value {
    let (level, message) = match (&r.error, &r.held, &r.unfinished) {
        (Some(_), _, _) => (Level::Error, "repository not collected"),
        (None, Some(_), _) => (Level::Warn, "repository held: nothing deleted"),
        (None, None, Some(_)) => (Level::Warn, "repository not finished"),
        (None, None, None) => (Level::Info, "repository collected"),
    };
    let c = r.counts();
    let mut fields = json!({
        "repositoryName": r.repository_name,
        "dryRun": dry_run,
        "imagesScanned": r.images_scanned,
        "imagesKept": r.images_kept,
        "imagesProtected": c.images_protected,
        "imagesPlanned": c.images_planned,
        "imagesSkipped": c.images_skipped,
        "imagesDeleted": c.images_deleted,
        "imagesFailed": c.images_failed,
        "transitionsPlanned": c.transitions_planned,
        "imagesTransitioned": c.images_transitioned,
        "transitionsFailed": c.transitions_failed,
        "bytesPlanned": r.bytes_planned,
        "bytesReclaimed": r.bytes_reclaimed,
        "bytesToArchive": r.bytes_to_archive,
        "durationMs": r.duration_ms,
    });
    if let (Some(held), Value::Object(map)) = (&r.held, &mut fields) {
        map.insert("heldBecause".into(), Value::String(held.clone()));
    }
    if let (Some(from), Value::Object(map)) = (&r.rules_from, &mut fields) {
        map.insert("rulesFrom".into(), Value::String(from.clone()));
    }
    if let (Some(unfinished), Value::Object(map)) = (&r.unfinished, &mut fields) {
        map.insert(
            "unfinishedBecause".into(),
            Value::String(unfinished.clone()),
        );
    }
    if let (Some(error), Value::Object(map)) = (&r.error, &mut fields) {
        map.insert("errorCode".into(), Value::String(error.error_code.clone()));
        map.insert(
            "errorMessage".into(),
            Value::String(error.error_message.clone()),
        );
    }
    line(level, message, fields)
}

/// The summary line for the whole run: the totals at the top level, so a
/// log query can read `bytesReclaimed` without unnesting.
pub fn run_summary(report: &Report) -> Value {
    let level = Level::warn_if(report.has_failures());
    let mut fields = json!({
        "trigger": report.trigger,
        "dryRun": report.dry_run,
        "apiCalls": report.api_calls,
        "durationMs": report.duration_ms,
    });
    if let (Value::Object(map), Ok(Value::Object(totals))) =
        (&mut fields, serde_json::to_value(&report.summary))
    {
        map.extend(totals);
    }
    line(level, "run finished", fields)
}
