//! The JSON log lines: one object per line, written as the run goes, with
//! field names as AWS spells them, so that a run cut short still leaves a
//! trail. Every image's outcome has its line, whatever the report keeps
//! ([`Detail`](super::report::Detail)).

use std::io::Write;
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::aws::targets::Target;
use crate::model::ImageFailure;
use crate::run::report::{PlannedImage, Report, RepositoryReport, SkippedImage};

/// One log line: a JSON object's text, serialised once, where it is made.
/// A run writes a line per image, so a line is never built as a
/// `serde_json::Value` map first: the hot ones are written straight from
/// typed fields ([`image_deleted`] and the other image lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line(String);

impl Line {
    /// The line's JSON text, one object, without a newline.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// `value` (an object) as a line, as it is.
    pub fn from_value(value: Value) -> Line {
        Line(value.to_string())
    }

    /// The line as a JSON value (tests read lines this way).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The line with `key` (one it does not have) set to `value`, last.
    fn with(mut self, key: &str, value: &str) -> Line {
        if self.0.ends_with('}') {
            self.0.pop();
            if self.0.len() > 1 {
                self.0.push(',');
            }
            self.0.push_str(&json_string(key));
            self.0.push(':');
            self.0.push_str(&json_string(value));
            self.0.push('}');
        }
        self
    }
}

/// `text` as a JSON string, quoted and escaped.
fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// A log sink that adds a target's account and region to every line, so a
/// multi-account run's lines can be told apart.
pub struct ForTarget<'a> {
    pub inner: &'a dyn LogSink,
    pub target: &'a Target,
}

impl LogSink for ForTarget<'_> {
    fn emit(&self, mut line: Line) {
        if let Some(account) = &self.target.account_id {
            line = line.with("accountId", account.as_str());
        }
        if let Some(region) = &self.target.region {
            line = line.with("region", region.as_str());
        }
        self.inner.emit(line);
    }

    fn progress(&self, step: Step<'_>) {
        self.inner.progress(step);
    }
}

/// Where the JSON log lines go.
pub trait LogSink: Send + Sync {
    fn emit(&self, line: Line);

    /// How far a run has come, for a display such as the CLI's progress
    /// line; the log lines carry the detail. Ignored unless a sink shows it.
    fn progress(&self, _step: Step<'_>) {}
}

/// One step of a run's progress.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// The run collects this many targets.
    Targets(usize),
    /// A target has this many repositories to collect.
    Repositories(usize),
    /// A repository is finished.
    Repository(&'a RepositoryReport),
    /// A target is finished (or failed).
    Target,
}

/// Writes each line as one JSON object followed by a newline.
pub struct JsonLines<W: Write + Send>(Mutex<W>);

impl<W: Write + Send> JsonLines<W> {
    pub fn new(writer: W) -> Self {
        JsonLines(Mutex::new(writer))
    }
}

impl<W: Write + Send> LogSink for JsonLines<W> {
    fn emit(&self, line: Line) {
        // One write a line: stderr is unbuffered, and writing the JSON
        // straight to it made a system call of every token (2.6M for 27,000
        // lines). Logging must never abort a collection: a line that fails
        // is dropped.
        let mut text = line.0.into_bytes();
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
    fn emit(&self, line: Line) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line.to_value());
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
pub fn line(level: Level, message: &str, fields: Value) -> Line {
    let mut out = Map::new();
    out.insert("timestamp".into(), Value::String(timestamp()));
    out.insert("level".into(), Value::String(level.as_str().into()));
    out.insert("message".into(), Value::String(message.into()));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Line(Value::Object(out).to_string())
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A line written straight from typed `fields`, as [`line`] writes it from
/// a map: timestamp, level and message first.
fn typed_line(level: Level, message: &str, fields: impl Serialize) -> Line {
    #[derive(Serialize)]
    struct Typed<'a, F> {
        timestamp: String,
        level: &'static str,
        message: &'a str,
        #[serde(flatten)]
        fields: F,
    }
    let typed = Typed {
        timestamp: timestamp(),
        level: level.as_str(),
        message,
        fields,
    };
    match serde_json::to_string(&typed) {
        Ok(text) => Line(text),
        Err(e) => line(
            Level::Error,
            "log line not written",
            json!({"lost": message, "error": e.to_string()}),
        ),
    }
}

/// What an image's line says of it when it is deleted or archived.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Acted<'a> {
    repository_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_storage_class: Option<&'static str>,
    image_digest: &'a str,
    image_tags: &'a [String],
    rule_priority: Option<u32>,
    image_size_in_bytes: Option<i64>,
    reason: &'a str,
    dry_run: bool,
}

impl<'a> Acted<'a> {
    fn new(repository_name: &'a str, image: &'a PlannedImage, dry_run: bool) -> Acted<'a> {
        Acted {
            repository_name,
            action: None,
            target_storage_class: None,
            image_digest: &image.image_digest,
            image_tags: &image.image_tags,
            rule_priority: image.rule_priority,
            image_size_in_bytes: image.image_size_in_bytes,
            reason: &image.reason,
            dry_run,
        }
    }
}

/// The line for one deleted image (or, in a dry run, one image that would be).
pub fn image_deleted(repository_name: &str, image: &PlannedImage, dry_run: bool) -> Line {
    typed_line(
        Level::Info,
        if dry_run {
            "image would be deleted (dry run)"
        } else {
            "image deleted"
        },
        Acted::new(repository_name, image, dry_run),
    )
}

