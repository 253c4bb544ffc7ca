//! Acting on a surveyed repository's plan: compare, then delete and
//! archive.
//!
//! Every planned image is re-read just before, deletions and transitions
//! together, by whichever costs fewer calls (by id, 100 a call, or the
//! repository's listing again; `aws::ecr::Reread`). One that is gone, whose tags
//! changed, or whose storage class changed since the plan is skipped and
//! logged: a tag added after the plan saves its image, and a restore after
//! the plan saves an archived image from deletion. Then the deletions
//! (indexes before their children) and the transitions (one call each;
//! children go with their index), and every outcome is recorded.

use std::collections::{HashMap, HashSet};

use crate::aws::ecr::{Current, DeleteOutcome, Ecr, Listed, TransitionOutcome};
use crate::model::ImageStatus;
use crate::run::lines::{self, LogSink};
use crate::run::report::{PlannedImage, RepositoryError, RepositoryReport, SkippedImage};

/// Deletes and archives a surveyed repository's planned images,
/// compare-and-act, and records what ECR answered.
pub async fn apply(ecr: &Ecr, out: &mut RepositoryReport, log: &dyn LogSink) {
    if out.planned.is_empty() && out.planned_transitions.is_empty() {
        return;
    }
    if ecr.time_is_up() {
        let left: Vec<SkippedImage> = out
            .planned
            .iter()
            .chain(&out.planned_transitions)
            .map(not_attempted)
            .collect();
        for skipped in &left {
            log.emit(lines::image_skipped(&out.repository_name, skipped));
        }
        out.unfinished = Some(unfinished(out.planned.len(), out.planned_transitions.len()));
        out.skipped.extend(left);
        return;
    }
    let Some((deletes, transitions)) = compare(ecr, out, log).await else {
        return;
    };
    let (mut deletes_left, mut transitions_left) = (0, 0);
    if !deletes.is_empty() {
        let (outcome, held_children) =
            delete_in_two_phases(ecr, &out.repository_name, &out.planned, deletes).await;
        deletes_left = record(out, outcome, held_children, log);
    }
    if !transitions.is_empty() {
        let (outcome, held_children) = transition_units(ecr, out, transitions).await;
        transitions_left = record_transitions(out, outcome, held_children, log);
    }
    if deletes_left + transitions_left > 0 {
        out.unfinished = Some(unfinished(deletes_left, transitions_left));
    }
}

/// Re-reads the planned images and returns the digests still as planned,
/// to delete and to archive; the others are skipped and logged. `None`
/// when the re-read failed: the repository's error, and nothing is done.
async fn compare(
    ecr: &Ecr,
    out: &mut RepositoryReport,
    log: &dyn LogSink,
) -> Option<(Vec<String>, Vec<String>)> {
    let digests: Vec<String> = out
        .planned
        .iter()
        .chain(&out.planned_transitions)
        .map(|p| p.image_digest.clone())
        .collect();
    let current = match ecr
        .current(&out.repository_name, &digests, listed(out))
        .await
    {
        Ok(current) => current,
        Err(error) => {
            out.error = Some(RepositoryError {
                error_code: error.code().to_owned(),
                error_message: format!(
                    "re-reading the planned images before acting failed, so nothing was deleted or archived: {error}"
                ),
            });
            return None;
        }
    };
    let mut kept = |planned: &PlannedImage, archiving: bool| {
        let now = current.get(&planned.image_digest);
        let skipped = changed(planned, now, archiving, current.active_only)?;
        log.emit(lines::image_skipped(&out.repository_name, &skipped));
        out.skipped.push(skipped);
        Some(())
    };
    let deletes = out
        .planned
        .iter()
        .filter(|p| kept(p, false).is_none())
        .map(|p| p.image_digest.clone())
        .collect();
    let transitions = out
        .planned_transitions
        .iter()
        .filter(|p| kept(p, true).is_none())
        .map(|p| p.image_digest.clone())
        .collect();
    Some((deletes, transitions))
}

/// What the survey listed: the images a listing again would return, and
/// whether it must show the archive (a planned image is not `ACTIVE`; then
/// the survey listed the archive too, and `images_scanned` counts it).
fn listed(out: &RepositoryReport) -> Listed {
    let archived = out
        .planned
        .iter()
        .chain(&out.planned_transitions)
        .any(|p| p.image_status != ImageStatus::Active);
    Listed {
        images: if archived {
            out.images_scanned
        } else {
            out.images_active
        },
        archived,
    }
}

