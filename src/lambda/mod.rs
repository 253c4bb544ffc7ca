//! The Lambda handler: an event and the environment -> one engine run.
//!
//! Configuration comes from the environment, read once at cold start:
//! `ECR_GC_POLICY` (the policy document as JSON text) or `ECR_GC_POLICY_FILE`
//! (a path), and `ECR_GC_DRY_RUN`. A bad configuration fails every
//! invocation with a clear error, before any API call.
//!
//! Events, by shape:
//! * EventBridge scheduled rule (`aws.events`, `Scheduled Event`): every
//!   selected repository.
//! * EventBridge Scheduler (`aws.scheduler`): the same; its `detail` (the
//!   string `"{}"` without an Input) may carry `repositories` and `dryRun`.
//! * ECR Image Action (`aws.ecr`): a successful PUSH collects that one
//!   repository, if selected. Any other action is ignored with a log line;
//!   ecr-gc's own deletions raise DELETE events.
//! * A manual invoke or a Scheduler custom Input: `{"repositories": [..],
//!   "dryRun": bool}`, both optional.
//! * Anything else is an error that says what was received.
//!
//! * An SQS batch (`Records` from `aws:sqs`): the fan-out queue's messages,
//!   one repository each; the answer is SQS's partial batch response.
//!
//! Where: `ECR_GC_TARGETS` names target regions and accounts (see
//! `targets`); without it, the function's own account and region, or
//! `ECR_GC_REGISTRY_ID`'s registry. With `ECR_GC_FANOUT_QUEUE_URL` set, a
//! run over every selected repository (schedule, Scheduler, manual without
//! `repositories`) only lists the targets and sends one message per
//! repository to that queue (see `fanout`).
//!
//! Deletion happens only when `ECR_GC_DRY_RUN=false` or the event says
//! `"dryRun": false`; an event's `"dryRun": true` always wins.

pub mod fanout;

use chrono::{DateTime, Utc};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::aws::ecr::ApiCallCounts;
use crate::aws::targets::{Target, Targets};
use crate::aws::{Connector, SdkRetry};
use crate::inventory::Foreign;
use crate::model::{check_registry_id, check_repository_name};
use crate::policy::{Policy, PolicyError};
use crate::run::collect::{self, Others};
use crate::run::engine::{EngineError, Run, Scope};
use crate::run::report::{self, Collection, LogSink};
use fanout::{Body, Message, NotSent, Record};

/// The function's configuration, from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// `ECR_GC_DRY_RUN`: true unless set to `false`.
    pub dry_run: bool,
    /// `ECR_GC_MAX_ATTEMPTS`, `ECR_GC_INITIAL_BACKOFF_MS`.
    pub retry: SdkRetry,
    /// `ECR_GC_DEADLINE_MARGIN_MS`: no new repository or delete batch is
    /// started when less than this remains before the invocation's deadline.
    pub deadline_margin: Duration,
    /// `ECR_GC_TARGETS` (a JSON document), else `ECR_GC_REGISTRY_ID` (one
    /// registry, with the caller's own credentials), else the caller's own
    /// account and region.
    pub targets: Targets,
    /// `ECR_GC_FANOUT_QUEUE_URL`: where a run over every selected repository
    /// sends one message per repository instead of collecting them itself.
    pub fan_out_queue_url: Option<String>,
}

/// The default safety margin before the Lambda deadline.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Error)]
pub enum ConfigError {
    #[error(
        "no policy configured: set ECR_GC_POLICY to the policy document, or ECR_GC_POLICY_FILE to its path"
    )]
    NoPolicy,
    #[error("both ECR_GC_POLICY and ECR_GC_POLICY_FILE are set; set exactly one")]
    TwoPolicies,
    #[error("ECR_GC_POLICY_FILE={path}: cannot read it: {message}")]
    PolicyFile { path: String, message: String },
    #[error("{source_name}: invalid policy: {error}")]
    Policy {
        source_name: String,
        error: PolicyError,
    },
    #[error("ECR_GC_DRY_RUN={value}: expected `true` or `false`")]
    DryRun { value: String },
    #[error("{0}")]
    Setting(String),
}

