//! Per-repository rules, ecr-gc extensions in `settings`:
//!
//! * `overrides`: a list of `{"repositories": [globs], "rules": [...]}`; a
//!   repository takes the rules of the first override with a glob that
//!   matches its name, else the document's. Each override's rules are
//!   checked as the document's are, and refusals name the override.
//! * `policySource: "repository"`: a repository's own lifecycle policy
//!   (read by the engine with GetLifecyclePolicy) comes before both.
//!
//! Whatever the rules, the rest of `settings` (the repository globs, the
//! grace period, the limits, the in-use sources) applies to every
//! repository: an override or a repository's own policy chooses rules,
//! never protections. No I/O.

use std::borrow::Cow;

use serde_json::Value;

use super::fields::{Fields, kind};
use super::pattern::Pattern;
use super::{Policy, PolicyError, Rule, invalid, parse_rules};

/// One entry of `settings.overrides`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub repositories: Vec<Pattern>,
    pub rules: Vec<Rule>,
}

/// `settings.policySource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicySource {
    /// `document` (the default): the document's rules, or an override's.
    #[default]
    Document,
    /// `repository`: each repository's own lifecycle policy when it has
    /// one; else as `document`.
    Repository,
}

/// Where the rules a repository is planned under come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesFrom {
    Document,
    /// `settings.overrides[i]`.
    Override(usize),
    /// The repository's own lifecycle policy.
    Repository,
}

impl std::fmt::Display for RulesFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RulesFrom::Document => f.write_str("the policy document's rules"),
            RulesFrom::Override(i) => write!(f, "settings.overrides[{i}]"),
            RulesFrom::Repository => f.write_str("the repository's own lifecycle policy"),
        }
    }
}

impl Policy {
    /// The rules of the first override that selects `repository`, else the
    /// document's, and which they are.
    pub fn rules_for(&self, repository: &str) -> (&[Rule], RulesFrom) {
        self.settings
            .overrides
            .iter()
            .enumerate()
            .find(|(_, o)| o.repositories.iter().any(|p| p.matches(repository)))
            .map_or((self.rules.as_slice(), RulesFrom::Document), |(i, o)| {
                (o.rules.as_slice(), RulesFrom::Override(i))
            })
    }

    /// The policy `repository` is planned under when its own lifecycle
    /// policy is not used: its override's rules with the document's
    /// settings, or the document itself.
    pub fn for_repository(&self, repository: &str) -> (Cow<'_, Policy>, RulesFrom) {
        match self.rules_for(repository) {
            (_, RulesFrom::Document) => (Cow::Borrowed(self), RulesFrom::Document),
            (rules, from) => (Cow::Owned(self.with_rules(rules.to_vec())), from),
        }
    }

    /// These rules, with this policy's settings.
    pub fn with_rules(&self, rules: Vec<Rule>) -> Policy {
        Policy {
            rules,
            settings: self.settings.clone(),
        }
    }

    /// Every rule set: the document's, then each override's.
    pub fn rule_sets(&self) -> impl Iterator<Item = &[Rule]> {
        std::iter::once(self.rules.as_slice())
            .chain(self.settings.overrides.iter().map(|o| o.rules.as_slice()))
    }

    /// Parses the rules of a repository's own lifecycle policy (the
    /// `lifecyclePolicyText` of GetLifecyclePolicy): a document of `rules`
    /// only, checked as the document's are, and native: ECR holds no
    /// extension, so a text with one did not come from ECR.
    pub fn repository_rules(text: &str) -> Result<Vec<Rule>, PolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let mut doc = Fields::new("lifecyclePolicyText".into(), value, "a lifecycle policy")?;
        let rules = doc.take("rules");
        doc.finish("rules")?;
        let rules = match rules {
            Some(Value::Array(rules)) if !rules.is_empty() => parse_rules("", rules)?,
            _ => {
                return Err(invalid(
                    "lifecyclePolicyText",
                    "must hold a non-empty `rules` array",
                ));
            }
        };
        if let Some(rule) = rules.iter().find(|r| !r.extensions.is_empty()) {
            return Err(invalid(
                format!("lifecyclePolicyText: rulePriority {}", rule.priority),
                format!(
                    "uses {}, which ECR's own lifecycle policies cannot hold",
                    rule.extensions[0]
                ),
            ));
        }
        Ok(rules)
    }
}

/// `settings.overrides`.
pub(super) fn parse_overrides(value: Value) -> Result<Vec<Override>, PolicyError> {
    let Value::Array(items) = value else {
        return Err(invalid(
            "settings.overrides",
            format!(
                "must be an array of {{\"repositories\": [...], \"rules\": [...]}}, got {}",
                kind(&value)
            ),
        ));
    };
    let mut overrides = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("settings.overrides[{i}]");
        let mut fields = Fields::new(at.clone(), item, "an override")?;
        let repositories = fields.string_list("repositories")?;
        let rules = fields.take("rules");
        fields.finish("repositories, rules")?;
        let Some(repositories) = repositories else {
            return Err(invalid(
                &at,
                "`repositories` is required: the globs of the repositories this override's rules are for",
            ));
        };
        let rules = match rules {
            Some(Value::Array(rules)) if !rules.is_empty() => {
                parse_rules(&format!("{at}."), rules)?
            }
            _ => {
                return Err(invalid(
                    format!("{at}.rules"),
                    "must be a non-empty array of rules",
                ));
            }
        };
        overrides.push(Override {
            repositories: repositories.iter().map(|p| Pattern::new(p)).collect(),
            rules,
        });
    }
    Ok(overrides)
}

/// `settings.policySource`: `document` or `repository`.
pub(super) fn parse_policy_source(value: Option<&str>) -> Result<PolicySource, PolicyError> {
    match value {
        None | Some("document") => Ok(PolicySource::Document),
        Some("repository") => Ok(PolicySource::Repository),
        Some(other) => Err(invalid(
            "settings.policySource",
            format!("unknown source `{other}`; expected `document` or `repository`"),
        )),
    }
}
