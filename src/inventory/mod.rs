//! The in-use inventory: which images workloads run or may roll back to.
//!
//! Sources, each switchable in the policy's `settings.inUse`:
//! * [`ecs`]: RUNNING and PENDING tasks (by the digest ECS reports, else by
//!   reference), the task definitions of services' PRIMARY and ACTIVE
//!   deployments, and the newest N revisions of every ACTIVE family;
//! * [`lambda`]: every version of every Image-package function;
//! * [`schedules`]: the ECS task definitions that EventBridge rules and
//!   EventBridge Scheduler schedules start, whatever their revision;
//! * [`batch`]: every ACTIVE AWS Batch job definition and unfinished job;
//! * [`services`]: CodeBuild projects' build images and App Runner
//!   services' images;
//! * [`sagemaker`]: SageMaker models, endpoints, and training jobs in
//!   progress;
//! * [`eks`]: EKS clusters' pods and pod templates, read from each
//!   cluster's Kubernetes API ([`kubernetes`]);
//! * [`workflows`]: the ECS task definitions Step Functions state machines
//!   run;
//! * [`external`]: a JSON list of references in an SSM parameter or an S3
//!   object, for what AWS APIs cannot see (clusters outside AWS or behind a private endpoint, CI).
//!
//! The inventory is collected once per account and region ([`collect`]).
//! A target's inventory ([`for_target`]) is its own account's, plus what
//! the other inventories of the run use of its registry ([`Foreign`]): a
//! workload in one account may run another account's images. References
//! are resolved per repository against the survey's listing: a digest
//! protects itself, a tag protects the digest it points at in that
//! snapshot, and a reference to any other registry is not this target's.
//!
//! Fail closed: if an enabled source fails, or another inventory of the run
//! could not be read, [`Inventory::failure`] says so, and the engine
//! deletes nothing in the target's registry.

pub mod batch;
pub mod ecs;
pub mod eks;
pub mod external;
pub mod kubernetes;
pub mod lambda;
pub mod reference;
pub mod sagemaker;
pub mod schedules;
pub mod services;
pub mod workflows;

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::aws::{CallError, Clients};
use crate::model::Image;
use crate::policy::settings::{InUseSources, Source};
pub use reference::{ImageRef, Registry};

/// One reference in use, and the workload that uses it, such as
/// `ecs:prod/web` or `lambda:resize:3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub reference: ImageRef,
    pub workload: String,
}

/// An in-use list that is not one (`InvalidInUseList`).
pub fn invalid_list(operation: &'static str, message: impl Into<String>) -> CallError {
    CallError::new(operation, "InvalidInUseList", message)
}

/// A failure to read what `workload` starts, saying which workload.
pub(crate) fn in_workload(error: CallError, workload: &str) -> CallError {
    CallError {
        message: format!("{workload}: {}", error.message),
        ..error
    }
}

/// An in-use list older than `maxAgeMinutes` (`StaleInUseList`).
pub fn stale_list(operation: &'static str, message: impl Into<String>) -> CallError {
    CallError::new(operation, "StaleInUseList", message)
}

/// How one source fared, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceReport {
    /// `sts`, `ecs`, `lambda`, `ssm:<name>` or `s3://bucket/key`; for
    /// what other accounts' workloads use, `workloads of <account>/<region>`
    /// or `other targets' workloads`.
    pub source: String,
    pub references: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the run could not see but went on without, when the settings
    /// allow it (`allowPartialInventory`, or an account seen only through
    /// an external list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SourceReport {
    fn failed(source: impl Into<String>, error: impl Into<String>) -> SourceReport {
        SourceReport {
            source: source.into(),
            references: 0,
            error: Some(error.into()),
            note: None,
        }
    }
}

/// The references in use that one account's sources saw in one region; or,
/// for a target, everything that protects its registry (see
/// [`for_target`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Whose workloads the sources saw, and so the registry "ours" means;
    /// for a target's inventory, its registry. `None` when no source is
    /// enabled (or the account could not be told).
    pub registry: Option<Registry>,
    pub uses: Vec<InUse>,
    pub sources: Vec<SourceReport>,
}

