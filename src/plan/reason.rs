//! Why: the reason for every decision, as data and as a sentence.
//!
//! A [`Reason`] is a rule's [`Verdict`], or an image's relation to another
//! whose fate it follows; a [`Protection`] is what keeps an image the
//! reason would delete or archive. Each displays as one sentence for
//! people. No I/O.

use std::fmt;

use crate::model::{Image, ImageStatus, Since};
use crate::policy::rank::OrderBy;
use crate::policy::{Count, Rule, RuleAction, StorageClass};

pub(super) const MILLIS_PER_DAY: i128 = 86_400_000;

/// What happens to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deleted (`expire`).
    Delete,
    /// Moved to the archive storage class (`transition`).
    Transition,
    Keep,
}

impl Action {
    /// What it does to an image, as people say it: "delete", "archive",
    /// "keep".
    pub fn imperative(&self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Transition => "archive",
            Action::Keep => "keep",
        }
    }

    /// What it does to an image, as a past participle: "deleted".
    pub fn done(&self) -> &'static str {
        match self {
            Action::Delete => "deleted",
            Action::Transition => "archived",
            Action::Keep => "kept",
        }
    }
}

/// Why an image the rules delete or archive is kept all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// A workload uses it: `workloads` such as `ecs:prod/web`.
    UsedBy { workloads: Vec<String> },
    /// Pushed (or restored) less than `minutes` ago, or, by a skewed clock,
    /// in the future.
    GracePeriod { age_millis: i64, minutes: u64 },
    /// Archiving an index archives its children with it, so a child's
    /// protection keeps the index: the child's digest and its protection
    /// (boxed, so that a million decisions stay small).
    Child(Box<(String, Protection)>),
    /// Its storage class does not allow the action: it is being restored
    /// (or in a status ecr-gc does not know), or already archived.
    Status { status: ImageStatus },
}

impl Protection {
    /// What kind of protection it is, as summaries count them.
    pub fn kind(&self) -> &'static str {
        match self {
            Protection::UsedBy { .. } => "in use",
            Protection::GracePeriod { .. } => "grace period",
            Protection::Child(_) => "protected child",
            Protection::Status { .. } => "storage status",
        }
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::UsedBy { workloads } => write!(f, "in use by {}", workloads.join(", ")),
            Protection::GracePeriod {
                age_millis,
                minutes,
            } => write!(
                f,
                "pushed {:.0} minutes ago, inside the {minutes}-minute grace period",
                (*age_millis as f64 / 60_000.0).max(0.0)
            ),
            Protection::Child(child) => write!(
                f,
                "its child {}, which archiving the index would archive too, is protected: {}",
                child.0, child.1
            ),
            Protection::Status {
                status: ImageStatus::Archived,
            } => f.write_str("it is already ARCHIVED"),
            Protection::Status { status } => write!(
                f,
                "its imageStatus is {}, and ecr-gc acts only on ACTIVE and ARCHIVED images",
                status.as_str()
            ),
        }
    }
}

/// Why an image is deleted, archived or kept: a rule's verdict on it, or
/// its relation to another image whose fate it follows.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason<'a> {
    NoRuleSelects,
    /// `ACTIVATING` (being restored) or unknown: no rule selects, counts or
    /// acts on it.
    NotSelectable {
        status: ImageStatus,
    },
    /// The first rule, by priority, that selects the image decides it.
    Rule(Verdict<'a>),
    /// A multi-arch child or a referrer: it goes with the image `of`
    /// (`fate` is what happens to it; `priority` is the rule that decided
    /// `of`). A child listed by several indexes goes with all of them
    /// (`with`, every index digest, `of` among them): it is kept if any is
    /// kept (`of` is then the first one kept), archived if any is archived,
    /// and deleted only when every one is.
    Follows {
        relation: Relation,
        of: String,
        with: Vec<String>,
        fate: Action,
        priority: Option<u32>,
    },
    /// A referrer whose subject is not in the repository.
    OrphanReferrer {
        subject: String,
        delete: bool,
    },
}

/// What a rule says of an image it decides: one variant per kind of
/// `countType`, each with its own evaluation ([`Verdict::met`]) and sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<'a> {
    /// `imageCountMoreThan`: the image is number `rank` (1-based, newest
    /// first by the rule's `orderBy`) of the `selected` images that the
    /// rule selects (in the image's group, with `groupBy`; the image tells
    /// which group, and its version).
    Count {
        rule: &'a Rule,
        rank: u64,
        selected: u64,
        keep: u64,
        image: &'a Image,
    },
    /// `sinceImagePushed`, `sinceImagePulled`, `sinceImageTransitioned`:
    /// the image's age (since what the rule's count type says) against the
    /// rule's limit.
    Age { rule: &'a Rule, age: Age, days: u64 },
    /// A `keep` rule without a count: it keeps every image it selects.
    Every { rule: &'a Rule },
}

/// How old an image is, as a rule measures it: `millis` since `since`, or
/// `None` when ECR gave no time to measure from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age {
    pub millis: Option<i64>,
    pub since: Since,
}

