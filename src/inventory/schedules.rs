//! The schedule sources: what EventBridge rules and EventBridge Scheduler
//! schedules will start, though nothing runs it now. A rule or a schedule
//! that runs an ECS task definition pinned to an old revision
//! (`family:3` while the newest revisions are 10 to 14) starts nothing
//! until it fires, at night, and then needs its image; the "newest
//! revisions" of the ECS source do not see it.
//!
//! * [`rules`]: every rule on every event bus, and each ECS target's task
//!   definition (by ARN, so a pinned revision is protected). Workloads are
//!   named `events:rule/<name>` on the default bus and
//!   `events:rule/<bus>/<name>` on another, as their ARNs are.
//! * [`schedules`]: every schedule in every group whose target runs an ECS
//!   task, templated (`EcsParameters`) or universal (`aws-sdk:ecs:runTask`
//!   with the task definition in its input). Workloads are named
//!   `scheduler:<group>/<name>`.
//!
//! Disabled rules and schedules count too: enabling one must not find its
//! image gone. A target that cannot be read (a universal target whose input
//! names no task definition, a task definition ECS cannot describe) fails
//! the source, and with it the run's deletions, naming the rule or schedule.

use serde_json::Value;

use super::ecs::Definitions;
use super::{InUse, in_workload, invalid_list};
use crate::aws::{CallError, paginate};

/// Every ECS task that an EventBridge rule starts, on any event bus.
pub async fn rules(
    events: &aws_sdk_eventbridge::Client,
    ecs: &aws_sdk_ecs::Client,
) -> Result<Vec<InUse>, CallError> {
    let mut uses = Vec::new();
    let mut definitions = Definitions::default();
    for bus in event_buses(events).await? {
        for rule in rule_names(events, &bus).await? {
            let workload = if bus == "default" {
                format!("events:rule/{rule}")
            } else {
                format!("events:rule/{bus}/{rule}")
            };
            for task_definition in rule_task_definitions(events, &bus, &rule).await? {
                definitions
                    .use_by(ecs, &task_definition, &workload, &mut uses)
                    .await?;
            }
        }
    }
    Ok(uses)
}

async fn event_buses(events: &aws_sdk_eventbridge::Client) -> Result<Vec<String>, CallError> {
    paginate(
        "ListEventBuses",
        |token| events.list_event_buses().set_next_token(token).send(),
        |page| {
            let names = page
                .event_buses()
                .iter()
                .filter_map(|b| b.name().map(str::to_owned))
                .collect();
            Ok((names, page.next_token().map(str::to_owned)))
        },
    )
    .await
}

async fn rule_names(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
) -> Result<Vec<String>, CallError> {
    paginate(
        "ListRules",
        |token| {
            events
                .list_rules()
                .event_bus_name(bus)
                .set_next_token(token)
                .send()
        },
        |page| {
            let names = page
                .rules()
                .iter()
                .filter_map(|r| r.name().map(str::to_owned))
                .collect();
            Ok((names, page.next_token().map(str::to_owned)))
        },
    )
    .await
}

/// The task definitions of a rule's ECS targets.
async fn rule_task_definitions(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    rule: &str,
) -> Result<Vec<String>, CallError> {
    paginate(
        "ListTargetsByRule",
        |token| {
            events
                .list_targets_by_rule()
                .rule(rule)
                .event_bus_name(bus)
                .set_next_token(token)
                .send()
        },
        |page| {
            let arns = page
                .targets()
                .iter()
                .filter_map(|t| t.ecs_parameters())
                .map(|p| p.task_definition_arn().to_owned())
                .collect();
            Ok((arns, page.next_token().map(str::to_owned)))
        },
    )
    .await
}

/// Every ECS task that an EventBridge Scheduler schedule starts, in any
/// schedule group.
pub async fn schedules(
    scheduler: &aws_sdk_scheduler::Client,
    ecs: &aws_sdk_ecs::Client,
) -> Result<Vec<InUse>, CallError> {
    const GET: &str = "GetSchedule";
    let mut uses = Vec::new();
    let mut definitions = Definitions::default();
    for (group, name) in ecs_schedules(scheduler).await? {
        let workload = format!("scheduler:{group}/{name}");
        let out = scheduler
            .get_schedule()
            .group_name(&group)
            .name(&name)
            .send()
            .await
            .map_err(|e| CallError::from_sdk(GET, &e))?;
        // A target changed since it was listed to one that runs no ECS task.
        let Some(target) = out.target().filter(|t| runs_ecs_task(t.arn())) else {
            continue;
        };
        let task_definition = schedule_task_definition(target)
            .map_err(|e| in_workload(e, &workload))?
            .ok_or_else(|| {
                invalid_list(
                    GET,
                    format!("{workload}: its ECS target names no task definition"),
                )
            })?;
        definitions
            .use_by(ecs, &task_definition, &workload, &mut uses)
            .await?;
    }
    Ok(uses)
}

/// The (group, name) of every schedule whose target runs an ECS task.
async fn ecs_schedules(
    scheduler: &aws_sdk_scheduler::Client,
) -> Result<Vec<(String, String)>, CallError> {
    paginate(
        "ListSchedules",
        |token| scheduler.list_schedules().set_next_token(token).send(),
        |page| {
            let found = page
                .schedules()
                .iter()
                .filter(|s| s.target().is_some_and(|t| runs_ecs_task(t.arn())))
                .filter_map(|s| {
                    Some((
                        s.group_name().unwrap_or("default").to_owned(),
                        s.name()?.to_owned(),
                    ))
                })
                .collect();
            Ok((found, page.next_token().map(str::to_owned)))
        },
    )
    .await
}

/// Whether a schedule's target ARN runs an ECS task: an ECS cluster (the
/// templated target) or the universal target for ECS RunTask.
fn runs_ecs_task(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let service = parts.nth(2);
    service == Some("ecs") || arn.ends_with(":aws-sdk:ecs:runTask")
}

/// The task definition an ECS target runs; `None` when it names none.
fn schedule_task_definition(
    target: &aws_sdk_scheduler::types::Target,
) -> Result<Option<String>, CallError> {
    if let Some(ecs) = target.ecs_parameters() {
        return Ok(Some(ecs.task_definition_arn().to_owned()));
    }
    if target.arn().ends_with(":aws-sdk:ecs:runTask") {
        // The universal target's input is RunTask's own request.
        let input: Value = serde_json::from_str(target.input().unwrap_or("{}")).map_err(|e| {
            invalid_list("GetSchedule", format!("the RunTask input is not JSON: {e}"))
        })?;
        return Ok(input
            .get("TaskDefinition")
            .and_then(Value::as_str)
            .map(str::to_owned));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_targets_are_told_by_their_arn() {
        for (arn, runs) in [
            ("arn:aws:ecs:eu-west-1:111122223333:cluster/prod", true),
            ("arn:aws:scheduler:::aws-sdk:ecs:runTask", true),
            (
                "arn:aws-us-gov:ecs:us-gov-west-1:111122223333:cluster/x",
                true,
            ),
            ("arn:aws:lambda:eu-west-1:111122223333:function:f", false),
            ("arn:aws:scheduler:::aws-sdk:sqs:sendMessage", false),
            (
                "arn:aws:states:eu-west-1:111122223333:stateMachine:ecs",
                false,
            ),
        ] {
            assert_eq!(runs_ecs_task(arn), runs, "{arn}");
        }
    }
}