/// Why a planned image is no longer to be acted on, if it is not.
/// `active_only`: the re-read listed `ACTIVE` images only, so an absent
/// one may have been archived.
fn changed(
    planned: &PlannedImage,
    now: Option<&Current>,
    archiving: bool,
    active_only: bool,
) -> Option<SkippedImage> {
    let skip = |current: Option<Vec<String>>, reason: String| SkippedImage {
        image_digest: planned.image_digest.clone(),
        image_tags: planned.image_tags.clone(),
        current_image_tags: current,
        reason,
    };
    let Some(now) = now else {
        let reason = if active_only {
            "the image is no longer an ACTIVE image in the repository (deleted or archived)"
        } else {
            "the image is no longer in the repository"
        };
        return Some(skip(None, reason.into()));
    };
    if !same_tags(&now.tags, &planned.image_tags) {
        return Some(skip(
            Some(now.tags.clone()),
            "its tags changed since the plan".into(),
        ));
    }
    let expected = if archiving {
        ImageStatus::Active
    } else {
        planned.image_status
    };
    (now.status != expected).then(|| {
        skip(
            Some(now.tags.clone()),
            format!(
                "its imageStatus changed since the plan: {} then, {} now",
                planned.image_status.as_str(),
                now.status.as_str()
            ),
        )
    })
}

/// Deletes the candidates: indexes (and everything else) first; their
/// children in a later call, and only those whose every index ECR confirmed
/// gone, so ECR never answers ImageReferencedByManifestList. Returns what
/// ECR answered for both calls, and the children held because an index of
/// theirs remains.
async fn delete_in_two_phases(
    ecr: &Ecr,
    name: &str,
    planned: &[PlannedImage],
    candidates: Vec<String>,
) -> (DeleteOutcome, Vec<SkippedImage>) {
    let by_digest = by_digest(planned);
    let (children, first): (Vec<String>, Vec<String>) = candidates.into_iter().partition(|d| {
        by_digest
            .get(d.as_str())
            .is_some_and(|p| !p.index_digests.is_empty())
    });
    let mut outcome = ecr.delete(name, &first).await;
    let gone: HashSet<&str> = outcome.deleted.iter().map(String::as_str).collect();
    let mut second = Vec::with_capacity(children.len());
    let mut held_children = Vec::new();
    for child in children {
        let Some(planned) = by_digest.get(child.as_str()) else {
            unreachable!("a candidate is one of the planned images");
        };
        // Every index that lists it must be gone, not only one: ECR refuses
        // to delete a child that a remaining index lists.
        match planned
            .index_digests
            .iter()
            .find(|index| !gone.contains(index.as_str()))
        {
            None => second.push(child),
            Some(index) => {
                held_children.push(held(planned, &format!("its index {index} was not deleted")))
            }
        }
    }
    if !second.is_empty() {
        outcome.extend(ecr.delete(name, &second).await);
    }
    (outcome, held_children)
}

/// Archives the candidates that stand alone (indexes, images, referrers),
/// one call each. A child is not sent: archiving its index archives it,
/// so it counts as archived once ECR confirms one of its indexes archived,
/// and is held otherwise.
async fn transition_units(
    ecr: &Ecr,
    out: &RepositoryReport,
    candidates: Vec<String>,
) -> (TransitionOutcome, Vec<SkippedImage>) {
    let by_digest = by_digest(&out.planned_transitions);
    let (children, units): (Vec<String>, Vec<String>) = candidates.into_iter().partition(|d| {
        by_digest
            .get(d.as_str())
            .is_some_and(|p| !p.index_digests.is_empty())
    });
    let mut outcome = ecr.transition(&out.repository_name, &units).await;
    let archived: HashSet<String> = outcome.archived.iter().cloned().collect();
    let mut held_children = Vec::new();
    for child in children {
        let Some(planned) = by_digest.get(child.as_str()) else {
            unreachable!("a candidate is one of the planned images");
        };
        if planned.index_digests.iter().any(|i| archived.contains(i)) {
            outcome.archived.push(child);
        } else {
            held_children.push(held(planned, "none of its indexes was archived"));
        }
    }
    (outcome, held_children)
}

fn by_digest(planned: &[PlannedImage]) -> HashMap<&str, &PlannedImage> {
    planned
        .iter()
        .map(|p| (p.image_digest.as_str(), p))
        .collect()
}

fn held(planned: &PlannedImage, reason: &str) -> SkippedImage {
    SkippedImage {
        image_digest: planned.image_digest.clone(),
        image_tags: planned.image_tags.clone(),
        current_image_tags: Some(planned.image_tags.clone()),
        reason: reason.to_owned(),
    }
}