/// The line for one archived image (or, in a dry run, one that would be).
pub fn image_transitioned(repository_name: &str, image: &PlannedImage, dry_run: bool) -> Line {
    typed_line(
        Level::Info,
        if dry_run {
            "image would be archived (dry run)"
        } else {
            "image archived"
        },
        Acted {
            action: Some("transition"),
            target_storage_class: Some("ARCHIVE"),
            ..Acted::new(repository_name, image, dry_run)
        },
    )
}

/// The line for one per-image failure, with ECR's code and reason verbatim.
pub fn image_failed(repository_name: &str, failure: &ImageFailure) -> Line {
    failure_line("image not deleted", "expire", repository_name, failure)
}

/// The line for one image not archived, with ECR's code and message
/// verbatim.
pub fn image_not_transitioned(repository_name: &str, failure: &ImageFailure) -> Line {
    failure_line("image not archived", "transition", repository_name, failure)
}

fn failure_line(
    message: &str,
    action: &str,
    repository_name: &str,
    failure: &ImageFailure,
) -> Line {
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
pub fn image_skipped(repository_name: &str, image: &SkippedImage) -> Line {
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
pub fn image_already_gone(repository_name: &str, image: &SkippedImage) -> Line {
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
pub fn image_protected(repository_name: &str, image: &PlannedImage) -> Line {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Protected<'a> {
        repository_name: &'a str,
        image_digest: &'a str,
        image_tags: &'a [String],
        rule_priority: Option<u32>,
        reason: &'a str,
        protection: Option<&'a str>,
    }
    typed_line(
        Level::Info,
        "image kept by a protection",
        Protected {
            repository_name,
            image_digest: &image.image_digest,
            image_tags: &image.image_tags,
            rule_priority: image.rule_priority,
            reason: &image.reason,
            protection: image.protection.as_deref(),
        },
    )
}

/// The summary line for one repository.
pub fn repository_summary(r: &RepositoryReport, dry_run: bool) -> Line {
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
        "bytesArchived": r.bytes_archived,
        "estimatedMonthlySaving": r.estimated_monthly_saving,
        "durationMs": r.duration_ms,
    });
    if let (Some(exact), Value::Object(map)) = (&r.exact_reclaim, &mut fields) {
        map.insert("exactReclaim".into(), json!(exact));
    }
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
pub fn run_summary(report: &Report) -> Line {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, ImageStatus, Region};

    fn planned(rule_priority: Option<u32>, size: Option<i64>) -> PlannedImage {
        PlannedImage {
            image_digest: "sha256:abc".into(),
            image_tags: vec!["v1".into(), "say \"hi\"".into()],
            image_pushed_at: Utc::now(),
            image_size_in_bytes: size,
            image_status: ImageStatus::Active,
            rule_priority,
            reason: "older than 14 days".into(),
            protection: Some("in use".into()),
            index_digests: vec![],
        }
    }

    /// A typed line says what the same fields say through `line`, in the
    /// same order, and a target's account and region come last.
    fn check(name: &str, typed: Line, level: Level, message: &str, fields: Value) {
        let mut expected = line(level, message, fields).to_value();
        let mut actual = typed.to_value();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&actual), keys(&expected), "{name}: field order");
        for v in [&mut actual, &mut expected] {
            v.as_object_mut().unwrap().remove("timestamp");
        }
        assert_eq!(actual, expected, "{name}");
    }

    #[test]
    fn typed_lines_say_what_a_map_says() {
        let image = planned(Some(2), Some(1024));
        let bare = planned(None, None);
        let acted = |image: &PlannedImage, dry_run| {
            json!({"repositoryName": "web", "imageDigest": image.image_digest,
                   "imageTags": image.image_tags, "rulePriority": image.rule_priority,
                   "imageSizeInBytes": image.image_size_in_bytes, "reason": image.reason,
                   "dryRun": dry_run})
        };
        let archived = |image: &PlannedImage| {
            json!({"repositoryName": "web", "action": "transition", "targetStorageClass": "ARCHIVE",
                   "imageDigest": image.image_digest, "imageTags": image.image_tags,
                   "rulePriority": image.rule_priority, "imageSizeInBytes": image.image_size_in_bytes,
                   "reason": image.reason, "dryRun": false})
        };
        let cases = [
            (
                "deleted",
                image_deleted("web", &image, false),
                Level::Info,
                "image deleted",
                acted(&image, false),
            ),
            (
                "would be deleted",
                image_deleted("web", &bare, true),
                Level::Info,
                "image would be deleted (dry run)",
                acted(&bare, true),
            ),
            (
                "archived",
                image_transitioned("web", &image, false),
                Level::Info,
                "image archived",
                archived(&image),
            ),
            (
                "protected",
                image_protected("web", &image),
                Level::Info,
                "image kept by a protection",
                json!({"repositoryName": "web", "imageDigest": "sha256:abc", "imageTags": image.image_tags,
                    "rulePriority": 2, "reason": image.reason, "protection": "in use"}),
            ),
        ];
        for (name, typed, level, message, fields) in cases {
            check(name, typed, level, message, fields);
        }
    }

    #[test]
    fn a_target_is_added_last() {
        let collected = Collected::default();
        let target = Target {
            account_id: Some(AccountId::parse("111122223333").unwrap()),
            region: Some(Region::parse("eu-west-1").unwrap()),
        };
        let sink = ForTarget {
            inner: &collected,
            target: &target,
        };
        sink.emit(image_deleted("web", &planned(None, None), false));
        sink.emit(Line("{}".into()));
        let lines = collected.lines();
        let keys: Vec<_> = lines[0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[keys.len() - 2..], ["accountId", "region"]);
        assert_eq!(lines[0]["accountId"], "111122223333");
        assert_eq!(
            lines[1],
            json!({"accountId": "111122223333", "region": "eu-west-1"})
        );
    }
}
