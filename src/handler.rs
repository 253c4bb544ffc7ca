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
//! Deletion happens only when `ECR_GC_DRY_RUN=false` or the event says
//! `"dryRun": false`; an event's `"dryRun": true` always wins.

use chrono::{DateTime, Utc};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::{Clients, SdkRetry};
use crate::ecr::Ecr;
use crate::engine::{self, EngineError, Run, Scope};
use crate::inventory;
use crate::model::{check_registry_id, check_repository_name};
use crate::policy::{Policy, PolicyError};
use crate::report::{self, LogSink, Report};

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
    /// `ECR_GC_REGISTRY_ID`: the registry to collect, when it is not the
    /// caller's own.
    pub registry_id: Option<String>,
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
        if let Some(id) = &registry_id {
            check_registry_id(id)
                .map_err(|e| ConfigError::Setting(format!("ECR_GC_REGISTRY_ID: {e}")))?;
        }
        Ok(Config {
            policy,
            dry_run,
            retry,
            deadline_margin,
            registry_id,
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
    /// A successful ECR push to this repository.
    Push { repository: String },
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
        Trigger::Push { repository } => std::slice::from_ref(repository),
        Trigger::Schedule | Trigger::Ignored { .. } => &[],
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
                ("PUSH", "SUCCESS", Some(repository)) => Ok(Trigger::Push { repository }),
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

/// Why an invocation failed. Each variant is a systemic failure: nothing
/// was deleted.
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
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        let error_type = match &error {
            HandlerError::Config(_) => "InvalidConfiguration",
            HandlerError::Event(_) => "UnrecognizedEvent",
            HandlerError::Engine(EngineError::ListRepositories(_)) => "ListRepositoriesFailed",
            HandlerError::EveryRepositoryFailed { .. } => "EveryRepositoryFailed",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What an invocation returns.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    Report(Box<Report>),
    Ignored { trigger: String, ignored: String },
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
    clients: &Clients,
    config: &Result<Config, ConfigError>,
    event: &Value,
    now: DateTime<Utc>,
    log: &dyn LogSink,
) -> Result<Response, HandlerError> {
    handle_until(clients, config, event, now, None, log).await
}

/// Handles one invocation that must end by `deadline`: no new repository
/// or delete batch is started within the configured margin of it.
pub async fn handle_until(
    clients: &Clients,
    config: &Result<Config, ConfigError>,
    event: &Value,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
    log: &dyn LogSink,
) -> Result<Response, HandlerError> {
    let config = config
        .as_ref()
        .map_err(|e| HandlerError::Config(e.clone()))?;
    let trigger = parse_event(event)?;
    let (name, scope, overrides) = match trigger {
        Trigger::Schedule => ("schedule", Scope::Selected, Overrides::default()),
        Trigger::Scheduler(o) => ("scheduler", scope_of(&o), o),
        Trigger::Manual(o) => ("manual", scope_of(&o), o),
        Trigger::Push { repository } => (
            "ecr-push",
            Scope::NamedIfSelected(vec![repository]),
            Overrides::default(),
        ),
        Trigger::Ignored { what } => {
            log.emit(report::line(
                "INFO",
                "event ignored",
                json!({ "event": what }),
            ));
            return Ok(Response::Ignored {
                trigger: "ecr".into(),
                ignored: what,
            });
        }
    };
    let run = Run {
        trigger: name.to_owned(),
        scope,
        dry_run: overrides.dry_run.unwrap_or(config.dry_run),
        now,
        stop_at: deadline.map(|d| d.checked_sub(config.deadline_margin).unwrap_or(d)),
    };
    log.emit(report::line(
        "INFO",
        "run started",
        json!({ "trigger": run.trigger, "dryRun": run.dry_run }),
    ));
    let registry_id = config.registry_id.as_deref();
    let inventory = inventory::collect(clients, &config.policy.settings.in_use, registry_id).await;
    let ecr = Ecr::new(clients.ecr.clone(), config.registry_id.clone()).with_stop_at(run.stop_at);
    let report = engine::run(&ecr, &inventory, &config.policy, &run, log).await?;
    let failed = report
        .repositories
        .iter()
        .filter(|r| r.error.is_some())
        .count();
    if failed > 0 && failed == report.repositories.len() {
        return Err(HandlerError::EveryRepositoryFailed {
            failed,
            first: report.repositories[0]
                .error
                .as_ref()
                .map(|e| e.error_message.clone())
                .unwrap_or_default(),
        });
    }
    Ok(Response::Report(Box::new(report)))
}

fn scope_of(overrides: &Overrides) -> Scope {
    match &overrides.repositories {
        Some(names) => Scope::Named(names.clone()),
        None => Scope::Selected,
    }
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
            include_str!("../events/schedule.json"),
            Ok(Trigger::Schedule),
        );
        check(
            include_str!("../events/scheduler.json"),
            Ok(Trigger::Scheduler(Overrides::default())),
        );
        check(
            include_str!("../events/ecr-push.json"),
            Ok(Trigger::Push {
                repository: "demo/web".into(),
            }),
        );
        check(
            include_str!("../events/ecr-delete.json"),
            Ok(Trigger::Ignored {
                what: "ECR Image Action DELETE SUCCESS on demo/web".into(),
            }),
        );
        check(
            include_str!("../events/manual.json"),
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
        let policy = include_str!("../examples/policy.json");
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
        assert_eq!(config.unwrap().registry_id.as_deref(), Some("210987654321"));
    }
}
