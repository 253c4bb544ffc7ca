//! Fan-out through SQS: the message ecr-gc sends itself, and the records
//! of the SQS batches it consumes. `aws::sqs` does the sending.
//!
//! With `ECR_GC_FANOUT_QUEUE_URL` set (the template's `FanOut` option), a
//! scheduled invocation only lists the targets' repositories and sends one
//! [`Message`] per (account, region, repository), ten to a SendMessageBatch
//! call. The same function consumes the queue: each SQS batch is collected
//! like any run, and the messages whose repository did not finish cleanly
//! are returned as `batchItemFailures`, so SQS redelivers only those, and
//! after `maxReceiveCount` moves them to the dead-letter queue, where they
//! are seen rather than lost.
//!
//! A message names an account and a region, never a role: the consumer
//! looks the account up in its own configuration, so whoever can write to
//! the queue cannot make ecr-gc assume an arbitrary role.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use super::config::Config;
use crate::aws::Connector;
use crate::aws::ecr::ApiCallCounts;
use crate::aws::sqs;
use crate::aws::targets::Target;
use crate::inventory::Foreign;
use crate::model::{AccountId, NameError, Region, RepositoryName};
use crate::run::collection::{self, Listing};
use crate::run::lines::{self, Level, LogSink};
use crate::run::report::Cause;

/// How far ahead of the consumer's clock a message's `now` may be: clocks
/// of two Lambda invocations agree to well within this.
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The oldest `now` a consumer acts on: the fan-out queue's
/// `MessageRetentionPeriod` in `template.yaml` (a test keeps the two equal).
pub const MAX_MESSAGE_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// One repository to collect, as sent through the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `None`: the function's own account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    /// `None`: the function's own region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    pub repository: RepositoryName,
    pub dry_run: bool,
    /// The evaluation time of the scheduled run that sent it. A message
    /// redelivered later is judged as of then, which can only keep more;
    /// the consumer refuses one dated ahead of its own clock or older than
    /// the queue keeps messages. Without it, the consumer's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<DateTime<Utc>>,
    /// What started the scheduled run, such as `schedule`.
    pub trigger: Cause,
    /// What other accounts' workloads use of this repository, and which of
    /// their inventories could not be read, as the scheduled run found
    /// them; present when the configuration names more than one account or
    /// region. It can only add protection; the consumer reads its own
    /// target's inventory itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign: Option<Foreign>,
}

impl Message {
    pub fn target(&self) -> Target {
        Target {
            account_id: self.account_id.clone(),
            region: self.region.clone(),
        }
    }

    /// Parses a message body, checking every name before it is used.
    pub fn parse(body: &str) -> Result<Message, MessageError> {
        let wire: Wire =
            serde_json::from_str(body).map_err(|e| MessageError::Shape(e.to_string()))?;
        let repository = RepositoryName::parse(wire.repository)?;
        Ok(Message {
            account_id: wire.account_id.map(AccountId::parse).transpose()?,
            region: wire.region.map(Region::parse).transpose()?,
            repository,
            dry_run: wire.dry_run,
            now: wire.now,
            trigger: wire.trigger,
            foreign: wire.foreign,
        })
    }
}

/// A [`Message`] as it arrives, before its names are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    repository: String,
    dry_run: bool,
    #[serde(default)]
    now: Option<DateTime<Utc>>,
    trigger: Cause,
    #[serde(default)]
    foreign: Option<Foreign>,
}

/// Why a queued body is not a message ecr-gc acts on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    #[error("not an ecr-gc message: {0}")]
    Shape(String),
    #[error("an SQS record without a body")]
    NoBody,
    #[error(transparent)]
    Name(#[from] NameError),
}

/// One message per listed repository, in target order.
pub fn messages(
    listings: &[Listing],
    trigger: Cause,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Vec<Message> {
    listings
        .iter()
        .flat_map(|listing| {
            listing
                .repositories
                .iter()
                .flatten()
                .map(move |repository| Message {
                    account_id: listing.target.account_id.clone(),
                    region: listing.target.region.clone(),
                    repository: repository.clone(),
                    dry_run,
                    now: Some(now),
                    trigger,
                    foreign: listing.foreign.get(repository).cloned(),
                })
        })
        .collect()
}

/// One record of an SQS event: its message id, and what its body holds, or
/// why it holds nothing ecr-gc reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub message_id: String,
    pub message: Result<Body, MessageError>,
}

