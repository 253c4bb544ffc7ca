//! One rule of the document, field by field: `rulePriority`, `description`,
//! `selection` (its storage class, tags and count, each parsed by its own
//! function) and `action`; then the checks that span rules. Every refusal
//! names the rule and the field.

use serde_json::{Map, Value};

use super::pattern::Pattern;
use super::{
    Count, MAX_WILDCARDS, PolicyError, Rule, RuleAction, StorageClass, TagFilter, TagSelector,
    invalid,
};

/// ECR's minimum storage duration in the archive: a policy may not delete
/// an image archived for fewer days ("Archiving an image", ECR user guide).
pub const MIN_ARCHIVE_DAYS: u64 = 90;

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

    let action = parse_action(&at, action)?;
    let (storage_class, tags, count) = parse_selection(&at, selection)?;
    check_combination(&at, storage_class, count, action)?;
    Ok((
        index,
        Rule {
            priority,
            description,
            storage_class,
            tags,
            count,
            action,
        },
    ))
}

/// What ECR allows together: `archive` goes with `sinceImageTransitioned`
/// and `expire`, and nothing else does; `sinceImagePulled` only archives;
/// an archived image is deleted only after [`MIN_ARCHIVE_DAYS`].
fn check_combination(
    at: &str,
    storage_class: StorageClass,
    count: Count,
    action: RuleAction,
) -> Result<(), PolicyError> {
    let field = |name: &str| format!("{at}: selection.{name}");
    match (storage_class, count, action) {
        (StorageClass::Archive, Count::TransitionedMoreThanDaysAgo(days), RuleAction::Expire) => {
            if days < MIN_ARCHIVE_DAYS {
                return Err(invalid(
                    field("countNumber"),
                    format!(
                        "is {days}; archived images have a minimum storage duration of {MIN_ARCHIVE_DAYS} days, and ECR refuses a policy that deletes them sooner (at least {MIN_ARCHIVE_DAYS})"
                    ),
                ));
            }
            Ok(())
        }
        (StorageClass::Archive, Count::TransitionedMoreThanDaysAgo(_), RuleAction::Transition) => {
            Err(invalid(
                format!("{at}: action.type"),
                "must be `expire` for a rule that selects storageClass `archive`; archived images can only be expired",
            ))
        }
        (StorageClass::Archive, other, _) => Err(invalid(
            field("countType"),
            format!(
                "`{}` selects standard images only; a rule with storageClass `archive` must use countType `sinceImageTransitioned`",
                count_type_name(other)
            ),
        )),
        (StorageClass::Standard, Count::TransitionedMoreThanDaysAgo(_), _) => Err(invalid(
            field("storageClass"),
            "countType `sinceImageTransitioned` requires storageClass `archive`",
        )),
        (StorageClass::Standard, Count::PulledMoreThanDaysAgo(_), RuleAction::Expire) => {
            Err(invalid(
                format!("{at}: action.type"),
                "countType `sinceImagePulled` allows only action type `transition` (with targetStorageClass `archive`)",
            ))
        }
        (StorageClass::Standard, _, _) => Ok(()),
    }
}

/// A count type as the document spells it.
fn count_type_name(count: Count) -> &'static str {
    match count {
        Count::ImagesMoreThan(_) => "imageCountMoreThan",
        Count::PushedMoreThanDaysAgo(_) => "sinceImagePushed",
        Count::PulledMoreThanDaysAgo(_) => "sinceImagePulled",
        Count::TransitionedMoreThanDaysAgo(_) => "sinceImageTransitioned",
    }
}

/// `action`: `expire`, or `transition` with `targetStorageClass: archive`.
fn parse_action(at: &str, value: Value) -> Result<RuleAction, PolicyError> {
    let mut action = Fields::new(format!("{at}: action"), value, "`action`")?;
    let kind = action.string("type")?;
    let target = action.string("targetStorageClass")?;
    action.finish("type, targetStorageClass")?;
    let target_field = || format!("{at}: action.targetStorageClass");
    match (kind.as_deref(), target.as_deref()) {
        (Some("expire"), None) => Ok(RuleAction::Expire),
        (Some("expire"), Some(_)) => Err(invalid(
            target_field(),
            "is only allowed with action type `transition`",
        )),
        (Some("transition"), Some("archive")) => Ok(RuleAction::Transition),
        (Some("transition"), None) => Err(invalid(
            target_field(),
            "is required with action type `transition`; use `archive`",
        )),
        (Some("transition"), Some(other)) => Err(invalid(
            target_field(),
            format!("unknown target storage class `{other}`; expected `archive`"),
        )),
        (Some(other), _) => Err(invalid(
            format!("{at}: action.type"),
            format!("unknown action type `{other}`; expected `expire` or `transition`"),
        )),
        (None, _) => Err(invalid(format!("{at}: action.type"), "is required")),
    }
}

