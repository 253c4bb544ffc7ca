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