/// What the other inventories of a run say about one registry (or one of
/// its repositories): the references their workloads make into it, and
/// which of them could not be read. A fan-out message carries it from the
/// scheduled run, which read every inventory, to the consumer, which reads
/// only its own target's; it can only add protection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Foreign {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<ForeignUse>,
    /// Inventories that could not be read, whose workloads may use this
    /// registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<Incomplete>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ForeignUse {
    pub reference: String,
    /// `<account>/<region>:<workload>`, such as
    /// `222222222222/eu-west-1:ecs:prod/web`.
    pub workload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Incomplete {
    /// `<account>/<region>`.
    pub workloads: String,
    pub error: String,
}

impl Foreign {
    /// What `others` say about `registry` (only its `repository`, if
    /// given).
    pub fn of(registry: &Registry, repository: Option<&str>, others: &[&Inventory]) -> Foreign {
        let mut foreign = Foreign::default();
        for other in others {
            let who = other
                .registry
                .as_ref()
                .map_or_else(|| "an account".to_owned(), Registry::to_string);
            if let Some(error) = other.failure() {
                foreign.incomplete.push(Incomplete {
                    workloads: who.clone(),
                    error,
                });
            }
            for used in &other.uses {
                let r = &used.reference;
                if registry.is_host(&r.registry)
                    && repository.is_none_or(|name| name == r.repository)
                {
                    foreign.uses.push(ForeignUse {
                        reference: r.to_string(),
                        workload: format!("{who}:{}", used.workload),
                    });
                }
            }
        }
        foreign
    }

    /// Adds `other`'s uses and failures to these.
    pub fn extend(&mut self, other: Foreign) {
        self.uses.extend(other.uses);
        self.incomplete.extend(other.incomplete);
    }
}

/// A target's inventory: what its own sources saw (`home`, read with the
/// target's credentials in its region) and what the run's other inventories
/// use of its registry (`foreign`; `None` when the run has no other
/// inventory, so the report has no line for them). An inventory of `foreign` that could not
/// be read makes it incomplete, so nothing is deleted, unless
/// `allow_partial`; then the report notes it. `blind` is what else the
/// target cannot see (an account reached without a role), as a report line.
pub fn for_target(
    registry: Registry,
    home: &Inventory,
    foreign: Option<&Foreign>,
    allow_partial: bool,
    blind: Option<SourceReport>,
) -> Inventory {
    if home.registry.is_none() && home.sources.is_empty() {
        // No source is enabled: nothing is known, and nothing is asked.
        return Inventory::none();
    }
    let mut inventory = Inventory {
        sources: home.sources.clone(),
        ..Inventory::default()
    };
    // The home sources' own workloads are named as they are when they are
    // the target's own account; else (an account reached with the caller's
    // credentials) by whose they are.
    let prefix = match &home.registry {
        Some(seen) if *seen != registry => format!("{seen}:"),
        _ => String::new(),
    };
    inventory.uses.extend(home.uses.iter().map(|u| InUse {
        reference: u.reference.clone(),
        workload: format!("{prefix}{}", u.workload),
    }));
    if let Some(foreign) = foreign {
        add_foreign(&mut inventory, foreign, allow_partial);
    }
    inventory.sources.extend(blind);
    inventory.registry = Some(registry);
    inventory
}

fn add_foreign(inventory: &mut Inventory, foreign: &Foreign, allow_partial: bool) {
    let mut references = 0;
    for used in &foreign.uses {
        match reference::parse(&used.reference) {
            Some(reference) => {
                references += 1;
                inventory.uses.push(InUse {
                    reference,
                    workload: used.workload.clone(),
                });
            }
            None => inventory.sources.push(SourceReport::failed(
                "other targets' workloads",
                format!("`{}` is not an image reference", used.reference),
            )),
        }
    }
    inventory.sources.push(SourceReport {
        source: "other targets' workloads".into(),
        references,
        error: None,
        note: None,
    });
    for incomplete in &foreign.incomplete {
        let what = format!(
            "the in-use inventory of {} is incomplete ({}); its workloads may run images of this registry",
            incomplete.workloads, incomplete.error
        );
        let mut line = SourceReport::failed(format!("workloads of {}", incomplete.workloads), "");
        if allow_partial {
            line.error = None;
            line.note = Some(format!("{what}; collected anyway (allowPartialInventory)"));
        } else {
            line.error = Some(format!(
                "{what}; set settings.inUse.allowPartialInventory to collect regardless"
            ));
        }
        inventory.sources.push(line);
    }
}

