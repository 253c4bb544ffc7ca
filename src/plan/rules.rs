//! The rules phase: which rule decides each standalone image, by ECR's
//! semantics and ecr-gc's extensions. Each rule ranks the images it
//! selects (newest first, or by version, per group) and decides those no
//! higher rule decided; a keep rule decides only those it keeps. The
//! reasons are built once every rule has ranked.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::units::Place;
use super::{Decider, Decision, Reason, Verdict};
use crate::model::{Image, ImageStatus, Moment, Since};
use crate::plan::Age;
use crate::policy::rank::Group;
use crate::policy::version::Version;
use crate::policy::{Count, Rule, RuleAction};

/// Which rule decides a standalone image, its rank there, and how many
/// that rule ranked with it (in its group). Twelve bytes: the planner holds
/// one per image.
#[derive(Debug, Clone, Copy)]
struct Claim {
    /// An index into the policy's rules, [`Claim::UNDECIDED`], or a keep
    /// rule's index with [`Claim::TENTATIVE`] set: that rule selects the
    /// image but does not keep it, and explains it if no lower rule
    /// decides it.
    rule_id: u32,
    rank: u32,
    selected: u32,
}

impl Claim {
    const UNDECIDED: u32 = u32::MAX;
    const TENTATIVE: u32 = 1 << 31;
    const NONE: Claim = Claim {
        rule_id: Claim::UNDECIDED,
        rank: 0,
        selected: 0,
    };

    fn new(rule_id: u32, rank: u32, selected: u32) -> Claim {
        Claim {
            rule_id,
            rank,
            selected,
        }
    }

    /// Whether a lower rule may still decide the image.
    fn is_open(&self) -> bool {
        self.rule_id == Claim::UNDECIDED || self.rule_id & Claim::TENTATIVE != 0
    }

    /// The rule that explains the image, as an index that is past the end
    /// of the rules when none selects it.
    fn rule(&self) -> usize {
        match self.rule_id {
            Claim::UNDECIDED => usize::MAX,
            id => (id & !Claim::TENTATIVE) as usize,
        }
    }
}

/// The images a rule that orders by version or groups selects, `selected`
/// newest first, ranked: one list per group, each best first. An image
/// without a group is left out. Groups get small numbers, so the sort
/// compares integers, and versions only within a group; equal versions
/// keep their push order.
fn rank_by_keys(rule: &Rule, images: &[Image], selected: &[usize]) -> Vec<Vec<usize>> {
    let mut group_ids: HashMap<Group<'_>, u32> = HashMap::new();
    // (group, position in `selected`), and each position's version.
    let mut keyed: Vec<(u32, u32)> = Vec::with_capacity(selected.len());
    let mut versions: Vec<Option<Version<'_>>> = Vec::with_capacity(selected.len());
    for (position, &index) in (0u32..).zip(selected) {
        let Some(key) = rule.rank_key(&images[index].image_tags) else {
            versions.push(None);
            continue;
        };
        let next = saturate(group_ids.len());
        let group = *group_ids.entry(key.group).or_insert(next);
        keyed.push((group, position));
        versions.push(key.version);
    }
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(
                || match (&versions[a.1 as usize], &versions[b.1 as usize]) {
                    (Some(x), Some(y)) => y.cmp(x),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                },
            )
            .then_with(|| a.1.cmp(&b.1))
    });
    keyed
        .chunk_by(|a, b| a.0 == b.0)
        .map(|group| group.iter().map(|&(_, p)| selected[p as usize]).collect())
        .collect()
}

/// A count of images as a u32, saturating (a repository holds at most tens
/// of thousands; an offline listing a few million).
fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

