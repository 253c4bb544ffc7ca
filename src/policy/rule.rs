//! One rule of the document, field by field: `rulePriority`, `description`,
//! `selection` (its storage class, tags and count, each parsed by its own
//! function) and `action`; then the checks that span rules. Every refusal
//! names the rule and the field.

use serde_json::{Map, Value};

use super::pattern::Pattern;
use super::{
    Count, MAX_WILDCARDS, PolicyError, Rule, TagFilter, TagSelector, invalid, unsupported,
};

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
pub(super) fn parse_rule(index: usize, value: Value) -> Result<(usize, Rule), PolicyError> {
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
pub(super) fn check_rule_set(rules: &[(usize, Rule)]) -> Result<(), PolicyError> {
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
