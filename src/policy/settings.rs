//! ecr-gc's own settings: the policy document's optional `settings` object.
//!
//! ```json
//! "settings": {
//!   "repositories": { "include": ["team-a/*"], "exclude": ["team-a/base"] },
//!   "gracePeriodMinutes": 60,
//!   "maxDeletesPerRun": 1000,
//!   "maxDeletesPerRepository": 200,
//!   "allowDeletingEveryImage": false,
//!   "concurrency": 4,
//!   "deleteOrphanReferrers": false,
//!   "exactReclaim": false,
//!   "prices": { "standardPerGbMonth": 0.10, "archivePerGbMonth": 0.10 },
//!   "inUse": {
//!     "ecs": { "enabled": true, "taskDefinitionRevisions": 5 },
//!     "lambda": { "enabled": true },
//!     "events": { "enabled": true },
//!     "scheduler": { "enabled": true },
//!     "batch": { "enabled": true },
//!     "codebuild": { "enabled": true },
//!     "stepfunctions": { "enabled": true },
//!     "apprunner": { "enabled": true },
//!     "sagemaker": { "enabled": true },
//!     "eks": { "enabled": true, "clusters": ["prod"] },
//!     "external": { "ssmParameter": "/ecr-gc/in-use", "s3Object": "s3://bucket/in-use.json",
//!                   "maxAgeMinutes": 60, "s3BucketOwner": "111122223333" },
//!     "allowPartialInventory": false
//!   }
//! }
//! ```
//!
//! Every field is optional; the defaults are the safe choice. Unknown fields
//! are refused, like everywhere in the policy document. This module does no
//! I/O.

use serde::Deserialize;
use serde_json::Value;

use super::overrides::{Override, PolicySource, parse_overrides, parse_policy_source};
use super::pattern::Pattern;
use super::reclaim::{Prices, RawPrices, parse_prices};
use super::{PolicyError, invalid};
use crate::model::AccountId;

/// How long after a push an image is never deleted, by default. A multi-arch
/// push uploads the children before the index, and a deployment may pull a
/// fresh image minutes after it lands.
pub const DEFAULT_GRACE_PERIOD_MINUTES: u64 = 60;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub repositories: RepositoryFilter,
    pub safety: Safety,
    pub in_use: InUseSources,
    /// How many repositories are listed, or deleted from, at once.
    pub concurrency: usize,
    /// `overrides`: other rules for some repositories.
    pub overrides: Vec<Override>,
    /// `policySource`: whether a repository's own lifecycle policy is used.
    pub policy_source: PolicySource,
    /// `exactReclaim`: count only the layers no kept image uses, from the
    /// manifests (`policy::reclaim`).
    pub exact_reclaim: bool,
    /// `prices`: the storage prices of the estimated saving.
    pub prices: Prices,
}

/// Repositories worked on at once, by default: enough that listing and
/// deleting overlap and each operation's lane stays busy. The lanes pace
/// themselves under ECR's rate limits (`aws/ecr/pace.rs`), so more
/// concurrency waits in them rather than being throttled; each repository in
/// flight is held in memory until it finishes.
pub const DEFAULT_CONCURRENCY: usize = 16;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            repositories: RepositoryFilter::default(),
            safety: Safety::default(),
            in_use: InUseSources::default(),
            concurrency: DEFAULT_CONCURRENCY,
            overrides: Vec::new(),
            policy_source: PolicySource::Document,
            exact_reclaim: false,
            prices: Prices::default(),
        }
    }
}