/// What a queued message holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// One repository to collect, from a scheduled fan-out.
    Message(Message),
    /// An EventBridge event (an object with `source`), as the push rule
    /// queues ECR push events so that a burst is collected once.
    Event(Value),
}

impl Body {
    fn parse(body: &str) -> Result<Body, MessageError> {
        match serde_json::from_str::<Value>(body) {
            Ok(value) if value.get("source").is_some() => Ok(Body::Event(value)),
            _ => Message::parse(body).map(Body::Message),
        }
    }
}

/// Why an SQS event cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SqsEventError {
    #[error("malformed SQS event: {0}")]
    Malformed(String),
    #[error("an SQS record without messageId")]
    NoMessageId,
}

/// The records of an SQS event, if `event` is one (`Records` whose
/// `eventSource` is `aws:sqs`); `Err` when it is one but malformed.
pub fn records(event: &Value) -> Option<Result<Vec<Record>, SqsEventError>> {
    let items = event.get("Records")?.as_array()?;
    if !items
        .iter()
        .any(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
    {
        return None;
    }
    let parsed: Result<aws_lambda_events::sqs::SqsEvent, _> = serde_json::from_value(event.clone());
    Some(match parsed {
        Err(e) => Err(SqsEventError::Malformed(e.to_string())),
        Ok(sqs) => sqs
            .records
            .into_iter()
            .map(|r| {
                let message_id = r.message_id.ok_or(SqsEventError::NoMessageId)?;
                let message = match r.body {
                    Some(body) => Body::parse(&body),
                    None => Err(MessageError::NoBody),
                };
                Ok(Record {
                    message_id,
                    message,
                })
            })
            .collect(),
    })
}

/// What sending took and left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    pub messages_sent: u64,
    pub send_message_batch_calls: u64,
    /// Messages that could not be sent: the repository, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<NotSent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotSent {
    #[serde(flatten)]
    pub target: Target,
    pub repository: RepositoryName,
    pub code: String,
    pub message: String,
}

/// Sends the messages through the SQS adapter; what could not be sent is
/// returned with its repository, never dropped.
pub async fn send(sqs: &aws_sdk_sqs::Client, queue_url: &str, messages: &[Message]) -> Sent {
    let delivery = sqs::send(sqs, queue_url, messages).await;
    Sent {
        messages_sent: delivery.sent,
        send_message_batch_calls: delivery.send_message_batch_calls,
        failed: delivery
            .failed
            .into_iter()
            .filter_map(|f| {
                let message = messages.get(f.index)?;
                Some(NotSent {
                    target: message.target(),
                    repository: message.repository.clone(),
                    code: f.code,
                    message: f.message,
                })
            })
            .collect(),
    }
}

/// What a fan-out sent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanOut {
    pub trigger: Cause,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    pub queue_url: String,
    pub targets: Vec<FanOutTarget>,
    #[serde(flatten)]
    pub sent: Sent,
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

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in {}: {}: {}",
            self.repository, self.target, self.code, self.message
        )
    }
}

