//! The binary as users run it: the CLI offline and live, and the Lambda
//! runtime loop under `cargo lambda watch`, invoked with every file in
//! `events/`.

use std::path::Path;

use serde_json::Value;

use crate::support::{Moto, ROOT, RuntimeLoop, create_repository, digests, ecr_gc, push, text};

/// `plan --output json` over the sample listing: (imageTags, rulePriority)
/// of each deletion.
fn planned(images: &str) -> Vec<(Vec<String>, u64)> {
    let out = ecr_gc(
        &[
            "plan",
            "--policy",
            "examples/policy.json",
            "--images",
            images,
            "--now",
            "2026-11-27T12:00:00Z",
            "--output",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["images"], 10);
    json["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert!(d["imageDigest"].as_str().unwrap().starts_with("sha256:"));
            assert!(!d["reason"].as_str().unwrap().is_empty());
            let tags = d["imageTags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            (tags, d["rulePriority"].as_u64().unwrap())
        })
        .collect()
}

/// `plan` on a listing with archived, restored and restoring images, under
/// the archive-then-expire policy: the `transition` array beside `delete`,
/// and the table's `archive` rows.
#[test]
fn plan_archives_and_deletes_offline_from_an_archive_listing() {
    let args = [
        "plan",
        "--policy",
        "examples/archive-policy.json",
        "--images",
        "examples/archived-images.json",
        "--now",
        "2026-11-27T12:00:00Z",
    ];
    let out = ecr_gc(&[&args[..], &["--output", "json"]].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tags = |list: &str| -> Vec<String> {
        plan[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                i["imageTags"]
                    .as_array()
                    .unwrap()
                    .first()
                    .map_or("<untagged>".into(), |t| t.as_str().unwrap().to_owned())
            })
            .collect()
    };
    // v2.9.0 was last pulled 73 days ago, the untagged one never (pushed
    // 87 days ago); v1.0.0 was restored two days ago; v0.9.0 has been
    // archived for more than a year, v0.9.1 for two months; v0.8.0 is
    // being restored.
    assert_eq!(tags("transition"), ["<untagged>", "v2.9.0"]);
    assert_eq!(tags("delete"), ["v0.9.0"]);
    // Newest first, a restore counting as a push.
    assert_eq!(tags("keep"), ["v1.0.0", "v3.0.0", "v0.9.1", "v0.8.0"]);
    assert_eq!(plan["summary"]["transition"], serde_json::json!(2));
    assert_eq!(
        plan["summary"]["bytesToArchive"],
        serde_json::json!(50111111 + 50987654)
    );
    assert_eq!(
        plan["delete"][0]["imageStatus"],
        serde_json::json!("ARCHIVED")
    );
    let table = ecr_gc(&args, &[]);
    let stdout = text(&table.stdout);
    let actions: Vec<&str> = stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "keep", "keep", "archive", "archive", "keep", "delete", "keep"
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("1 of 7 images would be deleted and 2 archived"),
        "{stdout}"
    );
}

#[test]
fn plan_works_offline_on_both_cli_versions_listings() {
    let expected: Vec<(Vec<String>, u64)> = vec![
        (vec![], 2),
        (vec!["v1.1.0".into()], 1),
        (vec!["feature-login".into()], 3),
        (vec!["v1.0.0".into()], 1),
    ];
    assert_eq!(planned("examples/images.json"), expected);
    assert_eq!(planned("tests/fixtures/images-cli-v1.json"), expected);

    let table = ecr_gc(
        &[
            "plan",
            "--policy",
            "examples/policy.json",
            "--images",
            "examples/images.json",
            "--now",
            "2026-11-27T12:00:00Z",
        ],
        &[],
    );
    assert!(table.status.success());
    let stdout = text(&table.stdout);
    assert!(stdout.starts_with("ACTION  DIGEST"), "{stdout}");
    // One row per image, its action, tags and rule as the JSON plan says,
    // and the count at the end.
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 10, "{stdout}");
    let deletes: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r[0] == "delete")
        .map(|r| (r[2], r[4]))
        .collect();
    assert_eq!(
        deletes,
        [
            ("<untagged>", "2"),
            ("v1.1.0", "1"),
            ("feature-login", "3"),
            ("v1.0.0", "1")
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r[1].starts_with("sha256:") && r[1].len() == 19)
    );
    assert!(
        stdout.contains("\n4 of 10 images would be deleted"),
        "{stdout}"
    );
}