impl Config {
    /// Reads the configuration through `var`, which looks up an
    /// environment variable (injected, so tests need not touch the process
    /// environment).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let dry_run = match var("ECR_GC_DRY_RUN") {
            None => true,
            Some(v) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("true") => true,
            Some(v) if v.trim().eq_ignore_ascii_case("false") => false,
            Some(value) => return Err(ConfigError::DryRun { value }),
        };
        let inline = var("ECR_GC_POLICY").filter(|v| !v.trim().is_empty());
        let file = var("ECR_GC_POLICY_FILE").filter(|v| !v.trim().is_empty());
        let (source_name, text) = match (inline, file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoPolicies),
            (None, None) => return Err(ConfigError::NoPolicy),
            (Some(text), None) => ("ECR_GC_POLICY".to_owned(), text),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::PolicyFile {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                (format!("ECR_GC_POLICY_FILE={path}"), text)
            }
        };
        let policy =
            Policy::parse(&text).map_err(|error| ConfigError::Policy { source_name, error })?;
        let retry = SdkRetry::from_env(&var).map_err(ConfigError::Setting)?;
        let deadline_margin = match var("ECR_GC_DEADLINE_MARGIN_MS") {
            None => DEFAULT_DEADLINE_MARGIN,
            Some(value) => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= 900_000)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    ConfigError::Setting(format!(
                        "ECR_GC_DEADLINE_MARGIN_MS={value}: expected milliseconds from 0 to 900000"
                    ))
                })?,
        };
        let registry_id = var("ECR_GC_REGISTRY_ID").filter(|v| !v.trim().is_empty());
        let targets = var("ECR_GC_TARGETS").filter(|v| !v.trim().is_empty());
        let targets = match (targets, registry_id) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Setting(
                    "both ECR_GC_TARGETS and ECR_GC_REGISTRY_ID are set; list the registry's account in ECR_GC_TARGETS instead".into(),
                ));
            }
            (Some(text), None) => Targets::parse(&text)
                .map_err(|e| ConfigError::Setting(format!("ECR_GC_TARGETS: {e}")))?,
            (None, Some(id)) => {
                check_registry_id(&id)
                    .map_err(|e| ConfigError::Setting(format!("ECR_GC_REGISTRY_ID: {e}")))?;
                Targets::registry(&id)
            }
            (None, None) => Targets::own(),
        };
        let fan_out_queue_url = var("ECR_GC_FANOUT_QUEUE_URL").filter(|v| !v.trim().is_empty());
        if let Some(url) = &fan_out_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Setting(format!(
                "ECR_GC_FANOUT_QUEUE_URL={url}: expected a queue URL such as https://sqs.eu-west-1.amazonaws.com/111122223333/ecr-gc"
            )));
        }
        Ok(Config {
            policy,
            dry_run,
            retry,
            deadline_margin,
            targets,
            fan_out_queue_url,
        })
    }
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `aws.events` Scheduled Event.
    Schedule,
    /// `aws.scheduler`, with any overrides its detail carries.
    Scheduler(Overrides),
    /// A successful ECR push to this repository, in this account and
    /// region (from the event's envelope).
    Push {
        repository: String,
        account: String,
        region: String,
    },
    /// A batch from the fan-out queue.
    Queue(Vec<Record>),
    /// An ECR event ecr-gc does not act on, such as a DELETE.
    Ignored { what: String },
    /// A manual invoke, or a Scheduler custom Input.
    Manual(Overrides),
}

/// The fields a manual invoke or a Scheduler Input may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Overrides {
    pub repositories: Option<Vec<String>>,
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unrecognised event: {problem}; received: {received}")]
pub struct EventError {
    pub problem: String,
    /// The event, cut short if long.
    pub received: String,
}

fn unrecognised(problem: impl Into<String>, event: &Value) -> EventError {
    const MAX: usize = 512;
    let mut received = event.to_string();
    if received.len() > MAX {
        let mut cut = MAX;
        while !received.is_char_boundary(cut) {
            cut -= 1;
        }
        received.truncate(cut);
        received.push_str("...");
    }
    EventError {
        problem: problem.into(),
        received,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EcrImageAction {
    action_type: Option<String>,
    result: Option<String>,
    repository_name: Option<String>,
}

/// Works out what an event asks for, refusing repository names ECR would
/// refuse before any API call is made.
pub fn parse_event(event: &Value) -> Result<Trigger, EventError> {
    let trigger = parse_trigger(event)?;
    let names: &[String] = match &trigger {
        Trigger::Manual(o) | Trigger::Scheduler(o) => o.repositories.as_deref().unwrap_or_default(),
        Trigger::Push { repository, .. } => std::slice::from_ref(repository),
        Trigger::Schedule | Trigger::Ignored { .. } | Trigger::Queue(_) => &[],
    };
    for name in names {
        check_repository_name(name).map_err(|problem| unrecognised(problem, event))?;
    }
    Ok(trigger)
}

fn parse_trigger(event: &Value) -> Result<Trigger, EventError> {
    let Value::Object(fields) = event else {
        return Err(unrecognised("expected a JSON object", event));
    };
    if let Some(records) = fanout::records(event) {
        return records
            .map(Trigger::Queue)
            .map_err(|problem| unrecognised(problem, event));
    }
    if !fields.contains_key("source") && !fields.contains_key("detail-type") {
        return serde_json::from_value::<Overrides>(event.clone())
            .map(Trigger::Manual)
            .map_err(|e| {
                unrecognised(
                    format!("not an EventBridge event, nor a manual invoke ({e})"),
                    event,
                )
            });
    }
    let envelope: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
        serde_json::from_value(event.clone())
            .map_err(|e| unrecognised(format!("malformed EventBridge event: {e}"), event))?;
    match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("aws.events", "Scheduled Event") => Ok(Trigger::Schedule),
        ("aws.scheduler", _) => {
            let detail = match envelope.detail {
                // Scheduler sends the detail as a JSON string, "{}" without an Input.
                Value::String(text) => serde_json::from_str::<Value>(&text).map_err(|e| {
                    unrecognised(format!("aws.scheduler detail is not JSON: {e}"), event)
                })?,
                Value::Null => json!({}),
                other => other,
            };
            serde_json::from_value::<Overrides>(detail)
                .map(Trigger::Scheduler)
                .map_err(|e| unrecognised(format!("aws.scheduler detail: {e}"), event))
        }
        ("aws.ecr", "ECR Image Action") => {
            let detail: EcrImageAction = serde_json::from_value(envelope.detail)
                .map_err(|e| unrecognised(format!("ECR Image Action detail: {e}"), event))?;
            let action = detail.action_type.unwrap_or_default();
            let result = detail.result.unwrap_or_default();
            match (action.as_str(), result.as_str(), detail.repository_name) {
                ("PUSH", "SUCCESS", Some(repository)) => Ok(Trigger::Push {
                    repository,
                    account: envelope.account.unwrap_or_default(),
                    region: envelope.region.unwrap_or_default(),
                }),
                ("PUSH", "SUCCESS", None) => Err(unrecognised(
                    "ECR PUSH event without detail.repository-name",
                    event,
                )),
                (action, result, repository) => Ok(Trigger::Ignored {
                    what: format!(
                        "ECR Image Action {action} {result} on {}",
                        repository.as_deref().unwrap_or("an unnamed repository")
                    ),
                }),
            }
        }
        (source, detail_type) => Err(unrecognised(
            format!(
                "source `{source}` with detail-type `{detail_type}` is not a trigger ecr-gc knows"
            ),
            event,
        )),
    }
}

/// Why an invocation failed. Each variant is a systemic failure.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("every repository failed ({failed}); the first: {first}")]
    EveryRepositoryFailed { failed: usize, first: String },
    #[error("every target failed ({failed}); the first: {first}")]
    EveryTargetFailed { failed: usize, first: String },
    #[error(
        "fan-out incomplete: {not_sent} of {total} messages could not be sent to the queue; the first: {first}"
    )]
    FanOutIncomplete {
        not_sent: usize,
        total: usize,
        first: String,
    },
    #[error(
        "the event asks to delete (\"dryRun\": false), but the function's ECR_GC_DRY_RUN is true: an event can only brake, never turn deleting on; set ECR_GC_DRY_RUN=false (the template's DryRun) to delete. Nothing was collected"
    )]
    DeletionNotAllowed,
    #[error("{reason}: an event cannot widen the policy's settings. Nothing was collected")]
    RepositoryNotSelected { reason: String },
}

