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
        &["template.yaml", "deploy/target-account-role.yaml"],
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
    let at = template
        .find("Action: ecr:BatchDeleteImage")
        .expect("the function may delete images");
    let resource: Vec<&str> = template[at..]
        .lines()
        .skip(1)
        .take(2)
        .map(str::trim)
        .collect();
    assert_eq!(resource[0], "Resource: !Sub", "{resource:?}");
    assert!(
        resource[1]
            .starts_with("- arn:${AWS::Partition}:ecr:${Region}:${AWS::AccountId}:repository/"),
        "{resource:?}"
    );
    assert_eq!(template.matches("ecr:BatchDeleteImage").count(), 1);
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
        assert!(
            ["- Sid: ReadEcsWorkloads", "- Sid: ListLambdaFunctions"].contains(&sid),
            "{sid} is on *"
        );
        let condition = lines[..i]
            .iter()
            .rev()
            .find(|l| l.contains("- !If"))
            .map(|_| ());
        assert!(
            condition.is_some(),
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
        "deadLetterTargetArn: !GetAtt FanOutDeadLetterQueue.Arn",
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
        ecr_gc::fanout::MAX_MESSAGE_AGE.num_seconds(),
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
