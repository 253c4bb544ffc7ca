//! ecr-gc's policy extensions end to end: keep rules, expiring by last
//! pull, regular expressions, semantic-version order and groups, in one
//! policy, through the CLI (a dry run, then applied) and through the
//! Lambda runtime loop, against the emulator. Each run deletes exactly
//! what the README's semantics say, and an image in use stays. Then
//! `plan`, `validate --native` and `explain` offline, on the examples.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::support::{
    Moto, RuntimeLoop, ago, create_repository, digests, ecr_gc, external_list_only, free_port,
    publish_in_use, push, seed, text,
};
use crate::support::{policy_file, run_json};

const REPOSITORY: &str = "ext";

/// Every extension at once, over the account's external in-use list only.
fn policy() -> Value {
    let sources = external_list_only();
    json!({
        "rules": [
            {"rulePriority": 1, "description": "never touch releases",
             "selection": {"tagStatus": "tagged", "tagRegexList": ["release-[0-9]{4}"]},
             "action": {"type": "keep"}},
            {"rulePriority": 2, "description": "keep what was pulled this month",
             "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30},
             "action": {"type": "keep"}},
            {"rulePriority": 3, "description": "the highest version of each major",
             "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "orderBy": "semver",
                           "groupBy": {"semver": "major"}, "countType": "imageCountMoreThan", "countNumber": 1},
             "action": {"type": "expire"}},
            {"rulePriority": 4, "description": "the newest build of each branch",
             "selection": {"tagStatus": "tagged", "tagRegexList": ["[a-z]+-[0-9a-f]{7}"],
                           "groupBy": {"tagRegex": "(?P<group>[a-z]+)-[0-9a-f]{7}"},
                           "countType": "imageCountMoreThan", "countNumber": 1},
             "action": {"type": "expire"}},
            {"rulePriority": 5, "description": "whatever nobody pulled for 60 days",
             "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 60},
             "action": {"type": "expire"}}
        ],
        "settings": {"gracePeriodMinutes": 0, "inUse": sources}
    })
}

/// The repository: each image by name, with its tag (none for `orphan`),
/// when it was pushed and last pulled (days ago), and what the policy does
/// to it.
const IMAGES: [(&str, Option<&str>, f64, Option<f64>); 12] = [
    // Rule 1 keeps it, however old and unpulled.
    ("release", Some("release-2024"), 400.0, None),
    // Rule 2 keeps it, though rule 3 would expire it (v1.2.0 is higher).
    ("hot", Some("v1.0.0"), 300.0, Some(5.0)),
    // Rule 3: the highest of major 1, pushed long ago: kept.
    ("v1.2.0", Some("v1.2.0"), 200.0, None),
    // Rule 3: a hotfix pushed after v1.2.0, but lower: expired (and
    // pushed long enough ago that rule 2, which ages a never-pulled image
    // from its push, does not keep it).
    ("v1.1.1", Some("v1.1.1"), 40.0, None),
    // Rule 3: the release outranks its release candidate, pushed later.
    ("v2.0.0", Some("v2.0.0"), 160.0, None),
    ("v2.0.0-rc.1", Some("v2.0.0-rc.1"), 150.0, None),
    // Rule 4: the newest main build stays, the older goes; dev stays.
    ("main-old", Some("main-aaaaaaa"), 50.0, None),
    ("main-new", Some("main-bbbbbbb"), 40.0, None),
    ("dev", Some("dev-ccccccc"), 100.0, None),
    // Rule 5: by last pull (or push, never pulled).
    ("cold", Some("cold"), 300.0, Some(90.0)),
    ("used", Some("used"), 300.0, Some(100.0)),
    ("orphan", None, 300.0, None),
];

const DELETED: [&str; 5] = ["v1.1.1", "v2.0.0-rc.1", "main-old", "cold", "orphan"];

/// Pushes and seeds the repository, and publishes `used` as in use.
/// Returns each name's digest.
async fn seed_repository(moto: &Moto) -> BTreeMap<&'static str, String> {
    let ecr = moto.ecr();
    create_repository(&ecr, REPOSITORY).await;
    let mut by_name = BTreeMap::new();
    for (name, tag, pushed, pulled) in IMAGES {
        let digest = push(&ecr, REPOSITORY, name, tag).await;
        let mut fields = json!({"imagePushedAt": ago(pushed)});
        if let Some(pulled) = pulled {
            fields["lastRecordedPullTime"] = json!(ago(pulled));
        }
        seed(&moto.endpoint, REPOSITORY, &digest, fields);
        by_name.insert(name, digest);
    }
    let used = format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPOSITORY}@{}",
        by_name["used"]
    );
    publish_in_use(&moto.endpoint, &[used]).await;
    by_name
}

