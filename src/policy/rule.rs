//! One rule of the document, field by field: `rulePriority`, `description`,
//! `selection` (its storage class, tags, count and ranking, each parsed by
//! its own function) and `action`, then what ECR allows together. Every
//! refusal names the rule and the field. The extensions a rule uses are
//! recorded on it, so `validate --native` can say which they are.

use serde_json::Value;

use super::fields::{Fields, kind};
use super::pattern::Pattern;
use super::rank::{GROUP, GroupBy, OrderBy};
use super::tag_regex::TagRegex;
use super::{
    Count, Extension, MAX_WILDCARDS, PolicyError, Rule, RuleAction, StorageClass, TagFilter,
    TagSelector, invalid,
};

/// ECR's minimum storage duration in the archive: a policy may not delete
/// an image archived for fewer days ("Archiving an image", ECR user guide).
pub const MIN_ARCHIVE_DAYS: u64 = 90;

/// Parses `rules[index]` of the rule set at `base` (`""` for the
/// document's, `"settings.overrides[0]."` for an override's). Returns the
/// rule's index alongside it for the cross-rule checks' messages.
pub(super) fn parse_rule(
    base: &str,
    index: usize,
    value: Value,
) -> Result<(usize, Rule), PolicyError> {
    let mut rule = Fields::new(format!("{base}rules[{index}]"), value, "a rule")?;
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
    let at = format!("{base}rules[{index}] (rulePriority {priority})");
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
    let selection = parse_selection(&at, selection, action)?;
    check_combination(&at, selection.storage_class, selection.count, action)?;
    let mut extensions = selection.extensions;
    match (selection.count, action) {
        (_, RuleAction::Keep) => extensions.insert(0, Extension::Keep),
        (Count::PulledMoreThanDaysAgo(_), RuleAction::Expire) => {
            extensions.insert(0, Extension::ExpireByPull);
        }
        _ => {}
    }
    Ok((
        index,
        Rule {
            priority,
            description,
            storage_class: selection.storage_class,
            tags: selection.tags,
            count: selection.count,
            order_by: selection.order_by,
            group_by: selection.group_by,
            action,
            extensions,
        },
    ))
}

/// What ECR allows together: `archive` goes with `sinceImageTransitioned`
/// and `expire`, and nothing else does; an archived image is deleted only
/// after [`MIN_ARCHIVE_DAYS`]. ecr-gc also lets `sinceImagePulled` expire
/// (ECR only archives by it), and a `keep` rule select either class; a
/// `keep` rule over the archive keeps by `sinceImageTransitioned`, for any
/// number of days, or keeps every image it selects.
fn check_combination(
    at: &str,
    storage_class: StorageClass,
    count: Count,
    action: RuleAction,
) -> Result<(), PolicyError> {
    let field = |name: &str| format!("{at}: selection.{name}");
    match (storage_class, count, action) {
        (_, Count::Every, _) | (StorageClass::Either, _, _) => Ok(()),
        (StorageClass::Archive, Count::TransitionedMoreThanDaysAgo(_), RuleAction::Keep) => Ok(()),
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
        Count::Every => "(none)",
    }
}

/// `action`: `expire`, `transition` with `targetStorageClass: archive`, or
/// `keep`.
fn parse_action(at: &str, value: Value) -> Result<RuleAction, PolicyError> {
    let mut action = Fields::new(format!("{at}: action"), value, "`action`")?;
    let kind = action.string("type")?;
    let target = action.string("targetStorageClass")?;
    action.finish("type, targetStorageClass")?;
    let target_field = || format!("{at}: action.targetStorageClass");
    match (kind.as_deref(), target.as_deref()) {
        (Some("expire"), None) => Ok(RuleAction::Expire),
        (Some("keep"), None) => Ok(RuleAction::Keep),
        (Some("expire" | "keep"), Some(_)) => Err(invalid(
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
            format!("unknown action type `{other}`; expected `expire`, `transition` or `keep`"),
        )),
        (None, _) => Err(invalid(format!("{at}: action.type"), "is required")),
    }
}

/// A rule's `selection`, parsed.
struct Selection {
    storage_class: StorageClass,
    tags: TagSelector,
    count: Count,
    order_by: OrderBy,
    group_by: Option<GroupBy>,
    extensions: Vec<Extension>,
}

