//! The policy document: parse, validate, and explain what is wrong.
//!
//! The document's `rules` array is Amazon ECR lifecycle-policy syntax,
//! verbatim. Validation is as strict as ECR's, and anything ecr-gc does not
//! implement (transitions, pull-time and transition-time counts, the archive
//! storage class) is refused by name, never silently ignored: a policy that
//! loads is a policy that is enforced exactly as written.
//!
//! Besides `rules`, the document may carry ecr-gc's own `settings`
//! (repository include/exclude globs). The whole output of
//! `aws ecr get-lifecycle-policy` is accepted too: its `lifecyclePolicyText`
//! is unwrapped, and a `settings` object beside it is kept.
//!
//! This module does no I/O.

pub mod pattern;
pub mod settings;

use serde_json::{Map, Value};
use thiserror::Error;

use pattern::Pattern;
use settings::Settings;

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
    #[error(
        "{at}: {message}; ecr-gc does not implement this yet, and refuses the policy rather than ignore the rule"
    )]
    Unsupported { at: String, message: String },
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
    pub tags: TagSelector,
    pub count: Count,
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
}

/// The rule's `countType` with its `countNumber`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `imageCountMoreThan`: keep the newest N, expire the rest.
    ImagesMoreThan(u64),
    /// `sinceImagePushed` with `countUnit: days`.
    PushedMoreThanDaysAgo(u64),
}

