//! The run report and the JSON log lines.
//!
//! The report is what the Lambda returns and what `ecr-gc run --output json`
//! prints: per repository, the planned, deleted and failed images, with
//! failures in ECR's `ImageFailure` shape. The log lines are emitted as the
//! run goes, one JSON object per line, with field names as AWS spells them,
//! so that a run cut short still leaves a trail.

use std::fmt::Display;
use std::io::Write;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::aws::ecr::ApiCallCounts;
use crate::aws::targets::Target;
use crate::inventory::SourceReport;
use crate::model::{Image, ImageFailure, ImageStatus};
use crate::plan::{Decision, Reason, Relation};

/// What started a run, as reports and log lines name it in `trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// An EventBridge scheduled rule (`aws.events`).
    Schedule,
    /// An EventBridge Scheduler schedule (`aws.scheduler`).
    Scheduler,
    /// A manual invoke.
    Manual,
    /// An ECR push, direct or through the push queue.
    EcrPush,
    /// A batch from the fan-out queue.
    Sqs,
    /// An ECR event that was ignored.
    Ecr,
    /// The command line.
    Cli,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// What started the run.
    pub trigger: Cause,
    pub dry_run: bool,
    /// The evaluation time that ages were measured against.
    pub now: DateTime<Utc>,
    pub repositories: Vec<RepositoryReport>,
    pub summary: Summary,
    /// ECR API calls made, by operation.
    pub api_calls: ApiCallCounts,
    /// How each in-use source fared; a failed one stops all deletion.
    pub in_use_sources: Vec<SourceReport>,
    /// Repositories not started because the invocation's deadline was near;
    /// the next run collects them.
    pub not_started: Vec<String>,
    pub duration_ms: u64,
}

/// What happened in one repository.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryReport {
    pub repository_name: String,
    /// Set when the repository could not be collected (for example
    /// `RepositoryNotFoundException`); nothing was deleted in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RepositoryError>,
    /// Where its rules came from, when not the document's own `rules`: an
    /// override (`settings.overrides[1]`), or its own lifecycle policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_from: Option<String>,
    pub images_scanned: u64,
    /// Of those, the `ACTIVE` ones (the others are archived or being
    /// restored, listed only when a rule selects the archive).
    pub images_active: u64,
    pub images_kept: u64,
    /// Images the policy expires: deleted unless this is a dry run or the
    /// repository is held.
    pub planned: Vec<PlannedImage>,
    /// Images the policy archives (`transition` rules): archived unless
    /// this is a dry run or the repository is held.
    pub planned_transitions: Vec<PlannedImage>,
    /// Images the rules expire but a protection (such as the grace period)
    /// keeps; each says which.
    pub protected: Vec<PlannedImage>,
    /// Set when a safety limit stopped every deletion in this repository,
    /// with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// Planned images left alone because they changed between the plan and
    /// the delete (re-tagged, or already gone).
    pub skipped: Vec<SkippedImage>,
    /// Images ECR confirmed deleted.
    pub deleted: Vec<PlannedImage>,
    /// Images that were not deleted, in ECR's `ImageFailure` shape.
    pub failed: Vec<ImageFailure>,
    /// Images ECR confirmed archived (a child with its index).
    pub transitioned: Vec<PlannedImage>,
    /// Images that were not archived, with UpdateImageStorageClass's error
    /// code and message, in the `ImageFailure` shape.
    pub transition_failed: Vec<ImageFailure>,
    /// Set when planned deletions were not attempted (the invocation's
    /// deadline was near): the repository did not finish, and the next run
    /// finishes it. The images are under `skipped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<String>,
    pub bytes_planned: i64,
    pub bytes_reclaimed: i64,
    /// The size of the images planned for the archive.
    pub bytes_to_archive: i64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryError {
    pub error_code: String,
    pub error_message: String,
}

/// One image the policy expires, with the deciding rule and the reason.
/// It is written as [`Planned`] writes a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    pub image_digest: String,
    pub image_tags: Vec<String>,
    pub image_pushed_at: DateTime<Utc>,
    pub image_size_in_bytes: Option<i64>,
    /// Its storage class when the plan was made; left out when `ACTIVE`.
    pub image_status: ImageStatus,
    pub rule_priority: Option<u32>,
    pub reason: String,
    /// What keeps an image the rules expire, when something does.
    pub protection: Option<String>,
    /// For a multi-arch child: every index that lists it. A child is
    /// deleted after its indexes, in a later call, and only once every one
    /// of them is confirmed gone.
    pub index_digests: Vec<String>,
}

/// A decision written as a [`PlannedImage`], without copying it first: the
/// offline plan writes a million of these, and each copy would be a
/// digest, its tags and a reason formatted into a `String`.
pub struct Planned<'d, 'a>(pub &'d Decision<'a>);

