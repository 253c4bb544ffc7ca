//! The run report: what the Lambda returns and what `ecr-gc run --output
//! json` prints. Per repository, how many images ended each way and, unless
//! only a summary is kept ([`Detail`]), the planned, deleted and failed
//! images, with failures in ECR's `ImageFailure` shape. The log lines
//! ([`super::lines`]) have every image either way.

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aws::ecr::ApiCallCounts;
use crate::inventory::SourceReport;
use crate::model::{Image, ImageFailure, ImageStatus};
use crate::plan::{Decision, Reason, Relation};
use crate::policy::reclaim::Prices;
pub use crate::run::collected::{Collection, TargetReport};
use crate::run::reclaim::{ExactReclaim, Saving};
pub use crate::run::totals::{ExactTotals, ImageCounts, Summary};

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
    /// Whether each repository's image lists were kept.
    pub detail: Detail,
    /// Repositories collected but left out of `repositories` to keep a
    /// response small ([`Collection::trim`]); each has its log line.
    #[serde(skip_serializing_if = "is_zero")]
    pub repositories_not_listed: u64,
    /// The prices the estimated savings are counted at.
    #[serde(rename = "pricesUsd")]
    pub prices: Prices,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How much of each repository a report keeps once the repository is
/// finished. Every image's outcome is in the log lines either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detail {
    /// Every planned, protected, skipped, deleted and failed image, as
    /// well as the counts: the CLI's default, and the Lambda's with
    /// `ECR_GC_REPORT_DETAIL=images`.
    #[default]
    Images,
    /// The counts only: the image lists are dropped as each repository
    /// finishes, so memory does not grow with the registry, and a Lambda
    /// response stays far under its 6 MB limit.
    Summary,
    /// As `Images`, and the images kept by no protection too: what the
    /// CLI's `--output html` draws. Never the Lambda's.
    All,
}

impl Detail {
    /// `images` or `summary`, as a flag or a variable spells it.
    pub fn parse(text: &str) -> Option<Detail> {
        match text.trim().to_ascii_lowercase().as_str() {
            "images" => Some(Detail::Images),
            "summary" => Some(Detail::Summary),
            _ => None,
        }
    }
}

/// What happened in one repository. It is written with its counts, and
/// with its image lists unless they were dropped ([`Detail::Summary`]).
#[derive(Debug, Clone, Default)]
pub struct RepositoryReport {
    pub repository_name: String,
    /// Set when the repository could not be collected (for example
    /// `RepositoryNotFoundException`); nothing was deleted in it.
    pub error: Option<RepositoryError>,
    /// Where its rules came from, when not the document's own `rules`: an
    /// override (`settings.overrides[1]`), or its own lifecycle policy.
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
    /// With [`Detail::All`]: the images kept because no rule expires or
    /// archives them.
    pub kept: Vec<PlannedImage>,
    /// Set when a safety limit stopped every deletion in this repository,
    /// with the reason.
    pub held: Option<String>,
    /// What held it: the setting (`maxDeletesPerRun`, ...), or
    /// `inventory incomplete`.
    pub held_by: Option<&'static str>,
    /// How many images each kind of protection kept (`in use`, `grace
    /// period`, ...).
    pub protected_by: BTreeMap<&'static str, u64>,
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
    pub unfinished: Option<String>,
    /// The sizes of the images planned for deletion: an upper bound of
    /// what deleting them frees, since images share layers.
    pub bytes_planned: i64,
    /// The sizes of the images deleted, the same upper bound.
    pub bytes_reclaimed: i64,
    /// The size of the images planned for the archive.
    pub bytes_to_archive: i64,
    /// The size of the images archived.
    pub bytes_archived: i64,
    /// With `settings.exactReclaim`: the bytes freed, shared layers
    /// counted once, or why they could not be counted.
    pub exact_reclaim: Option<ExactReclaim>,
    /// The estimated saving a month, of the plan and of what was done.
    pub estimated_monthly_saving: Saving,
    pub duration_ms: u64,
    /// Set once the image lists are dropped, with what they counted.
    pub dropped: Option<ImageCounts>,
}

