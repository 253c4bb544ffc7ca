//! The SAM template, checked by the tools AWS ships: cfn-lint and
//! `sam validate --lint`; plus the least-privilege promise, read from it.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(ROOT)
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed (make test installs it with pip): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cfn_lint_passes() {
    run(
        "cfn-lint",
        &[
            "template.yaml",
            "deploy/target-account-role.yaml",
            "deploy/eks-access-entry.yaml",
        ],
    );
}

#[test]
fn sam_validate_lint_passes() {
    run(
        "sam",
        &[
            "validate",
            "--lint",
            "--region",
            "us-east-1",
            "--template-file",
            "template.yaml",
        ],
    );
}

#[test]
fn batch_delete_image_is_granted_on_repository_arns_only() {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    // Deleting, and archiving (only when the template says the policy
    // archives: EnableArchiving, which also tells the function), each
    // granted once, on the deletable repositories' ARNs only.
    for action in ["ecr:BatchDeleteImage", "ecr:UpdateImageStorageClass"] {
        let at = template
            .find(&format!("Action: {action}"))
            .unwrap_or_else(|| panic!("the function may not {action}"));
        let resource: Vec<&str> = template[at..]
            .lines()
            .skip(1)
            .take(2)
            .map(str::trim)
            .collect();
        assert_eq!(
            resource,
            [
                "Resource: !Sub",
                "- arn:${AWS::Partition}:ecr:${Region}:${AWS::AccountId}:repository/${DeletableRepositories}"
            ],
            "{action}"
        );
        assert_eq!(template.matches(action).count(), 1, "{action}");
    }
    assert!(template.contains("ECR_GC_ARCHIVE: !Ref EnableArchiving"));
    // Only list calls that support no resource-level permissions are on *,
    // and only when their in-use source is switched on.
    let lines: Vec<&str> = template.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "Resource: \"*\"" {
            continue;
        }
        let sid = lines[..i]
            .iter()
            .rev()
            .find(|l| l.contains("Sid:"))
            .unwrap()
            .trim();
        let condition = match sid {
            "- Sid: ReadEcsWorkloads" => "- EcsInUse",
            "- Sid: ListLambdaFunctions" => "- LambdaInUse",
            "- Sid: ListEventBridgeRules" => "- EventsInUse",
            "- Sid: ListSchedules" => "- SchedulerInUse",
            "- Sid: ReadBatchWorkloads" => "- BatchInUse",
            "- Sid: ListCodeBuildProjects" => "- CodeBuildInUse",
            "- Sid: ListStateMachines" => "- StepFunctionsInUse",
            "- Sid: ListAppRunnerServices" => "- AppRunnerInUse",
            "- Sid: ListSageMakerWorkloads" => "- SageMakerInUse",
            "- Sid: ListEksClusters" => "- EksInUse",
            _ => panic!("{sid} is on *"),
        };
        // The statement itself is the second item of an `!If` on its own
        // source's switch: `- !If`, `- <Condition>`, `- Sid: ...`.
        let at = lines[..i].iter().rposition(|l| l.contains("Sid:")).unwrap();
        assert_eq!(
            (lines[at - 2].trim(), lines[at - 1].trim()),
            ("- !If", condition),
            "{sid} must depend on its source's switch"
        );
    }
    for needle in [
        "BuildMethod: rust-cargolambda",
        "Runtime: provided.al2023",
        "Architectures: [arm64]",
        "Type: ScheduleV2",
        "RetentionInDays",
        "OnFailure",
        // Fan-out: partial batch responses, a dead-letter queue, the knob.
        "FunctionResponseTypes: [ReportBatchItemFailures]",
        "deadLetterTargetArn: !GetAtt DeadLetterQueue.Arn",
        "maxReceiveCount: !Ref FanOutMaxReceiveCount",
        "MaximumConcurrency: !Ref FanOutMaximumConcurrency",
        // Only the listed target roles may be assumed.
        "Action: sts:AssumeRole\n                Resource: !Ref TargetRoleArns",
    ] {
        assert!(template.contains(needle), "template lacks {needle}");
    }
}

/// The lines of one top-level resource (or parameter) of the template: its
/// name's line and every more indented line after it.
fn resource(template: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = template.lines().skip_while(|l| *l != header);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("the template has no {name}"));
    let body = lines.take_while(|l| l.is_empty() || l.starts_with("   "));
    std::iter::once(first)
        .chain(body)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message older than the queue keeps messages is refused by the
