//! The policy document: parse, validate, and explain what is wrong.
//!
//! The document's `rules` array is Amazon ECR lifecycle-policy syntax,
//! verbatim, archive storage class and transitions included. Validation is
//! as strict as ECR's (the user guide's "Lifecycle policy properties"): a
//! policy ECR refuses is refused here too, naming the rule and the field,
//! and a policy that loads is enforced exactly as written.
//!
//! Besides `rules`, the document may carry ecr-gc's own `settings`
//! (repository include/exclude globs). The whole output of
//! `aws ecr get-lifecycle-policy` is accepted too: its `lifecyclePolicyText`
//! is unwrapped, and a `settings` object beside it is kept.
//!
//! This module does no I/O.

mod fields;
pub mod overrides;
pub mod pattern;
pub mod rank;
pub mod reclaim;
mod rule;
mod rule_set;
pub mod settings;
pub mod tag_regex;
pub mod version;

use serde_json::{Map, Value};
use thiserror::Error;

use pattern::Pattern;
use rank::{GroupBy, OrderBy};
use rule::parse_rule;
use rule_set::{check_regex_budget, check_rule_set};
use settings::Settings;
use tag_regex::TagRegex;

/// ECR's limit on a lifecycle policy's length, in characters. ecr-gc holds
/// the whole document, settings included, to it.
pub const MAX_POLICY_CHARS: usize = 30_720;

/// ECR allows at most four `*` wildcards in one tag pattern.
pub const MAX_WILDCARDS: usize = 4;

/// Why a policy document was refused. Every message names the rule (by
/// index and `rulePriority`) and the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("the policy document is not valid JSON: {0}")]
    Syntax(String),
    #[error(
        "the policy document is {chars} characters long; ECR allows at most {MAX_POLICY_CHARS}"
    )]
    TooLong { chars: usize },
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

/// A validated policy: rules sorted by ascending `rulePriority`, plus settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub priority: u32,
    pub description: Option<String>,
    /// `selection.storageClass`: the rule selects only images in it.
    pub storage_class: StorageClass,
    pub tags: TagSelector,
    pub count: Count,
    /// `selection.orderBy` (an extension): what "newest" means for
    /// `imageCountMoreThan`.
    pub order_by: OrderBy,
    /// `selection.groupBy` (an extension): count within groups.
    pub group_by: Option<GroupBy>,
    pub action: RuleAction,
    /// The ecr-gc extensions the rule uses; empty for a rule ECR accepts.
    pub extensions: Vec<Extension>,
}

/// A feature of ecr-gc's rule language that ECR's own lifecycle policies
/// do not have (`ecr-gc validate --native` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// `action.type: keep`.
    Keep,
    /// `sinceImagePulled` with `expire`, where ECR allows only `transition`.
    ExpireByPull,
    /// `selection.tagRegexList`.
    TagRegexList,
    /// `selection.orderBy`.
    OrderBy,
    /// `selection.groupBy`.
    GroupBy,
}

impl std::fmt::Display for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Extension::Keep => "action type `keep` (ECR knows only `expire` and `transition`)",
            Extension::ExpireByPull => {
                "countType `sinceImagePulled` with action `expire` (ECR allows it only with `transition`)"
            }
            Extension::TagRegexList => "`tagRegexList` (ECR knows `tagPrefixList` and `tagPatternList`)",
            Extension::OrderBy => "`orderBy` (ECR orders by push time only)",
            Extension::GroupBy => "`groupBy` (ECR counts each rule's images as one group)",
        })
    }
}

/// `selection.storageClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageClass {
    /// `standard` (the default): `ACTIVE` images.
    Standard,
    /// `archive`: `ARCHIVED` images.
    Archive,
    /// Both: a `keep` rule without a `countType` and without a
    /// `storageClass` keeps what it selects in either class.
    Either,
}

/// `action.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// `expire`: delete the image.
    Expire,
    /// `transition` with `targetStorageClass: archive`: archive the image.
    Transition,
    /// `keep` (an extension): keep the images the rule's count or age
    /// condition holds for, and claim them from every lower rule.
    Keep,
}

