//! How an `imageCountMoreThan` rule ranks the images it selects: newest
//! first by push (ECR's only order) or by semantic version (`orderBy`), and
//! counted as one group or per group (`groupBy`). Both are ecr-gc
//! extensions.
//!
//! Both read an image's *matching tags* for the rule: the tags that match
//! at least one entry of its tag list (every tag for `tagStatus: any`).
//! An image's version is the highest version among them
//! ([`super::version`]). Its group is, for `groupBy.tagRegex`, the named
//! group `group` of the first matching tag (in ascending order) that the
//! pattern matches whole; for `groupBy.semver`, its version's major (and
//! minor). An image with no group is not selected by the rule. No I/O.

use std::fmt;

use super::tag_regex::TagRegex;
use super::version::Version;
use super::{Rule, TagSelector};

/// The capture group of `groupBy.tagRegex` that names the group.
pub const GROUP: &str = "group";

/// `selection.orderBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// `pushedAt` (the default, and ECR's order): newest push first.
    #[default]
    PushedAt,
    /// `semver`: highest version first; images without a version after
    /// every versioned one, newest push first.
    Semver,
}

/// `selection.groupBy`.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// `{"tagRegex": R}`: R's named group `group`.
    TagRegex(TagRegex),
    /// `{"semver": "major"}`.
    Major,
    /// `{"semver": "minor"}`: major and minor.
    Minor,
}

/// Which group an image is counted in: one or two pieces of its tags
/// (the capture; the major; the major and minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Group<'a>(pub &'a str, pub &'a str);

/// Where an image stands in a rule's count: its group, then its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankKey<'a> {
    pub group: Group<'a>,
    /// Set only when the rule orders by version.
    pub version: Option<Version<'a>>,
}

impl Rule {
    /// Whether the rule ranks by push time over one group, as ECR does, so
    /// the planner needs no keys.
    pub fn ranks_by_push(&self) -> bool {
        self.order_by == OrderBy::PushedAt && self.group_by.is_none()
    }

    /// The highest version among the image's matching tags.
    pub fn version<'t>(&self, tags: &'t [String]) -> Option<Version<'t>> {
        // Parsing is cheaper than a regex, and most tags are not versions.
        tags.iter()
            .filter_map(|tag| Version::parse(tag))
            .filter(|version| self.tags.matches_tag(version.tag))
            .max()
    }

    /// Where an image with these tags (one the rule selects) stands in the
    /// rule's count; `None` when it has no group, so the rule does not
    /// select it after all.
    pub fn rank_key<'t>(&self, tags: &'t [String]) -> Option<RankKey<'t>> {
        let version = match (self.order_by, &self.group_by) {
            (OrderBy::Semver, _) | (_, Some(GroupBy::Major | GroupBy::Minor)) => self.version(tags),
            _ => None,
        };
        let group = match &self.group_by {
            None => Group::default(),
            Some(GroupBy::Major) => Group(version?.major, ""),
            Some(GroupBy::Minor) => {
                let version = version?;
                Group(version.major, version.minor)
            }
            Some(GroupBy::TagRegex(regex)) => Group(first_capture(&self.tags, regex, tags)?, ""),
        };
        Some(RankKey {
            group,
            version: if self.order_by == OrderBy::Semver {
                version
            } else {
                None
            },
        })
    }

    /// What an `imageCountMoreThan` rule keeping `n` keeps, in words: the
    /// order ("newest 3", "3 highest versions") and the grouping (" per
    /// minor version", or nothing).
    pub fn ranking(&self, n: u64) -> (String, String) {
        let order = match self.order_by {
            OrderBy::PushedAt => format!("newest {n}"),
            OrderBy::Semver => format!("{n} highest versions"),
        };
        let per = self
            .group_by
            .as_ref()
            .map(|g| format!(" per {g}"))
            .unwrap_or_default();
        (order, per)
    }

    /// The group as people read it, for this rule's `groupBy`.
    pub fn describe_group(&self, group: Group<'_>) -> String {
        match &self.group_by {
            None => String::new(),
            Some(GroupBy::TagRegex(_)) => format!("group \"{}\"", group.0),
            Some(GroupBy::Major) => format!("major version {}", group.0),
            Some(GroupBy::Minor) => format!("minor version {}.{}", group.0, group.1),
        }
    }
}

/// `groupBy.tagRegex`: the capture of the first matching tag, in ascending
/// order, that the pattern matches whole with the group taking part.
fn first_capture<'t>(
    selector: &TagSelector,
    regex: &TagRegex,
    tags: &'t [String],
) -> Option<&'t str> {
    tags.iter()
        .filter(|tag| selector.matches_tag(tag))
        .filter_map(|tag| regex.capture(tag, GROUP).map(|group| (tag, group)))
        .min_by(|a, b| a.0.cmp(b.0))
        .map(|(_, group)| group)
}

impl fmt::Display for OrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderBy::PushedAt => "pushedAt",
            OrderBy::Semver => "semver",
        })
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupBy::TagRegex(regex) => write!(f, "the regex group of \"{}\"", regex.as_str()),
            GroupBy::Major => f.write_str("major version"),
            GroupBy::Minor => f.write_str("minor version"),
        }
    }
}