/// How a following image relates to the image it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    ChildOf,
    ReferrerOf,
}

impl Reason<'_> {
    /// What this reason does to the image, before any protection.
    pub fn action(&self) -> Action {
        match self {
            Reason::NoRuleSelects | Reason::NotSelectable { .. } => Action::Keep,
            Reason::Follows { fate, .. } => *fate,
            Reason::OrphanReferrer { delete: true, .. } => Action::Delete,
            Reason::OrphanReferrer { delete: false, .. } => Action::Keep,
            Reason::Rule(verdict) if !verdict.met() => Action::Keep,
            Reason::Rule(verdict) => match verdict.rule().action {
                RuleAction::Expire => Action::Delete,
                RuleAction::Transition => Action::Transition,
                RuleAction::Keep => Action::Keep,
            },
        }
    }

    /// The priority of the deciding rule: the rule that selects the image,
    /// or, for a child or referrer, the rule that decided what it follows.
    pub fn rule_priority(&self) -> Option<u32> {
        match self {
            Reason::NoRuleSelects
            | Reason::NotSelectable { .. }
            | Reason::OrphanReferrer { .. } => None,
            Reason::Rule(verdict) => Some(verdict.rule().priority),
            Reason::Follows { priority, .. } => *priority,
        }
    }
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoRuleSelects => f.write_str("no rule selects this image"),
            Reason::NotSelectable { status } => write!(
                f,
                "its imageStatus is {}: no rule selects, counts or acts on it until it is ACTIVE or ARCHIVED",
                status.as_str()
            ),
            Reason::Follows {
                relation: Relation::ChildOf,
                with,
                fate: Action::Delete,
                ..
            } if with.len() > 1 => write!(
                f,
                "a child of indexes {}, which are all deleted",
                with.join(", ")
            ),
            Reason::Follows {
                relation: Relation::ChildOf,
                of,
                fate,
                ..
            } => write!(f, "a child of index {of}, which is {}", fate.done()),
            Reason::Follows {
                relation: Relation::ReferrerOf,
                of,
                fate,
                ..
            } => write!(
                f,
                "a referrer (signature, SBOM or attestation) of {of}, which is {}",
                fate.done()
            ),
            Reason::OrphanReferrer { subject, delete } => write!(
                f,
                "a referrer of {subject}, which is not in the repository; deleteOrphanReferrers is {}",
                if *delete { "on" } else { "off" }
            ),
            Reason::Rule(verdict) => verdict.fmt(f),
        }
    }
}

impl<'a> Verdict<'a> {
    /// The verdict of `rule` (by its `countType`) on an image that is
    /// number `rank` of the `selected` images it selects, of this `age` by
    /// what the count type measures.
    pub(super) fn new(
        rule: &'a Rule,
        rank: u64,
        selected: u64,
        age: Age,
        image: &'a Image,
    ) -> Verdict<'a> {
        match rule.count {
            Count::ImagesMoreThan(keep) => Verdict::Count {
                rule,
                rank,
                selected,
                keep,
                image,
            },
            Count::PushedMoreThanDaysAgo(days)
            | Count::PulledMoreThanDaysAgo(days)
            | Count::TransitionedMoreThanDaysAgo(days) => Verdict::Age { rule, age, days },
            Count::Every => Verdict::Every { rule },
        }
    }

    /// Whether the image is past the rule's count or age: the one place
    /// the count and age comparisons are made. An age of exactly N days is
    /// not more than N days.
    fn beyond(&self) -> bool {
        match self {
            Verdict::Count { rank, keep, .. } => rank > keep,
            Verdict::Age { age, days, .. } => age
                .millis
                .is_some_and(|age| i128::from(age) > i128::from(*days) * MILLIS_PER_DAY),
            Verdict::Every { .. } => false,
        }
    }

    /// Whether the rule's action applies to the image: an expire or
    /// transition rule acts on the images beyond its count or age, a keep
    /// rule on those within (which it then claims).
    pub fn met(&self) -> bool {
        match self.rule().action {
            RuleAction::Keep => !self.beyond(),
            RuleAction::Expire | RuleAction::Transition => self.beyond(),
        }
    }

    /// The rule that gave the verdict.
    pub fn rule(&self) -> &'a Rule {
        match self {
            Verdict::Count { rule, .. } | Verdict::Age { rule, .. } | Verdict::Every { rule } => {
                rule
            }
        }
    }
}