impl RuleAction {
    /// What the rule does, as people say it: "expire", "archive", "keep".
    pub fn imperative(&self) -> &'static str {
        match self {
            RuleAction::Expire => "expire",
            RuleAction::Transition => "archive",
            RuleAction::Keep => "keep",
        }
    }
}

impl StorageClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            StorageClass::Standard => "standard",
            StorageClass::Archive => "archive",
            StorageClass::Either => "standard or archive",
        }
    }

    /// Whether a rule of this storage class selects an image of this status.
    pub fn holds(&self, status: crate::model::ImageStatus) -> bool {
        use crate::model::ImageStatus::{Active, Archived};
        matches!(
            (self, status),
            (StorageClass::Standard | StorageClass::Either, Active)
                | (StorageClass::Archive | StorageClass::Either, Archived)
        )
    }
}

/// Which images a rule selects (`tagStatus` plus its lists).
#[derive(Debug, Clone, PartialEq)]
pub enum TagSelector {
    /// `tagged`: every entry must match at least one of the image's tags.
    Tagged(TagFilter),
    Untagged,
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TagFilter {
    Prefixes(Vec<String>),
    Patterns(Vec<Pattern>),
    /// `tagRegexList` (an extension): whole-tag regular expressions.
    Regexes(Vec<TagRegex>),
}

/// The rule's `countType` with its `countNumber`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `imageCountMoreThan`: keep the newest N, expire the rest.
    ImagesMoreThan(u64),
    /// `sinceImagePushed` with `countUnit: days`.
    PushedMoreThanDaysAgo(u64),
    /// `sinceImagePulled` with `countUnit: days`: days since
    /// `lastRecordedPullTime` (see [`crate::model::Image::last_used`]).
    PulledMoreThanDaysAgo(u64),
    /// `sinceImageTransitioned` with `countUnit: days`: days since
    /// `lastArchivedAt`; archived images only.
    TransitionedMoreThanDaysAgo(u64),
    /// No `countType`, which only a `keep` rule may omit: every image the
    /// rule selects.
    Every,
}

impl Policy {
    /// Whether any rule may delete archived images: only then does a
    /// listing need them (`imageStatus: ANY`). A keep rule alone does not
    /// need them: nothing else would act on them.
    pub fn selects_archived(&self) -> bool {
        self.rules.iter().any(|rule| {
            rule.storage_class == StorageClass::Archive && rule.action != RuleAction::Keep
        })
    }

    /// Whether the document uses no ecr-gc extension in its rules (the
    /// overrides' included).
    pub fn is_native(&self) -> bool {
        self.rule_sets()
            .flatten()
            .all(|rule| rule.extensions.is_empty())
    }

    /// Whether any rule archives images, the overrides' included: only then
    /// does a deployment need `ecr:UpdateImageStorageClass`.
    pub fn transitions(&self) -> bool {
        self.rule_sets()
            .flatten()
            .any(|rule| rule.action == RuleAction::Transition)
    }
}

impl TagSelector {
    /// Whether the image's tags meet this selector's tag requirements:
    /// for `tagged`, every entry of the list matches one of its tags.
    pub fn selects(&self, tags: &[String]) -> bool {
        match self {
            TagSelector::Any => true,
            TagSelector::Untagged => tags.is_empty(),
            TagSelector::Tagged(filter) => (0..filter.len())
                .all(|entry| tags.iter().any(|tag| filter.entry_matches(entry, tag))),
        }
    }

    /// Whether `tag` is one of an image's *matching tags* for this
    /// selector: every tag for `any`, none for `untagged`, and for
    /// `tagged` a tag that matches at least one entry of the list.
    pub fn matches_tag(&self, tag: &str) -> bool {
        match self {
            TagSelector::Any => true,
            TagSelector::Untagged => false,
            TagSelector::Tagged(filter) => {
                (0..filter.len()).any(|entry| filter.entry_matches(entry, tag))
            }
        }
    }
}

impl TagFilter {
    /// How many entries the list has.
    fn len(&self) -> usize {
        match self {
            TagFilter::Prefixes(list) => list.len(),
            TagFilter::Patterns(list) => list.len(),
            TagFilter::Regexes(list) => list.len(),
        }
    }