impl TagSelector {
    /// Whether the image's tags meet this selector's tag requirements.
    pub fn selects(&self, tags: &[String]) -> bool {
        match self {
            TagSelector::Any => true,
            TagSelector::Untagged => tags.is_empty(),
            TagSelector::Tagged(TagFilter::Prefixes(prefixes)) => prefixes
                .iter()
                .all(|prefix| tags.iter().any(|tag| tag.starts_with(prefix.as_str()))),
            TagSelector::Tagged(TagFilter::Patterns(patterns)) => patterns
                .iter()
                .all(|pattern| tags.iter().any(|tag| pattern.matches(tag))),
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
        let mut parsed = Vec::with_capacity(rules.len());
        for (index, rule) in rules.into_iter().enumerate() {
            parsed.push(parse_rule(index, rule)?);
        }
        check_rule_set(&parsed)?;
        let mut rules: Vec<Rule> = parsed.into_iter().map(|(_, rule)| rule).collect();
        rules.sort_by_key(|rule| rule.priority);
        let settings = settings::parse(settings)?;
        Ok(Policy { rules, settings })
    }
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

fn unsupported(at: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Unsupported {
        at: at.into(),
        message: message.into(),
    }
}

/// Reads the fields of one JSON object, refusing fields it was not asked for.
struct Fields {
    at: String,
    map: Map<String, Value>,
}

impl Fields {
    fn new(at: String, value: Value, what: &str) -> Result<Fields, PolicyError> {
        match value {
            Value::Object(map) => Ok(Fields { at, map }),
            other => Err(invalid(
                at,
                format!("{what} must be a JSON object, got {}", kind(&other)),
            )),
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, PolicyError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(
                &self.at,
                format!("`{key}` must be a string, got {}", kind(&other)),
            )),
        }
    }

    /// A positive integer that fits in `u64`.
    fn positive(&mut self, key: &str) -> Result<Option<u64>, PolicyError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v >= 1 => Ok(Some(v)),
                _ => Err(invalid(
                    &self.at,
                    format!("`{key}` must be an integer of at least 1, got {n}"),
                )),
            },
            Some(other) => Err(invalid(
                &self.at,
                format!(
                    "`{key}` must be an integer of at least 1, got {}",
                    kind(&other)
                ),
            )),
        }
    }

    fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>, PolicyError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(invalid(
                &self.at,
                format!("`{key}` must be an array of strings"),
            ));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) if !s.is_empty() => out.push(s),
                Value::String(_) => {
                    return Err(invalid(
                        &self.at,
                        format!("`{key}` must not contain an empty string"),
                    ));
                }
                other => {
                    return Err(invalid(
                        &self.at,
                        format!("`{key}` must contain only strings, got {}", kind(&other)),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(invalid(&self.at, format!("`{key}` must not be empty")));
        }
        Ok(Some(out))
    }

    /// Fails on any field that was not taken.
    fn finish(self, known: &str) -> Result<(), PolicyError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(invalid(
                self.at,
                format!("unknown field `{key}`; known fields: {known}"),
            )),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses `rules[index]`. Returns the rule's index alongside it for the
/// cross-rule checks' messages.
fn parse_rule(index: usize, value: Value) -> Result<(usize, Rule), PolicyError> {
    let mut rule = Fields::new(format!("rules[{index}]"), value, "a rule")?;
    let priority = match rule.take("rulePriority") {
        None => return Err(invalid(&rule.at, "`rulePriority` is required")),
        Some(Value::Number(n)) => match n.as_u64().and_then(|v| u32::try_from(v).ok()) {
            Some(v) if v >= 1 => v,
            _ => {
                return Err(invalid(
                    &rule.at,
                    format!(
                        "`rulePriority` must be an integer from 1 to {}, got {n}",
                        u32::MAX
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(invalid(
                &rule.at,
                format!("`rulePriority` must be an integer, got {}", kind(&other)),
            ));
        }
    };
    let at = format!("rules[{index}] (rulePriority {priority})");
    rule.at = at.clone();
    let description = rule.string("description")?;
    let Some(selection) = rule.take("selection") else {
        return Err(invalid(&at, "`selection` is required"));
    };
    let Some(action) = rule.take("action") else {
        return Err(invalid(&at, "`action` is required"));
    };
    rule.finish("rulePriority, description, selection, action")?;

    parse_action(&at, action)?;
    let (tags, count) = parse_selection(&at, selection)?;
    Ok((
        index,
        Rule {
            priority,
            description,
            tags,
            count,
        },
    ))
}

fn parse_action(at: &str, value: Value) -> Result<(), PolicyError> {
    let mut action = Fields::new(format!("{at}: action"), value, "`action`")?;
    let kind = action.string("type")?;
    let target = action.string("targetStorageClass")?;
    action.finish("type, targetStorageClass")?;
    match kind.as_deref() {
        Some("expire") if target.is_none() => Ok(()),
        Some("expire") => Err(invalid(
            format!("{at}: action.targetStorageClass"),
            "is only allowed with action type `transition`",
        )),
        Some("transition") => Err(unsupported(
            format!("{at}: action.type"),
            "action type `transition` (moving images to the archive storage class)",
        )),
        Some(other) => Err(invalid(
            format!("{at}: action.type"),
            format!("unknown action type `{other}`; expected `expire`"),
        )),
        None => Err(invalid(format!("{at}: action.type"), "is required")),
    }
}

/// A rule's `selection`: which images it selects (`tagStatus` and a list),
/// and how it counts them (`countType`, `countUnit`, `countNumber`). Each
/// part is checked by its own function, which names the field it refuses.
fn parse_selection(at: &str, value: Value) -> Result<(TagSelector, Count), PolicyError> {
    let mut sel = Fields::new(format!("{at}: selection"), value, "`selection`")?;
    let tag_status = sel.string("tagStatus")?;
    let prefixes = sel.string_list("tagPrefixList")?;
    let patterns = sel.string_list("tagPatternList")?;
    let storage_class = sel.string("storageClass")?;
    let count_type = sel.string("countType")?;
    let count_unit = sel.string("countUnit")?;
    let count_number = sel.positive("countNumber")?;
    sel.finish(
        "tagStatus, tagPatternList, tagPrefixList, storageClass, countType, countUnit, countNumber",
    )?;
    let field = |name: &str| format!("{at}: selection.{name}");
    parse_storage_class(&field, storage_class.as_deref())?;
    let tags = parse_tags(&field, tag_status.as_deref(), prefixes, patterns)?;
    let count = parse_count(
        &field,
        count_type.as_deref(),
        count_unit.as_deref(),
        count_number,
    )?;
    Ok((tags, count))
}

/// `storageClass`: only `standard` (the default) is implemented.
fn parse_storage_class(
    field: &dyn Fn(&str) -> String,
    storage_class: Option<&str>,
) -> Result<(), PolicyError> {
    match storage_class {
        None | Some("standard") => Ok(()),
        Some("archive") => Err(unsupported(
            field("storageClass"),
            "storage class `archive`",
        )),
        Some(other) => Err(invalid(
            field("storageClass"),
            format!("unknown storage class `{other}`; expected `standard` or `archive`"),
        )),
    }
}

/// `tagStatus` with its `tagPrefixList` or `tagPatternList`.
fn parse_tags(
    field: &dyn Fn(&str) -> String,
    tag_status: Option<&str>,
    prefixes: Option<Vec<String>>,
    patterns: Option<Vec<String>>,
) -> Result<TagSelector, PolicyError> {
    Ok(match tag_status {
        None => return Err(invalid(field("tagStatus"), "is required")),
        Some("tagged") => match (prefixes, patterns) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    field("tagPatternList"),
                    "cannot be used together with `tagPrefixList` in one rule",
                ));
            }
            (Some(prefixes), None) => TagSelector::Tagged(TagFilter::Prefixes(prefixes)),
            (None, Some(patterns)) => {
                for pattern in &patterns {
                    let stars = pattern.matches('*').count();
                    if stars > MAX_WILDCARDS {
                        return Err(invalid(
                            field("tagPatternList"),
                            format!(
                                "pattern \"{pattern}\" has {stars} wildcards; at most {MAX_WILDCARDS} are allowed"
                            ),
                        ));
                    }
                }
                TagSelector::Tagged(TagFilter::Patterns(
                    patterns.iter().map(|p| Pattern::new(p)).collect(),
                ))
            }
            (None, None) => {
                return Err(invalid(
                    field("tagStatus"),
                    "`tagged` requires a non-empty `tagPrefixList` or `tagPatternList`",
                ));
            }
        },
        Some(status @ ("untagged" | "any")) => {
            let list = if prefixes.is_some() {
                Some("tagPrefixList")
            } else if patterns.is_some() {
                Some("tagPatternList")
            } else {
                None
            };
            if let Some(list) = list {
                return Err(invalid(
                    field(list),
                    format!("is only allowed with tagStatus `tagged`, not `{status}`"),
                ));
            }
            if status == "untagged" {
                TagSelector::Untagged
            } else {
                TagSelector::Any
            }
        }
        Some(other) => {
            return Err(invalid(
                field("tagStatus"),
                format!("unknown tagStatus `{other}`; expected `tagged`, `untagged` or `any`"),
            ));
        }
    })
}

/// `countType`, with `countUnit` and `countNumber` as it requires.
fn parse_count(
    field: &dyn Fn(&str) -> String,
    count_type: Option<&str>,
    count_unit: Option<&str>,
    count_number: Option<u64>,
) -> Result<Count, PolicyError> {
    Ok(match count_type {
        None => return Err(invalid(field("countType"), "is required")),
        Some("imageCountMoreThan") => {
            if count_unit.is_some() {
                return Err(invalid(
                    field("countUnit"),
                    "is only allowed with countType `sinceImagePushed`",
                ));
            }
            Count::ImagesMoreThan(required_number(field, count_number)?)
        }
        Some("sinceImagePushed") => {
            match count_unit {
                Some("days") => {}
                None => {
                    return Err(invalid(
                        field("countUnit"),
                        "is required with countType `sinceImagePushed`; use `days`",
                    ));
                }
                Some(other) => {
                    return Err(invalid(
                        field("countUnit"),
                        format!("unknown countUnit `{other}`; expected `days`"),
                    ));
                }
            }
            Count::PushedMoreThanDaysAgo(required_number(field, count_number)?)
        }
        Some(other @ ("sinceImagePulled" | "sinceImageTransitioned")) => {
            return Err(unsupported(
                field("countType"),
                format!("countType `{other}`"),
            ));
        }
        Some(other) => {
            return Err(invalid(
                field("countType"),
                format!(
                    "unknown countType `{other}`; expected `imageCountMoreThan` or `sinceImagePushed`"
                ),
            ));
        }
    })
}

fn required_number(field: &dyn Fn(&str) -> String, value: Option<u64>) -> Result<u64, PolicyError> {
    value.ok_or_else(|| invalid(field("countNumber"), "is required"))
}

/// The checks that span rules: unique priorities, one `untagged` rule, and
/// `any` last.
fn check_rule_set(rules: &[(usize, Rule)]) -> Result<(), PolicyError> {
    let at = |index: usize, rule: &Rule| format!("rules[{index}] (rulePriority {})", rule.priority);
    for (i, (index, rule)) in rules.iter().enumerate() {
        if let Some((other, _)) = rules[..i].iter().find(|(_, r)| r.priority == rule.priority) {
            return Err(invalid(
                format!("{}: rulePriority", at(*index, rule)),
                format!("duplicates the rulePriority of rules[{other}]; priorities must be unique"),
            ));
        }
        if rule.tags == TagSelector::Untagged
            && let Some((other, _)) = rules[..i]
                .iter()
                .find(|(_, r)| r.tags == TagSelector::Untagged)
        {
            return Err(invalid(
                format!("{}: selection.tagStatus", at(*index, rule)),
                format!("rules[{other}] already selects untagged images; only one rule may"),
            ));
        }
    }
    let highest = rules.iter().map(|(_, r)| r.priority).max().unwrap_or(0);
    if let Some((index, rule)) = rules
        .iter()
        .find(|(_, r)| r.tags == TagSelector::Any && r.priority != highest)
    {
        return Err(invalid(
            format!("{}: selection.tagStatus", at(*index, rule)),
            format!(
                "a rule with tagStatus `any` must have the highest rulePriority in the policy, and {highest} is higher"
            ),
        ));
    }
    Ok(())
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
            (one(&format!(r#"{{"tagStatus":"any","storageClass":"archive",{COUNT1}}}"#)), &["storageClass", "does not implement"]),
            (one(r#"{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":1}"#), &["countType", "sinceImagePulled", "does not implement"]),
            (one(r#"{"tagStatus":"any","countType":"sinceImageTransitioned","countUnit":"days","countNumber":1}"#), &["sinceImageTransitioned", "does not implement"]),
            (
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#.into(),
                &["rules[0] (rulePriority 1): action.type", "transition", "does not implement"],
            ),
            (
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"delete"}}]}"#.into(),
                &["action.type", "delete"],
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