impl Inventory {
    /// No sources: nothing is known to be in use.
    pub fn none() -> Inventory {
        Inventory::default()
    }

    /// When a source failed: which, and why. Nothing may be deleted then.
    pub fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .sources
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.source)))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }

    /// The digests in `repository` that are in use, each with the workloads
    /// that use it (sorted). `images` is the repository's listing, which
    /// resolves tags.
    pub fn in_use(&self, repository: &str, images: &[Image]) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, BTreeSet<&str>> = HashMap::new();
        let Some(registry) = &self.registry else {
            return HashMap::new();
        };
        let mut by_tag: HashMap<&str, &str> = HashMap::new();
        for image in images {
            for tag in &image.image_tags {
                by_tag.insert(tag, &image.image_digest);
            }
        }
        for used in &self.uses {
            let r = &used.reference;
            if r.repository != repository || !registry.is_host(&r.registry) {
                continue;
            }
            let digest = match (&r.digest, &r.tag) {
                (Some(digest), _) => Some(digest.as_str()),
                (None, Some(tag)) => by_tag.get(tag.as_str()).copied(),
                // No tag and no digest means `latest`.
                (None, None) => by_tag.get("latest").copied(),
            };
            if let Some(digest) = digest {
                out.entry(digest.to_owned())
                    .or_default()
                    .insert(&used.workload);
            }
        }
        out.into_iter()
            .map(|(digest, workloads)| (digest, workloads.into_iter().map(str::to_owned).collect()))
            .collect()
    }
}

/// Collects every enabled source. Never fails as a whole: a failed source is
/// recorded in [`Inventory::sources`], and [`Inventory::failure`] then
/// stops all deletion. References resolve against `registry_id`'s registry,
/// or the caller's own account's when it is `None`.
pub async fn collect(
    clients: &Clients,
    sources: &InUseSources,
    registry_id: Option<&str>,
) -> Inventory {
    let mut inventory = Inventory::none();
    if !sources.any() {
        return inventory;
    }
    // Which registry "ours" is: this account, in the clients' region.
    let account = match registry_id {
        Some(id) => Ok(id.to_owned()),
        None => clients.caller_account().await,
    };
    match (account, &clients.region) {
        (Ok(account), Some(region)) => {
            inventory.registry = Some(Registry {
                account,
                region: region.clone(),
            })
        }
        (Ok(_), None) => record(
            "sts".into(),
            Err(invalid_list("configuration", "no AWS region is configured").to_string()),
            &mut inventory,
        ),
        (Err(error), _) => record("sts".into(), Err(error.to_string()), &mut inventory),
    }
    // An external list's age is measured on the clock, not against the
    // run's evaluation time, which a queue message may have set earlier.
    let now = chrono::Utc::now();
    let rules = external::ReadRules {
        max_age: chrono::TimeDelta::minutes(i64::from(sources.max_age_minutes)),
        bucket_owner: sources
            .s3_bucket_owner
            .as_ref()
            .map(|owner| owner.to_string())
            .or_else(|| inventory.registry.as_ref().map(|r| r.account.clone())),
    };
    for source in &sources.sources {
        let result =
            read(source, clients, &rules, now)
                .await
                .map_err(|error| match remedy(source) {
                    Some(remedy) => format!("{error} ({remedy})"),
                    None => error.to_string(),
                });
        record(source.name(), result, &mut inventory);
    }
    inventory
}

