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
//!
//! This module dispatches; its children own the parts:
//! * [`config`]: the environment, read once per cold start into [`Config`];
//! * [`event`]: a payload into a [`Trigger`];
//! * [`fanout`]: the scheduled run that sends one message per repository;
//! * [`consume`]: an SQS batch in, `batchItemFailures` out;
//! * [`response`]: what an invocation answers, and how it fails.

pub mod config;
pub mod consume;
pub mod event;
pub mod fanout;
pub mod response;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::aws::Connector;
use crate::aws::targets::{Target, Targets};
use crate::run::collection::{self, Others};
use crate::run::engine::{Run, Scope};
use crate::run::lines::{self, Level, LogSink};
use crate::run::metrics;
use crate::run::report::{Cause, Collection, Detail};

/// The most repositories a collection's response lists with
/// `ECR_GC_REPORT_DETAIL=summary`, those that need attention first: about
/// 400 KB, far under Lambda's 6 MB response limit however large the
/// organisation. The totals count every repository, and each has its log
/// line.
pub const RESPONSE_REPOSITORIES: usize = 1_000;

pub use config::{Config, ConfigError, DEFAULT_DEADLINE_MARGIN};
pub use event::{EventError, Overrides, Trigger, parse_event};
pub use fanout::{FanOut, FanOutTarget};
pub use response::{HandlerError, Response};

/// What a cold start builds once and every invocation shares: the SDK
/// clients, the configuration (or why it is invalid, so that each
/// invocation fails with the same clear error) and the log.
pub struct Function<L> {
    connector: Connector,
    config: Result<Config, ConfigError>,
    log: L,
}

impl<L: LogSink> Function<L> {
    /// Reads the configuration from the process environment and loads the
    /// SDK configuration with its retry settings.
    pub async fn cold_start(log: L) -> Function<L> {
        let config = Config::from_env(|name| std::env::var(name).ok());
        if let Err(error) = &config {
            tracing::error!(%error, "invalid configuration; every invocation will fail until it is fixed");
        }
        let retry = config.as_ref().map(|c| c.retry).unwrap_or_default();
        let connector = Connector::new(retry.load().await);
        Function {
            connector,
            config,
            log,
        }
    }

    /// Serves one invocation, by the deadline Lambda gives it.
    pub async fn invoke(&self, event: LambdaEvent<Value>) -> Result<Response, HandlerError> {
        let deadline = deadline_instant(event.context.deadline, SystemTime::now(), Instant::now());
        handle_until(
            &self.connector,
            &self.config,
            &event.payload,
            Utc::now(),
            deadline,
            &self.log,
        )
        .await
    }
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
        log.emit(lines::line(
            Level::Error,
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
        Trigger::Schedule => (Cause::Schedule, Overrides::default(), None),
        Trigger::Scheduler(o) => (Cause::Scheduler, o, None),
        Trigger::Manual(o) => (Cause::Manual, o, None),
        Trigger::Push {
            repository,
            account,
            region,
        } => match push_target(&config.targets, connector, &account, &region) {
            Some(target) => (
                Cause::EcrPush,
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
                consume::batch(connector, config, records, now, stop_at, log).await,
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
                let report =
                    fanout::fan_out(connector, config, queue_url, name, dry_run, now, log).await;
                fan_out_failure(&report)?;
                return Ok(Response::FanOut(Box::new(report)));
            }
            every_target()
                .into_iter()
                .map(|t| (t, Scope::Selected))
                .collect()
        }
    };
    let run = Run {
        trigger: name,
        scope: Scope::Selected,
        dry_run,
        now,
        stop_at,
        detail: config.detail,
    };
    collect_inline(connector, config, &run, work, log).await
}

/// Collects the work in this invocation, logs the collection's totals, and
/// fails the invocation if nothing could be collected.
async fn collect_inline(
    connector: &Connector,
    config: &Config,
    run: &Run,
    work: Vec<(Target, Scope)>,
    log: &dyn LogSink,
) -> Result<Response, HandlerError> {
    log.emit(lines::line(
        Level::Info,
        "run started",
        json!({ "trigger": run.trigger, "dryRun": run.dry_run, "targets": work.len() }),
    ));
    let collection = collection::collect(
        connector,
        &config.targets,
        &config.policy,
        run,
        work,
        Others::Read,
        log,
    )
    .await;
    metrics::emit(connector, &collection, log);
    log.emit(lines::line(
        Level::warn_if(collection.has_failures()),
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
    let mut collection = collection;
    if run.detail == Detail::Summary {
        collection.trim(RESPONSE_REPOSITORIES);
    }
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
    log.emit(lines::line(
        Level::Info,
        "event ignored",
        json!({ "event": what }),
    ));
    Response::Ignored {
        trigger: Cause::Ecr,
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

/// Fails the invocation when a fan-out lost something: a message not sent,
/// or every target failed to list.
fn fan_out_failure(fan_out: &FanOut) -> Result<(), HandlerError> {
    let targets_failed = fan_out.targets.iter().filter(|t| t.error.is_some()).count();
    if let Some(first) = fan_out.sent.failed.first() {
        return Err(HandlerError::FanOutIncomplete {
            not_sent: fan_out.sent.failed.len(),
            total: fan_out
                .targets
                .iter()
                .map(|t| t.repositories)
                .sum::<usize>(),
            first: first.to_string(),
        });
    }
    if targets_failed > 0 && targets_failed == fan_out.targets.len() {
        return Err(HandlerError::EveryTargetFailed {
            failed: targets_failed,
            first: fan_out.targets[0].error.clone().unwrap_or_default(),
        });
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
