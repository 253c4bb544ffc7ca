//! The extensions, as the parser reads them: what each accepts, what it
//! refuses and says, and that each rule records the extensions it uses.

use super::rank::{GroupBy, OrderBy};
use super::tag_regex::MAX_REGEXES;
use super::*;

/// A document of one rule, with this selection and action.
fn one(selection: &str, action: &str) -> String {
    format!(
        r#"{{"rules":[{{"rulePriority":1,"selection":{selection},"action":{{"type":"{action}"}}}}]}}"#
    )
}

/// Parses `document`: accepted with exactly these `extensions` when `Ok`,
/// refused with a message holding every part when `Err`.
#[track_caller]
fn check(document: &str, expected: Result<&[Extension], &[&str]>) {
    match (Policy::parse(document), expected) {
        (Ok(policy), Ok(extensions)) => {
            let used: Vec<Extension> = policy
                .rules
                .iter()
                .flat_map(|r| r.extensions.clone())
                .collect();
            assert_eq!(used, extensions, "{document}");
            assert_eq!(policy.is_native(), extensions.is_empty());
        }
        (Ok(policy), Err(parts)) => {
            panic!("accepted {document}\n as {policy:#?}\n expected {parts:?}")
        }
        (Err(error), Ok(_)) => panic!("refused {document}\n with: {error}"),
        (Err(error), Err(parts)) => {
            let message = error.to_string();
            for part in parts {
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
        }
    }
}

const COUNT3: &str = r#""countType":"imageCountMoreThan","countNumber":3"#;

#[test]
fn what_each_extension_accepts() {
    use Extension::*;
    let tagged_regex = |rest: &str| {
        format!(r#"{{"tagStatus":"tagged","tagRegexList":["main-[0-9a-f]{{7}}"]{rest}}}"#)
    };
    let cases: Vec<(String, &[Extension])> = vec![
        // Native rules use none.
        (
            one(&format!(r#"{{"tagStatus":"any",{COUNT3}}}"#), "expire"),
            &[],
        ),
        (
            one(
                r#"{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30}"#,
                "expire",
            ),
            &[ExpireByPull],
        ),
        (
            one(
                r#"{"tagStatus":"tagged","tagPrefixList":["release-"]}"#,
                "keep",
            ),
            &[Keep],
        ),
        (
            one(r#"{"tagStatus":"any","storageClass":"archive"}"#, "keep"),
            &[Keep],
        ),
        (
            one(&format!(r#"{{"tagStatus":"untagged",{COUNT3}}}"#), "keep"),
            &[Keep],
        ),
        (
            one(
                r#"{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":7}"#,
                "keep",
            ),
            &[Keep],
        ),
        (
            one(
                r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":10}"#,
                "keep",
            ),
            &[Keep],
        ),
        (
            one(&tagged_regex(&format!(",{COUNT3}")), "expire"),
            &[TagRegexList],
        ),
        (
            one(
                &tagged_regex(&format!(r#","orderBy":"semver",{COUNT3}"#)),
                "expire",
            ),
            &[TagRegexList, OrderBy],
        ),
        (
            one(
                &format!(r#"{{"tagStatus":"any","orderBy":"pushedAt",{COUNT3}}}"#),
                "expire",
            ),
            &[OrderBy],
        ),
        (
            one(
                &format!(r#"{{"tagStatus":"any","groupBy":{{"semver":"minor"}},{COUNT3}}}"#),
                "keep",
            ),
            &[Keep, GroupBy],
        ),
        (
            one(
                &format!(
                    r#"{{"tagStatus":"tagged","tagPrefixList":["b-"],"groupBy":{{"tagRegex":"b-(?P<group>[a-z]+)-.*"}},"orderBy":"semver",{COUNT3}}}"#
                ),
                "expire",
            ),
            &[OrderBy, GroupBy],
        ),
    ];
    for (document, extensions) in cases {
        check(&document, Ok(extensions));
    }
}

#[test]
fn what_each_extension_refuses() {
    let at = "rules[0] (rulePriority 1)";
    let regex = |list: &str| format!(r#"{{"tagStatus":"tagged","tagRegexList":{list},{COUNT3}}}"#);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (one(&regex(r#"["("]"#), "expire"), vec![at, "selection.tagRegexList", "\"(\"", "not a valid regular expression"]),
        (one(&regex(r#"["a", "b{2,1}"]"#), "expire"), vec!["selection.tagRegexList", "b{2,1}"]),
        (one(&regex(&format!(r#"["{}"]"#, "a".repeat(257))), "expire"), vec!["at most 256"]),
        (one(&regex("[]"), "expire"), vec!["tagRegexList", "must not be empty"]),
        (one(&regex(r#"[""]"#), "expire"), vec!["tagRegexList", "empty string"]),
        (
            one(&format!(r#"{{"tagStatus":"tagged","tagRegexList":["a"],"tagPrefixList":["a"],{COUNT3}}}"#), "expire"),
            vec!["selection.tagRegexList", "together with `tagPrefixList`"],
        ),
        (
            one(&format!(r#"{{"tagStatus":"any","tagRegexList":["a"],{COUNT3}}}"#), "expire"),
            vec!["selection.tagRegexList", "only allowed with tagStatus `tagged`"],
        ),
        // keep
        (one(r#"{"tagStatus":"any"}"#, "expire"), vec!["selection.countType", "is required"]),
        (one(r#"{"tagStatus":"any","countNumber":3}"#, "keep"), vec!["selection.countNumber", "needs a `countType`"]),
        (one(r#"{"tagStatus":"any","countUnit":"days"}"#, "keep"), vec!["selection.countUnit", "needs a `countType`"]),
        (one(r#"{"tagStatus":"any","orderBy":"semver"}"#, "keep"), vec!["selection.orderBy", "only allowed with countType `imageCountMoreThan`"]),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any"},"action":{"type":"keep","targetStorageClass":"archive"}}]}"#.into(),
            vec!["action.targetStorageClass", "only allowed with action type `transition`"],
        ),
        (
            one(r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImagePushed","countUnit":"days","countNumber":3}"#, "keep"),
            vec!["selection.countType", "sinceImageTransitioned"],
        ),
        (
            one(r#"{"tagStatus":"any","countType":"sinceImageTransitioned","countUnit":"days","countNumber":3}"#, "keep"),
            vec!["selection.storageClass", "requires storageClass `archive`"],
        ),
        // orderBy and groupBy
        (
            one(r#"{"tagStatus":"any","orderBy":"semver","countType":"sinceImagePushed","countUnit":"days","countNumber":3}"#, "expire"),
            vec!["selection.orderBy", "only allowed with countType `imageCountMoreThan`"],
        ),
        (one(&format!(r#"{{"tagStatus":"any","orderBy":"version",{COUNT3}}}"#), "expire"), vec!["selection.orderBy", "`version`", "`pushedAt` or `semver`"]),
        (one(&format!(r#"{{"tagStatus":"untagged","orderBy":"semver",{COUNT3}}}"#), "expire"), vec!["selection.orderBy", "untagged"]),
        (one(&format!(r#"{{"tagStatus":"untagged","groupBy":{{"semver":"major"}},{COUNT3}}}"#), "expire"), vec!["selection.groupBy", "untagged"]),
        (one(&format!(r#"{{"tagStatus":"any","groupBy":{{"semver":"patch"}},{COUNT3}}}"#), "expire"), vec!["selection.groupBy.semver", "`patch`", "`major` or `minor`"]),
        (one(&format!(r#"{{"tagStatus":"any","groupBy":{{}},{COUNT3}}}"#), "expire"), vec!["selection.groupBy", "needs `tagRegex` or `semver`"]),
        (one(&format!(r#"{{"tagStatus":"any","groupBy":"major",{COUNT3}}}"#), "expire"), vec!["selection.groupBy", "must be a JSON object"]),
        (
            one(&format!(r#"{{"tagStatus":"any","groupBy":{{"semver":"major","tagRegex":"(?P<group>a)"}},{COUNT3}}}"#), "expire"),
            vec!["selection.groupBy", "not both"],
        ),
        (
            one(&format!(r#"{{"tagStatus":"any","groupBy":{{"tagRegex":"([a-z]+)-.*"}},{COUNT3}}}"#), "expire"),
            vec!["selection.groupBy.tagRegex", "no capture group named `group`"],
        ),
        (
            one(&format!(r#"{{"tagStatus":"any","groupBy":{{"tagRegex":"(?P<group>"}},{COUNT3}}}"#), "expire"),
            vec!["selection.groupBy.tagRegex", "not a valid regular expression"],
        ),
        (
            one(&format!(r#"{{"tagStatus":"any","groupBy":{{"byTag":"x"}},{COUNT3}}}"#), "expire"),
            vec!["selection.groupBy", "unknown field `byTag`"],
        ),
    ];
    for (document, parts) in cases {
        check(&document, Err(&parts));
    }
}

/// ECR's cross-rule checks bind the rules that act; keep rules may overlap,
/// but one that keeps every image must come last, like an `any` rule.
#[test]
fn cross_rule_checks_with_keep_rules() {
    let rule = |p: u32, selection: &str, action: &str| {
        format!(r#"{{"rulePriority":{p},"selection":{selection},"action":{{"type":"{action}"}}}}"#)
    };
    let doc = |rules: &[String]| format!(r#"{{"rules":[{}]}}"#, rules.join(","));
    let untagged = format!(r#"{{"tagStatus":"untagged",{COUNT3}}}"#);
    let any = format!(r#"{{"tagStatus":"any",{COUNT3}}}"#);
    let keep_all_any = r#"{"tagStatus":"any"}"#;
    let accepted = [
        doc(&[rule(1, &untagged, "keep"), rule(2, &untagged, "expire")]),
        doc(&[rule(1, &any, "keep"), rule(2, &any, "expire")]),
        doc(&[rule(1, &untagged, "expire"), rule(2, keep_all_any, "keep")]),
    ];
    for document in accepted {
        check(&document, Ok(&[Extension::Keep]));
    }
    check(
        &doc(&[rule(1, &untagged, "expire"), rule(2, &untagged, "expire")]),
        Err(&[
            "rules[1] (rulePriority 2): selection.tagStatus",
            "already expires or archives untagged images",
        ]),
    );
    check(
        &doc(&[rule(1, keep_all_any, "keep"), rule(2, &untagged, "expire")]),
        Err(&[
            "rules[0] (rulePriority 1): selection.tagStatus",
            "keeps every image",
            "highest rulePriority",
        ]),
    );
    // A keep-all rule without a storage class is among both classes' rules.
    let archive = r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":100}"#;
    check(
        &doc(&[
            rule(1, r#"{"tagStatus":"tagged","tagPrefixList":["x"]}"#, "keep"),
            rule(1, archive, "expire"),
        ]),
        Err(&[
            "rulePriority",
            "duplicates",
            "rules[0]",
            "storageClass `archive`",
        ]),
    );
}

/// At most [`MAX_REGEXES`] regular expressions in one document, counting
/// lists and groups.
#[test]
fn the_regex_budget() {
    let rules = |n: usize| {
        let rules: Vec<String> = (1..=n)
            .map(|p| {
                format!(
                    r#"{{"rulePriority":{p},"selection":{{"tagStatus":"tagged","tagRegexList":["a{p}","b"],"groupBy":{{"tagRegex":"(?P<group>a).*"}},{COUNT3}}},"action":{{"type":"expire"}}}}"#
                )
            })
            .collect();
        format!(r#"{{"rules":[{}]}}"#, rules.join(","))
    };
    assert!(Policy::parse(&rules(MAX_REGEXES / 3)).is_ok());
    check(
        &rules(MAX_REGEXES / 3 + 1),
        Err(&["rules", "66 regular expressions", "at most 64"]),
    );
}

#[test]
fn ranking_fields_are_read() {
    let policy = Policy::parse(&one(
        &format!(
            r#"{{"tagStatus":"any","orderBy":"semver","groupBy":{{"semver":"major"}},{COUNT3}}}"#
        ),
        "keep",
    ))
    .unwrap();
    let rule = &policy.rules[0];
    assert_eq!(
        (rule.order_by, rule.group_by.clone(), rule.action),
        (OrderBy::Semver, Some(GroupBy::Major), RuleAction::Keep)
    );
    let keep_all = Policy::parse(&one(r#"{"tagStatus":"any"}"#, "keep")).unwrap();
    assert_eq!(
        (keep_all.rules[0].storage_class, keep_all.rules[0].count),
        (StorageClass::Either, Count::Every)
    );
    // A keep rule alone does not make the listing read the archive.
    assert!(!keep_all.selects_archived());
}

/// Every policy and rule the README shows loads as written, so the
/// reference cannot drift from the parser.
#[test]
fn the_readmes_examples_load() {
    let readme = include_str!("../../README.md");
    let mut loaded = 0;
    for block in readme.split("```json\n").skip(1) {
        let Some((text, _)) = block.split_once("\n```") else {
            continue;
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) if text.contains("rulePriority") => {
                panic!("README example is not JSON: {error}\n{text}")
            }
            Err(_) => continue,
        };
        let document = if value.get("rules").is_some() {
            value
        } else if value.get("rulePriority").is_some() {
            serde_json::json!({ "rules": [value] })
        } else {
            continue;
        };
        if let Err(error) = Policy::from_value(document) {
            panic!("README example refused: {error}\n{text}");
        }
        loaded += 1;
    }
    assert!(loaded >= 7, "only {loaded} examples found");
}

/// `settings.overrides` and `settings.policySource`: what loads, what is
/// refused (naming the override and its rule), and which rules a
/// repository takes.
#[test]
fn overrides_choose_rules_per_repository() {
    let rule = |p: u32, n: u32| {
        format!(
            r#"{{"rulePriority":{p},"selection":{{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":{n}}},"action":{{"type":"expire"}}}}"#
        )
    };
    let doc = |settings: &str| format!(r#"{{"rules":[{}],"settings":{settings}}}"#, rule(1, 10));
    let policy = Policy::parse(&doc(&format!(
        r#"{{"overrides":[{{"repositories":["team-a/*"],"rules":[{}]}},{{"repositories":["team-*","x"],"rules":[{}]}}]}}"#,
        rule(1, 1),
        rule(1, 2)
    )))
    .unwrap();
    let keep = |name: &str| match policy.rules_for(name) {
        ([rule], from) => (rule.count, from),
        other => panic!("{other:?}"),
    };
    use super::overrides::RulesFrom;
    assert_eq!(
        keep("team-a/web"),
        (Count::ImagesMoreThan(1), RulesFrom::Override(0))
    );
    assert_eq!(
        keep("team-b/web"),
        (Count::ImagesMoreThan(2), RulesFrom::Override(1))
    );
    assert_eq!(
        keep("x"),
        (Count::ImagesMoreThan(2), RulesFrom::Override(1))
    );
    assert_eq!(
        keep("other"),
        (Count::ImagesMoreThan(10), RulesFrom::Document)
    );
    assert_eq!(policy.for_repository("other").1, RulesFrom::Document);
    assert!(matches!(
        policy.for_repository("other").0,
        std::borrow::Cow::Borrowed(_)
    ));
    assert!(policy.is_native());
    let archive = r#"{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"transition","targetStorageClass":"archive"}}"#;
    let archiving = Policy::parse(&doc(&format!(
        r#"{{"overrides":[{{"repositories":["a"],"rules":[{archive}]}}]}}"#
    )))
    .unwrap();
    assert!(
        archiving.transitions(),
        "an override that archives needs the grant"
    );
    let source = Policy::parse(&doc(r#"{"policySource":"repository"}"#)).unwrap();
    assert_eq!(
        source.settings.policy_source,
        super::overrides::PolicySource::Repository
    );

    let refused: Vec<(String, Vec<&str>)> = vec![
        (
            doc(r#"{"overrides":{}}"#),
            vec!["settings.overrides", "must be an array"],
        ),
        (
            doc(&format!(
                r#"{{"overrides":[{{"rules":[{}]}}]}}"#,
                rule(1, 1)
            )),
            vec!["settings.overrides[0]", "`repositories` is required"],
        ),
        (
            doc(r#"{"overrides":[{"repositories":["a"],"rules":[]}]}"#),
            vec!["settings.overrides[0].rules", "non-empty"],
        ),
        (
            doc(&format!(
                r#"{{"overrides":[{{"repositories":["a"],"rules":[{}],"settings":{{}}}}]}}"#,
                rule(1, 1)
            )),
            vec!["settings.overrides[0]", "unknown field `settings`"],
        ),
        (
            doc(&format!(
                r#"{{"overrides":[{{"repositories":["a"],"rules":[{}]}},{{"repositories":["b"],"rules":[{},{}]}}]}}"#,
                rule(1, 1),
                rule(1, 1),
                r#"{"rulePriority":2,"selection":{"tagStatus":"any","countType":"imageCountMoreThan"},"action":{"type":"expire"}}"#
            )),
            vec![
                "settings.overrides[1].rules[1] (rulePriority 2): selection.countNumber",
                "required",
            ],
        ),
        (
            doc(&format!(
                r#"{{"overrides":[{{"repositories":["a"],"rules":[{},{}]}}]}}"#,
                rule(3, 1),
                rule(3, 2)
            )),
            vec![
                "settings.overrides[0].rules[1] (rulePriority 3): rulePriority",
                "settings.overrides[0].rules[0]",
            ],
        ),
        (
            doc(r#"{"policySource":"ecr"}"#),
            vec![
                "settings.policySource",
                "`ecr`",
                "`document` or `repository`",
            ],
        ),
    ];
    for (document, parts) in refused {
        check(&document, Err(&parts));
    }
}

/// A repository's own lifecycle policy: `rules` only, checked like the
/// document's.
#[test]
fn a_repositorys_own_policy_is_rules_only() {
    let text = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;
    assert_eq!(Policy::repository_rules(text).unwrap().len(), 1);
    for (text, part) in [
        (r#"{"rules":[]}"#, "non-empty `rules`"),
        (
            r#"{"rules":[{"rulePriority":1}]}"#,
            "`selection` is required",
        ),
        (r#"{"rules":[],"settings":{}}"#, "unknown field `settings`"),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any"},"action":{"type":"keep"}}]}"#,
            "rulePriority 1: uses action type `keep`",
        ),
        ("not json", "not valid JSON"),
    ] {
        let error = Policy::repository_rules(text).unwrap_err().to_string();
        assert!(error.contains(part), "{error:?} lacks {part:?}");
    }
}