/// consumer: the two ages must agree, or a legitimate message is refused.
#[test]
fn the_consumer_refuses_messages_exactly_as_old_as_the_queue_drops_them() {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    let queue = resource(&template, "FanOutQueue");
    let retention: i64 = queue
        .lines()
        .find_map(|l| l.trim().strip_prefix("MessageRetentionPeriod: "))
        .expect("the fan-out queue sets its retention")
        .parse()
        .unwrap();
    assert_eq!(
        retention,
        ecr_gc::lambda::fanout::MAX_MESSAGE_AGE.num_seconds(),
        "{queue}"
    );
    let policy = resource(&template, "FanOutQueuePolicy");
    for needle in [
        "Action: sqs:SendMessage",
        "aws:PrincipalArn: !GetAtt FunctionRole.Arn",
        "aws:SecureTransport: \"false\"",
    ] {
        assert!(
            policy.contains(needle),
            "the queue policy lacks {needle}:\n{policy}"
        );
    }
}

/// Pushes go through a queue only the push rule may send to, gathered for
/// less than the two minutes a push may wait; the function's concurrency is
/// reserved, so a burst cannot multiply its load or its delete budget.
#[test]
fn pushes_are_queued_and_concurrency_is_reserved() {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    let rule = resource(&template, "PushRule");
    assert!(rule.contains("Arn: !GetAtt PushQueue.Arn"), "{rule}");
    assert!(
        !template.contains("PushRulePermission"),
        "the rule invokes nothing directly"
    );
    let consumer = resource(&template, "PushConsumer");
    for needle in [
        "EventSourceArn: !GetAtt PushQueue.Arn",
        "MaximumBatchingWindowInSeconds: !Ref PushBatchingWindowSeconds",
        "FunctionResponseTypes: [ReportBatchItemFailures]",
    ] {
        assert!(consumer.contains(needle), "{consumer} lacks {needle}");
    }
    let window = resource(&template, "PushBatchingWindowSeconds");
    let max: u32 = window
        .lines()
        .find_map(|l| l.trim().strip_prefix("MaxValue: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(max < 120, "a push must be acted on within two minutes");
    let policy = resource(&template, "PushQueuePolicy");
    for needle in [
        "Service: events.amazonaws.com",
        "aws:SourceArn: !GetAtt PushRule.Arn",
        "ArnNotEquals",
        "aws:SecureTransport",
    ] {
        assert!(policy.contains(needle), "{policy} lacks {needle}");
    }
    assert!(template.contains("ReservedConcurrentExecutions: !Ref ReservedConcurrency"));
}

/// Every quiet failure has an alarm, and each alarm notifies the optional
/// topic; the log-line alarms watch the messages ecr-gc writes.
#[test]
fn every_quiet_failure_has_an_alarm() {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    for (alarm, needles) in [
        (
            "DeadLetterQueueAlarm",
            vec!["Value: !GetAtt DeadLetterQueue.QueueName"],
        ),
        (
            "FailedInvocationsAlarm",
            vec!["Value: !GetAtt FailedInvocations.QueueName"],
        ),
        (
            "FunctionErrorsAlarm",
            vec!["MetricName: Errors", "Value: !Ref Function"],
        ),
        (
            "InventoryIncompleteAlarm",
            vec!["MetricName: InventoryIncomplete"],
        ),
        ("ImagesFailedAlarm", vec!["MetricName: ImagesFailed"]),
        (
            "TargetsNotCollectedAlarm",
            vec!["MetricName: TargetsNotCollected"],
        ),
    ] {
        let text = resource(&template, alarm);
        assert!(text.contains("Type: AWS::CloudWatch::Alarm"), "{alarm}");
        assert!(
            text.contains(
                "AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]"
            ),
            "{alarm} notifies no one"
        );
        for needle in needles {
            assert!(text.contains(needle), "{alarm} lacks {needle}");
        }
    }
    // The metric filters match the log lines ecr-gc writes, verbatim.
    for (filter, messages) in [
        (
            "InventoryIncompleteMetric",
            &["in-use inventory incomplete"][..],
        ),
        (
            "ImagesFailedMetric",
            &["image not deleted", "image not archived"][..],
        ),
        ("TargetsNotCollectedMetric", &["target not collected"][..]),
    ] {
        let text = resource(&template, filter);
        let pattern = messages
            .iter()
            .map(|m| format!("$.message = \"{m}\""))
            .collect::<Vec<_>>();
        let pattern = if pattern.len() == 1 {
            pattern[0].clone()
        } else {
            pattern
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" || ")
        };
        assert!(
            text.contains(&format!("FilterPattern: '{{ {pattern} }}'")),
            "{text}"
        );
        let source = [
            include_str!("../../src/run/engine.rs"),
            include_str!("../../src/run/lines.rs"),
            include_str!("../../src/run/collection.rs"),
        ]
        .concat();
        for message in messages {
            assert!(
                source.contains(&format!("\"{message}\"")),
                "no log line says {message:?}"
            );
        }
    }
}

/// No parameter can widen a grant to `*` by accident: each one that names
/// a resource refuses wildcards, which cfn-lint checks against a default.
#[test]
fn no_parameter_widens_a_grant_to_a_wildcard() {
    let original = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    let target_role =
        std::fs::read_to_string(format!("{ROOT}/deploy/target-account-role.yaml")).unwrap();
    let dir = std::env::temp_dir().join(format!("ecr-gc-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (template, parameter, wildcard) in [
        (&original, "InUseS3Object", "bucket/*"),
        (&original, "InUseS3Object", "*"),
        (&original, "InUseSsmParameter", "/ecr-gc/*"),
        (&original, "TargetRoleArns", "*"),
        (
            &original,
            "TargetRoleArns",
            "arn:aws:iam::111122223333:role/*",
        ),
        (&target_role, "InUseS3Object", "*/*"),
        (&target_role, "InUseSsmParameter", "*"),
    ] {
        let block = resource(template, parameter);
        let widened = block.replace("Default: \"\"", &format!("Default: \"{wildcard}\""));
        assert_ne!(block, widened, "{parameter} has an empty default");
        let path = dir.join(format!("{parameter}.yaml"));
        std::fs::write(&path, template.replace(&block, &widened)).unwrap();
        let out = Command::new("cfn-lint").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("E2015"),
            "{parameter} accepts {wildcard:?}: {text}"
        );
    }
}

/// The function's role, and the role in each target account, grant what
/// each enabled source needs, the S3 list included, and nothing for a
/// source switched off.
#[test]
fn the_target_role_grants_what_each_enabled_source_needs() {
    let role = std::fs::read_to_string(format!("{ROOT}/deploy/target-account-role.yaml")).unwrap();
    let function = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    for (file, text) in [("target role", &role), ("template", &function)] {
        let lines: Vec<&str> = text.lines().collect();
        for (sid, condition) in [
            ("ReadEcsWorkloads", "EcsInUse"),
            ("ListLambdaFunctions", "LambdaInUse"),
            ("ReadLambdaImageUris", "LambdaInUse"),
            ("ListEventBridgeRules", "EventsInUse"),
            ("ReadEventBridgeRuleTargets", "EventsInUse"),
            ("ListSchedules", "SchedulerInUse"),
            ("ReadSchedules", "SchedulerInUse"),
            ("ReadBatchWorkloads", "BatchInUse"),
            ("ListCodeBuildProjects", "CodeBuildInUse"),
            ("ReadCodeBuildProjects", "CodeBuildInUse"),
            ("ListStateMachines", "StepFunctionsInUse"),
            ("ReadStateMachines", "StepFunctionsInUse"),
            ("ListAppRunnerServices", "AppRunnerInUse"),
            ("ReadAppRunnerServices", "AppRunnerInUse"),
            ("ListSageMakerWorkloads", "SageMakerInUse"),
            ("ReadSageMakerWorkloads", "SageMakerInUse"),
            ("ListEksClusters", "EksInUse"),
            ("ReadEksClusters", "EksInUse"),
            ("ReadExternalInUseParameter", "SsmInUse"),
            ("ReadExternalInUseObject", "S3InUse"),
            ("ArchiveImagesInNamedRepositoriesOnly", "Archiving"),
        ] {
            let at = lines
                .iter()
                .position(|l| l.trim() == format!("- Sid: {sid}"))
                .unwrap_or_else(|| panic!("the {file} lacks {sid}"));
            assert_eq!(
                lines[at - 1].trim(),
                format!("- {condition}"),
                "{file}: {sid}"
            );
            assert_eq!(lines[at - 2].trim(), "- !If", "{file}: {sid}");
        }
    }
    assert!(role.contains("Resource: !Sub arn:${AWS::Partition}:s3:::${InUseS3Object}"));
}

/// Every image the Kubernetes manifests run is pinned by digest.
#[test]
fn deployed_images_are_pinned_by_digest() {
    let yaml =
        std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/in-use-cronjob.yaml")).unwrap();
    let images: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert!(!images.is_empty());
    for image in images {
        let digest = image.split_once("@sha256:").map(|(_, d)| d);
        assert!(
            digest.is_some_and(|d| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit())),
            "{image} is not pinned by digest"
        );
    }
}