/// One place ecr-gc looks for images in use: the extension point for a new
/// kind of workload. A variant here, its parsing in `parse_in_use`, and its
/// reading in `inventory::read` (which the compiler then demands) make a
/// source; ARCHITECTURE.md lists the rest of the steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// ECS tasks, services, and the newest `revisions` of each ACTIVE
    /// task-definition family.
    Ecs { revisions: u32 },
    /// Lambda functions packaged as images: every version.
    Lambda,
    /// The ECS task definitions that EventBridge rules start.
    EventRules,
    /// The ECS task definitions that EventBridge Scheduler schedules start.
    Schedules,
    /// AWS Batch: every ACTIVE job definition, and every unfinished job.
    Batch,
    /// CodeBuild projects whose build environment is an image.
    CodeBuild,
    /// The ECS task definitions Step Functions state machines run.
    StepFunctions,
    /// App Runner services whose source is an image.
    AppRunner,
    /// SageMaker models, endpoints, and training jobs in progress.
    SageMaker,
    /// EKS clusters' pods and pod templates, through each cluster's
    /// Kubernetes API: every cluster of the account and region, or only
    /// `clusters`.
    Eks { clusters: Option<Vec<String>> },
    /// An SSM parameter holding a JSON list of image references.
    SsmParameter { name: String },
    /// An S3 object (`s3://bucket/key`) holding the same.
    S3Object { bucket: String, key: String },
}

impl Source {
    /// The name the report gives the source: `ecs`, `lambda`,
    /// `ssm:/ecr-gc/in-use`, `s3://bucket/key`.
    pub fn name(&self) -> String {
        match self {
            Source::Ecs { .. } => "ecs".into(),
            Source::Lambda => "lambda".into(),
            Source::EventRules => "events".into(),
            Source::Schedules => "scheduler".into(),
            Source::Batch => "batch".into(),
            Source::CodeBuild => "codebuild".into(),
            Source::StepFunctions => "stepfunctions".into(),
            Source::AppRunner => "apprunner".into(),
            Source::SageMaker => "sagemaker".into(),
            Source::Eks { .. } => "eks".into(),
            Source::SsmParameter { name } => format!("ssm:{name}"),
            Source::S3Object { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Whether the source is a list someone else publishes, which can speak
    /// for workloads in any account, rather than the account's own API.
    pub fn is_external(&self) -> bool {
        match self {
            Source::Ecs { .. }
            | Source::Lambda
            | Source::EventRules
            | Source::Schedules
            | Source::Batch
            | Source::CodeBuild
            | Source::StepFunctions
            | Source::AppRunner
            | Source::SageMaker
            | Source::Eks { .. } => false,
            Source::SsmParameter { .. } | Source::S3Object { .. } => true,
        }
    }
}

/// Where ecr-gc looks for images in use, and how it reads them. Every
/// source that reads the account's own APIs is on by default; an external
/// list is off until named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUseSources {
    /// The enabled sources, in the order they are read and reported.
    pub sources: Vec<Source>,
    /// How long ago an external list may have been written, in minutes.
    pub max_age_minutes: u32,
    /// The account that must own the S3 object's bucket; by default, the
    /// account whose credentials read it.
    pub s3_bucket_owner: Option<AccountId>,
    /// Whether a target is collected even when some workloads that may use
    /// its registry could not be seen: other targets whose inventory failed
    /// or whose account could not be reached, and accounts reached without
    /// a role. Its own sources must still succeed.
    pub allow_partial_inventory: bool,
}

/// How many of the newest revisions of each ACTIVE task-definition family
/// are protected by default, so that rollbacks keep working.
pub const DEFAULT_TASK_DEFINITION_REVISIONS: u32 = 5;

/// How old an external in-use list may be by default, in minutes.
pub const DEFAULT_MAX_AGE_MINUTES: u32 = 60;

/// The longest `maxAgeMinutes` allowed: a week.
pub const MAX_MAX_AGE_MINUTES: u32 = 7 * 24 * 60;

impl Default for InUseSources {
    fn default() -> Self {
        InUseSources {
            sources: vec![
                Source::Ecs {
                    revisions: DEFAULT_TASK_DEFINITION_REVISIONS,
                },
                Source::Lambda,
                Source::EventRules,
                Source::Schedules,
                Source::Batch,
                Source::CodeBuild,
                Source::StepFunctions,
                Source::AppRunner,
                Source::SageMaker,
                Source::Eks { clusters: None },
            ],
            max_age_minutes: DEFAULT_MAX_AGE_MINUTES,
            s3_bucket_owner: None,
            allow_partial_inventory: false,
        }
    }
}

impl InUseSources {
    /// No source at all: what the offline `plan` and tests without AWS use.
    pub fn none() -> Self {
        InUseSources {
            sources: Vec::new(),
            ..InUseSources::default()
        }
    }

    /// Whether any source is enabled.
    pub fn any(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Whether an external list is among the sources.
    pub fn any_external(&self) -> bool {
        self.sources.iter().any(Source::is_external)
    }
}

/// The limits that hold whatever the rules say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Safety {
    /// Images pushed less than this many minutes ago are never deleted.
    pub grace_period_minutes: u64,
    /// A repository whose deletions would take the run past this many gets
    /// none.
    pub max_deletes_per_run: Option<u64>,
    /// A repository whose plan deletes more than this many gets none.
    pub max_deletes_per_repository: Option<u64>,
    /// Unless true, a plan that would delete every image of a repository
    /// deletes none of them.
    pub allow_deleting_every_image: bool,
    /// Whether referrers whose subject is gone are deleted.
    pub delete_orphan_referrers: bool,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            grace_period_minutes: DEFAULT_GRACE_PERIOD_MINUTES,
            max_deletes_per_run: None,
            max_deletes_per_repository: None,
            allow_deleting_every_image: false,
            delete_orphan_referrers: false,
        }
    }
}