/// Lists every target's selected repositories and sends one message each
/// to the queue, and reports what was sent, and what not, with a log line.
/// The caller fails the invocation when anything was not sent (see
/// `lambda::fan_out_failure`): a lost message would be a repository silently not
/// collected.
pub(super) async fn fan_out(
    connector: &Connector,
    config: &Config,
    queue_url: &str,
    trigger: Cause,
    dry_run: bool,
    now: DateTime<Utc>,
    log: &dyn LogSink,
) -> FanOut {
    let started = Instant::now();
    let (listings, api_calls, assume_role_calls) = collection::list_targets(
        connector,
        &config.targets,
        &config.policy,
        config.targets.expand(),
    )
    .await;
    for listing in &listings {
        if let Err(error) = &listing.repositories {
            log.emit(lines::line(
                Level::Error,
                "target not listed",
                json!({ "target": listing.target, "error": error }),
            ));
        }
    }
    let messages = messages(&listings, trigger, dry_run, now);
    let sent = send(&connector.home().sqs, queue_url, &messages).await;
    let report = FanOut {
        trigger,
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
    log.emit(lines::line(
        Level::warn_if(targets_failed > 0 || !report.sent.failed.is_empty()),
        "fan-out finished",
        serde_json::to_value(&report).unwrap_or_default(),
    ));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record's message id, and its repository or part of its error.
    type Expected<'a> = Vec<(&'a str, Result<&'a str, &'a str>)>;

    #[track_caller]
    fn check(event: &str, expected: Option<Result<Expected<'_>, &str>>) {
        let value: Value = serde_json::from_str(event).unwrap();
        let got = records(&value);
        match (got, expected) {
            (None, None) => {}
            (Some(Ok(records)), Some(Ok(want))) => {
                assert_eq!(records.len(), want.len());
                for (record, (id, message)) in records.iter().zip(want) {
                    assert_eq!(record.message_id, id);
                    match (&record.message, message) {
                        (Ok(Body::Message(m)), Ok(repository)) => {
                            assert_eq!(m.repository, repository)
                        }
                        (Ok(Body::Event(e)), Ok(source)) => assert_eq!(e["source"], source),
                        (Err(e), Err(part)) => {
                            assert!(e.to_string().contains(part), "{e:?} lacks {part:?}")
                        }
                        (got, want) => panic!("{got:?} vs {want:?}"),
                    }
                }
            }
            (Some(Err(e)), Some(Err(part))) => {
                assert!(e.to_string().contains(part), "{e:?} lacks {part:?}")
            }
            (got, want) => panic!("{event}\n gave {got:?}\n expected {want:?}"),
        }
    }

    fn sqs_event(bodies: &[&str]) -> String {
        let records: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                serde_json::json!({
                    "messageId": format!("m{i}"),
                    "receiptHandle": "h",
                    "body": body,
                    "attributes": {},
                    "messageAttributes": {},
                    "md5OfBody": "x",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:ecr-gc",
                    "awsRegion": "eu-west-1"
                })
            })
            .collect();
        serde_json::json!({ "Records": records }).to_string()
    }

    #[test]
    fn sqs_events() {
        check(
            include_str!("../../events/sqs.json"),
            Some(Ok(vec![
                ("059f36b4-87a3-44ab-83d2-661975830a7d", Ok("demo/web")),
                ("2e1424d4-f796-459a-8184-9c92662be6da", Ok("demo/worker")),
            ])),
        );
        let good = r#"{"accountId":"111122223333","region":"eu-west-1","repository":"web","dryRun":true,"now":"2026-11-27T00:00:00Z","trigger":"schedule"}"#;
        check(
            &sqs_event(&[
                good,
                "not json",
                r#"{"repository":"Web","dryRun":true,"now":"2026-11-27T00:00:00Z","trigger":"schedule"}"#,
                r#"{"region":"mars","repository":"web","dryRun":true,"now":"2026-11-27T00:00:00Z","trigger":"schedule"}"#,
                r#"{"roleArn":"arn:aws:iam::1:role/x","repository":"web","dryRun":true,"now":"2026-11-27T00:00:00Z","trigger":"schedule"}"#,
                include_str!("../../events/ecr-push.json"),
            ]),
            Some(Ok(vec![
                ("m0", Ok("web")),
                ("m1", Err("not an ecr-gc message")),
                ("m2", Err("Web")),
                ("m3", Err("mars")),
                ("m4", Err("unknown field `roleArn`")),
                ("m5", Ok("aws.ecr")),
            ])),
        );
        check(r#"{"Records": []}"#, None);
        check(r#"{"repositories": ["web"]}"#, None);
        check(
            r#"{"Records": [{"eventSource": "aws:sqs", "body": 5}]}"#,
            Some(Err("malformed SQS event")),
        );
    }

    #[test]
    fn one_message_per_listed_repository() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let target = |a: &str| Target {
            account_id: Some(a.into()),
            region: Some("eu-west-1".into()),
        };
        let listings = [
            Listing {
                target: target("111122223333"),
                repositories: Ok(vec!["web".into(), "worker".into()]),
                foreign: Default::default(),
            },
            Listing {
                target: target("444455556666"),
                repositories: Err("AccessDenied".into()),
                foreign: Default::default(),
            },
        ];
        let got = messages(&listings, Cause::Schedule, false, now);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].repository, "worker");
        let body = serde_json::to_string(&got[0]).unwrap();
        assert_eq!(Message::parse(&body), Ok(got[0].clone()));
    }
}