/// The dashboard shows the function's own metrics under the names the
/// function writes them (`run/metrics.rs`), every one of them, and its
/// errors, its duration, the dead-letter queue and the alarms. No metric
/// filter publishes into the function's namespace, where it would be
/// counted twice under the same name.
#[test]
fn the_dashboard_names_the_metrics_the_function_writes() {
    use ecr_gc::run::metrics::{METRICS, NAMESPACE};
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    let dashboard = resource(&template, "Dashboard");
    let names_after = |marker: &str| -> Vec<String> {
        dashboard
            .match_indices(marker)
            .map(|(at, _)| {
                let rest = &dashboard[at + marker.len()..];
                rest[..rest.find(['"', '\\']).unwrap()].to_owned()
            })
            .collect()
    };
    let mut shown = names_after(&format!("[\"{NAMESPACE}\", \""));
    shown.extend(names_after("MetricName=\\\""));
    let written: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
    for name in &shown {
        assert!(
            written.contains(&name.as_str()),
            "the function writes no {name}"
        );
    }
    for name in &written {
        assert!(
            shown.iter().any(|s| s == name),
            "the dashboard lacks {name}"
        );
    }
    for shown in [
        "[\"AWS/Lambda\", \"Errors\", \"FunctionName\", \"${Function}\"",
        "[\"AWS/Lambda\", \"Duration\", \"FunctionName\", \"${Function}\"",
        "[\"AWS/SQS\", \"ApproximateNumberOfMessagesVisible\", \"QueueName\", \"${DeadLetterQueueName}\"]",
    ] {
        assert!(dashboard.contains(shown), "{shown}");
    }
    // Every alarm but the dead-letter queue's, which exists only with a
    // queue (its depth has its own widget).
    let alarms: Vec<&str> = template
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix("Alarm:"))
        .filter(|name| !name.starts_with(' ') && *name != "DeadLetterQueue")
        .collect();
    assert_eq!(alarms.len(), 5, "{alarms:?}");
    for alarm in alarms {
        assert!(
            dashboard.contains(&format!("${{{alarm}Alarm.Arn}}")),
            "{alarm}Alarm"
        );
    }
    assert!(!template.contains(&format!("MetricNamespace: {NAMESPACE}\n")));
}