/// Which repositories ecr-gc may collect, whatever started the run. A name
/// is selected when it matches some `include` glob and no `exclude` glob.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryFilter {
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
}

impl Default for RepositoryFilter {
    fn default() -> Self {
        RepositoryFilter {
            include: vec![Pattern::new("*")],
            exclude: Vec::new(),
        }
    }
}

impl RepositoryFilter {
    pub fn selects(&self, repository_name: &str) -> bool {
        self.refusal(repository_name).is_none()
    }

    /// Why `repository_name` is not selected, naming the glob; `None` when
    /// it is. Every entry point (a schedule, a push, a queue message, a
    /// repository named in an event or on the command line) is held to the
    /// same filter, so naming a repository never widens it.
    pub fn refusal(&self, repository_name: &str) -> Option<String> {
        if let Some(glob) = self.exclude.iter().find(|p| p.matches(repository_name)) {
            return Some(format!(
                "repository `{repository_name}` is excluded by settings.repositories.exclude `{}`",
                glob.as_str()
            ));
        }
        if !self.include.iter().any(|p| p.matches(repository_name)) {
            let globs: Vec<&str> = self.include.iter().map(Pattern::as_str).collect();
            return Some(format!(
                "repository `{repository_name}` is not matched by settings.repositories.include {globs:?}"
            ));
        }
        None
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSettings {
    repositories: Option<RawRepositoryFilter>,
    grace_period_minutes: Option<u64>,
    max_deletes_per_run: Option<u64>,
    max_deletes_per_repository: Option<u64>,
    allow_deleting_every_image: Option<bool>,
    delete_orphan_referrers: Option<bool>,
    in_use: Option<RawInUse>,
    concurrency: Option<usize>,
    overrides: Option<Value>,
    policy_source: Option<String>,
    exact_reclaim: Option<bool>,
    prices: Option<RawPrices>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawInUse {
    ecs: Option<RawEcs>,
    lambda: Option<RawEnabled>,
    events: Option<RawEnabled>,
    scheduler: Option<RawEnabled>,
    batch: Option<RawEnabled>,
    codebuild: Option<RawEnabled>,
    stepfunctions: Option<RawEnabled>,
    apprunner: Option<RawEnabled>,
    sagemaker: Option<RawEnabled>,
    eks: Option<RawEks>,
    external: Option<RawExternal>,
    allow_partial_inventory: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEcs {
    enabled: Option<bool>,
    task_definition_revisions: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEks {
    enabled: Option<bool>,
    clusters: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnabled {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExternal {
    ssm_parameter: Option<String>,
    s3_object: Option<String>,
    max_age_minutes: Option<u32>,
    s3_bucket_owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepositoryFilter {
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
}

/// Parses the document's `settings` value; `None` gives the defaults.
pub fn parse(value: Option<Value>) -> Result<Settings, PolicyError> {
    let Some(value) = value else {
        return Ok(Settings::default());
    };
    let raw: RawSettings = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            "settings".to_owned()
        } else {
            format!("settings.{path}")
        };
        invalid(at, e.into_inner().to_string())
    })?;
    let mut settings = Settings::default();
    if let Some(filter) = raw.repositories {
        if let Some(include) = filter.include {
            if include.is_empty() {
                return Err(invalid(
                    "settings.repositories.include",
                    "must not be empty; leave it out to select every repository",
                ));
            }
            settings.repositories.include = include.iter().map(|p| Pattern::new(p)).collect();
        }
        if let Some(exclude) = filter.exclude {
            settings.repositories.exclude = exclude.iter().map(|p| Pattern::new(p)).collect();
        }
    }
    let safety = &mut settings.safety;
    safety.grace_period_minutes = raw
        .grace_period_minutes
        .unwrap_or(DEFAULT_GRACE_PERIOD_MINUTES);
    safety.max_deletes_per_run = raw.max_deletes_per_run;
    safety.max_deletes_per_repository = raw.max_deletes_per_repository;
    safety.allow_deleting_every_image = raw.allow_deleting_every_image.unwrap_or(false);
    safety.delete_orphan_referrers = raw.delete_orphan_referrers.unwrap_or(false);
    if let Some(in_use) = raw.in_use {
        settings.in_use = parse_in_use(in_use)?;
    }
    if let Some(concurrency) = raw.concurrency {
        if !(1..=64).contains(&concurrency) {
            return Err(invalid(
                "settings.concurrency",
                format!("{concurrency} is outside 1 to 64"),
            ));
        }
        settings.concurrency = concurrency;
    }
    if let Some(overrides) = raw.overrides {
        settings.overrides = parse_overrides(overrides)?;
    }
    settings.policy_source = parse_policy_source(raw.policy_source.as_deref())?;
    settings.exact_reclaim = raw.exact_reclaim.unwrap_or(false);
    settings.prices = parse_prices(raw.prices)?;
    Ok(settings)
}

/// `settings.inUse.external`: the lists someone else publishes, and how
/// they are checked.
fn parse_external(external: RawExternal, sources: &mut InUseSources) -> Result<(), PolicyError> {
    if let Some(name) = external.ssm_parameter {
        if name.trim().is_empty() {
            return Err(invalid(
                "settings.inUse.external.ssmParameter",
                "must not be empty",
            ));
        }
        sources.sources.push(Source::SsmParameter { name });
    }
    if let Some(uri) = external.s3_object {
        let parsed = uri
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty());
        let Some((bucket, key)) = parsed else {
            return Err(invalid(
                "settings.inUse.external.s3Object",
                format!("`{uri}` is not of the form s3://bucket/key"),
            ));
        };
        sources.sources.push(Source::S3Object {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        });
    }
    if let Some(minutes) = external.max_age_minutes {
        if !(1..=MAX_MAX_AGE_MINUTES).contains(&minutes) {
            return Err(invalid(
                "settings.inUse.external.maxAgeMinutes",
                format!("{minutes} is outside 1 to {MAX_MAX_AGE_MINUTES} (a week)"),
            ));
        }
        sources.max_age_minutes = minutes;
    }
    if let Some(owner) = external.s3_bucket_owner {
        let owner = AccountId::parse(owner).map_err(|e| {
            invalid(
                "settings.inUse.external.s3BucketOwner",
                format!("{e}; expected the 12-digit account that owns the bucket"),
            )
        })?;
        sources.s3_bucket_owner = Some(owner);
    }
    Ok(())
}

/// `settings.inUse.eks.clusters`: at least one name, each an EKS cluster
/// name (a letter or digit, then letters, digits, `-` and `_`; at most
/// 100), none twice.
fn eks_clusters(names: Vec<String>) -> Result<Vec<String>, PolicyError> {
    const AT: &str = "settings.inUse.eks.clusters";
    if names.is_empty() {
        return Err(invalid(
            AT,
            "names no cluster; leave it out to read every cluster, or switch the source off with enabled: false",
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let well_formed = name.len() <= 100
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !well_formed {
            return Err(invalid(AT, format!("{name:?} is not an EKS cluster name")));
        }
        if names[..i].contains(name) {
            return Err(invalid(AT, format!("{name:?} is named twice")));
        }
    }
    Ok(names)
}

fn parse_in_use(raw: RawInUse) -> Result<InUseSources, PolicyError> {
    let mut sources = InUseSources {
        sources: Vec::new(),
        allow_partial_inventory: raw.allow_partial_inventory.unwrap_or(false),
        ..InUseSources::default()
    };
    // The account's own sources are on unless disabled; the order is the
    // report's.
    let ecs = raw.ecs.unwrap_or_default();
    if ecs.enabled.unwrap_or(true) {
        sources.sources.push(Source::Ecs {
            revisions: ecs
                .task_definition_revisions
                .unwrap_or(DEFAULT_TASK_DEFINITION_REVISIONS),
        });
    }
    for (switch, source) in [
        (raw.lambda, Source::Lambda),
        (raw.events, Source::EventRules),
        (raw.scheduler, Source::Schedules),
        (raw.batch, Source::Batch),
        (raw.codebuild, Source::CodeBuild),
        (raw.stepfunctions, Source::StepFunctions),
        (raw.apprunner, Source::AppRunner),
        (raw.sagemaker, Source::SageMaker),
    ] {
        if switch.unwrap_or_default().enabled.unwrap_or(true) {
            sources.sources.push(source);
        }
    }
    let eks = raw.eks.unwrap_or_default();
    if eks.enabled.unwrap_or(true) {
        let clusters = eks.clusters.map(eks_clusters).transpose()?;
        sources.sources.push(Source::Eks { clusters });
    }
    if let Some(external) = raw.external {
        parse_external(external, &mut sources)?;
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(settings: &str, expected: Result<Settings, &str>) {
        let value = serde_json::from_str(settings).unwrap();
        match (parse(Some(value)), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(part)) => {
                let message = got.to_string();
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
            (got, want) => panic!("{settings}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn safety_settings() {
        check("{}", Ok(Settings::default()));
        let expected = Settings {
            safety: Safety {
                grace_period_minutes: 0,
                max_deletes_per_run: Some(10),
                max_deletes_per_repository: Some(0),
                allow_deleting_every_image: true,
                delete_orphan_referrers: true,
            },
            ..Settings::default()
        };
        check(
            r#"{"gracePeriodMinutes":0,"maxDeletesPerRun":10,"maxDeletesPerRepository":0,"allowDeletingEveryImage":true,"deleteOrphanReferrers":true}"#,
            Ok(expected),
        );
        check(
            r#"{"gracePeriodMinutes":-1}"#,
            Err("settings.gracePeriodMinutes: invalid value"),
        );
        check(
            r#"{"maxDeletesPerRun":"10"}"#,
            Err("settings.maxDeletesPerRun: invalid type"),
        );
        check(r#"{"gracePeriod":5}"#, Err("unknown field `gracePeriod`"));
        check(
            r#"{"exactReclaim":true,"prices":{"archivePerGbMonth":0.07}}"#,
            Ok(Settings {
                exact_reclaim: true,
                prices: Prices {
                    standard: 0.10,
                    archive: 0.07,
                },
                ..Settings::default()
            }),
        );
        check(
            r#"{"prices":{"standardPerGbMonth":-0.1}}"#,
            Err("settings.prices.standardPerGbMonth: -0.1 is outside 0 to 10"),
        );
        check(
            r#"{"prices":{"archivePerGbMonth":1e9}}"#,
            Err("settings.prices.archivePerGbMonth: 1000000000 is outside 0 to 10"),
        );
        check(
            r#"{"prices":{"standard":0.1}}"#,
            Err("unknown field `standard`"),
        );
        check(
            r#"{"inUse":{"external":{"maxAgeMinutes":0}}}"#,
            Err("settings.inUse.external.maxAgeMinutes: 0 is outside 1 to 10080"),
        );
        check(
            r#"{"inUse":{"external":{"s3BucketOwner":"me"}}}"#,
            Err("settings.inUse.external.s3BucketOwner"),
        );
        check(
            r#"{"inUse":{"external":{"s3Object":"s3://b/k","maxAgeMinutes":15,"s3BucketOwner":"111122223333"}}}"#,
            Ok(Settings {
                in_use: InUseSources {
                    sources: vec![
                        Source::Ecs { revisions: 5 },
                        Source::Lambda,
                        Source::EventRules,
                        Source::Schedules,
                        Source::Batch,
                        Source::CodeBuild,
                        Source::StepFunctions,
                        Source::AppRunner,
                        Source::SageMaker,
                        Source::Eks { clusters: None },
                        Source::S3Object {
                            bucket: "b".into(),
                            key: "k".into(),
                        },
                    ],
                    max_age_minutes: 15,
                    s3_bucket_owner: Some(AccountId::parse("111122223333").unwrap()),
                    ..InUseSources::default()
                },
                ..Settings::default()
            }),
        );
        check(
            r#"{"inUse":{"events":{"enabled":false},"lambda":{"enabled":false}}}"#,
            Ok(Settings {
                in_use: InUseSources {
                    sources: vec![
                        Source::Ecs { revisions: 5 },
                        Source::Schedules,
                        Source::Batch,
                        Source::CodeBuild,
                        Source::StepFunctions,
                        Source::AppRunner,
                        Source::SageMaker,
                        Source::Eks { clusters: None },
                    ],
                    ..InUseSources::default()
                },
                ..Settings::default()
            }),
        );
        check(
            r#"{"inUse":{"eks":{"clusters":["prod","staging_2"]},"sagemaker":{"enabled":false}}}"#,
            Ok(Settings {
                in_use: InUseSources {
                    sources: vec![
                        Source::Ecs { revisions: 5 },
                        Source::Lambda,
                        Source::EventRules,
                        Source::Schedules,
                        Source::Batch,
                        Source::CodeBuild,
                        Source::StepFunctions,
                        Source::AppRunner,
                        Source::Eks {
                            clusters: Some(vec!["prod".into(), "staging_2".into()]),
                        },
                    ],
                    ..InUseSources::default()
                },
                ..Settings::default()
            }),
        );
        check(
            r#"{"inUse":{"eks":{"clusters":[]}}}"#,
            Err("settings.inUse.eks.clusters: names no cluster"),
        );
        check(
            r#"{"inUse":{"eks":{"clusters":["-prod"]}}}"#,
            Err(r#"settings.inUse.eks.clusters: "-prod" is not an EKS cluster name"#),
        );
        check(
            r#"{"inUse":{"eks":{"clusters":["a/b"]}}}"#,
            Err(r#"settings.inUse.eks.clusters: "a/b" is not an EKS cluster name"#),
        );
        check(
            r#"{"inUse":{"eks":{"clusters":["prod","prod"]}}}"#,
            Err(r#"settings.inUse.eks.clusters: "prod" is named twice"#),
        );
        check(
            r#"{"inUse":{"scheduler":{"enabled":"no"}}}"#,
            Err("settings.inUse.scheduler.enabled: invalid type"),
        );
        check(
            r#"{"concurrency":0}"#,
            Err("settings.concurrency: 0 is outside 1 to 64"),
        );
        check(
            r#"{"repositories":{"include":[]}}"#,
            Err("settings.repositories.include"),
        );
        check(
            r#"{"repositories":{"exclude":[1]}}"#,
            Err("settings.repositories.exclude[0]"),
        );
    }

    #[test]
    fn repository_selection() {
        let filter = |json: &str| {
            parse(Some(serde_json::from_str(json).unwrap()))
                .unwrap()
                .repositories
        };
        assert!(filter("{}").selects("anything/at/all"));
        let some = filter(
            r#"{"repositories":{"include":["team-a/*","tools"],"exclude":["team-a/keep-*"]}}"#,
        );
        assert!(some.selects("team-a/web"));
        assert!(some.selects("tools"));
        assert!(!some.selects("tools2"));
        assert!(!some.selects("team-a/keep-forever"));
        assert!(!some.selects("team-b/web"));
        assert_eq!(
            some.refusal("team-a/keep-forever").as_deref(),
            Some(
                "repository `team-a/keep-forever` is excluded by settings.repositories.exclude `team-a/keep-*`"
            )
        );
        assert_eq!(
            some.refusal("team-b/web").as_deref(),
            Some(
                "repository `team-b/web` is not matched by settings.repositories.include [\"team-a/*\", \"tools\"]"
            )
        );
    }
}