/// Records and logs what the deletes left: held children, images not
/// attempted, already gone, deleted and failed. Returns how many were not
/// attempted (the repository is then unfinished).
fn record(
    out: &mut RepositoryReport,
    outcome: DeleteOutcome,
    held_children: Vec<SkippedImage>,
    log: &dyn LogSink,
) -> usize {
    let answered = Answered {
        done: &outcome.deleted,
        not_attempted: &outcome.not_attempted,
        already_gone: &outcome.already_gone,
        held_children,
    };
    let name = &out.repository_name;
    let (skipped, deleted) = settle(name, &out.planned, answered, lines::image_deleted, log);
    for failure in &outcome.failures {
        log.emit(lines::image_failed(name, failure));
    }
    out.skipped.extend(skipped);
    out.bytes_reclaimed = deleted.iter().filter_map(|p| p.image_size_in_bytes).sum();
    out.deleted = deleted;
    out.failed = outcome.failures;
    outcome.not_attempted.len()
}

/// Records and logs what the transitions left, as [`record`] does for
/// deletions.
fn record_transitions(
    out: &mut RepositoryReport,
    outcome: TransitionOutcome,
    held_children: Vec<SkippedImage>,
    log: &dyn LogSink,
) -> usize {
    let answered = Answered {
        done: &outcome.archived,
        not_attempted: &outcome.not_attempted,
        already_gone: &outcome.already_gone,
        held_children,
    };
    let name = &out.repository_name;
    let planned = &out.planned_transitions;
    let (skipped, archived) = settle(name, planned, answered, lines::image_transitioned, log);
    for failure in &outcome.failures {
        log.emit(lines::image_not_transitioned(name, failure));
    }
    out.skipped.extend(skipped);
    out.bytes_archived = archived.iter().filter_map(|p| p.image_size_in_bytes).sum();
    out.transitioned = archived;
    out.transition_failed = outcome.failures;
    outcome.not_attempted.len()
}

/// What ECR answered for one kind of action, by digest, and the children
/// held back from it.
struct Answered<'o> {
    done: &'o [String],
    not_attempted: &'o [String],
    already_gone: &'o [String],
    held_children: Vec<SkippedImage>,
}

/// Settles one kind of action against its `planned` images: the held, the
/// not attempted (the deadline) and the already gone are logged and
/// returned as skipped; the done are logged with `line` and returned.
fn settle(
    name: &str,
    planned: &[PlannedImage],
    answered: Answered<'_>,
    line: fn(&str, &PlannedImage, bool) -> lines::Line,
    log: &dyn LogSink,
) -> (Vec<SkippedImage>, Vec<PlannedImage>) {
    let by_digest = by_digest(planned);
    let planned_of = |digests: &[String]| -> Vec<&PlannedImage> {
        digests
            .iter()
            .filter_map(|d| by_digest.get(d.as_str()).copied())
            .collect()
    };
    let mut skipped = answered.held_children;
    skipped.extend(
        planned_of(answered.not_attempted)
            .into_iter()
            .map(not_attempted),
    );
    skipped.extend(
        planned_of(answered.already_gone)
            .into_iter()
            .map(|p| SkippedImage {
                image_digest: p.image_digest.clone(),
                image_tags: p.image_tags.clone(),
                current_image_tags: None,
                reason: "already gone: ECR answered ImageNotFound".into(),
            }),
    );
    log_skipped(name, &skipped, log);
    let done = planned_of(answered.done);
    for image in &done {
        log.emit(line(name, image, false));
    }
    (skipped, done.into_iter().cloned().collect())
}

fn log_skipped(name: &str, skipped: &[SkippedImage], log: &dyn LogSink) {
    for image in skipped {
        if image.current_image_tags.is_none() {
            log.emit(lines::image_already_gone(name, image));
        } else {
            log.emit(lines::image_skipped(name, image));
        }
    }
}

/// Why a repository did not finish: planned changes left for the next run.
fn unfinished(deletes: usize, transitions: usize) -> String {
    let left = match (deletes, transitions) {
        (_, 0) => format!("{deletes} planned deletions were"),
        (0, _) => format!("{transitions} planned transitions were"),
        _ => format!("{deletes} planned deletions and {transitions} planned transitions were"),
    };
    format!("{left} not attempted: the invocation's deadline was near; the next run finishes them")
}

fn not_attempted(planned: &PlannedImage) -> SkippedImage {
    SkippedImage {
        image_digest: planned.image_digest.clone(),
        image_tags: planned.image_tags.clone(),
        current_image_tags: Some(planned.image_tags.clone()),
        reason: "not attempted: the invocation's deadline was near; the next run finishes it"
            .into(),
    }
}

fn same_tags(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}