impl RepositoryReport {
    /// How many images ended each way, from the lists or, once they are
    /// dropped, from what they counted.
    pub fn counts(&self) -> ImageCounts {
        let n = |len: usize| len as u64;
        self.dropped.unwrap_or(ImageCounts {
            images_protected: n(self.protected.len()),
            images_planned: n(self.planned.len()),
            images_skipped: n(self.skipped.len()),
            images_deleted: n(self.deleted.len()),
            images_failed: n(self.failed.len()),
            transitions_planned: n(self.planned_transitions.len()),
            images_transitioned: n(self.transitioned.len()),
            transitions_failed: n(self.transition_failed.len()),
        })
    }

    /// Keeps what `detail` asks of a finished repository: with
    /// [`Detail::Summary`], the counts instead of the lists.
    pub fn settle(&mut self, detail: Detail) {
        if detail == Detail::Summary && self.dropped.is_none() {
            self.dropped = Some(self.counts());
            self.planned = Vec::new();
            self.planned_transitions = Vec::new();
            self.protected = Vec::new();
            self.kept = Vec::new();
            self.skipped = Vec::new();
            self.deleted = Vec::new();
            self.failed = Vec::new();
            self.transitioned = Vec::new();
            self.transition_failed = Vec::new();
        }
    }

    /// Whether an operator must look at it: not collected, held,
    /// unfinished, or an image skipped or not deleted or archived.
    pub fn needs_attention(&self) -> bool {
        let c = self.counts();
        self.error.is_some()
            || self.held.is_some()
            || self.unfinished.is_some()
            || c.images_skipped + c.images_failed + c.transitions_failed > 0
    }
}

/// The written form of a [`RepositoryReport`]: its lists borrowed, and
/// left out once dropped.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryFields<'a> {
    repository_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RepositoryError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules_from: Option<&'a str>,
    images_scanned: u64,
    images_active: u64,
    images_kept: u64,
    #[serde(flatten)]
    counts: ImageCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_by: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    protected_by: &'a BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unfinished: Option<&'a str>,
    bytes_planned: i64,
    bytes_reclaimed: i64,
    bytes_to_archive: i64,
    bytes_archived: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exact_reclaim: Option<&'a ExactReclaim>,
    estimated_monthly_saving: Saving,
    duration_ms: u64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    images: Option<ImageLists<'a>>,
}

/// A repository's image lists, as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageLists<'a> {
    #[serde(skip_serializing_if = "<[PlannedImage]>::is_empty")]
    kept: &'a [PlannedImage],
    planned: &'a [PlannedImage],
    planned_transitions: &'a [PlannedImage],
    protected: &'a [PlannedImage],
    skipped: &'a [SkippedImage],
    deleted: &'a [PlannedImage],
    failed: &'a [ImageFailure],
    transitioned: &'a [PlannedImage],
    transition_failed: &'a [ImageFailure],
}

impl Serialize for RepositoryReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let images = self.dropped.is_none().then_some(ImageLists {
            kept: &self.kept,
            planned: &self.planned,
            planned_transitions: &self.planned_transitions,
            protected: &self.protected,
            skipped: &self.skipped,
            deleted: &self.deleted,
            failed: &self.failed,
            transitioned: &self.transitioned,
            transition_failed: &self.transition_failed,
        });
        RepositoryFields {
            repository_name: &self.repository_name,
            error: self.error.as_ref(),
            rules_from: self.rules_from.as_deref(),
            images_scanned: self.images_scanned,
            images_active: self.images_active,
            images_kept: self.images_kept,
            counts: self.counts(),
            held: self.held.as_deref(),
            held_by: self.held_by,
            protected_by: &self.protected_by,
            unfinished: self.unfinished.as_deref(),
            bytes_planned: self.bytes_planned,
            bytes_reclaimed: self.bytes_reclaimed,
            bytes_to_archive: self.bytes_to_archive,
            bytes_archived: self.bytes_archived,
            exact_reclaim: self.exact_reclaim.as_ref(),
            estimated_monthly_saving: self.estimated_monthly_saving,
            duration_ms: self.duration_ms,
            images,
        }
        .serialize(s)
    }
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