impl HandlerError {
    /// The error type Lambda reports, and the `errorType` of the
    /// `invocation failed` log line.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Config(_) => "InvalidConfiguration",
            HandlerError::Event(_) => "UnrecognizedEvent",
            HandlerError::Engine(EngineError::ListRepositories(_)) => "ListRepositoriesFailed",
            HandlerError::EveryRepositoryFailed { .. } => "EveryRepositoryFailed",
            HandlerError::EveryTargetFailed { .. } => "EveryTargetFailed",
            HandlerError::FanOutIncomplete { .. } => "FanOutIncomplete",
            HandlerError::DeletionNotAllowed => "DeletionNotAllowed",
            HandlerError::RepositoryNotSelected { .. } => "RepositoryNotSelected",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What an invocation returns.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// The repositories were collected in this invocation.
    Collection(Box<Collection>),
    /// The repositories were listed and sent to the fan-out queue.
    FanOut(Box<FanOut>),
    /// An SQS batch was collected: SQS's partial batch response.
    Batch(BatchResponse),
    Ignored {
        trigger: String,
        ignored: String,
    },
}

/// What a fan-out sent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanOut {
    pub trigger: String,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    pub queue_url: String,
    pub targets: Vec<FanOutTarget>,
    #[serde(flatten)]
    pub sent: fanout::Sent,
    /// ECR calls (DescribeRepositories) over every target.
    pub api_calls: ApiCallCounts,
    pub assume_role_calls: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanOutTarget {
    #[serde(flatten)]
    pub target: Target,
    pub repositories: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// SQS's partial batch response: the messages to deliver again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}

/// Turns the invocation's deadline (epoch milliseconds, as Lambda sends
/// it) into an instant on this process's clock. `cargo lambda watch` sends
/// a duration instead (600000); a value too small to be an epoch time after
/// 2001 is read as milliseconds from now, so local runs are not cut short.
pub fn deadline_instant(deadline_ms: u64, now: SystemTime, instant: Instant) -> Option<Instant> {
    const EPOCH_2001_MS: u64 = 1_000_000_000_000;
    if deadline_ms == 0 {
        return None;
    }
    if deadline_ms < EPOCH_2001_MS {
        return instant.checked_add(Duration::from_millis(deadline_ms));
    }
    let now_ms = u64::try_from(now.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(match deadline_ms.checked_sub(now_ms) {
        Some(left) => instant.checked_add(Duration::from_millis(left))?,
        None => instant,
    })
}

/// Handles one invocation. The clients are built once per cold start; the
/// in-use inventory and the counting ECR adapter are per invocation, so each
/// run sees what is in use now and its report counts its own calls.
pub async fn handle(
    connector: &Connector,
    config: &Result<Config, ConfigError>,
    event: &Value,
    now: DateTime<Utc>,
    log: &dyn LogSink,
) -> Result<Response, HandlerError> {
    handle_until(connector, config, event, now, None, log).await
}

/// Handles one invocation that must end by `deadline`: no new repository
/// or delete batch is started within the configured margin of it.
pub async fn handle_until(
    connector: &Connector,
    config: &Result<Config, ConfigError>,
    event: &Value,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
    log: &dyn LogSink,
) -> Result<Response, HandlerError> {
    // Boxed: the dispatch future is large and deeply nested, and the
    // runtime's own future around it would otherwise exceed the compiler's
    // layout depth.
    let result = Box::pin(dispatch(connector, config, event, now, deadline, log)).await;
    if let Err(error) = &result {
        log.emit(report::line(
            "ERROR",
            "invocation failed",
            json!({ "errorType": error.error_type(), "error": error.to_string() }),
        ));
    }
    result
}

async fn dispatch(
    connector: &Connector,
    config: &Result<Config, ConfigError>,
    event: &Value,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
    log: &dyn LogSink,
) -> Result<Response, HandlerError> {
    let config = config
        .as_ref()
        .map_err(|e| HandlerError::Config(e.clone()))?;
    let stop_at = deadline.map(|d| d.checked_sub(config.deadline_margin).unwrap_or(d));
    let trigger = parse_event(event)?;
    let every_target = || config.targets.expand();
    let (name, overrides, work) = match trigger {
        Trigger::Schedule => ("schedule", Overrides::default(), None),
        Trigger::Scheduler(o) => ("scheduler", o, None),
        Trigger::Manual(o) => ("manual", o, None),
        Trigger::Push {
            repository,
            account,
            region,
        } => match push_target(&config.targets, connector, &account, &region) {
            Some(target) => (
                "ecr-push",
                Overrides::default(),
                Some(vec![(target, Scope::Named(vec![repository]))]),
            ),
            None => {
                let what = format!(
                    "ECR push to {repository} in account {account}, region {region}, which is not among the targets"
                );
                return Ok(ignored(what, log));
            }
        },
        Trigger::Ignored { what } => return Ok(ignored(what, log)),
        Trigger::Queue(records) => {
            return Ok(Response::Batch(
                consume(connector, config, records, now, stop_at, log).await,
            ));
        }
    };
    let dry_run = brake(config.dry_run, overrides.dry_run)?;
    for name in overrides.repositories.iter().flatten() {
        if let Some(reason) = config.policy.settings.repositories.refusal(name) {
            return Err(HandlerError::RepositoryNotSelected { reason });
        }
    }
    let work = match (work, &overrides.repositories) {
        (Some(work), _) => work,
        (None, Some(names)) => every_target()
            .into_iter()
            .map(|t| (t, Scope::Named(names.clone())))
            .collect(),
        (None, None) => {
            if let Some(queue_url) = &config.fan_out_queue_url {
                return fan_out(connector, config, queue_url, name, dry_run, now, log).await;
            }
            every_target()
                .into_iter()
                .map(|t| (t, Scope::Selected))
                .collect()
        }
    };
    let run = Run {
        trigger: name.to_owned(),
        scope: Scope::Selected,
        dry_run,
        now,
        stop_at,
    };
    log.emit(report::line(
        "INFO",
        "run started",
        json!({ "trigger": run.trigger, "dryRun": run.dry_run, "targets": work.len() }),
    ));
    let collection = collect::collect(
        connector,
        &config.targets,
        &config.policy,
        &run,
        work,
        Others::Read,
        log,
    )
    .await;
    log.emit(report::line(
        if collection.has_failures() {
            "WARN"
        } else {
            "INFO"
        },
        "collection finished",
        json!({
            "trigger": collection.trigger,
            "dryRun": collection.dry_run,
            "targets": collection.targets.len(),
            "targetsFailed": collection.targets_failed,
            "summary": collection.summary,
            "apiCalls": collection.api_calls,
            "assumeRoleCalls": collection.assume_role_calls,
            "durationMs": collection.duration_ms,
        }),
    ));
    systemic_failure(&collection)?;
    Ok(Response::Collection(Box::new(collection)))
}

/// The run's dry run: the function's own `ECR_GC_DRY_RUN`, which an event
/// may tighten (`"dryRun": true`) but never loosen. An event that asks to
/// delete while the function is a dry run is refused, so its sender learns
/// that nothing was deleted rather than reading a dry run's report.
fn brake(configured: bool, asked: Option<bool>) -> Result<bool, HandlerError> {
    match (configured, asked) {
        (true, Some(false)) => Err(HandlerError::DeletionNotAllowed),
        (configured, asked) => Ok(configured || asked == Some(true)),
    }
}

fn ignored(what: String, log: &dyn LogSink) -> Response {
    log.emit(report::line(
        "INFO",
        "event ignored",
        json!({ "event": what }),
    ));
    Response::Ignored {
        trigger: "ecr".into(),
        ignored: what,
    }
}

/// The target a push event's account and region name, if it is one of
/// ours. Without configured accounts (or regions), the event's account
/// (region) is taken to be the function's own: EventBridge delivers a
/// push from another account only through a rule someone set up for it.
fn push_target(
    targets: &Targets,
    connector: &Connector,
    account: &str,
    region: &str,
) -> Option<Target> {
    let account_id = if targets.accounts.is_empty() {
        None
    } else {
        Some(targets.account(account)?.account_id.clone())
    };
    let region = if targets.regions.is_empty() {
        match connector.home().region.as_deref() {
            Some(home) if !region.is_empty() && home != region => return None,
            _ => None,
        }
    } else {
        Some(targets.regions.iter().find(|r| *r == region)?.clone())
    };
    Some(Target { account_id, region })
}

/// Fails the invocation when nothing could be collected: every target, or
/// every repository, failed. Anything less is reported, not raised.
fn systemic_failure(collection: &Collection) -> Result<(), HandlerError> {
    let failed: Vec<&String> = collection
        .targets
        .iter()
        .filter_map(|t| t.error.as_ref())
        .collect();
    if !failed.is_empty() && failed.len() == collection.targets.len() {
        return Err(HandlerError::EveryTargetFailed {
            failed: failed.len(),
            first: failed[0].clone(),
        });
    }
    let repositories: Vec<_> = collection.repositories().collect();
    let errors: Vec<String> = repositories
        .iter()
        .filter_map(|(_, r)| r.error.as_ref().map(|e| e.error_message.clone()))
        .collect();
    if !errors.is_empty() && errors.len() == repositories.len() {
        return Err(HandlerError::EveryRepositoryFailed {
            failed: errors.len(),
            first: errors[0].clone(),
        });
    }
    Ok(())
}

/// Lists every target's selected repositories and sends one message each
/// to the queue. Fails when a message could not be sent, after reporting
/// which: a lost message would be a repository silently not collected.
async fn fan_out(
    connector: &Connector,
    config: &Config,
    queue_url: &str,
    trigger: &str,
    dry_run: bool,
    now: DateTime<Utc>,
    log: &dyn LogSink,
) -> Result<Response, HandlerError> {
    let started = Instant::now();
    let (listings, api_calls, assume_role_calls) = collect::list_targets(
        connector,
        &config.targets,
        &config.policy,
        config.targets.expand(),
    )
    .await;
    for listing in &listings {
        if let Err(error) = &listing.repositories {
            log.emit(report::line(
                "ERROR",
                "target not listed",
                json!({ "target": listing.target, "error": error }),
            ));
        }
    }
    let messages = fanout::messages(&listings, trigger, dry_run, now);
    let sent = fanout::send(&connector.home().sqs, queue_url, &messages).await;
    let report = FanOut {
        trigger: trigger.to_owned(),
        dry_run,
        now,
        queue_url: queue_url.to_owned(),
        targets: listings
            .iter()
            .map(|l| FanOutTarget {
                target: l.target.clone(),
                repositories: l.repositories.as_ref().map_or(0, Vec::len),
                error: l.repositories.as_ref().err().cloned(),
            })
            .collect(),
        sent,
        api_calls,
        assume_role_calls,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let targets_failed = report.targets.iter().filter(|t| t.error.is_some()).count();
    log.emit(report::line(
        if targets_failed > 0 || !report.sent.failed.is_empty() {
            "WARN"
        } else {
            "INFO"
        },
        "fan-out finished",
        serde_json::to_value(&report).unwrap_or_default(),
    ));
    if let Some(first) = report.sent.failed.first() {
        return Err(HandlerError::FanOutIncomplete {
            not_sent: report.sent.failed.len(),
            total: messages.len(),
            first: describe_not_sent(first),
        });
    }
    if targets_failed > 0 && targets_failed == report.targets.len() {
        return Err(HandlerError::EveryTargetFailed {
            failed: targets_failed,
            first: report.targets[0].error.clone().unwrap_or_default(),
        });
    }
    Ok(Response::FanOut(Box::new(report)))
}

fn describe_not_sent(n: &NotSent) -> String {
    format!(
        "{} in {}: {}: {}",
        n.repository, n.target, n.code, n.message
    )
}

/// Collects an SQS batch. A message is reported back for redelivery when
/// its repository did not finish cleanly: unreadable, not one of our
/// targets, its target unreachable, an in-use source failed, a listing or
/// delete failed, or the deadline left it unstarted.
async fn consume(
    connector: &Connector,
    config: &Config,
    records: Vec<Record>,
    clock: DateTime<Utc>,
    stop_at: Option<Instant>,
    log: &dyn LogSink,
) -> BatchResponse {
    let mut failures: BTreeSet<String> = BTreeSet::new();
    // By dry run, then target: the repositories and the messages naming
    // them, each with the time it is judged as of.
    let mut groups: BTreeMap<bool, BTreeMap<Target, Vec<(String, Message)>>> = BTreeMap::new();
    let mut judged_as_of: BTreeMap<bool, DateTime<Utc>> = BTreeMap::new();
    for record in records {
        let message = match record.message {
            Ok(Body::Message(message)) => Ok(message),
            Ok(Body::Event(event)) => match queued_push(connector, config, &event, log) {
                Ok(Some(message)) => Ok(message),
                Ok(None) => continue,
                Err(problem) => Err(problem),
            },
            Err(problem) => Err(problem),
        };
        let admitted =
            message.and_then(|message| admit(config, &message, clock).map(|at| (message, at)));
        match admitted {
            Ok((message, at)) => {
                // The consumer's own ECR_GC_DRY_RUN=true is a brake on
                // messages already queued: setting it stops their deletions.
                let dry_run = message.dry_run || config.dry_run;
                let earliest = judged_as_of.entry(dry_run).or_insert(at);
                *earliest = (*earliest).min(at);
                groups
                    .entry(dry_run)
                    .or_default()
                    .entry(message.target())
                    .or_default()
                    .push((record.message_id, message));
            }
            Err(problem) => {
                log.emit(report::line(
                    "ERROR",
                    "queue message refused",
                    json!({ "messageId": record.message_id, "error": problem }),
                ));
                failures.insert(record.message_id);
            }
        }
    }
    for (dry_run, targets) in groups {
        let now = judged_as_of.get(&dry_run).copied().unwrap_or(clock);
        let work = targets
            .iter()
            .map(|(target, messages)| {
                let mut names: Vec<String> =
                    messages.iter().map(|(_, m)| m.repository.clone()).collect();
                names.sort();
                names.dedup();
                (target.clone(), Scope::Named(names))
            })
            .collect();
        let run = Run {
            trigger: "sqs".into(),
            scope: Scope::Selected,
            dry_run,
            now,
            stop_at,
        };
        let others = others_given(config, &targets, clock);
        let collection = collect::collect(
            connector,
            &config.targets,
            &config.policy,
            &run,
            work,
            others,
            log,
        )
        .await;
        for target in &collection.targets {
            let unfinished = unfinished_repositories(target);
            for (message_id, message) in targets.get(&target.target).into_iter().flatten() {
                let again = match &unfinished {
                    Unfinished::All => true,
                    Unfinished::Some(names) => names.contains(message.repository.as_str()),
                };
                if again {
                    failures.insert(message_id.clone());
                }
            }
        }
    }
    log.emit(report::line(
        if failures.is_empty() { "INFO" } else { "WARN" },
        "queue batch finished",
        json!({ "batchItemFailures": failures.len() }),
    ));
    BatchResponse {
        batch_item_failures: failures
            .into_iter()
            .map(|item_identifier| BatchItemFailure { item_identifier })
            .collect(),
    }
}

/// What the other views' workloads use of a batch's repositories: what its
/// messages carry, when every one of them carries it and is younger than
/// `maxAgeMinutes` (the scheduled run read every view); otherwise the
/// consumer reads every view itself. A message can only add protection.
fn others_given(
    config: &Config,
    targets: &BTreeMap<Target, Vec<(String, Message)>>,
    clock: DateTime<Utc>,
) -> Others {
    let sources = &config.policy.settings.in_use;
    if !collect::organisation_wide(&config.targets, sources) {
        return Others::Read;
    }
    let oldest = clock - chrono::TimeDelta::minutes(i64::from(sources.max_age_minutes));
    let mut given: BTreeMap<Target, Foreign> = BTreeMap::new();
    for (target, messages) in targets {
        for (_, message) in messages {
            match (&message.foreign, message.now) {
                (Some(foreign), Some(at)) if at >= oldest => given
                    .entry(target.clone())
                    .or_default()
                    .extend(foreign.clone()),
                _ => return Others::Read,
            }
        }
    }
    Others::Given(given)
}

/// An ECR push event from the push queue, as the message that collects its
/// repository; `None` when it is one to ignore (a push to a registry that is
/// not a target, to a repository the settings do not select, or an action
/// other than a successful push), with a log line, as when the event comes
/// directly. Anything but an ECR event is refused.
fn queued_push(
    connector: &Connector,
    config: &Config,
    event: &Value,
    log: &dyn LogSink,
) -> Result<Option<Message>, String> {
    let log_ignored = |what: &str| {
        log.emit(report::line(
            "INFO",
            "event ignored",
            json!({ "event": what }),
        ));
    };
    let (repository, account, region) = match parse_event(event).map_err(|e| e.to_string())? {
        Trigger::Push {
            repository,
            account,
            region,
        } => (repository, account, region),
        Trigger::Ignored { what } => {
            log_ignored(&what);
            return Ok(None);
        }
        _ => return Err("only ECR push events are read from a queue".into()),
    };
    let Some(target) = push_target(&config.targets, connector, &account, &region) else {
        log_ignored(&format!(
            "ECR push to {repository} in account {account}, region {region}, which is not among the targets"
        ));
        return Ok(None);
    };
    if let Some(reason) = config.policy.settings.repositories.refusal(&repository) {
        log_ignored(&format!("ECR push: {reason}"));
        return Ok(None);
    }
    Ok(Some(Message {
        account_id: target.account_id,
        region: target.region,
        repository,
        dry_run: false,
        now: None,
        trigger: "ecr-push".into(),
        foreign: None,
    }))
}

/// Whether the consumer acts on `message`, and as of when. Nothing in a
/// message may widen what the function's own configuration allows: its
/// account and region must be a configured target, its repository one the
/// settings select, and its time can only move the evaluation back, never
/// forward: a message dated ahead of the consumer's clock (beyond
/// [`fanout::CLOCK_SKEW`]) or older than the queue keeps messages
/// ([`fanout::MAX_MESSAGE_AGE`]) is refused. A message without `now` is
/// judged as of the consumer's clock.
fn admit(
    config: &Config,
    message: &Message,
    clock: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    if !config.targets.contains(&message.target()) {
        return Err(format!(
            "{} is not among the configured targets",
            message.target()
        ));
    }
    if let Some(reason) = config
        .policy
        .settings
        .repositories
        .refusal(&message.repository)
    {
        return Err(reason);
    }
    let Some(at) = message.now else {
        return Ok(clock);
    };
    if at > clock + fanout::CLOCK_SKEW {
        return Err(format!(
            "the message is dated {at}, ahead of the consumer's clock ({clock}) by more than {} seconds: a message cannot move the evaluation time forward",
            fanout::CLOCK_SKEW.num_seconds()
        ));
    }
    if at < clock - fanout::MAX_MESSAGE_AGE {
        return Err(format!(
            "the message is dated {at}, more than {} hours before the consumer's clock ({clock}), longer than the queue keeps messages",
            fanout::MAX_MESSAGE_AGE.num_hours()
        ));
    }
    Ok(at.min(clock))
}

enum Unfinished<'a> {
    All,
    Some(HashSet<&'a str>),
}

fn unfinished_repositories(target: &report::TargetReport) -> Unfinished<'_> {
    let Some(report) = &target.report else {
        return Unfinished::All;
    };
    if report.in_use_sources.iter().any(|s| s.error.is_some()) {
        return Unfinished::All;
    }
    let mut names: HashSet<&str> = report
        .repositories
        .iter()
        .filter(|r| r.error.is_some() || !r.failed.is_empty() || r.unfinished.is_some())
        .map(|r| r.repository_name.as_str())
        .collect();
    names.extend(report.not_started.iter().map(String::as_str));
    Unfinished::Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(event: &str, expected: Result<Trigger, &str>) {
        let value: Value = serde_json::from_str(event).unwrap();
        match (parse_event(&value), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(part)) => {
                let message = got.to_string();
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
            (got, want) => panic!("event {event}\n gave {got:?}\n expected {want:?}"),
        }
    }

    fn manual(repositories: Option<&[&str]>, dry_run: Option<bool>) -> Overrides {
        Overrides {
            repositories: repositories.map(|r| r.iter().map(|s| s.to_string()).collect()),
            dry_run,
        }
    }

    #[test]
    fn sample_events() {
        check(
            include_str!("../../events/schedule.json"),
            Ok(Trigger::Schedule),
        );
        check(
            include_str!("../../events/scheduler.json"),
            Ok(Trigger::Scheduler(Overrides::default())),
        );
        check(
            include_str!("../../events/ecr-push.json"),
            Ok(Trigger::Push {
                repository: "demo/web".into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
            }),
        );
        check(
            include_str!("../../events/ecr-delete.json"),
            Ok(Trigger::Ignored {
                what: "ECR Image Action DELETE SUCCESS on demo/web".into(),
            }),
        );
        check(
            include_str!("../../events/manual.json"),
            Ok(Trigger::Manual(manual(
                Some(&["demo/web", "demo/worker"]),
                Some(true),
            ))),
        );
    }

    #[test]
    fn other_shapes() {
        check("{}", Ok(Trigger::Manual(Overrides::default())));
        check(
            r#"{"dryRun":false}"#,
            Ok(Trigger::Manual(manual(None, Some(false)))),
        );
        check(
            r#"{"source":"aws.scheduler","detail-type":"Scheduled Event","detail":"{\"dryRun\":false,\"repositories\":[\"ab\"]}"}"#,
            Ok(Trigger::Scheduler(manual(Some(&["ab"]), Some(false)))),
        );
        check(
            r#"{"source":"aws.ecr","detail-type":"ECR Image Action","detail":{"action-type":"PUSH","result":"FAILURE","repository-name":"r"}}"#,
            Ok(Trigger::Ignored {
                what: "ECR Image Action PUSH FAILURE on r".into(),
            }),
        );
        check(r#"{"repos":["a"]}"#, Err("unknown field `repos`"));
        check(
            r#"{"repositories":["Web"]}"#,
            Err("repository name `Web` does not match"),
        );
        check(
            r#"{"repositories":["ok", "x"]}"#,
            Err("`x` is 1 characters long"),
        );
        check(
            r#"{"source":"aws.ecr","detail-type":"ECR Image Action","detail":{"action-type":"PUSH","result":"SUCCESS","repository-name":"../etc"}}"#,
            Err("does not match"),
        );
        check(r#"{"dryRun":"false"}"#, Err("manual invoke"));
        check("[1,2]", Err("expected a JSON object"));
        check(r#""hello""#, Err("received: \"hello\""));
        check(
            r#"{"source":"aws.s3","detail-type":"Object Created","detail":{}}"#,
            Err("source `aws.s3` with detail-type `Object Created`"),
        );
        check(
            r#"{"source":"aws.events","detail-type":"EC2 Instance State-change Notification","detail":{}}"#,
            Err("aws.events"),
        );
        check(
            r#"{"source":"aws.scheduler","detail-type":"Scheduled Event","detail":"{not json"}"#,
            Err("not JSON"),
        );
        check(
            r#"{"source":"aws.ecr","detail-type":"ECR Image Action","detail":{"action-type":"PUSH","result":"SUCCESS"}}"#,
            Err("repository-name"),
        );
    }

    #[track_caller]
    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn push_events_find_their_target() {
        let connector = Connector::new(
            aws_config::SdkConfig::builder()
                .region(aws_sdk_ecr::config::Region::new("eu-west-1"))
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build(),
        );
        let target = |account: Option<&str>, region: Option<&str>| {
            Some(Target {
                account_id: account.map(Into::into),
                region: region.map(Into::into),
            })
        };
        let own = Targets::own();
        assert_eq!(
            push_target(&own, &connector, "111122223333", "eu-west-1"),
            target(None, None)
        );
        assert_eq!(
            push_target(&own, &connector, "111122223333", "us-east-1"),
            None,
            "another region's push is not ours"
        );
        let org = Targets::parse(
            r#"{"regions": ["eu-west-1", "us-east-1"], "accounts": [{"accountId": "111122223333"}]}"#,
        )
        .unwrap();
        assert_eq!(
            push_target(&org, &connector, "111122223333", "us-east-1"),
            target(Some("111122223333"), Some("us-east-1"))
        );
        assert_eq!(
            push_target(&org, &connector, "444455556666", "us-east-1"),
            None
        );
        assert_eq!(
            push_target(&org, &connector, "111122223333", "ap-south-1"),
            None
        );
    }

    #[test]
    fn events_can_only_brake() {
        for (configured, asked, expected) in [
            (true, None, Some(true)),
            (true, Some(true), Some(true)),
            (true, Some(false), None),
            (false, None, Some(false)),
            (false, Some(true), Some(true)),
            (false, Some(false), Some(false)),
        ] {
            let got = brake(configured, asked).ok();
            assert_eq!(
                got, expected,
                "ECR_GC_DRY_RUN={configured}, event {asked:?}"
            );
        }
    }

    #[test]
    fn a_queue_message_cannot_widen_the_configuration() {
        let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}],
            "settings":{"repositories":{"exclude":["base"]}}}"#;
        let config = config(&[
            ("ECR_GC_POLICY", policy),
            (
                "ECR_GC_TARGETS",
                r#"{"accounts":[{"accountId":"111122223333"}]}"#,
            ),
        ])
        .unwrap();
        let clock = crate::model::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
        let at = |text: &str| crate::model::parse_rfc3339(text).unwrap();
        let message = |account: &str, repository: &str, now: Option<&str>| Message {
            account_id: Some(account.into()),
            region: None,
            repository: repository.into(),
            dry_run: false,
            now: now.map(at),
            trigger: "schedule".into(),
            foreign: None,
        };
        #[track_caller]
        fn check(got: Result<DateTime<Utc>, String>, expected: Result<DateTime<Utc>, &str>) {
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(got), Err(part)) => assert!(got.contains(part), "{got:?} lacks {part:?}"),
                (got, want) => panic!("got {got:?}, expected {want:?}"),
            }
        }
        let ours = "111122223333";
        check(
            admit(&config, &message(ours, "web", None), clock),
            Ok(clock),
        );
        check(
            admit(
                &config,
                &message(ours, "web", Some("2026-11-28T09:00:00Z")),
                clock,
            ),
            Ok(at("2026-11-28T09:00:00Z")),
        );
        // Within the skew, the consumer's clock; beyond it, refused.
        check(
            admit(
                &config,
                &message(ours, "web", Some("2026-11-28T12:04:00Z")),
                clock,
            ),
            Ok(clock),
        );
        check(
            admit(
                &config,
                &message(ours, "web", Some("2999-01-01T00:00:00Z")),
                clock,
            ),
            Err("ahead of the consumer's clock"),
        );
        check(
            admit(
                &config,
                &message(ours, "web", Some("2026-11-27T11:59:00Z")),
                clock,
            ),
            Err("longer than the queue keeps messages"),
        );
        check(
            admit(&config, &message("444455556666", "web", None), clock),
            Err("444455556666/own region is not among the configured targets"),
        );
        check(
            admit(&config, &message(ours, "base", None), clock),
            Err("excluded by settings.repositories.exclude `base`"),
        );
    }

    #[test]
    fn deadlines() {
        let now = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        let instant = Instant::now();
        // Lambda: epoch milliseconds.
        assert_eq!(
            deadline_instant(1_800_000_060_000, now, instant),
            Some(instant + Duration::from_secs(60))
        );
        assert_eq!(
            deadline_instant(1_700_000_000_000, now, instant),
            Some(instant),
            "already past"
        );
        // cargo lambda watch: a duration.
        assert_eq!(
            deadline_instant(600_000, now, instant),
            Some(instant + Duration::from_secs(600))
        );
        assert_eq!(deadline_instant(0, now, instant), None);
    }

    #[test]
    fn configuration() {
        let policy = include_str!("../../examples/policy.json");
        assert!(config(&[("ECR_GC_POLICY", policy)]).unwrap().dry_run);
        assert!(
            config(&[("ECR_GC_POLICY", policy), ("ECR_GC_DRY_RUN", "TRUE")])
                .unwrap()
                .dry_run
        );
        assert!(
            !config(&[("ECR_GC_POLICY", policy), ("ECR_GC_DRY_RUN", "false")])
                .unwrap()
                .dry_run
        );
        assert!(config(&[("ECR_GC_POLICY_FILE", "examples/policy.json")]).is_ok());
        let error = |vars: &[(&str, &str)]| config(vars).unwrap_err().to_string();
        assert!(error(&[]).contains("ECR_GC_POLICY"));
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_DRY_RUN", "no")])
                .contains("ECR_GC_DRY_RUN=no")
        );
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_POLICY_FILE", "x")])
                .contains("exactly one")
        );
        assert!(
            error(&[("ECR_GC_POLICY_FILE", "/nonexistent/p.json")]).contains("/nonexistent/p.json")
        );
        assert!(
            error(&[("ECR_GC_POLICY", r#"{"rules":[]}"#)])
                .contains("ECR_GC_POLICY: invalid policy")
        );
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_DEADLINE_MARGIN_MS", "soon")
            ])
            .contains("ECR_GC_DEADLINE_MARGIN_MS")
        );
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_MAX_ATTEMPTS", "99")])
                .contains("ECR_GC_MAX_ATTEMPTS")
        );
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_REGISTRY_ID", "12345")])
                .contains("ECR_GC_REGISTRY_ID: registry id `12345` is not an AWS account id")
        );
        let config = config(&[
            ("ECR_GC_POLICY", policy),
            ("ECR_GC_REGISTRY_ID", "210987654321"),
        ]);
        assert_eq!(
            config.unwrap().targets.expand(),
            vec![Target {
                account_id: Some("210987654321".into()),
                region: None
            }]
        );
        let targets = r#"{"regions": ["eu-west-1"]}"#;
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_TARGETS", targets),
                ("ECR_GC_REGISTRY_ID", "210987654321")
            ])
            .contains("both ECR_GC_TARGETS and ECR_GC_REGISTRY_ID")
        );
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_TARGETS", r#"{"regions": ["x"]}"#)
            ])
            .contains("ECR_GC_TARGETS: regions[0]")
        );
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_FANOUT_QUEUE_URL", "my-queue")
            ])
            .contains("ECR_GC_FANOUT_QUEUE_URL=my-queue")
        );
    }
}
