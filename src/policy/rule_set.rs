//! The checks that span rules, as ECR makes them, and the budget of
//! regular expressions in one document.

use super::rank::GroupBy;
use super::tag_regex::MAX_REGEXES;
use super::{Count, PolicyError, Rule, RuleAction, StorageClass, TagFilter, TagSelector, invalid};

/// The checks that span rules, each within one storage class (the rules of
/// one class never select the images of the other, as the user guide's
/// archive-then-expire example shows; a `keep` rule of either class is
/// among both): unique priorities, one `untagged` rule that acts, and a
/// rule that decides every image last. Then the budget of regular
/// expressions.
pub(super) fn check_rule_set(base: &str, rules: &[(usize, Rule)]) -> Result<(), PolicyError> {
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let of_class: Vec<&(usize, Rule)> = rules
            .iter()
            .filter(|(_, rule)| {
                rule.storage_class == class || rule.storage_class == StorageClass::Either
            })
            .collect();
        check_class(base, &of_class, class)?;
    }
    Ok(())
}

/// The document's budget of regular expressions, over every rule set.
pub(super) fn check_regex_budget<'r>(
    rules: impl Iterator<Item = &'r Rule>,
) -> Result<(), PolicyError> {
    let regexes: usize = rules.map(regex_count).sum();
    if regexes > MAX_REGEXES {
        return Err(invalid(
            "rules",
            format!(
                "the policy has {regexes} regular expressions (tagRegexList and groupBy.tagRegex together, overrides included); at most {MAX_REGEXES} are allowed"
            ),
        ));
    }
    Ok(())
}

fn regex_count(rule: &Rule) -> usize {
    let list = match &rule.tags {
        TagSelector::Tagged(TagFilter::Regexes(list)) => list.len(),
        _ => 0,
    };
    list + usize::from(matches!(rule.group_by, Some(GroupBy::TagRegex(_))))
}

/// Whether the rule decides every image it selects, so that no lower rule
/// of its class could decide any: ECR's `any` rule, and a `keep` rule
/// with tagStatus `any` and no count. (A `keep` rule with a count leaves
/// the images outside its count to the rules below it.)
fn decides_everything(rule: &Rule) -> bool {
    rule.tags == TagSelector::Any && (rule.action != RuleAction::Keep || rule.count == Count::Every)
}

fn check_class(
    base: &str,
    rules: &[&(usize, Rule)],
    class: StorageClass,
) -> Result<(), PolicyError> {
    let at = |index: usize, rule: &Rule| {
        format!("{base}rules[{index}] (rulePriority {})", rule.priority)
    };
    let among = match class {
        StorageClass::Archive => " among the rules for storageClass `archive`",
        _ => "",
    };
    for (i, (index, rule)) in rules.iter().map(|r| (&r.0, &r.1)).enumerate() {
        if let Some((other, _)) = rules[..i].iter().find(|(_, r)| r.priority == rule.priority) {
            return Err(invalid(
                format!("{}: rulePriority", at(*index, rule)),
                format!(
                    "duplicates the rulePriority of {base}rules[{other}]; priorities must be unique{among}"
                ),
            ));
        }
        // Keep rules may overlap: keeping is never in conflict.
        let acts_on_untagged =
            |r: &Rule| r.tags == TagSelector::Untagged && r.action != RuleAction::Keep;
        if acts_on_untagged(rule)
            && let Some((other, _)) = rules[..i].iter().find(|(_, r)| acts_on_untagged(r))
        {
            return Err(invalid(
                format!("{}: selection.tagStatus", at(*index, rule)),
                format!(
                    "{base}rules[{other}] already expires or archives untagged images; only one rule may{among}"
                ),
            ));
        }
    }
    let highest = rules.iter().map(|(_, r)| r.priority).max().unwrap_or(0);
    if let Some((index, rule)) = rules
        .iter()
        .find(|(_, r)| decides_everything(r) && r.priority != highest)
    {
        let scope = match class {
            StorageClass::Archive => "of the rules for storageClass `archive`",
            _ => "in the policy",
        };
        let what = if rule.action == RuleAction::Keep {
            "a `keep` rule with tagStatus `any` and no countType keeps every image, so it"
        } else {
            "a rule with tagStatus `any`"
        };
        return Err(invalid(
            format!("{}: selection.tagStatus", at(*index, rule)),
            format!("{what} must have the highest rulePriority {scope}, and {highest} is higher"),
        ));
    }
    Ok(())
}