impl<'a> Decider<'a, '_> {
    /// Standalone images, by the rules: each rule ranks every standalone
    /// image of its storage class it selects (newest first, `order`, or as
    /// its `orderBy` and `groupBy` say) and decides those no higher-priority
    /// rule decided; a keep rule decides only the images it keeps.
    pub(super) fn standalone(
        &self,
        places: &[Place],
        order: &[usize],
        decisions: &mut [Option<Decision<'a>>],
    ) {
        let images = self.images;
        // For each standalone image, the rule that decides it (by index),
        // its rank there and how many that rule ranked with it. Three
        // integers per image: at a million images this scratch is one of
        // the planner's largest allocations, so the reasons are built
        // later, and it is freed when this phase returns.
        let mut decided: Vec<Claim> = vec![Claim::NONE; images.len()];
        let mut ranked: Vec<usize> = Vec::new();
        // A policy has at most a few hundred rules (30,720 characters), so
        // a u32 numbers them.
        for (rule_id, rule) in (0u32..).zip(&self.policy.rules) {
            let selects = |index: &usize| {
                let image = &images[*index];
                places[*index] == Place::Standalone
                    && rule.storage_class.holds(image.image_status)
                    && rule.tags.selects(&image.image_tags)
            };
            ranked.clear();
            ranked.extend(order.iter().copied().filter(selects));
            if rule.ranks_by_push() {
                self.claim(rule_id, &ranked, &mut decided);
            } else {
                for group in rank_by_keys(rule, images, &ranked) {
                    self.claim(rule_id, &group, &mut decided);
                }
            }
        }
        for (index, place) in places.iter().enumerate() {
            if *place != Place::Standalone {
                continue;
            }
            let claim = decided[index];
            let image = &images[index];
            let reason = match self.policy.rules.get(claim.rule()) {
                None if matches!(
                    image.image_status,
                    ImageStatus::Active | ImageStatus::Archived
                ) =>
                {
                    Reason::NoRuleSelects
                }
                None => Reason::NotSelectable {
                    status: image.image_status,
                },
                Some(rule) => Reason::Rule(self.verdict(rule, claim.rank, claim.selected, index)),
            };
            decisions[index] = Some(self.decide(index, reason));
        }
    }

    /// The rule `rule_id` ranked these images, best first, as one group:
    /// it decides those no higher rule decided, except that a keep rule
    /// decides only those it keeps. An image a keep rule selects but does
    /// not keep remembers that rule, in case no lower rule decides it.
    fn claim(&self, rule_id: u32, ranked: &[usize], decided: &mut [Claim]) {
        let rule = &self.policy.rules[rule_id as usize];
        let selected = saturate(ranked.len());
        for (rank, &index) in (1u32..).zip(ranked) {
            let current = decided[index];
            if !current.is_open() {
                continue;
            }
            let keeps =
                rule.action != RuleAction::Keep || self.verdict(rule, rank, selected, index).met();
            decided[index] = match (keeps, current.rule_id) {
                (true, _) => Claim::new(rule_id, rank, selected),
                (false, Claim::UNDECIDED) => Claim::new(rule_id | Claim::TENTATIVE, rank, selected),
                (false, _) => current,
            };
        }
    }

    fn verdict(&self, rule: &'a Rule, rank: u32, selected: u32, index: usize) -> Verdict<'a> {
        let image = &self.images[index];
        Verdict::new(
            rule,
            u64::from(rank),
            u64::from(selected),
            self.age(rule, image),
            image,
        )
    }

    /// The image's age as the rule's count type measures it, and from
    /// what; `None` when ECR gave no time to measure from.
    fn age(&self, rule: &Rule, image: &Image) -> Age {
        let (at, since) = match rule.count {
            Count::ImagesMoreThan(_) | Count::PushedMoreThanDaysAgo(_) | Count::Every => {
                (Some(image.activated_at()), image.activated_since())
            }
            Count::PulledMoreThanDaysAgo(_) => {
                let (at, since) = image.last_used();
                (Some(at), since)
            }
            Count::TransitionedMoreThanDaysAgo(_) => {
                (image.last_archived_at.map(Moment::at), Since::Archive)
            }
        };
        Age {
            millis: at.map(|at| (self.now - at).num_milliseconds()),
            since,
        }
    }
}