impl Report {
    /// Whether anything went wrong that a caller must hear about: a
    /// repository that could not be collected, or an image not deleted.
    pub fn has_failures(&self) -> bool {
        self.summary.repositories_failed > 0
            || self.summary.counts.images_failed > 0
            || self.summary.counts.transitions_failed > 0
            || self.summary.repositories_unfinished > 0
            || !self.not_started.is_empty()
            || self.in_use_sources.iter().any(|s| s.error.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::targets::Target;
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

    /// A repository with `deleted` images and, when `trouble`, a held
    /// reason.
    fn repository(name: &str, deleted: usize, trouble: bool) -> RepositoryReport {
        let image = PlannedImage {
            image_digest: "sha256:a".into(),
            image_tags: vec!["v1".into()],
            image_pushed_at: DateTime::<Utc>::MIN_UTC,
            image_size_in_bytes: Some(3),
            image_status: ImageStatus::Active,
            rule_priority: Some(1),
            reason: "old".into(),
            protection: None,
            index_digests: Vec::new(),
        };
        RepositoryReport {
            repository_name: name.into(),
            images_scanned: deleted as u64 + 1,
            planned: vec![image.clone(); deleted],
            deleted: vec![image; deleted],
            held: trouble.then(|| "a limit".to_owned()),
            ..RepositoryReport::default()
        }
    }

    /// A summary keeps the counts and drops the lists; the written form
    /// has the same counts either way, and the lists only with `images`.
    #[test]
    fn a_summary_keeps_the_counts_and_drops_the_lists() {
        let mut r = repository("web", 2, false);
        let full = serde_json::to_value(&r).unwrap();
        r.settle(Detail::Images);
        assert_eq!(serde_json::to_value(&r).unwrap(), full);
        r.settle(Detail::Summary);
        assert!(r.planned.is_empty() && r.deleted.is_empty());
        let summary = serde_json::to_value(&r).unwrap();
        for count in ["imagesPlanned", "imagesDeleted"] {
            assert_eq!(summary[count], 2, "{summary}");
            assert_eq!(full[count], 2, "{full}");
        }
        for list in ["planned", "deleted", "failed", "skipped", "protected"] {
            assert!(full[list].is_array(), "{full}");
            assert!(summary.get(list).is_none(), "{summary}");
        }
        assert_eq!(Summary::of([&r]).counts.images_deleted, 2);
        // Settling twice keeps the first counts.
        r.settle(Detail::Summary);
        assert_eq!(r.counts().images_deleted, 2);
    }

    /// Trimming keeps the repositories that need attention first, then the
    /// others in order, and counts what it leaves out per target; the
    /// totals still count every repository.
    #[test]
    fn trimming_keeps_what_needs_attention_first() {
        let target = |repositories: Vec<RepositoryReport>| TargetReport {
            target: Target {
                account_id: None,
                region: None,
            },
            error: None,
            report: Some(Report {
                trigger: Cause::Cli,
                dry_run: true,
                now: DateTime::<Utc>::MIN_UTC,
                summary: Summary::of(&repositories),
                repositories,
                api_calls: ApiCallCounts::default(),
                in_use_sources: Vec::new(),
                not_started: Vec::new(),
                duration_ms: 0,
                detail: Detail::Summary,
                repositories_not_listed: 0,
                prices: Prices::default(),
            }),
        };
        let collection = || {
            Collection::new(
                Cause::Cli,
                true,
                DateTime::<Utc>::MIN_UTC,
                vec![
                    target(vec![repository("a", 1, false), repository("b", 1, true)]),
                    target(vec![repository("c", 1, false), repository("d", 1, true)]),
                ],
                0,
                0,
            )
        };
        let listed = |c: &Collection| {
            let names: Vec<&str> = c
                .repositories()
                .map(|(_, r)| r.repository_name.as_str())
                .collect();
            names.join(" ")
        };
        let not_listed = |c: &Collection| {
            c.targets
                .iter()
                .map(|t| t.report.as_ref().unwrap().repositories_not_listed)
                .collect::<Vec<_>>()
        };
        for (max, names, left_out) in [
            (4, "a b c d", [0, 0]),
            (3, "a b d", [0, 1]),
            (2, "b d", [1, 1]),
            (1, "b", [1, 2]),
            (0, "", [2, 2]),
        ] {
            let mut c = collection();
            c.trim(max);
            assert_eq!(listed(&c), names, "max {max}");
            assert_eq!(not_listed(&c), left_out, "max {max}");
            assert_eq!(c.summary.repositories, 4);
            let written = serde_json::to_value(&c).unwrap();
            let field = &written["targets"][0]["repositoriesNotListed"];
            assert_eq!(field.as_u64().unwrap_or(0), left_out[0], "{written}");
        }
    }
}