const SELECTION_FIELDS: &str = "tagStatus, tagPatternList, tagPrefixList, tagRegexList, storageClass, countType, countUnit, countNumber, orderBy, groupBy";

/// A rule's `selection`: which images it selects (`storageClass`,
/// `tagStatus` and a list), how it counts them (`countType`, `countUnit`,
/// `countNumber`) and ranks them (`orderBy`, `groupBy`). Each part is
/// checked by its own function, which names the field it refuses.
fn parse_selection(at: &str, value: Value, action: RuleAction) -> Result<Selection, PolicyError> {
    let mut sel = Fields::new(format!("{at}: selection"), value, "`selection`")?;
    let tag_status = sel.string("tagStatus")?;
    let lists = [
        ("tagPrefixList", sel.string_list("tagPrefixList")?),
        ("tagPatternList", sel.string_list("tagPatternList")?),
        ("tagRegexList", sel.string_list("tagRegexList")?),
    ];
    let storage_class = sel.string("storageClass")?;
    let count_type = sel.string("countType")?;
    let count_unit = sel.string("countUnit")?;
    let count_number = sel.positive("countNumber")?;
    let order_by = sel.string("orderBy")?;
    let group_by = sel.take("groupBy");
    sel.finish(SELECTION_FIELDS)?;
    let field = |name: &str| format!("{at}: selection.{name}");
    let keeps_all = action == RuleAction::Keep && count_type.is_none();
    let storage_class = match (storage_class.as_deref(), keeps_all) {
        (None, true) => StorageClass::Either,
        (class, _) => parse_storage_class(&field, class)?,
    };
    let tags = parse_tags(&field, tag_status.as_deref(), lists)?;
    let count = parse_count(
        &field,
        count_type.as_deref(),
        count_unit.as_deref(),
        count_number,
        action,
    )?;
    let (order_by, group_by, mut extensions) =
        parse_ranking(&field, order_by, group_by, count, &tags)?;
    if matches!(tags, TagSelector::Tagged(TagFilter::Regexes(_))) {
        extensions.insert(0, Extension::TagRegexList);
    }
    Ok(Selection {
        storage_class,
        tags,
        count,
        order_by,
        group_by,
        extensions,
    })
}

/// `orderBy` and `groupBy`, which rank the images an `imageCountMoreThan`
/// rule selects: both need that count type, and tags to read.
fn parse_ranking(
    field: &dyn Fn(&str) -> String,
    order_by: Option<String>,
    group_by: Option<Value>,
    count: Count,
    tags: &TagSelector,
) -> Result<(OrderBy, Option<GroupBy>, Vec<Extension>), PolicyError> {
    let mut extensions = Vec::new();
    for (name, given) in [
        ("orderBy", order_by.is_some()),
        ("groupBy", group_by.is_some()),
    ] {
        if !given {
            continue;
        }
        if !matches!(count, Count::ImagesMoreThan(_)) {
            return Err(invalid(
                field(name),
                "is only allowed with countType `imageCountMoreThan`",
            ));
        }
        if *tags == TagSelector::Untagged {
            return Err(invalid(
                field(name),
                "reads the image's tags, and a rule with tagStatus `untagged` selects images without any",
            ));
        }
        extensions.push(if name == "orderBy" {
            Extension::OrderBy
        } else {
            Extension::GroupBy
        });
    }
    let order_by = match order_by.as_deref() {
        None | Some("pushedAt") => OrderBy::PushedAt,
        Some("semver") => OrderBy::Semver,
        Some(other) => {
            return Err(invalid(
                field("orderBy"),
                format!("unknown order `{other}`; expected `pushedAt` or `semver`"),
            ));
        }
    };
    let group_by = group_by.map(|v| parse_group_by(field, v)).transpose()?;
    Ok((order_by, group_by, extensions))
}