    /// Whether entry `entry` of the list matches `tag`: as a prefix, as a
    /// whole-tag wildcard pattern, or as a whole-tag regular expression.
    fn entry_matches(&self, entry: usize, tag: &str) -> bool {
        match self {
            TagFilter::Prefixes(list) => tag.starts_with(list[entry].as_str()),
            TagFilter::Patterns(list) => list[entry].matches(tag),
            TagFilter::Regexes(list) => list[entry].matches(tag),
        }
    }
}

impl std::fmt::Display for TagSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagSelector::Any => f.write_str("any image"),
            TagSelector::Untagged => f.write_str("untagged images"),
            TagSelector::Tagged(TagFilter::Prefixes(list)) => {
                write!(
                    f,
                    "images tagged with prefixes {}",
                    quoted(list.iter().map(String::as_str))
                )
            }
            TagSelector::Tagged(TagFilter::Patterns(list)) => {
                write!(
                    f,
                    "images tagged matching {}",
                    quoted(list.iter().map(Pattern::as_str))
                )
            }
            TagSelector::Tagged(TagFilter::Regexes(list)) => {
                write!(
                    f,
                    "images tagged matching the regular expressions {}",
                    quoted(list.iter().map(TagRegex::as_str))
                )
            }
        }
    }
}

fn quoted<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(", "))
}