/// README's table of template parameters has every parameter of the
/// template, in its order, and no other.
#[test]
fn the_readme_lists_every_template_parameter() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let parameters = parameters_of("template.yaml");
    let table: Vec<&str> = readme
        .split("| parameter | default | what it does |")
        .nth(1)
        .unwrap()
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    assert!(parameters.len() > 20, "{parameters:?}");
    assert_eq!(table, parameters);
}

/// The parameters a template declares, by name.
fn parameters_of(path: &str) -> Vec<String> {
    let template = std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap();
    template
        .split("\nParameters:\n")
        .nth(1)
        .and_then(|rest| rest.split("\nConditions:").next())
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .collect()
}

/// The README's walkthrough, from nothing to an organisation, names only
/// parameters the templates have, and its Targets document loads.
#[test]
fn the_walkthrough_names_what_the_templates_have() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let walkthrough = readme
        .split("### From nothing to an organisation")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let function = parameters_of("template.yaml");
    let role = parameters_of("deploy/target-account-role.yaml");
    let mut named = 0;
    for line in walkthrough.lines() {
        if let Some(rest) = line.trim_start_matches("#   ").strip_prefix("Parameter ") {
            let name = rest.split([' ', ':']).next().unwrap();
            assert!(
                function.iter().any(|p| p == name),
                "{name} is not in template.yaml"
            );
            named += 1;
            if name == "Targets" {
                let document = rest.split_once(": ").unwrap().1.trim();
                ecr_gc::aws::targets::Targets::parse(document)
                    .unwrap_or_else(|e| panic!("the walkthrough's Targets: {e}"));
            }
        }
        for part in line.split("ParameterKey=").skip(1) {
            let name = part.split(',').next().unwrap();
            assert!(
                role.iter().any(|p| p == name),
                "{name} is not in target-account-role.yaml"
            );
            named += 1;
        }
    }
    assert!(named >= 10, "{named}");
    // The role template names its role, which a StackSet must be allowed.
    let role_template =
        std::fs::read_to_string(format!("{ROOT}/deploy/target-account-role.yaml")).unwrap();
    assert!(role_template.contains("RoleName: !Ref RoleName"));
    assert!(walkthrough.contains("CAPABILITY_NAMED_IAM"));
}