/// The names of the digests in `list`.
fn names<'d>(
    digests: impl IntoIterator<Item = &'d str>,
    by_name: &BTreeMap<&'static str, String>,
) -> BTreeSet<&'static str> {
    digests
        .into_iter()
        .map(|digest| {
            *by_name
                .iter()
                .find(|(_, d)| d.as_str() == digest)
                .unwrap_or_else(|| panic!("an unknown digest {digest}"))
                .0
        })
        .collect()
}

fn listed(list: &Value) -> impl Iterator<Item = &str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|image| image["imageDigest"].as_str().unwrap())
}

/// `ecr-gc run` on the repository: the exit status and the target report.
fn run(endpoint: &str, apply: bool) -> (Option<i32>, Value) {
    let (code, report) = run_json(endpoint, &policy_file(&policy()), REPOSITORY, apply);
    (code, report["targets"][0].clone())
}

#[tokio::test]
async fn the_cli_plans_and_deletes_what_the_extensions_say() {
    let moto = Moto::start();
    let by_name = seed_repository(&moto).await;
    let expected: BTreeSet<&str> = DELETED.into_iter().collect();

    let (status, target) = run(&moto.endpoint, false);
    assert_eq!(status, Some(0), "{target:#}");
    let repository = &target["repositories"][0];
    assert_eq!(names(listed(&repository["planned"]), &by_name), expected);
    assert_eq!(
        names(listed(&repository["protected"]), &by_name),
        BTreeSet::from(["used"])
    );
    // The reasons name the group and the version that decided.
    let reason_of = |name: &str| {
        repository["planned"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["imageDigest"] == by_name[name].as_str())
            .map(|i| i["reason"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let hotfix = reason_of("v1.1.1");
    assert!(
        hotfix.contains("number 2 of 3 in major version 1 (version v1.1.1)"),
        "{hotfix}"
    );
    assert!(reason_of("main-old").contains("in group \"main\""));
    assert!(reason_of("orphan").contains("never pulled; it was pushed 300.0 days ago"));
    assert_eq!(digests(&moto.ecr(), REPOSITORY).await.len(), IMAGES.len());

    let (status, target) = run(&moto.endpoint, true);
    assert_eq!(status, Some(0), "{target:#}");
    assert_eq!(
        names(listed(&target["repositories"][0]["deleted"]), &by_name),
        expected
    );
    let remaining = digests(&moto.ecr(), REPOSITORY).await;
    let kept: BTreeSet<&str> = IMAGES
        .iter()
        .map(|(name, ..)| *name)
        .filter(|name| !expected.contains(name))
        .collect();
    assert_eq!(names(remaining.iter().map(String::as_str), &by_name), kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_deletes_what_the_extensions_say() {
    let moto = Moto::start();
    let by_name = seed_repository(&moto).await;
    let mut env = moto.env();
    env.push(("ECR_GC_POLICY", policy().to_string()));
    env.push(("ECR_GC_DRY_RUN", "false".into()));
    let function = RuntimeLoop::start(&env);
    let response = function
        .invoke(&json!({"repositories": [REPOSITORY]}))
        .unwrap();
    assert_eq!(
        response["summary"]["imagesDeleted"],
        json!(DELETED.len()),
        "{response:#}"
    );
    let lines = function.lines();
    let deleted = lines
        .iter()
        .filter(|l| l["message"] == "image deleted")
        .map(|l| l["imageDigest"].as_str().unwrap());
    assert_eq!(
        names(deleted, &by_name),
        DELETED.into_iter().collect::<BTreeSet<_>>()
    );
    let remaining = digests(&moto.ecr(), REPOSITORY).await;
    assert_eq!(remaining.len(), IMAGES.len() - DELETED.len());
}

/// `ecr-gc COMMAND` offline, on the example listing as of its date, with
/// `policy` and `more` arguments.
fn offline(command: &str, policy: &str, more: &[&str]) -> std::process::Output {
    let args = [
        command,
        "--policy",
        policy,
        "--images",
        "examples/versioned-images.json",
        "--now",
        "2027-01-01T00:00:00Z",
    ];
    ecr_gc(&[&args[..], more].concat(), &[])
}

/// The example listing's tags that `plan` deletes, as of its date.
#[test]
fn plan_offline_applies_the_extensions() {
    let out = offline(
        "plan",
        "examples/extensions-policy.json",
        &["--output", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tags: BTreeSet<&str> = plan["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["imageTags"][0].as_str().unwrap_or("<untagged>"))
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from([
            "v1.1.1",
            "v2.0.0-rc.1",
            "main-aaaaaaa",
            "cold",
            "<untagged>"
        ])
    );
}

/// `validate`: exit 0 for a policy that loads, 1 for one that does not or
/// (with `--native`) that ECR would refuse, 2 for a file it cannot read;
/// every line it prints, checked by the parts it must hold.
#[test]
fn validate_says_what_loads_and_what_ecr_would_accept() {
    let bad_regex = std::env::temp_dir().join(format!("ecr-gc-bad-{}.json", free_port()));
    std::fs::write(
        &bad_regex,
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagRegexList":["("],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    let bad = bad_regex.to_str().unwrap();
    let cases: [(&[&str], i32, &[&str]); 6] = [
        (
            &["--policy", "examples/policy.json"],
            0,
            &["valid: 3 rules, 0 using ecr-gc's extensions"],
        ),
        (
            &["--policy", "examples/policy.json", "--native"],
            0,
            &["ECR would accept these rules", "without `settings`"],
        ),
        (
            &["--policy", "examples/extensions-policy.json"],
            0,
            &["valid: 5 rules, 5 using", "ecr-gc only: action type `keep`"],
        ),
        (
            &["--policy", "examples/extensions-policy.json", "--native"],
            1,
            &[
                "ECR would refuse the rules marked `no`",
                "countType `sinceImagePulled` with action `expire`",
                "`groupBy`",
                "`tagRegexList`",
            ],
        ),
        (
            &["--policy", bad],
            1,
            &[
                "invalid: rules[0] (rulePriority 1): selection.tagRegexList",
                "not a valid regular expression",
            ],
        ),
        (&["--policy", "examples/missing.json"], 2, &[]),
    ];
    for (args, code, parts) in cases {
        let out = ecr_gc(&[&["validate"], args].concat(), &[]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        for part in parts {
            assert!(stdout.contains(part), "{args:?}: {part:?} not in\n{stdout}");
        }
    }
    let json = ecr_gc(
        &[
            "validate",
            "--policy",
            "examples/extensions-policy.json",
            "--output",
            "json",
        ],
        &[],
    );
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["native"], json!(false));
    assert_eq!(doc["rules"][4]["extensions"].as_array().unwrap().len(), 1);
}

/// `explain` names the deciding rule, what it counted, and what each rule
/// says on its own; a name that matches nothing, or several digests, is
/// refused with exit 2.
#[test]
fn explain_says_which_rule_decides_and_why() {
    let explain = |image: &str, output: &str| {
        offline(
            "explain",
            "examples/extensions-policy.json",
            &["--output", output, image],
        )
    };
    let out = explain("v1.1.1", "json");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["action"], json!("delete"));
    assert_eq!(doc["rulePriority"], json!(3));
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .contains("number 2 of 3 in major version 1 (version v1.1.1), beyond the count")
    );
    let says: Vec<(u64, bool, bool)> = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rulePriority"].as_u64().unwrap(),
                r["selects"].as_bool().unwrap(),
                r["decides"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        says,
        [
            (1, false, false),
            (2, true, false),
            (3, true, true),
            (4, false, false),
            (5, true, false)
        ]
    );
    let table = text(&explain("release-2024", "table").stdout);
    assert!(
        table.contains("decision    keep, decided by rule 1"),
        "{table}"
    );
    assert!(table.contains("workloads are not read"), "{table}");
    // By the start of a digest, with or without the algorithm.
    let digest = doc["imageDigest"].as_str().unwrap();
    for prefix in [&digest[..14], &digest[7..14]] {
        let by_prefix: Value = serde_json::from_slice(&explain(prefix, "json").stdout).unwrap();
        assert_eq!(by_prefix["imageDigest"], json!(digest));
    }
    let missing = explain("v9.9.9", "table");
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no image has the tag or digest \"v9.9.9\""));
    let ambiguous = explain("sha256:", "table");
    assert_eq!(ambiguous.status.code(), Some(2));
    assert!(text(&ambiguous.stderr).contains("give more of it"));
}

/// `plan --repository` plans under the override that selects the
/// repository; without it, under the document's rules.
#[test]
fn plan_takes_the_rules_of_the_repositorys_override() {
    let policy = json!({
        "rules": [{"rulePriority": 1,
                   "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
                   "action": {"type": "expire"}}],
        "settings": {"gracePeriodMinutes": 0, "overrides": [{"repositories": ["web"], "rules": [
            {"rulePriority": 1,
             "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 4},
             "action": {"type": "expire"}}]}]}
    });
    let path = std::env::temp_dir().join(format!("ecr-gc-override-{}.json", free_port()));
    std::fs::write(&path, policy.to_string()).unwrap();
    let deletions = |repository: Option<&str>| {
        let mut args = vec!["--output", "json"];
        if let Some(name) = repository {
            args.extend(["--repository", name]);
        }
        let out = offline("plan", path.to_str().unwrap(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
        plan["summary"]["delete"].as_u64().unwrap()
    };
    assert_eq!(deletions(None), 2);
    assert_eq!(deletions(Some("web")), 8);
    assert_eq!(deletions(Some("api")), 2);
}