/// The one field list both write, so that a report's image and a plan's
/// cannot drift apart. `R` and `P` are the reason and the protection, as
/// text already or still to be formatted.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlannedFields<'a, R: Display, P: Display> {
    image_digest: &'a str,
    image_tags: &'a [String],
    image_pushed_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_size_in_bytes: Option<i64>,
    #[serde(skip_serializing_if = "ImageStatus::is_active")]
    image_status: ImageStatus,
    rule_priority: Option<u32>,
    #[serde(serialize_with = "as_text")]
    reason: R,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "as_optional_text"
    )]
    protection: Option<P>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    index_digests: &'a [String],
}

fn as_text<S: serde::Serializer>(text: &impl Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(text)
}

fn as_optional_text<S: serde::Serializer>(
    text: &Option<impl Display>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => s.collect_str(text),
        None => s.serialize_none(),
    }
}

impl Serialize for PlannedImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PlannedFields {
            image_digest: &self.image_digest,
            image_tags: &self.image_tags,
            image_pushed_at: self.image_pushed_at,
            image_size_in_bytes: self.image_size_in_bytes,
            image_status: self.image_status,
            rule_priority: self.rule_priority,
            reason: &self.reason,
            protection: self.protection.as_ref(),
            index_digests: &self.index_digests,
        }
        .serialize(s)
    }
}

impl Serialize for Planned<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let decision = self.0;
        let image = decision.image;
        PlannedFields {
            image_digest: &image.image_digest,
            image_tags: &image.image_tags,
            image_pushed_at: image.image_pushed_at,
            image_size_in_bytes: image.image_size_in_bytes,
            image_status: image.image_status,
            rule_priority: decision.rule_priority,
            reason: &decision.reason,
            protection: decision.protection.as_ref(),
            index_digests: index_digests(decision),
        }
        .serialize(s)
    }
}

/// A multi-arch child's indexes; none for any other image.
fn index_digests<'d>(decision: &'d Decision<'_>) -> &'d [String] {
    match &decision.reason {
        Reason::Follows {
            relation: Relation::ChildOf,
            with,
            ..
        } => with,
        _ => &[],
    }
}

/// A planned image that compare-and-delete left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedImage {
    pub image_digest: String,
    /// The tags when the plan was made.
    pub image_tags: Vec<String>,
    /// The tags just before the delete; `None` when the image is gone.
    pub current_image_tags: Option<Vec<String>>,
    pub reason: String,
}

impl PlannedImage {
    pub fn from_decision(decision: &Decision<'_>) -> PlannedImage {
        let image: &Image = decision.image;
        PlannedImage {
            image_digest: image.image_digest.clone(),
            image_tags: image.image_tags.clone(),
            image_pushed_at: image.image_pushed_at,
            image_size_in_bytes: image.image_size_in_bytes,
            image_status: image.image_status,
            rule_priority: decision.rule_priority,
            reason: decision.reason.to_string(),
            protection: decision.protection.as_ref().map(ToString::to_string),
            index_digests: index_digests(decision).to_vec(),
        }
    }
}

/// Totals over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub repositories: u64,
    pub repositories_failed: u64,
    pub repositories_held: u64,
    /// Repositories with planned deletions not attempted.
    pub repositories_unfinished: u64,
    pub images_scanned: u64,
    pub images_kept: u64,
    pub images_protected: u64,
    pub images_planned: u64,
    pub images_skipped: u64,
    pub images_deleted: u64,
    pub images_failed: u64,
    /// Transitions, counted apart from deletions.
    pub transitions_planned: u64,
    pub images_transitioned: u64,
    pub transitions_failed: u64,
    pub bytes_planned: i64,
    pub bytes_reclaimed: i64,
    pub bytes_to_archive: i64,
}

impl Summary {
    pub fn of<'a>(repositories: impl IntoIterator<Item = &'a RepositoryReport>) -> Summary {
        let mut s = Summary::default();
        for r in repositories {
            s.repositories += 1;
            s.repositories_failed += u64::from(r.error.is_some());
            s.repositories_held += u64::from(r.held.is_some());
            s.repositories_unfinished += u64::from(r.unfinished.is_some());
            s.images_scanned += r.images_scanned;
            s.images_kept += r.images_kept;
            s.images_protected += r.protected.len() as u64;
            s.images_planned += r.planned.len() as u64;
            s.images_skipped += r.skipped.len() as u64;
            s.images_deleted += r.deleted.len() as u64;
            s.images_failed += r.failed.len() as u64;
            s.transitions_planned += r.planned_transitions.len() as u64;
            s.images_transitioned += r.transitioned.len() as u64;
            s.transitions_failed += r.transition_failed.len() as u64;
            s.bytes_planned += r.bytes_planned;
            s.bytes_reclaimed += r.bytes_reclaimed;
            s.bytes_to_archive += r.bytes_to_archive;
        }
        s
    }
}

/// One target's outcome within a collection: its report, or why it could
/// not be collected (such as a role that could not be assumed).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    #[serde(flatten)]
    pub target: Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

