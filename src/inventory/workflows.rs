//! The Step Functions source: the ECS tasks that state machines run.
//!
//! A state machine's `ecs:runTask` state names a task definition, often a
//! pinned revision, that starts only when an execution reaches it. Every
//! state machine's definition is read, every Task state in it (inside
//! Parallel branches and Map iterators too) whose resource is
//! `arn:<partition>:states:::ecs:runTask` (`.sync` and `.waitForTaskToken`
//! included) gives its `TaskDefinition`, and that task definition's images
//! are in use. Workloads are named `states:stateMachine/<name>`.
//!
//! Published versions count too: an alias, or a rule or schedule that
//! targets a version ARN, starts that version's definition, which may pin
//! an older revision than the current one. Each version's workload is
//! named `states:stateMachine/<name>:<version>`; a version deleted between
//! the listing and its description starts nothing.
//!
//! A task definition chosen at run time (`"TaskDefinition.$"`, or a JSONata
//! expression) could be any revision: the source fails, naming the state
//! machine and the state, rather than guess. Switch the source off, or
//! publish those images in an external in-use list, to go on.

use serde_json::Value;

use super::ecs::Definitions;
use super::{InUse, invalid_list};
use crate::aws::{CallError, paginate};

/// Every ECS task any state machine runs.
pub async fn state_machines(
    sfn: &aws_sdk_sfn::Client,
    ecs: &aws_sdk_ecs::Client,
) -> Result<Vec<InUse>, CallError> {
    const DESCRIBE: &str = "DescribeStateMachine";
    let machines = paginate(
        "ListStateMachines",
        |token| sfn.list_state_machines().set_next_token(token).send(),
        |page| {
            let machines = page
                .state_machines()
                .iter()
                .map(|m| (m.state_machine_arn().to_owned(), m.name().to_owned()))
                .collect();
            Ok((machines, page.next_token().map(str::to_owned)))
        },
    )
    .await?;
    let mut uses = Vec::new();
    let mut definitions = Definitions::default();
    for (arn, name) in machines {
        // The current definition, then each published version's.
        let mut runs = vec![(arn.clone(), format!("states:stateMachine/{name}"), false)];
        for version in versions(sfn, &arn).await? {
            let number = version.rsplit(':').next().unwrap_or("?").to_owned();
            runs.push((
                version,
                format!("states:stateMachine/{name}:{number}"),
                true,
            ));
        }
        for (arn, workload, is_version) in runs {
            let out = match sfn
                .describe_state_machine()
                .state_machine_arn(&arn)
                .send()
                .await
            {
                Ok(out) => out,
                // A version deleted since it was listed starts nothing.
                Err(e)
                    if is_version
                        && e.as_service_error()
                            .is_some_and(|e| e.is_state_machine_does_not_exist()) =>
                {
                    continue;
                }
                Err(e) => return Err(CallError::from_sdk(DESCRIBE, &e)),
            };
            let task_definitions = ecs_task_definitions(out.definition())
                .map_err(|problem| invalid_list(DESCRIBE, format!("{workload}: {problem}")))?;
            for task_definition in task_definitions {
                definitions
                    .use_by(ecs, &task_definition, &workload, &mut uses)
                    .await?;
            }
        }
    }
    Ok(uses)
}

/// The ARNs of a state machine's published versions.
async fn versions(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Vec<String>, CallError> {
    paginate(
        "ListStateMachineVersions",
        |token| {
            sfn.list_state_machine_versions()
                .state_machine_arn(arn)
                .set_next_token(token)
                .send()
        },
        |page| {
            let versions = page.state_machine_versions().iter();
            Ok((
                versions
                    .map(|v| v.state_machine_version_arn().to_owned())
                    .collect(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await
}

/// The task definitions of every `ecs:runTask` state in an Amazon States
/// Language document, or why they cannot be told.
fn ecs_task_definitions(definition: &str) -> Result<Vec<String>, String> {
    let document: Value =
        serde_json::from_str(definition).map_err(|e| format!("the definition is not JSON: {e}"))?;
    let mut found = Vec::new();
    walk(&document, "", &mut found)?;
    found.sort();
    found.dedup();
    Ok(found)
}

/// Visits every state, however deeply nested; `name` is the state's name.
fn walk(value: &Value, name: &str, found: &mut Vec<String>) -> Result<(), String> {
    match value {
        Value::Object(fields) => {
            let runs_ecs = fields.get("Type").and_then(Value::as_str) == Some("Task")
                && fields
                    .get("Resource")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.contains(":states:::ecs:runTask"));
            if runs_ecs {
                found.push(task_definition(fields, name)?);
            }
            for (key, child) in fields {
                walk(child, key, found)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, name, found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The `TaskDefinition` an `ecs:runTask` state passes, from `Parameters`
/// (JSONPath) or `Arguments` (JSONata).
fn task_definition(state: &serde_json::Map<String, Value>, name: &str) -> Result<String, String> {
    let parameters = state
        .get("Parameters")
        .or_else(|| state.get("Arguments"))
        .and_then(Value::as_object);
    let dynamic = || {
        format!(
            "state `{name}` chooses its task definition at run time, so which images it runs cannot be told"
        )
    };
    let Some(parameters) = parameters else {
        return Err(format!("state `{name}` names no task definition"));
    };
    if parameters.contains_key("TaskDefinition.$") {
        return Err(dynamic());
    }
    match parameters.get("TaskDefinition").and_then(Value::as_str) {
        Some(text) if text.trim_start().starts_with("{%") => Err(dynamic()),
        Some(text) => Ok(text.to_owned()),
        None => Err(format!("state `{name}` names no task definition")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(definition: &str, expected: Result<&[&str], &str>) {
        match (ecs_task_definitions(definition), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(part)) => assert!(got.contains(part), "{got:?} lacks {part:?}"),
            (got, want) => panic!("{definition}\n gave {got:?}\n expected {want:?}"),
        }
    }

    #[test]
    fn run_task_states_are_found_wherever_they_are() {
        let task = |resource: &str, td: &str| {
            format!(
                r#"{{"Type":"Task","Resource":"{resource}","Parameters":{{"Cluster":"c","TaskDefinition":"{td}"}},"End":true}}"#
            )
        };
        let sync = task("arn:aws:states:::ecs:runTask.sync", "etl:3");
        let plain = task("arn:aws-us-gov:states:::ecs:runTask", "report:1");
        check(
            &format!(r#"{{"StartAt":"A","States":{{"A":{sync}}}}}"#),
            Ok(&["etl:3"]),
        );
        check(
            &format!(
                r#"{{"StartAt":"P","States":{{"P":{{"Type":"Parallel","Branches":[{{"StartAt":"B","States":{{"B":{plain}}}}}],"Next":"M"}},
                   "M":{{"Type":"Map","ItemProcessor":{{"StartAt":"C","States":{{"C":{sync}}}}},"End":true}}}}}}"#
            ),
            Ok(&["etl:3", "report:1"]),
        );
        check(
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","End":true}}}"#,
            Ok(&[]),
        );
        check(
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::ecs:runTask","Parameters":{"TaskDefinition.$":"$.td"},"End":true}}}"#,
            Err("state `A` chooses its task definition at run time"),
        );
        check(
            r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::ecs:runTask","Arguments":{"TaskDefinition":"{% $states.input.td %}"},"End":true}}}"#,
            Err("at run time"),
        );
        check(
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::ecs:runTask","End":true}}}"#,
            Err("state `A` names no task definition"),
        );
        check("{", Err("not JSON"));
    }
}