/// Reads one source's references.
async fn read(
    source: &Source,
    clients: &Clients,
    rules: &external::ReadRules,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<InUse>, CallError> {
    match source {
        Source::Ecs { revisions } => ecs::read(&clients.ecs, *revisions).await,
        Source::Lambda => lambda::read(&clients.lambda).await,
        Source::EventRules => schedules::rules(&clients.events, &clients.ecs).await,
        Source::Schedules => schedules::schedules(&clients.scheduler, &clients.ecs).await,
        Source::Batch => batch::read(&clients.batch).await,
        Source::CodeBuild => services::codebuild(&clients.codebuild).await,
        Source::StepFunctions => workflows::state_machines(&clients.sfn, &clients.ecs).await,
        Source::AppRunner => services::app_runner(&clients.apprunner).await,
        Source::SageMaker => sagemaker::read(&clients.sagemaker).await,
        Source::Eks { clusters } => eks::read(clients, clusters.as_deref()).await,
        Source::SsmParameter { name } => external::from_ssm(&clients.ssm, name, rules, now).await,
        Source::S3Object { bucket, key } => {
            if rules.bucket_owner.is_none() {
                Err(invalid_list(
                    "GetObject",
                    "the account expected to own the bucket is not known (set settings.inUse.external.s3BucketOwner)",
                ))
            } else {
                external::from_s3(&clients.s3, bucket, key, rules, now).await
            }
        }
    }
}

/// What to do when a source that reads the account's own APIs fails: the
/// reads to grant, or how to switch the source off. (An external list is
/// named by the operator, who knows what it is.)
fn remedy(source: &Source) -> Option<&'static str> {
    Some(match source {
        Source::Ecs { .. } => {
            "grant the ECS reads (template parameter EnableEcsInUse), or switch the source off with settings.inUse.ecs.enabled: false"
        }
        Source::Lambda => {
            "grant lambda:ListFunctions and lambda:GetFunction (template parameter EnableLambdaInUse), or switch the source off with settings.inUse.lambda.enabled: false"
        }
        Source::EventRules => {
            "grant events:ListEventBuses, events:ListRules, events:ListTargetsByRule and ecs:DescribeTaskDefinition (template parameter EnableEventsInUse), or switch the source off with settings.inUse.events.enabled: false"
        }
        Source::Schedules => {
            "grant scheduler:ListSchedules, scheduler:GetSchedule and ecs:DescribeTaskDefinition (template parameter EnableSchedulerInUse), or switch the source off with settings.inUse.scheduler.enabled: false"
        }
        Source::Batch => {
            "grant batch:DescribeJobDefinitions, batch:DescribeJobQueues, batch:ListJobs and batch:DescribeJobs (template parameter EnableBatchInUse), or switch the source off with settings.inUse.batch.enabled: false"
        }
        Source::CodeBuild => {
            "grant codebuild:ListProjects and codebuild:BatchGetProjects (template parameter EnableCodeBuildInUse), or switch the source off with settings.inUse.codebuild.enabled: false"
        }
        Source::StepFunctions => {
            "grant states:ListStateMachines, states:ListStateMachineVersions, states:DescribeStateMachine and ecs:DescribeTaskDefinition (template parameter EnableStepFunctionsInUse), or switch the source off with settings.inUse.stepfunctions.enabled: false"
        }
        Source::AppRunner => {
            "grant apprunner:ListServices and apprunner:DescribeService (template parameter EnableAppRunnerInUse), or switch the source off with settings.inUse.apprunner.enabled: false"
        }
        Source::SageMaker => {
            "grant sagemaker:ListModels, sagemaker:DescribeModel, sagemaker:DescribeModelPackage, sagemaker:ListEndpoints, sagemaker:DescribeEndpoint, sagemaker:DescribeEndpointConfig, sagemaker:ListTrainingJobs and sagemaker:DescribeTrainingJob (template parameter EnableSageMakerInUse), or switch the source off with settings.inUse.sagemaker.enabled: false"
        }
        Source::Eks { .. } => {
            "grant eks:ListClusters and eks:DescribeCluster (template parameter EnableEksInUse), give the role read access to each cluster (an EKS access entry with AmazonEKSViewPolicy: template parameter EksAccessEntryCluster, or deploy/eks-access-entry.yaml), and reach each cluster's endpoint; or name the clusters to read in settings.inUse.eks.clusters, or switch the source off with settings.inUse.eks.enabled: false"
        }
        Source::SsmParameter { .. } | Source::S3Object { .. } => return None,
    })
}

/// Adds one source's outcome to the inventory.
fn record(name: String, result: Result<Vec<InUse>, String>, inventory: &mut Inventory) {
    let report = match result {
        Ok(uses) => {
            let references = uses.len();
            inventory.uses.extend(uses);
            SourceReport {
                source: name,
                references,
                error: None,
                note: None,
            }
        }
        Err(error) => SourceReport::failed(name, error),
    };
    inventory.sources.push(report);
}

