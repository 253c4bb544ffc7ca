//! The queue consumer: an SQS batch of fan-out messages and queued push
//! events, admitted only within what the configuration allows, collected
//! like any run, and answered with the messages whose repository did not
//! finish, for SQS to redeliver.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use aws_lambda_events::sqs::SqsBatchResponse;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::config::Config;
use super::event::{Trigger, parse_event};
use super::fanout::{self, Body, Message, Record};
use super::push_target;
use crate::aws::Connector;
use crate::aws::targets::Target;
use crate::inventory::Foreign;
use crate::model::RepositoryName;
use crate::run::collection::{self, Others};
use crate::run::engine::{Run, Scope};
use crate::run::lines::{self, Level, LogSink};
use crate::run::report::{self, Cause};

/// Collects an SQS batch. A message is reported back for redelivery when
/// its repository did not finish cleanly: unreadable, not one of our
/// targets, its target unreachable, an in-use source failed, a listing or
/// delete failed, or the deadline left it unstarted.
pub(super) async fn batch(
    connector: &Connector,
    config: &Config,
    records: Vec<Record>,
    clock: DateTime<Utc>,
    stop_at: Option<Instant>,
    log: &dyn LogSink,
) -> SqsBatchResponse {
    let Admitted {
        groups,
        judged_as_of,
        mut failures,
    } = admit_all(connector, config, records, clock, log);
    for (dry_run, targets) in groups {
        let run = Run {
            trigger: Cause::Sqs,
            scope: Scope::Selected,
            dry_run,
            now: judged_as_of.get(&dry_run).copied().unwrap_or(clock),
            stop_at,
            detail: config.detail,
        };
        let again = collect_group(connector, config, &run, &targets, clock, log).await;
        failures.extend(again);
    }
    log.emit(lines::line(
        Level::warn_if(!failures.is_empty()),
        "queue batch finished",
        json!({ "batchItemFailures": failures.len() }),
    ));
    let mut response = SqsBatchResponse::default();
    response.set_failures(failures);
    response
}

/// The messages of one dry-run setting, by target: each with its SQS
/// message id.
type Group = BTreeMap<Target, Vec<(String, Message)>>;

/// A batch's records, sorted: the messages admitted, by dry run, then
/// target, with the time each dry-run group is judged as of (its earliest
/// message's); and the message ids refused.
struct Admitted {
    groups: BTreeMap<bool, Group>,
    judged_as_of: BTreeMap<bool, DateTime<Utc>>,
    failures: BTreeSet<String>,
}

/// Reads and admits each record; a refused one is logged and handed back.
fn admit_all(
    connector: &Connector,
    config: &Config,
    records: Vec<Record>,
    clock: DateTime<Utc>,
    log: &dyn LogSink,
) -> Admitted {
    let mut admitted = Admitted {
        groups: BTreeMap::new(),
        judged_as_of: BTreeMap::new(),
        failures: BTreeSet::new(),
    };
    for record in records {
        let message = match record.message {
            Ok(Body::Message(message)) => Ok(message),
            Ok(Body::Event(event)) => match queued_push(connector, config, &event, log) {
                Ok(Some(message)) => Ok(message),
                Ok(None) => continue,
                Err(problem) => Err(problem),
            },
            Err(problem) => Err(problem.to_string()),
        };
        match message.and_then(|message| admit(config, &message, clock).map(|at| (message, at))) {
            Ok((message, at)) => {
                // The consumer's own ECR_GC_DRY_RUN=true is a brake on
                // messages already queued: setting it stops their deletions.
                let dry_run = message.dry_run || config.dry_run;
                let earliest = admitted.judged_as_of.entry(dry_run).or_insert(at);
                *earliest = (*earliest).min(at);
                admitted
                    .groups
                    .entry(dry_run)
                    .or_default()
                    .entry(message.target())
                    .or_default()
                    .push((record.message_id, message));
            }
            Err(problem) => {
                log.emit(lines::line(
                    Level::Error,
                    "queue message refused",
                    json!({ "messageId": record.message_id, "error": problem }),
                ));
                admitted.failures.insert(record.message_id);
            }
        }
    }
    admitted
}

/// Collects one group's repositories and returns the ids of the messages
/// whose repository did not finish.
async fn collect_group(
    connector: &Connector,
    config: &Config,
    run: &Run,
    targets: &Group,
    clock: DateTime<Utc>,
    log: &dyn LogSink,
) -> BTreeSet<String> {
    let work = targets
        .iter()
        .map(|(target, messages)| {
            let mut names: Vec<RepositoryName> =
                messages.iter().map(|(_, m)| m.repository.clone()).collect();
            names.sort();
            names.dedup();
            (target.clone(), Scope::Named(names))
        })
        .collect();
    let others = others_given(config, targets, clock);
    let collection = collection::collect(
        connector,
        &config.targets,
        &config.policy,
        run,
        work,
        others,
        log,
    )
    .await;
    crate::run::metrics::emit(connector, &collection, log);
    let mut again = BTreeSet::new();
    for target in &collection.targets {
        let unfinished = unfinished_repositories(target);
        for (message_id, message) in targets.get(&target.target).into_iter().flatten() {
            let handed_back = match &unfinished {
                Unfinished::All => true,
                Unfinished::Some(names) => names.contains(message.repository.as_str()),
            };
            if handed_back {
                again.insert(message_id.clone());
            }
        }
    }
    again
}

/// What the other views' workloads use of a batch's repositories: what its
/// messages carry, when every one of them carries it and is younger than
/// `maxAgeMinutes` (the scheduled run read every view); otherwise the
/// consumer reads every view itself. A message can only add protection.
fn others_given(config: &Config, targets: &Group, clock: DateTime<Utc>) -> Others {
    let sources = &config.policy.settings.in_use;
    if !collection::organisation_wide(&config.targets, sources) {
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
        log.emit(lines::line(
            Level::Info,
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
        trigger: Cause::EcrPush,
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
        .filter(|r| r.error.is_some() || r.counts().images_failed > 0 || r.unfinished.is_some())
        .map(|r| r.repository_name.as_str())
        .collect();
    names.extend(report.not_started.iter().map(String::as_str));
    Unfinished::Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::ConfigError;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(vars)
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
            trigger: Cause::Schedule,
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
}
