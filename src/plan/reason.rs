//! Why: the reason for every decision, as data and as a sentence.
//!
//! A [`Reason`] is a rule's [`Verdict`], or an image's relation to another
//! whose fate it follows; a [`Protection`] is what keeps an image the
//! reason would delete or archive. Each displays as one sentence for
//! people. No I/O.

use std::fmt;

use crate::model::{ImageStatus, Since};
use crate::policy::{Count, Rule, RuleAction};

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
    /// first) of the `selected` images that the rule selects.
    Count {
        rule: &'a Rule,
        rank: u64,
        selected: u64,
        keep: u64,
    },
    /// `sinceImagePushed`, `sinceImagePulled`, `sinceImageTransitioned`:
    /// the image's age (since what the rule's count type says) against the
    /// rule's limit.
    Age { rule: &'a Rule, age: Age, days: u64 },
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
    pub(super) fn new(rule: &'a Rule, rank: u64, selected: u64, age: Age) -> Verdict<'a> {
        match rule.count {
            Count::ImagesMoreThan(keep) => Verdict::Count {
                rule,
                rank,
                selected,
                keep,
            },
            Count::PushedMoreThanDaysAgo(days)
            | Count::PulledMoreThanDaysAgo(days)
            | Count::TransitionedMoreThanDaysAgo(days) => Verdict::Age { rule, age, days },
        }
    }

    /// Whether the rule's condition holds for the image, so that its
    /// action applies: the one place the count and age comparisons are
    /// made. An age of exactly N days is not more than N days.
    pub fn met(&self) -> bool {
        match self {
            Verdict::Count { rank, keep, .. } => rank > keep,
            Verdict::Age { age, days, .. } => age
                .millis
                .is_some_and(|age| i128::from(age) > i128::from(*days) * MILLIS_PER_DAY),
        }
    }

    /// The rule that gave the verdict.
    pub fn rule(&self) -> &'a Rule {
        match self {
            Verdict::Count { rule, .. } | Verdict::Age { rule, .. } => rule,
        }
    }
}

/// "expires" or "archives", for a rule's sentence.
fn verb(rule: &Rule) -> &'static str {
    match rule.action {
        RuleAction::Expire => "expires",
        RuleAction::Transition => "archives",
    }
}

impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Count {
                rule,
                rank,
                selected,
                keep,
            } => {
                let verdict = if self.met() { "beyond" } else { "within" };
                let rest = match rule.action {
                    RuleAction::Expire => "",
                    RuleAction::Transition => " active and archives the rest",
                };
                write!(
                    f,
                    "rule {} keeps the newest {keep} of {}{rest}; this is number {rank} of {selected}, {verdict} the count",
                    rule.priority, rule.tags
                )
            }
            Verdict::Age { rule, age, days } => {
                let (measured, what) = match rule.count {
                    Count::PulledMoreThanDaysAgo(_) => ("last pulled", "lastRecordedPullTime"),
                    Count::TransitionedMoreThanDaysAgo(_) => ("archived", "lastArchivedAt"),
                    _ => ("pushed", "imagePushedAt"),
                };
                write!(
                    f,
                    "rule {} {} {} {measured} more than {days} days ago; ",
                    rule.priority,
                    verb(rule),
                    rule.tags
                )?;
                let Some(millis) = age.millis else {
                    return write!(f, "ECR gave no {what} for this one, so it is kept");
                };
                let age_days = millis as f64 / MILLIS_PER_DAY as f64;
                let verdict = if self.met() {
                    "older than"
                } else {
                    "not older than"
                };
                let pulls = matches!(rule.count, Count::PulledMoreThanDaysAgo(_));
                let (event, after) = match age.since {
                    Since::Pull => ("last pulled", ""),
                    Since::Archive => ("archived", ""),
                    Since::Restore if pulls => {
                        ("restored from the archive", " and not pulled since")
                    }
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
    }
}
