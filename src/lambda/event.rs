//! What an event asks for: [`parse_event`] turns a Lambda payload into a
//! [`Trigger`], refusing repository names ECR would refuse and saying what
//! was received when it is not an event ecr-gc knows.

use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

use super::fanout::{self, Record};
use crate::model::RepositoryName;

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `aws.events` Scheduled Event.
    Schedule,
    /// `aws.scheduler`, with any overrides its detail carries.
    Scheduler(Overrides),
    /// A successful ECR push to this repository, in this account and
    /// region (from the event's envelope). The account and region are only
    /// compared with the configured targets, never used as they came.
    Push {
        repository: RepositoryName,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub repositories: Option<Vec<RepositoryName>>,
    pub dry_run: Option<bool>,
}

/// [`Overrides`] as sent, before its names are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOverrides {
    repositories: Option<Vec<String>>,
    dry_run: Option<bool>,
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
    let Value::Object(fields) = event else {
        return Err(unrecognised("expected a JSON object", event));
    };
    if let Some(records) = fanout::records(event) {
        return records
            .map(Trigger::Queue)
            .map_err(|problem| unrecognised(problem.to_string(), event));
    }
    if !fields.contains_key("source") && !fields.contains_key("detail-type") {
        return overrides(event.clone(), event, |e| {
            format!("not an EventBridge event, nor a manual invoke ({e})")
        })
        .map(Trigger::Manual);
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
            overrides(detail, event, |e| format!("aws.scheduler detail: {e}"))
                .map(Trigger::Scheduler)
        }
        ("aws.ecr", "ECR Image Action") => {
            let detail: EcrImageAction = serde_json::from_value(envelope.detail)
                .map_err(|e| unrecognised(format!("ECR Image Action detail: {e}"), event))?;
            let action = detail.action_type.unwrap_or_default();
            let result = detail.result.unwrap_or_default();
            match (action.as_str(), result.as_str(), detail.repository_name) {
                ("PUSH", "SUCCESS", Some(repository)) => Ok(Trigger::Push {
                    repository: name(repository, event)?,
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

/// The overrides in `fields`, with `problem` saying why they are not.
fn overrides(
    fields: Value,
    event: &Value,
    problem: impl Fn(serde_json::Error) -> String,
) -> Result<Overrides, EventError> {
    let raw: RawOverrides =
        serde_json::from_value(fields).map_err(|e| unrecognised(problem(e), event))?;
    let repositories = match raw.repositories {
        Some(names) => Some(
            names
                .into_iter()
                .map(|n| name(n, event))
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    Ok(Overrides {
        repositories,
        dry_run: raw.dry_run,
    })
}

fn name(name: String, event: &Value) -> Result<RepositoryName, EventError> {
    RepositoryName::parse(name).map_err(|problem| unrecognised(problem.to_string(), event))
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
            repositories: repositories.map(|r| {
                r.iter()
                    .map(|s| RepositoryName::parse(*s).unwrap())
                    .collect()
            }),
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
                repository: RepositoryName::parse("demo/web").unwrap(),
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
}