/// Parses a reference for a workload; references that are not well formed
/// are skipped (they cannot point into our registry anyway).
pub(crate) fn use_of(reference: &str, workload: impl Into<String>) -> Option<InUse> {
    reference::parse(reference).map(|reference| InUse {
        reference,
        workload: workload.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com";

    fn image(digest: &str, tags: &[&str]) -> Image {
        Image::test(digest, tags)
    }

    #[test]
    fn references_resolve_against_the_snapshot() {
        let uses = [
            (format!("{HOST}/web:v1"), "ecs:prod/web"),
            (format!("{HOST}/web@sha256:b"), "lambda:fn:1"),
            (format!("{HOST}/web:v1"), "lambda:fn:2"),
            (format!("{HOST}/web"), "external:list"),
            (format!("{HOST}/web:gone"), "ecs:old"),
            (format!("{HOST}/other:v1"), "ecs:other"),
            (
                "222233334444.dkr.ecr.eu-west-1.amazonaws.com/web:v1".to_owned(),
                "ecs:foreign",
            ),
            ("web:v1".to_owned(), "ecs:dockerhub"),
        ];
        let inventory = Inventory {
            registry: Some(Registry {
                account: "111122223333".into(),
                region: "eu-west-1".into(),
            }),
            uses: uses.iter().filter_map(|(r, w)| use_of(r, *w)).collect(),
            sources: Vec::new(),
        };
        let images = [
            image("sha256:a", &["v1"]),
            image("sha256:b", &[]),
            image("sha256:c", &["latest"]),
        ];
        let mut got: Vec<(String, Vec<String>)> =
            inventory.in_use("web", &images).into_iter().collect();
        got.sort();
        let want = vec![
            (
                "sha256:a".to_owned(),
                vec!["ecs:prod/web".to_owned(), "lambda:fn:2".to_owned()],
            ),
            ("sha256:b".to_owned(), vec!["lambda:fn:1".to_owned()]),
            ("sha256:c".to_owned(), vec!["external:list".to_owned()]),
        ];
        assert_eq!(got, want);
        assert!(Inventory::none().in_use("web", &images).is_empty());
    }

    fn registry(account: &str, region: &str) -> Registry {
        Registry {
            account: account.into(),
            region: region.into(),
        }
    }

    fn seen(at: Registry, uses: &[(&str, &str)], error: Option<&str>) -> Inventory {
        Inventory {
            registry: Some(at),
            uses: uses.iter().filter_map(|(r, w)| use_of(r, *w)).collect(),
            sources: vec![SourceReport {
                source: "ecs".into(),
                references: uses.len(),
                error: error.map(Into::into),
                note: None,
            }],
        }
    }

    /// A central registry (111122223333, eu-west-1) whose images another
    /// account's workloads run: they protect it; references to other
    /// registries and repositories do not; an unreadable inventory holds
    /// it unless partial inventories are allowed.
    #[test]
    fn other_accounts_workloads_protect_a_central_registry() {
        let central = registry("111122223333", "eu-west-1");
        let home = seen(
            central.clone(),
            &[(&format!("{HOST}/web:v1"), "ecs:prod/web")],
            None,
        );
        let runner = seen(
            registry("444455556666", "us-east-1"),
            &[
                (&format!("{HOST}/web@sha256:b"), "ecs:apps/api"),
                (&format!("{HOST}/other:v1"), "ecs:apps/other"),
                (
                    "444455556666.dkr.ecr.us-east-1.amazonaws.com/web:v1",
                    "ecs:apps/own",
                ),
                ("111122223333.dkr-ecr.eu-west-1.on.aws/web:v3", "lambda:f:1"),
            ],
            None,
        );
        let broken = seen(
            registry("777788889999", "eu-west-1"),
            &[],
            Some("ListClusters: AccessDenied: no"),
        );
        let images = [
            image("sha256:a", &["v1"]),
            image("sha256:b", &[]),
            image("sha256:c", &["v3"]),
        ];

        let foreign = Foreign::of(&central, Some("web"), &[&runner]);
        assert_eq!(
            foreign.uses,
            vec![
                ForeignUse {
                    reference: format!("{HOST}/web@sha256:b"),
                    workload: "444455556666/us-east-1:ecs:apps/api".into()
                },
                ForeignUse {
                    reference: "111122223333.dkr-ecr.eu-west-1.on.aws/web:v3".into(),
                    workload: "444455556666/us-east-1:lambda:f:1".into()
                },
            ]
        );
        // Carried in a message, it round-trips.
        let text = serde_json::to_string(&foreign).unwrap();
        assert_eq!(serde_json::from_str::<Foreign>(&text).unwrap(), foreign);
        let inventory = for_target(central.clone(), &home, Some(&foreign), false, None);
        assert_eq!(inventory.failure(), None);
        let mut got: Vec<(String, Vec<String>)> =
            inventory.in_use("web", &images).into_iter().collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("sha256:a".into(), vec!["ecs:prod/web".into()]),
                (
                    "sha256:b".into(),
                    vec!["444455556666/us-east-1:ecs:apps/api".into()]
                ),
                (
                    "sha256:c".into(),
                    vec!["444455556666/us-east-1:lambda:f:1".into()]
                ),
            ]
        );

        // An unreadable inventory: held, naming it; or noted, when allowed.
        let foreign = Foreign::of(&central, None, &[&runner, &broken]);
        let held = for_target(central.clone(), &home, Some(&foreign), false, None);
        let failure = held.failure().unwrap();
        assert!(
            failure.contains("workloads of 777788889999/eu-west-1"),
            "{failure}"
        );
        assert!(
            failure.contains("ListClusters: AccessDenied: no"),
            "{failure}"
        );
        assert!(failure.contains("allowPartialInventory"), "{failure}");
        let allowed = for_target(central.clone(), &home, Some(&foreign), true, None);
        assert_eq!(allowed.failure(), None);
        assert!(
            allowed
                .sources
                .iter()
                .any(|s| s.note.as_deref().is_some_and(
                    |n| n.contains("777788889999/eu-west-1") && n.contains("collected anyway")
                ))
        );

        // A message's reference that is not one fails rather than vanish.
        let forged = Foreign {
            uses: vec![ForeignUse {
                reference: "not a reference".into(),
                workload: "x".into(),
            }],
            incomplete: Vec::new(),
        };
        assert!(
            for_target(central.clone(), &home, Some(&forged), true, None)
                .failure()
                .is_some()
        );

        // No source enabled: nothing is known and nothing is held.
        assert_eq!(
            for_target(
                central,
                &Inventory::none(),
                Some(&Foreign::default()),
                false,
                None
            ),
            Inventory::none()
        );
    }

    #[test]
    fn a_failed_source_is_named() {
        let mut inventory = Inventory::none();
        assert_eq!(inventory.failure(), None);
        inventory.sources.push(SourceReport::failed(
            "ecs",
            "ListClusters: AccessDeniedException: no",
        ));
        assert_eq!(
            inventory.failure().as_deref(),
            Some("ecs: ListClusters: AccessDeniedException: no")
        );
    }

    /// Every source of the account's own APIs says, when it fails, how to
    /// switch it off (its own key under `settings.inUse`) and which
    /// template parameter grants its reads; an external list, which the
    /// operator named, needs neither.
    #[test]
    fn a_failed_source_says_how_to_grant_it_or_switch_it_off() {
        let own = [
            (Source::Ecs { revisions: 5 }, "EnableEcsInUse"),
            (Source::Lambda, "EnableLambdaInUse"),
            (Source::EventRules, "EnableEventsInUse"),
            (Source::Schedules, "EnableSchedulerInUse"),
            (Source::Batch, "EnableBatchInUse"),
            (Source::CodeBuild, "EnableCodeBuildInUse"),
            (Source::StepFunctions, "EnableStepFunctionsInUse"),
            (Source::AppRunner, "EnableAppRunnerInUse"),
            (Source::SageMaker, "EnableSageMakerInUse"),
            (Source::Eks { clusters: None }, "EnableEksInUse"),
        ];
        for (source, parameter) in own {
            let remedy = remedy(&source).unwrap();
            let switch = format!("settings.inUse.{}.enabled: false", source.name());
            assert!(remedy.contains(&switch), "{remedy}");
            assert!(remedy.contains(parameter), "{remedy}");
        }
        let external = Source::SsmParameter {
            name: "/ecr-gc/in-use".into(),
        };
        assert_eq!(remedy(&external), None);
    }
}