impl Policy {
    /// Parses and validates a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let chars = text.chars().count();
        if chars > MAX_POLICY_CHARS {
            return Err(PolicyError::TooLong { chars });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        Policy::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Policy, PolicyError> {
        let Value::Object(mut doc) = value else {
            return Err(invalid(
                "policy document",
                "must be a JSON object with a `rules` array",
            ));
        };
        // The whole output of `aws ecr get-lifecycle-policy`: unwrap it,
        // keeping ecr-gc's own settings if they stand beside it.
        if let Some(text) = doc.remove("lifecyclePolicyText") {
            return Policy::unwrap(text, doc);
        }
        let rules = doc.remove("rules");
        let settings = doc.remove("settings");
        if let Some(key) = doc.keys().next() {
            return Err(invalid(
                "policy document",
                format!("unknown field `{key}`; expected `rules` and optionally `settings`"),
            ));
        }
        let rules = match rules {
            Some(Value::Array(rules)) if !rules.is_empty() => rules,
            Some(Value::Array(_)) | None => {
                return Err(invalid(
                    "rules",
                    "the policy must contain at least one rule",
                ));
            }
            Some(_) => return Err(invalid("rules", "must be an array of rules")),
        };
        let policy = Policy {
            rules: parse_rules("", rules)?,
            settings: settings::parse(settings)?,
        };
        check_regex_budget(policy.rule_sets().flatten())?;
        Ok(policy)
    }
}

/// A rule set (the document's `rules`, or an override's at `base`): each
/// rule, then the checks across them; sorted by priority.
pub(crate) fn parse_rules(base: &str, rules: Vec<Value>) -> Result<Vec<Rule>, PolicyError> {
    let mut parsed = Vec::with_capacity(rules.len());
    for (index, rule) in rules.into_iter().enumerate() {
        parsed.push(parse_rule(base, index, rule)?);
    }
    check_rule_set(base, &parsed)?;
    let mut rules: Vec<Rule> = parsed.into_iter().map(|(_, rule)| rule).collect();
    rules.sort_by_key(|rule| rule.priority);
    Ok(rules)
}

/// The fields of `aws ecr get-lifecycle-policy`'s output besides
/// `lifecyclePolicyText`: accepted beside it, and not used.
const WRAPPER_FIELDS: [&str; 3] = ["registryId", "repositoryName", "lastEvaluatedAt"];

impl Policy {
    /// `{"lifecyclePolicyText": "...", "settings": {...}, ...}`: the rules
    /// come from the text; `settings` may stand beside it (not in both
    /// places); the other fields of get-lifecycle-policy's output are
    /// accepted, and anything else is refused, so that nothing a reader
    /// takes for configuration is silently dropped.
    fn unwrap(text: Value, mut wrapper: Map<String, Value>) -> Result<Policy, PolicyError> {
        let Value::String(text) = text else {
            return Err(invalid("lifecyclePolicyText", "must be a string"));
        };
        let settings = wrapper.remove("settings");
        if let Some(key) = wrapper
            .keys()
            .find(|k| !WRAPPER_FIELDS.contains(&k.as_str()))
        {
            return Err(invalid(
                "policy document",
                format!(
                    "unknown field `{key}` beside `lifecyclePolicyText`; expected `settings` and the fields of get-lifecycle-policy's output ({})",
                    WRAPPER_FIELDS.join(", ")
                ),
            ));
        }
        let inner: Value = serde_json::from_str(&text)
            .map_err(|e| PolicyError::Syntax(format!("lifecyclePolicyText: {e}")))?;
        let Value::Object(mut inner) = inner else {
            return Err(invalid(
                "lifecyclePolicyText",
                "must hold a JSON object with a `rules` array",
            ));
        };
        if inner.contains_key("lifecyclePolicyText") {
            return Err(invalid(
                "lifecyclePolicyText",
                "holds another `lifecyclePolicyText`; unwrap it once",
            ));
        }
        if let Some(settings) = settings {
            if inner.contains_key("settings") {
                return Err(invalid(
                    "settings",
                    "given both beside and inside `lifecyclePolicyText`; keep one",
                ));
            }
            inner.insert("settings".into(), settings);
        }
        Policy::from_value(Value::Object(inner))
    }
}

/// A refusal of the document, naming where (`rules[0].selection`) and why.
fn invalid(at: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `document` and checks that it is refused with a message that
    /// contains every one of `expected`, or accepted when `expected` is empty.
    #[track_caller]
    fn check(document: &str, expected: &[&str]) {
        match (Policy::parse(document), expected) {
            (Ok(_), []) => {}
            (Ok(policy), _) => {
                panic!("accepted {document}\n as {policy:?}\nexpected an error with {expected:?}")
            }
            (Err(error), []) => panic!("refused {document}\n with: {error}"),
            (Err(error), _) => {
                let message = error.to_string();
                for part in expected {
                    assert!(message.contains(part), "message {message:?} lacks {part:?}");
                }
            }
        }
    }

    fn one(selection: &str) -> String {
        format!(
            r#"{{"rules":[{{"rulePriority":1,"selection":{selection},"action":{{"type":"expire"}}}}]}}"#
        )
    }

    const COUNT1: &str = r#""countType":"imageCountMoreThan","countNumber":1"#;

    #[test]
    fn valid_policies() {
        check(&one(&format!(r#"{{"tagStatus":"any",{COUNT1}}}"#)), &[]);
        check(
            &one(&format!(r#"{{"tagStatus":"untagged",{COUNT1}}}"#)),
            &[],
        );
        check(
            &one(&format!(
                r#"{{"tagStatus":"tagged","tagPrefixList":["v"],{COUNT1}}}"#
            )),
            &[],
        );
        check(
            &one(&format!(
                r#"{{"tagStatus":"tagged","tagPatternList":["*a*b*c*"],{COUNT1}}}"#
            )),
            &[],
        );
        check(
            &one(
                r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30}"#,
            ),
            &[],
        );
        check(
            &one(&format!(
                r#"{{"tagStatus":"any","storageClass":"standard",{COUNT1}}}"#
            )),
            &[],
        );
        // Descriptions, settings, and the wrapped output of get-lifecycle-policy.
        check(
            r#"{"rules":[{"rulePriority":5,"description":"d","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}],
                "settings":{"repositories":{"include":["team-*"],"exclude":["team-base"]}}}"#,
            &[],
        );
        check(
            r#"{"registryId":"123456789012","repositoryName":"r","lastEvaluatedAt":1700000000.0,
                "lifecyclePolicyText":"{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":3},\"action\":{\"type\":\"expire\"}}]}"}"#,
            &[],
        );
    }

    /// ECR's limit is 30,720 characters: a document of exactly that many
    /// loads, one more does not.
    #[test]
    fn the_length_limit_is_inclusive() {
        let document = |chars: usize| {
            let head = r#"{"rules":[{"rulePriority":1,"description":""#;
            let tail = r#"","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
            format!(
                "{head}{}{tail}",
                "x".repeat(chars - head.len() - tail.len())
            )
        };
        assert_eq!(document(MAX_POLICY_CHARS).chars().count(), MAX_POLICY_CHARS);
        assert!(Policy::parse(&document(MAX_POLICY_CHARS)).is_ok());
        assert_eq!(
            Policy::parse(&document(MAX_POLICY_CHARS + 1)),
            Err(PolicyError::TooLong {
                chars: MAX_POLICY_CHARS + 1
            })
        );
    }

    #[test]
    fn a_wrapped_policy_keeps_its_settings_and_refuses_strangers() {
        const TEXT: &str = r#""{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":3},\"action\":{\"type\":\"expire\"}}]}""#;
        let wrapped = |extra: &str| format!(r#"{{"lifecyclePolicyText":{TEXT}{extra}}}"#);
        let policy = Policy::parse(&wrapped(
            r#","repositoryName":"r","settings":{"repositories":{"exclude":["base"]},"maxDeletesPerRun":7}"#,
        ))
        .unwrap();
        assert!(!policy.settings.repositories.selects("base"));
        assert_eq!(policy.settings.safety.max_deletes_per_run, Some(7));
        assert_eq!(policy.rules.len(), 1);
        let refused = |extra: &str, part: &str| {
            let error = Policy::parse(&wrapped(extra)).unwrap_err().to_string();
            assert!(error.contains(part), "{error:?} lacks {part:?}");
        };
        refused(
            r#","setting":{}"#,
            "unknown field `setting` beside `lifecyclePolicyText`",
        );
        refused(r#","rules":[]"#, "unknown field `rules`");
        refused(
            r#","settings":{"gracePeriod":1}"#,
            "unknown field `gracePeriod`",
        );
        let both = r#"{"lifecyclePolicyText":"{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":3},\"action\":{\"type\":\"expire\"}}],\"settings\":{}}","settings":{}}"#;
        let error = Policy::parse(both).unwrap_err().to_string();
        assert!(error.contains("both beside and inside"), "{error}");
        let error = Policy::parse(r#"{"lifecyclePolicyText":"[1]"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("lifecyclePolicyText"), "{error}");
    }

    #[test]
    fn invalid_policies_name_the_rule_and_the_field() {
        let cases: &[(String, &[&str])] = &[
            ("not json".into(), &["not valid JSON"]),
            (format!("{{\"rules\":[]{}}}", " ".repeat(30_720)), &["30732 characters", "at most 30720"]),
            ("[]".into(), &["JSON object"]),
            (r#"{"rules":[]}"#.into(), &["at least one rule"]),
            ("{}".into(), &["at least one rule"]),
            (r#"{"rules":[],"rulez":1}"#.into(), &["unknown field `rulez`"]),
            (r#"{"rules":[1]}"#.into(), &["rules[0]", "JSON object"]),
            (r#"{"rules":[{"selection":{},"action":{}}]}"#.into(), &["rules[0]", "rulePriority` is required"]),
            (one(r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":0}"#), &["rules[0] (rulePriority 1)", "countNumber", "at least 1"]),
            (one(r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":-1}"#), &["countNumber"]),
            (one(r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1.5}"#), &["countNumber"]),
            (one(r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":"1"}"#), &["countNumber", "a string"]),
            (one(r#"{"tagStatus":"any","countType":"imageCountMoreThan"}"#), &["selection.countNumber", "required"]),
            (one(r#"{"tagStatus":"any","countType":"sinceImagePushed","countNumber":1}"#), &["selection.countUnit", "required"]),
            (one(r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"hours","countNumber":1}"#), &["countUnit", "hours"]),
            (one(r#"{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1}"#), &["countUnit", "only allowed"]),
            (one(r#"{"tagStatus":"any","countType":"imageCountLessThan","countNumber":1}"#), &["countType", "imageCountLessThan"]),
            (one(r#"{"countType":"imageCountMoreThan","countNumber":1}"#), &["selection.tagStatus", "required"]),
            (one(&format!(r#"{{"tagStatus":"Tagged",{COUNT1}}}"#)), &["tagStatus", "Tagged"]),
            (one(&format!(r#"{{"tagStatus":"tagged",{COUNT1}}}"#)), &["selection.tagStatus", "tagPrefixList"]),
            (one(&format!(r#"{{"tagStatus":"tagged","tagPrefixList":[],{COUNT1}}}"#)), &["tagPrefixList", "empty"]),
            (one(&format!(r#"{{"tagStatus":"tagged","tagPrefixList":[""],{COUNT1}}}"#)), &["tagPrefixList", "empty string"]),
            (one(&format!(r#"{{"tagStatus":"tagged","tagPrefixList":"v",{COUNT1}}}"#)), &["tagPrefixList", "array"]),
            (one(&format!(r#"{{"tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["b*"],{COUNT1}}}"#)), &["tagPatternList", "together"]),
            (one(&format!(r#"{{"tagStatus":"untagged","tagPrefixList":["a"],{COUNT1}}}"#)), &["selection.tagPrefixList", "untagged"]),
            (one(&format!(r#"{{"tagStatus":"any","tagPatternList":["a*"],{COUNT1}}}"#)), &["selection.tagPatternList", "any"]),
            (one(&format!(r#"{{"tagStatus":"tagged","tagPatternList":["a*b*c*d*e*"],{COUNT1}}}"#)), &["tagPatternList", "a*b*c*d*e*", "5 wildcards"]),
            (one(&format!(r#"{{"tagStatus":"any","countNumbr":1,{COUNT1}}}"#)), &["rules[0] (rulePriority 1): selection", "unknown field `countNumbr`"]),
            (
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"delete"}}]}"#.into(),
                &["action.type", "delete", "`expire`, `transition` or `keep`"],
            ),
            (
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire","targetStorageClass":"archive"}}]}"#.into(),
                &["rules[0] (rulePriority 1): action.targetStorageClass", "only allowed with action type `transition`"],
            ),
            (
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{}}]}"#.into(),
                &["action.type", "required"],
            ),
            (
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}}]}"#.into(),
                &["rules[0] (rulePriority 1)", "`action` is required"],
            ),
            (
                r#"{"rules":[{"rulePriority":0,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#.into(),
                &["rules[0]", "rulePriority"],
            ),
            (
                r#"{"rules":[{"rulePriority":1,"extra":true,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#.into(),
                &["rules[0] (rulePriority 1)", "unknown field `extra`"],
            ),
            (
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}],"settings":{"repos":[]}}"#.into(),
                &["settings", "repos"],
            ),
        ];
        for (document, expected) in cases {
            check(document, expected);
        }
    }

    #[test]
    fn cross_rule_checks() {
        let r = |p: u32, sel: &str| {
            format!(r#"{{"rulePriority":{p},"selection":{sel},"action":{{"type":"expire"}}}}"#)
        };
        let untagged = format!(r#"{{"tagStatus":"untagged",{COUNT1}}}"#);
        let any = format!(r#"{{"tagStatus":"any",{COUNT1}}}"#);
        let tagged = format!(r#"{{"tagStatus":"tagged","tagPrefixList":["v"],{COUNT1}}}"#);
        let doc = |rules: &[String]| format!(r#"{{"rules":[{}]}}"#, rules.join(","));

        check(
            &doc(&[r(1, &tagged), r(1, &untagged)]),
            &[
                "rules[1] (rulePriority 1): rulePriority",
                "rules[0]",
                "unique",
            ],
        );
        check(
            &doc(&[r(1, &untagged), r(2, &untagged)]),
            &["rules[1] (rulePriority 2)", "only one rule"],
        );
        check(
            &doc(&[r(1, &any), r(2, &tagged)]),
            &["rules[0] (rulePriority 1): selection.tagStatus", "highest"],
        );
        check(&doc(&[r(3, &any), r(2, &tagged), r(1, &untagged)]), &[]);
        check(
            &doc(&[r(2, &any), r(3, &any)]),
            &["rules[0] (rulePriority 2)", "highest"],
        );
    }

    /// One rule with this selection and this action.
    fn with_action(selection: &str, action: &str) -> String {
        format!(r#"{{"rules":[{{"rulePriority":1,"selection":{selection},"action":{action}}}]}}"#)
    }

    const EXPIRE: &str = r#"{"type":"expire"}"#;
    const ARCHIVE: &str = r#"{"type":"transition","targetStorageClass":"archive"}"#;

    /// The archive storage class, transitions and the last-pull and
    /// time-in-archive counts: what ECR accepts, and what it refuses, each
    /// refusal naming the rule and the field.
    #[test]
    fn archive_rules_are_checked_as_ecr_checks_them() {
        let since = |kind: &str, days: u64| {
            format!(r#""countType":"{kind}","countUnit":"days","countNumber":{days}"#)
        };
        let sel = |class: &str, count: &str| {
            format!(r#"{{"tagStatus":"any","storageClass":"{class}",{count}}}"#)
        };
        let accepted = [
            (sel("standard", COUNT1), ARCHIVE),
            (sel("standard", &since("sinceImagePushed", 30)), ARCHIVE),
            (sel("standard", &since("sinceImagePulled", 30)), ARCHIVE),
            (
                format!(r#"{{"tagStatus":"any",{}}}"#, since("sinceImagePulled", 1)),
                ARCHIVE,
            ),
            (sel("archive", &since("sinceImageTransitioned", 90)), EXPIRE),
            (
                sel("archive", &since("sinceImageTransitioned", 365)),
                EXPIRE,
            ),
            (
                format!(
                    r#"{{"tagStatus":"tagged","tagPatternList":["v*"],"storageClass":"archive",{}}}"#,
                    since("sinceImageTransitioned", 90)
                ),
                EXPIRE,
            ),
        ];
        for (selection, action) in &accepted {
            check(&with_action(selection, action), &[]);
        }
        let refused: &[(String, &str, &[&str])] = &[
            (
                sel("archive", COUNT1),
                EXPIRE,
                &[
                    "selection.countType",
                    "imageCountMoreThan",
                    "sinceImageTransitioned",
                ],
            ),
            (
                sel("archive", &since("sinceImagePushed", 100)),
                EXPIRE,
                &[
                    "selection.countType",
                    "sinceImagePushed",
                    "standard images only",
                ],
            ),
            (
                sel("archive", &since("sinceImagePulled", 100)),
                ARCHIVE,
                &["selection.countType", "sinceImagePulled"],
            ),
            (
                sel("archive", &since("sinceImageTransitioned", 100)),
                ARCHIVE,
                &["action.type", "must be `expire`"],
            ),
            (
                sel("archive", &since("sinceImageTransitioned", 89)),
                EXPIRE,
                &[
                    "rules[0] (rulePriority 1): selection.countNumber",
                    "is 89",
                    "90 days",
                ],
            ),
            (
                sel("standard", &since("sinceImageTransitioned", 100)),
                EXPIRE,
                &["selection.storageClass", "requires storageClass `archive`"],
            ),
            (
                format!(
                    r#"{{"tagStatus":"any",{}}}"#,
                    since("sinceImageTransitioned", 100)
                ),
                EXPIRE,
                &["selection.storageClass", "requires"],
            ),
            (
                sel("Archive", COUNT1),
                EXPIRE,
                &["selection.storageClass", "unknown storage class `Archive`"],
            ),
            (
                sel(
                    "standard",
                    r#""countType":"sinceImagePulled","countNumber":3"#,
                ),
                ARCHIVE,
                &[
                    "selection.countUnit",
                    "required with countType `sinceImagePulled`",
                ],
            ),
            (
                sel(
                    "archive",
                    r#""countType":"sinceImageTransitioned","countUnit":"hours","countNumber":100"#,
                ),
                EXPIRE,
                &["selection.countUnit", "hours"],
            ),
            (
                sel(
                    "archive",
                    r#""countType":"sinceImageTransitioned","countUnit":"days""#,
                ),
                EXPIRE,
                &["selection.countNumber", "required"],
            ),
            (
                sel("standard", COUNT1),
                r#"{"type":"transition"}"#,
                &[
                    "action.targetStorageClass",
                    "required with action type `transition`",
                ],
            ),
            (
                sel("standard", COUNT1),
                r#"{"type":"transition","targetStorageClass":"standard"}"#,
                &[
                    "action.targetStorageClass",
                    "`standard`",
                    "expected `archive`",
                ],
            ),
            (
                sel("standard", COUNT1),
                r#"{"type":"transition","targetStorageClass":"ARCHIVE"}"#,
                &["action.targetStorageClass", "ARCHIVE"],
            ),
            (
                sel("standard", COUNT1),
                r#"{"type":"expire","targetStorageClass":"archive"}"#,
                &[
                    "action.targetStorageClass",
                    "only allowed with action type `transition`",
                ],
            ),
            (
                sel("standard", COUNT1),
                r#"{"type":"Transition","targetStorageClass":"archive"}"#,
                &["action.type", "Transition"],
            ),
        ];
        for (selection, action, expected) in refused {
            check(&with_action(selection, action), expected);
        }
    }

    /// The cross-rule checks hold within each storage class: the guide's
    /// archive-then-expire policy has an `any` rule in each.
    #[test]
    fn cross_rule_checks_are_per_storage_class() {
        let r = |p: u32, sel: &str, action: &str| {
            format!(r#"{{"rulePriority":{p},"selection":{sel},"action":{action}}}"#)
        };
        let doc = |rules: &[String]| format!(r#"{{"rules":[{}]}}"#, rules.join(","));
        let standard = |status: &str| {
            format!(
                r#"{{"tagStatus":"{status}","countType":"sinceImagePulled","countUnit":"days","countNumber":30}}"#
            )
        };
        let archive = |status: &str| {
            format!(
                r#"{{"tagStatus":"{status}","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":365}}"#
            )
        };
        // Archive every image unpulled for 30 days; delete what has been
        // archived for a year: two `any` rules, one per class.
        check(
            &doc(&[
                r(1, &standard("any"), ARCHIVE),
                r(2, &archive("any"), EXPIRE),
            ]),
            &[],
        );
        check(
            &doc(&[
                r(2, &standard("any"), ARCHIVE),
                r(1, &archive("any"), EXPIRE),
            ]),
            &[],
        );
        // One untagged rule per class.
        check(
            &doc(&[
                r(1, &standard("untagged"), ARCHIVE),
                r(2, &archive("untagged"), EXPIRE),
            ]),
            &[],
        );
        check(
            &doc(&[
                r(1, &archive("untagged"), EXPIRE),
                r(2, &archive("untagged"), EXPIRE),
            ]),
            &[
                "rules[1] (rulePriority 2)",
                "only one rule may among the rules for storageClass `archive`",
            ],
        );
        // `any` last within its class.
        check(
            &doc(&[
                r(1, &archive("any"), EXPIRE),
                r(2, &archive("untagged"), EXPIRE),
            ]),
            &[
                "rules[0] (rulePriority 1): selection.tagStatus",
                "highest rulePriority of the rules for storageClass `archive`",
            ],
        );
        check(
            &doc(&[
                r(1, &standard("any"), ARCHIVE),
                r(2, &standard("untagged"), ARCHIVE),
                r(3, &archive("any"), EXPIRE),
            ]),
            &["rules[0] (rulePriority 1): selection.tagStatus", "highest"],
        );
        // Priorities are unique within a class.
        check(
            &doc(&[
                r(1, &archive("untagged"), EXPIRE),
                r(1, &archive("any"), EXPIRE),
            ]),
            &[
                "rules[1] (rulePriority 1): rulePriority",
                "unique among the rules for storageClass `archive`",
            ],
        );
        check(
            &doc(&[
                r(1, &standard("any"), ARCHIVE),
                r(1, &archive("any"), EXPIRE),
            ]),
            &[],
        );
        let policy = Policy::parse(&doc(&[
            r(2, &standard("any"), ARCHIVE),
            r(1, &archive("any"), EXPIRE),
        ]))
        .unwrap();
        assert!(policy.selects_archived() && policy.transitions());
        let plain = Policy::parse(&one(&format!(r#"{{"tagStatus":"any",{COUNT1}}}"#))).unwrap();
        assert!(!plain.selects_archived() && !plain.transitions());
    }

    #[test]
    fn rules_are_sorted_by_priority() {
        let policy = Policy::parse(
            r#"{"rules":[
                {"rulePriority":20,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":3,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
        )
        .unwrap();
        let priorities: Vec<u32> = policy.rules.iter().map(|r| r.priority).collect();
        assert_eq!(priorities, [3, 20]);
    }
}

#[cfg(test)]
mod extension_tests;