/// "expires", "archives" or "keeps", for a rule's sentence.
fn verb(rule: &Rule) -> &'static str {
    match rule.action {
        RuleAction::Expire => "expires",
        RuleAction::Transition => "archives",
        RuleAction::Keep => "keeps",
    }
}

/// After an unmet keep rule's sentence in a plan: why the image is kept
/// anyway.
const NOT_CLAIMED: &str =
    ", so that rule does not claim it, and no lower rule expires or archives it";

impl fmt::Display for Verdict<'_> {
    /// The rule's sentence as the deciding reason in a plan: an unmet keep
    /// rule explains an image no lower rule decided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.sentence(f)?;
        if self.rule().action == RuleAction::Keep && !self.met() {
            f.write_str(NOT_CLAIMED)?;
        }
        Ok(())
    }
}

/// A verdict's sentence with no word on other rules, for a rule considered
/// on its own (see [`Verdict::alone`]).
pub struct Alone<'v, 'a>(&'v Verdict<'a>);

impl fmt::Display for Alone<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.sentence(f)
    }
}

impl<'a> Verdict<'a> {
    /// The sentence of the rule as if it were the policy's only rule.
    pub fn alone(&self) -> Alone<'_, 'a> {
        Alone(self)
    }

    /// What the rule says of the image: its condition, and where the image
    /// stands against it.
    fn sentence(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Count {
                rule,
                rank,
                selected,
                keep,
                image,
            } => {
                let verdict = if self.beyond() { "beyond" } else { "within" };
                let rest = match rule.action {
                    RuleAction::Expire => "",
                    RuleAction::Transition => " active and archives the rest",
                    RuleAction::Keep => " and claims them from the rules below",
                };
                let (newest, per) = rule.ranking(*keep);
                write!(
                    f,
                    "rule {} keeps the {newest} of {}{per}{rest}; this is number {rank} of {selected}",
                    rule.priority, rule.tags
                )?;
                ranking(f, rule, image)?;
                write!(f, ", {verdict} the count")?;
            }
            Verdict::Every { rule } => {
                let class = match rule.storage_class {
                    StorageClass::Either => " in either storage class",
                    _ => "",
                };
                write!(
                    f,
                    "rule {} keeps every one of {}{class}",
                    rule.priority, rule.tags
                )?;
            }
            Verdict::Age { rule, age, days } => self.age_sentence(f, rule, *age, *days)?,
        }
        Ok(())
    }

    /// An age rule's sentence: its limit, then the image's age and from what.
    fn age_sentence(
        &self,
        f: &mut fmt::Formatter<'_>,
        rule: &Rule,
        age: Age,
        days: u64,
    ) -> fmt::Result {
        let (measured, what) = match rule.count {
            Count::PulledMoreThanDaysAgo(_) => ("last pulled", "lastRecordedPullTime"),
            Count::TransitionedMoreThanDaysAgo(_) => ("archived", "lastArchivedAt"),
            _ => ("pushed", "imagePushedAt"),
        };
        let limit = match rule.action {
            RuleAction::Keep => "at most",
            _ => "more than",
        };
        write!(
            f,
            "rule {} {} {} {measured} {limit} {days} days ago; ",
            rule.priority,
            verb(rule),
            rule.tags
        )?;
        let Some(millis) = age.millis else {
            return write!(f, "ECR gave no {what} for this one, so it is kept");
        };
        let age_days = millis as f64 / MILLIS_PER_DAY as f64;
        let verdict = if self.beyond() {
            "older than"
        } else {
            "not older than"
        };
        let pulls = matches!(rule.count, Count::PulledMoreThanDaysAgo(_));
        let (event, after) = match age.since {
            Since::Pull => ("last pulled", ""),
            Since::Archive => ("archived", ""),
            Since::Restore if pulls => ("restored from the archive", " and not pulled since"),
            Since::Restore => ("restored from the archive", ""),
            Since::Push if pulls => ("never pulled; it was pushed", ""),
            Since::Push => ("pushed", ""),
        };
        write!(
            f,
            "this was {event} {age_days:.1} days ago{after}, {verdict} that"
        )
    }
}

/// For a rule that ranks by version or counts per group: which group the
/// image is in, and its version.
fn ranking(f: &mut fmt::Formatter<'_>, rule: &Rule, image: &Image) -> fmt::Result {
    if rule.ranks_by_push() {
        return Ok(());
    }
    let Some(key) = rule.rank_key(&image.image_tags) else {
        return Ok(());
    };
    if rule.group_by.is_some() {
        write!(f, " in {}", rule.describe_group(key.group))?;
    }
    if rule.order_by == OrderBy::Semver {
        match rule.version(&image.image_tags) {
            Some(version) => write!(f, " (version {})", version.tag)?,
            None => f.write_str(" (no version among its tags, so after every versioned image)")?,
        }
    }
    Ok(())
}