/// What one invocation (or CLI run) did across its targets: each target's
/// report in order, and the totals.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    pub trigger: Cause,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    /// Totals over every target.
    pub summary: Summary,
    /// Targets that could not be collected at all.
    pub targets_failed: u64,
    /// ECR calls over every target.
    pub api_calls: ApiCallCounts,
    /// STS AssumeRole calls: one per target account with a role.
    pub assume_role_calls: u64,
    pub targets: Vec<TargetReport>,
    pub duration_ms: u64,
}

impl Collection {
    pub fn new(
        trigger: Cause,
        dry_run: bool,
        now: DateTime<Utc>,
        targets: Vec<TargetReport>,
        assume_role_calls: u64,
        duration_ms: u64,
    ) -> Collection {
        let reports = || targets.iter().filter_map(|t| t.report.as_ref());
        let summary = Summary::of(reports().flat_map(|r| &r.repositories));
        let mut api_calls = ApiCallCounts::default();
        for report in reports() {
            api_calls += &report.api_calls;
        }
        Collection {
            trigger,
            dry_run,
            now,
            summary,
            targets_failed: targets.iter().filter(|t| t.error.is_some()).count() as u64,
            api_calls,
            assume_role_calls,
            targets,
            duration_ms,
        }
    }

    /// Whether anything went wrong that a caller must hear about, in any
    /// target.
    pub fn has_failures(&self) -> bool {
        self.targets_failed > 0
            || self
                .targets
                .iter()
                .filter_map(|t| t.report.as_ref())
                .any(Report::has_failures)
    }

    /// Every repository report, with its target.
    pub fn repositories(&self) -> impl Iterator<Item = (&Target, &RepositoryReport)> {
        self.targets.iter().flat_map(|t| {
            t.report
                .iter()
                .flat_map(|r| r.repositories.iter())
                .map(move |r| (&t.target, r))
        })
    }
}

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

impl Report {
    /// Whether anything went wrong that a caller must hear about: a
    /// repository that could not be collected, or an image not deleted.
    pub fn has_failures(&self) -> bool {
        self.summary.repositories_failed > 0
            || self.summary.images_failed > 0
            || self.summary.transitions_failed > 0
            || self.summary.repositories_unfinished > 0
            || !self.not_started.is_empty()
            || self.in_use_sources.iter().any(|s| s.error.is_some())
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
    let mut fields = json!({
        "repositoryName": r.repository_name,
        "dryRun": dry_run,
        "imagesScanned": r.images_scanned,
        "imagesKept": r.images_kept,
        "imagesProtected": r.protected.len(),
        "imagesPlanned": r.planned.len(),
        "imagesSkipped": r.skipped.len(),
        "imagesDeleted": r.deleted.len(),
        "imagesFailed": r.failed.len(),
        "transitionsPlanned": r.planned_transitions.len(),
        "imagesTransitioned": r.transitioned.len(),
        "transitionsFailed": r.transition_failed.len(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_rfc3339;
    use crate::plan::{Facts, plan_with};
    use crate::policy::Policy;

    /// A decision is written the same whether borrowed (`Planned`, the
    /// offline plan) or copied (`PlannedImage`, the report): deleted,
    /// kept, protected by the grace period, a child with its index, sized
    /// or not.
    #[test]
    fn a_decision_is_written_the_same_borrowed_or_copied() {
        let now = parse_rfc3339("2026-01-31T00:00:00Z").unwrap();
        let at = |minutes: i64| now - chrono::TimeDelta::minutes(minutes);
        let images = [
            Image::test("sha256:index", &["old"])
                .pushed_at(at(9_000))
                .index(),
            Image::test("sha256:child", &[])
                .pushed_at(at(9_000))
                .sized(7),
            Image::test("sha256:fresh", &["v2"]).pushed_at(at(5)),
            Image::test("sha256:new", &["v3"]).pushed_at(at(2)).sized(3),
        ];
        let policy = Policy::parse(
            r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any",
                "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}],
               "settings": {"gracePeriodMinutes": 60}}"#,
        )
        .unwrap();
        let facts = Facts {
            children: [("sha256:index".to_owned(), vec!["sha256:child".to_owned()])]
                .into_iter()
                .collect(),
            ..Facts::default()
        };
        let plan = plan_with(&images, &policy, now, &facts);
        for decision in &plan.decisions {
            let copied = serde_json::to_string(&PlannedImage::from_decision(decision)).unwrap();
            assert_eq!(serde_json::to_string(&Planned(decision)).unwrap(), copied);
        }
        let text: Vec<String> = plan
            .decisions
            .iter()
            .map(|d| serde_json::to_string(&Planned(d)).unwrap())
            .collect();
        assert!(
            text.iter().any(|t| t.contains(r#""protection":"#)),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains(r#""indexDigests":["sha256:index"]"#)),
            "{text:?}"
        );
    }
}