/// The whole output of `aws ecr get-lifecycle-policy` with ecr-gc's
/// settings beside its text: the settings are used, not dropped. With a
/// grace period of a year, nothing the sample listing holds may go.
#[test]
fn a_wrapped_policy_keeps_the_settings_beside_it() {
    let dir = std::env::temp_dir().join(format!("ecr-gc-wrapped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The rules alone, as ECR stores them.
    let mut rules: Value =
        serde_json::from_str(include_str!("../../examples/policy.json")).unwrap();
    rules.as_object_mut().unwrap().remove("settings");
    let policy_text = serde_json::to_string(&rules.to_string()).unwrap();
    let plan = |settings: &str| {
        let path = dir.join("wrapped.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"registryId": "123456789012", "repositoryName": "web", "lifecyclePolicyText": {policy_text}{settings}}}"#
            ),
        )
        .unwrap();
        let out = ecr_gc(
            &[
                "plan",
                "--policy",
                path.to_str().unwrap(),
                "--images",
                "examples/images.json",
                "--now",
                "2026-11-27T12:00:00Z",
                "--output",
                "json",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        json["summary"]["delete"].as_u64().unwrap()
    };
    assert_eq!(plan(""), 4);
    assert_eq!(plan(r#", "settings": {"gracePeriodMinutes": 525600}"#), 0);
}

#[test]
fn invalid_input_exits_2_with_the_message_on_stderr() {
    let dir = std::env::temp_dir().join(format!("ecr-gc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#).unwrap();
    let policy_text = serde_json::to_string(include_str!("../../examples/policy.json")).unwrap();
    let stranger = dir.join("stranger.json");
    std::fs::write(
        &stranger,
        format!(
            r#"{{"lifecyclePolicyText": {policy_text}, "setings": {{"gracePeriodMinutes": 0}}}}"#
        ),
    )
    .unwrap();
    let targets = dir.join("targets.json");
    std::fs::write(
        &targets,
        r#"{"accounts": [{"accountId": "444455556666", "roleArn": "arn:aws:iam::111122223333:role/ecr-gc"}]}"#,
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "run",
                "--policy",
                "examples/policy.json",
                "--targets",
                targets.to_str().unwrap(),
            ],
            "accounts[0].roleArn: the role belongs to account 111122223333, not to 444455556666",
        ),
        (
            vec![
                "run",
                "--policy",
                "examples/policy.json",
                "--targets",
                targets.to_str().unwrap(),
                "--registry-id",
                "444455556666",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "plan",
                "--policy",
                bad.to_str().unwrap(),
                "--images",
                "examples/images.json",
            ],
            "rules[0] (rulePriority 1): selection.tagStatus",
        ),
        (
            vec![
                "plan",
                "--policy",
                "examples/policy.json",
                "--images",
                "nope.json",
            ],
            "cannot read images file nope.json",
        ),
        (
            vec![
                "plan",
                "--policy",
                "examples/policy.json",
                "--images",
                "examples/images.json",
                "--now",
                "soon",
            ],
            "--now",
        ),
        (
            vec![
                "plan",
                "--policy",
                "examples/policy.json",
                "--images",
                "examples/policy.json",
            ],
            "imageDetails",
        ),
        (
            vec!["run", "--policy", bad.to_str().unwrap()],
            "invalid policy",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (
            vec![
                "run",
                "--policy",
                "examples/policy.json",
                "--registry-id",
                "12345",
            ],
            "--registry-id: registry id `12345` is not an AWS account id",
        ),
        (
            vec![
                "run",
                "--policy",
                "examples/policy.json",
                "--repository",
                "Bad Name",
            ],
            "--repository: repository name `Bad Name` does not match",
        ),
        // Naming a repository never widens the settings.
        (
            vec![
                "run",
                "--policy",
                "examples/demo-policy.json",
                "--repository",
                "demo/keep-base",
            ],
            "--repository: repository `demo/keep-base` is excluded by settings.repositories.exclude `demo/keep-*`",
        ),
        // A field beside a wrapped policy's text is not silently dropped.
        (
            vec![
                "plan",
                "--policy",
                stranger.to_str().unwrap(),
                "--images",
                "examples/images.json",
            ],
            "unknown field `setings` beside `lifecyclePolicyText`",
        ),
    ];
    for (args, message) in cases {
        let out = ecr_gc(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(message),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

async fn seed(moto: &Moto) -> aws_sdk_ecr::Client {
    let client = moto.ecr();
    for repository in ["demo/web", "demo/worker"] {
        create_repository(&client, repository).await;
        for i in 0..6 {
            push(
                &client,
                repository,
                &format!("{repository}-{i}"),
                Some(&format!("v{i}")),
            )
            .await;
        }
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_is_a_dry_run_until_apply_and_reaches_ecr_through_aws_endpoint_url() {
    let moto = Moto::start();
    let client = seed(&moto).await;
    let env = moto.env();
    let args = [
        "run",
        "--policy",
        "examples/demo-policy.json",
        "--repository",
        "demo/web",
        "--output",
        "json",
    ];
    let dry = ecr_gc(&args, &env);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let report: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["summary"]["imagesPlanned"], 3);
    assert_eq!(digests(&client, "demo/web").await.len(), 6);
    // The log lines go to stderr, one JSON object each; metrics only when
    // asked.
    let lines = |stderr: &[u8]| -> Vec<Value> {
        text(stderr)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    };
    let metrics = |lines: &[Value]| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l.get("_aws").is_some())
            .cloned()
            .collect()
    };
    assert!(metrics(&lines(&dry.stderr)).is_empty());

    let mut apply = args.to_vec();
    apply.extend(["--apply", "--emf"]);
    let applied = ecr_gc(&apply, &env);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let report: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["summary"]["imagesDeleted"], 3);
    let emf = metrics(&lines(&applied.stderr));
    assert_eq!(emf.len(), 1, "a line for the one target");
    assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "ECRGC");
    assert_eq!(emf[0]["ImagesDeleted"], 3);
    assert_eq!(
        emf[0]["BytesReclaimed"],
        report["summary"]["bytesReclaimed"]
    );
    assert_eq!(digests(&client, "demo/web").await.len(), 3);
    assert_eq!(digests(&client, "demo/worker").await.len(), 6);

    // A repository that cannot be collected makes the exit status non-zero.
    let missing = ecr_gc(
        &[
            "run",
            "--policy",
            "examples/demo-policy.json",
            "--repository",
            "demo/gone",
            "--apply",
        ],
        &env,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stdout).contains("RepositoryNotFoundException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_runtime_loop_serves_every_sample_event() {
    let moto = Moto::start();
    let client = seed(&moto).await;
    let mut env = moto.env();
    env.push(("ECR_GC_POLICY_FILE", "examples/demo-policy.json".into()));
    env.push(("ECR_GC_DRY_RUN", "false".into()));
    let function = RuntimeLoop::start(&env);

    let mut events: Vec<_> = std::fs::read_dir(Path::new(ROOT).join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    events.sort();
    // Before each event, one release newer than all the others goes into
    // both repositories, so that every event has something to delete (or,
    // as a dry run, to plan): the demo policy keeps the 3 newest releases.
    // Per event: (deleted in web, in worker, planned as a dry run in web,
    // in worker), written out from the sizes before it.
    let expected: [(&str, [usize; 4]); 7] = [
        ("ecr-delete.json", [0, 0, 0, 0]),   // 7, 7: ignored
        ("ecr-push.json", [5, 0, 0, 0]),     // 8, 8: web only
        ("manual.json", [0, 0, 1, 6]),       // 4, 9: "dryRun": true
        ("schedule.json", [2, 7, 0, 0]),     // 5, 10
        ("scheduler.json", [1, 1, 0, 0]),    // 4, 4
        ("sqs-ecr-push.json", [1, 0, 0, 0]), // 4, 4: two pushes to web, one collection
        ("sqs.json", [0, 0, 1, 2]),          // 4, 5: the messages say "dryRun": true
    ];
    assert_eq!(
        events
            .iter()
            .map(|e| e.file_name().unwrap().to_str().unwrap())
            .collect::<Vec<_>>(),
        expected.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "every sample event has an expectation"
    );
    for (k, (event, (name, counts))) in events.iter().zip(expected).enumerate() {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        for repository in ["demo/web", "demo/worker"] {
            let tag = format!("v{}", 6 + k);
            push(
                &client,
                repository,
                &format!("{repository}-{tag}"),
                Some(&tag),
            )
            .await;
        }
        let before = function.lines().len();
        let response = function
            .invoke_file(event)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let lines = function.lines();
        let count = |message: &str, repository: &str| {
            lines[before..]
                .iter()
                .filter(|l| l["message"] == message && l["repositoryName"] == repository)
                .count()
        };
        assert_eq!(
            [
                count("image deleted", "demo/web"),
                count("image deleted", "demo/worker"),
                count("image would be deleted (dry run)", "demo/web"),
                count("image would be deleted (dry run)", "demo/worker"),
            ],
            counts,
            "{name}"
        );
        match name {
            "ecr-delete.json" => assert!(response["ignored"].as_str().unwrap().contains("DELETE")),
            "manual.json" => {
                assert_eq!(response["trigger"], "manual");
                assert_eq!(response["dryRun"], true, "the event's dryRun wins");
            }
            "ecr-push.json" => assert_eq!(response["trigger"], "ecr-push"),
            "schedule.json" | "scheduler.json" => assert_eq!(response["dryRun"], false),
            // Every message's repository exists and finishes cleanly: SQS
            // deletes the whole batch.
            _ => assert_eq!(
                response,
                serde_json::json!({"batchItemFailures": []}),
                "{name}"
            ),
        }
    }
    assert_eq!(digests(&client, "demo/web").await.len(), 4);
    assert_eq!(digests(&client, "demo/worker").await.len(), 5);

    // Anything else fails the invocation with a message naming what came in.
    let junk = serde_json::json!({"source":"aws.s3","detail-type":"Object Created","detail":{}});
    let all = function.invoke(&junk).unwrap_err();
    assert!(
        all.contains("UnrecognizedEvent") && all.contains("aws.s3"),
        "{all}"
    );

    let mut deleted = 0;
    for value in function.lines() {
        if value["message"] == "image deleted" {
            deleted += 1;
            for field in ["repositoryName", "imageDigest", "imageTags", "rulePriority"] {
                assert!(!value[field].is_null(), "{field} missing in {value}");
            }
        }
    }
    assert_eq!(deleted, 5 + 2 + 7 + 1 + 1 + 1);
}

/// Completions for three shells and the man page come from the CLI's own
/// definition: each names every subcommand, and bash's parses.
#[test]
fn completions_and_the_man_page_name_every_command() {
    let subcommands = ["plan", "run", "validate", "explain", "completions", "man"];
    let check = |args: &[&str], starts: &str| {
        let out = ecr_gc(args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(starts), "{args:?}: {starts:?}");
        for name in subcommands {
            assert!(script.contains(name), "{args:?} lacks {name}");
        }
        script
    };
    let bash = check(&["completions", "bash"], "complete -F _ecr__gc");
    let parsed = std::process::Command::new("bash")
        .args(["-n", "-c", &bash])
        .status()
        .unwrap();
    assert!(parsed.success(), "bash cannot parse its completions");
    check(&["completions", "zsh"], "#compdef ecr-gc");
    check(&["completions", "fish"], "complete -c ecr-gc");
    check(&["man"], ".TH ecr-gc 1");
    let refused = ecr_gc(&["completions", "tcsh"], &[]);
    assert_eq!(refused.status.code(), Some(2));
}