/// `groupBy`: `{"tagRegex": R}` with a named group `group`, or
/// `{"semver": "major"}` or `{"semver": "minor"}`.
fn parse_group_by(field: &dyn Fn(&str) -> String, value: Value) -> Result<GroupBy, PolicyError> {
    let mut group = Fields::new(field("groupBy"), value, "`groupBy`")?;
    let regex = group.string("tagRegex")?;
    let semver = group.string("semver")?;
    group.finish("tagRegex, semver (one of them)")?;
    match (regex, semver.as_deref()) {
        (Some(text), None) => {
            let regex = TagRegex::new(&text).map_err(|m| invalid(field("groupBy.tagRegex"), m))?;
            if !regex.has_group(GROUP) {
                return Err(invalid(
                    field("groupBy.tagRegex"),
                    format!(
                        "pattern {text:?} has no capture group named `{GROUP}`; name the part of the tag that is the group, as in \"(?P<{GROUP}>[a-z]+)-[0-9a-f]{{7}}\""
                    ),
                ));
            }
            Ok(GroupBy::TagRegex(regex))
        }
        (None, Some("major")) => Ok(GroupBy::Major),
        (None, Some("minor")) => Ok(GroupBy::Minor),
        (None, Some(other)) => Err(invalid(
            field("groupBy.semver"),
            format!("unknown part `{other}`; expected `major` or `minor`"),
        )),
        (Some(_), Some(_)) => Err(invalid(
            field("groupBy"),
            "give `tagRegex` or `semver`, not both",
        )),
        (None, None) => Err(invalid(field("groupBy"), "needs `tagRegex` or `semver`")),
    }
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

/// `tagStatus` with its `tagPrefixList`, `tagPatternList` or
/// `tagRegexList` (exactly one, and only for `tagged`).
fn parse_tags(
    field: &dyn Fn(&str) -> String,
    tag_status: Option<&str>,
    lists: [(&'static str, Option<Vec<String>>); 3],
) -> Result<TagSelector, PolicyError> {
    let mut given = lists
        .into_iter()
        .filter_map(|(name, list)| Some((name, list?)));
    let first = given.next();
    if let (Some((one, _)), Some((other, _))) = (&first, given.next()) {
        return Err(invalid(
            field(other),
            format!("cannot be used together with `{one}` in one rule"),
        ));
    }
    Ok(match (tag_status, first) {
        (None, _) => return Err(invalid(field("tagStatus"), "is required")),
        (Some("tagged"), Some(("tagPrefixList", prefixes))) => {
            TagSelector::Tagged(TagFilter::Prefixes(prefixes))
        }
        (Some("tagged"), Some(("tagPatternList", patterns))) => {
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
        (Some("tagged"), Some((_, regexes))) => {
            let compiled: Result<Vec<TagRegex>, String> =
                regexes.iter().map(|r| TagRegex::new(r)).collect();
            TagSelector::Tagged(TagFilter::Regexes(
                compiled.map_err(|m| invalid(field("tagRegexList"), m))?,
            ))
        }
        (Some("tagged"), None) => {
            return Err(invalid(
                field("tagStatus"),
                "`tagged` requires a non-empty `tagPrefixList`, `tagPatternList` or `tagRegexList`",
            ));
        }
        (Some(status @ ("untagged" | "any")), Some((list, _))) => {
            return Err(invalid(
                field(list),
                format!("is only allowed with tagStatus `tagged`, not `{status}`"),
            ));
        }
        (Some("untagged"), None) => TagSelector::Untagged,
        (Some("any"), None) => TagSelector::Any,
        (Some(other), _) => {
            return Err(invalid(
                field("tagStatus"),
                format!("unknown tagStatus `{other}`; expected `tagged`, `untagged` or `any`"),
            ));
        }
    })
}

/// `countType`, with `countUnit` and `countNumber` as it requires:
/// `days` for every `since*` type, no unit for `imageCountMoreThan`, and
/// neither without a count type (a `keep` rule that keeps every image it
/// selects).
fn parse_count(
    field: &dyn Fn(&str) -> String,
    count_type: Option<&str>,
    count_unit: Option<&str>,
    count_number: Option<u64>,
    action: RuleAction,
) -> Result<Count, PolicyError> {
    let Some(count_type) = count_type else {
        if action != RuleAction::Keep {
            return Err(invalid(field("countType"), "is required"));
        }
        for (name, given) in [
            ("countUnit", count_unit.is_some()),
            ("countNumber", count_number.is_some()),
        ] {
            if given {
                return Err(invalid(
                    field(name),
                    "needs a `countType`; a `keep` rule without one keeps every image it selects",
                ));
            }
        }
        return Ok(Count::Every);
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