/// A rule's `selection`: which images it selects (`tagStatus` and a list),
/// and how it counts them (`countType`, `countUnit`, `countNumber`). Each
/// part is checked by its own function, which names the field it refuses.
fn parse_selection(
    at: &str,
    value: Value,
) -> Result<(StorageClass, TagSelector, Count), PolicyError> {
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
    let storage_class = parse_storage_class(&field, storage_class.as_deref())?;
    let tags = parse_tags(&field, tag_status.as_deref(), prefixes, patterns)?;
    let count = parse_count(
        &field,
        count_type.as_deref(),
        count_unit.as_deref(),
        count_number,
    )?;
    Ok((storage_class, tags, count))
}

/// `storageClass`: `standard` (the default) or `archive`.
fn parse_storage_class(
    field: &dyn Fn(&str) -> String,
    storage_class: Option<&str>,
) -> Result<StorageClass, PolicyError> {
    match storage_class {
        None | Some("standard") => Ok(StorageClass::Standard),
        Some("archive") => Ok(StorageClass::Archive),
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

/// `countType`, with `countUnit` and `countNumber` as it requires:
/// `days` for every `since*` type, no unit for `imageCountMoreThan`.
fn parse_count(
    field: &dyn Fn(&str) -> String,
    count_type: Option<&str>,
    count_unit: Option<&str>,
    count_number: Option<u64>,
) -> Result<Count, PolicyError> {
    let Some(count_type) = count_type else {
        return Err(invalid(field("countType"), "is required"));
    };
    let days = |make: fn(u64) -> Count| -> Result<Count, PolicyError> {
        match count_unit {
            Some("days") => Ok(make(required_number(field, count_number)?)),
            None => Err(invalid(
                field("countUnit"),
                format!("is required with countType `{count_type}`; use `days`"),
            )),
            Some(other) => Err(invalid(
                field("countUnit"),
                format!("unknown countUnit `{other}`; expected `days`"),
            )),
        }
    };
    match count_type {
        "imageCountMoreThan" => {
            if count_unit.is_some() {
                return Err(invalid(
                    field("countUnit"),
                    "is only allowed with the `since*` count types (sinceImagePushed, sinceImagePulled, sinceImageTransitioned), not `imageCountMoreThan`",
                ));
            }
            Ok(Count::ImagesMoreThan(required_number(field, count_number)?))
        }
        "sinceImagePushed" => days(Count::PushedMoreThanDaysAgo),
        "sinceImagePulled" => days(Count::PulledMoreThanDaysAgo),
        "sinceImageTransitioned" => days(Count::TransitionedMoreThanDaysAgo),
        other => Err(invalid(
            field("countType"),
            format!(
                "unknown countType `{other}`; expected `imageCountMoreThan`, `sinceImagePushed`, `sinceImagePulled` or `sinceImageTransitioned`"
            ),
        )),
    }
}

fn required_number(field: &dyn Fn(&str) -> String, value: Option<u64>) -> Result<u64, PolicyError> {
    value.ok_or_else(|| invalid(field("countNumber"), "is required"))
}

/// The checks that span rules, each within one storage class (the rules of
/// one class never select the images of the other, as the user guide's
/// archive-then-expire example shows): unique priorities, one `untagged`
/// rule, and an `any` rule last.
pub(super) fn check_rule_set(rules: &[(usize, Rule)]) -> Result<(), PolicyError> {
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let of_class: Vec<&(usize, Rule)> = rules
            .iter()
            .filter(|(_, rule)| rule.storage_class == class)
            .collect();
        check_class(&of_class, class)?;
    }
    Ok(())
}

fn check_class(rules: &[&(usize, Rule)], class: StorageClass) -> Result<(), PolicyError> {
    let at = |index: usize, rule: &Rule| format!("rules[{index}] (rulePriority {})", rule.priority);
    let among = match class {
        StorageClass::Standard => "",
        StorageClass::Archive => " among the rules for storageClass `archive`",
    };
    for (i, (index, rule)) in rules.iter().map(|r| (&r.0, &r.1)).enumerate() {
        if let Some((other, _)) = rules[..i].iter().find(|(_, r)| r.priority == rule.priority) {
            return Err(invalid(
                format!("{}: rulePriority", at(*index, rule)),
                format!(
                    "duplicates the rulePriority of rules[{other}]; priorities must be unique{among}"
                ),
            ));
        }
        if rule.tags == TagSelector::Untagged
            && let Some((other, _)) = rules[..i]
                .iter()
                .find(|(_, r)| r.tags == TagSelector::Untagged)
        {
            return Err(invalid(
                format!("{}: selection.tagStatus", at(*index, rule)),
                format!("rules[{other}] already selects untagged images; only one rule may{among}"),
            ));
        }
    }
    let highest = rules.iter().map(|(_, r)| r.priority).max().unwrap_or(0);
    if let Some((index, rule)) = rules
        .iter()
        .find(|(_, r)| r.tags == TagSelector::Any && r.priority != highest)
    {
        let scope = match class {
            StorageClass::Standard => "in the policy",
            StorageClass::Archive => "of the rules for storageClass `archive`",
        };
        return Err(invalid(
            format!("{}: selection.tagStatus", at(*index, rule)),
            format!(
                "a rule with tagStatus `any` must have the highest rulePriority {scope}, and {highest} is higher"
            ),
        ));
    }
    Ok(())
}
