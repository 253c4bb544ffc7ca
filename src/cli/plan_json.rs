//! `plan --output json`: the plan as one pretty-printed JSON object, with
//! `delete`, `transition` and `keep` lists and a summary.
//!
//! A plan of a million images is 385 MB of JSON, most of the offline
//! plan's time. The lists are rendered in chunks on a thread per core and
//! written in order, byte for byte what serde_json's pretty printer writes
//! for the whole object (a unit test holds the two equal). Each chunk is
//! rendered inside a wrapper at the list's own depth, so serde_json still
//! does every indent and escape; only the wrapper is cut off.

use std::io::Write;
use std::sync::mpsc::sync_channel;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::Image;
use crate::plan::{Action, Decision, Plan};
use crate::policy::reclaim::{Freed, Prices};
use crate::run::report::Planned;

/// Decisions a thread renders at a time: about a megabyte of JSON.
const CHUNK: usize = 2048;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanSummary {
    images: usize,
    delete: usize,
    transition: usize,
    keep: usize,
    bytes_planned: i64,
    bytes_to_archive: i64,
    estimated_monthly_saving_usd: f64,
    prices_usd: Prices,
}

impl PlanSummary {
    fn of(plan: &Plan<'_>, prices: &Prices) -> PlanSummary {
        let mut summary = PlanSummary {
            images: plan.decisions.len(),
            delete: 0,
            transition: 0,
            keep: 0,
            bytes_planned: 0,
            bytes_to_archive: 0,
            estimated_monthly_saving_usd: 0.0,
            prices_usd: *prices,
        };
        for decision in &plan.decisions {
            let size = decision.image.image_size_in_bytes.unwrap_or(0);
            match decision.action {
                Action::Delete => {
                    summary.delete += 1;
                    summary.bytes_planned += size;
                }
                Action::Transition => {
                    summary.transition += 1;
                    summary.bytes_to_archive += size;
                }
                Action::Keep => summary.keep += 1,
            }
        }
        let saving = prices.monthly_saving(plan_freed(plan));
        summary.estimated_monthly_saving_usd = (saving * 1e6).round() / 1e6;
        summary
    }
}

/// What a plan frees, from the image sizes (a listing has no manifests).
pub(super) fn plan_freed(plan: &Plan<'_>) -> Freed {
    let size = |i: &Image| u64::try_from(i.image_size_in_bytes.unwrap_or(0)).unwrap_or(0);
    let mut freed = Freed::default();
    for d in &plan.decisions {
        match (d.action, d.image.image_status.is_active()) {
            (Action::Delete, true) => freed.standard += size(d.image),
            (Action::Delete, false) => freed.archive += size(d.image),
            (Action::Transition, _) => freed.archived += size(d.image),
            (Action::Keep, _) => {}
        }
    }
    freed
}

/// Writes the plan as one JSON object, and a newline.
pub(super) fn write_plan(
    out: &mut impl Write,
    plan: &Plan<'_>,
    now: DateTime<Utc>,
    prices: &Prices,
) -> Result<(), String> {
    write_plan_in(out, plan, now, prices, CHUNK)
}

fn write_plan_in(
    out: &mut impl Write,
    plan: &Plan<'_>,
    now: DateTime<Utc>,
    prices: &Prices,
    chunk: usize,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot write the plan: {e}");
    let now = serde_json::to_string(&now).map_err(|e| e.to_string())?;
    write!(out, "{{\n  \"now\": {now}").map_err(io)?;
    for (name, action) in [
        ("delete", Action::Delete),
        ("transition", Action::Transition),
        ("keep", Action::Keep),
    ] {
        write!(out, ",\n  \"{name}\": ").map_err(io)?;
        let list: Vec<&Decision<'_>> = plan
            .decisions
            .iter()
            .filter(|d| d.action == action)
            .collect();
        write_list(out, &list, chunk)?;
    }
    out.write_all(b",\n  \"summary\": ").map_err(io)?;
    let summary = Wrapper {
        v: PlanSummary::of(plan, prices),
    };
    let summary = pretty(&summary)?;
    out.write_all(inside(&summary, b"{\n  \"v\": ", b"\n}")?)
        .map_err(io)?;
    out.write_all(b"\n}\n").map_err(io)
}

/// A value inside an object, so that it is indented at the depth of the
/// plan's own fields (and, for a list's entries, one deeper).
#[derive(Serialize)]
struct Wrapper<T> {
    v: T,
}

/// Some of a list's decisions, written as a JSON array.
struct Entries<'p, 'a>(&'p [&'p Decision<'a>]);

impl Serialize for Entries<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|d| Planned(d)))
    }
}

const ENTRIES_START: &[u8] = b"{\n  \"v\": [\n";
const ENTRIES_END: &[u8] = b"\n  ]\n}";

/// One list: `[]`, or its entries rendered `chunk` at a time on worker
/// threads and written in order.
fn write_list(out: &mut impl Write, list: &[&Decision<'_>], chunk: usize) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot write the plan: {e}");
    if list.is_empty() {
        return out.write_all(b"[]").map_err(io);
    }
    out.write_all(b"[\n").map_err(io)?;
    let chunks: Vec<&[&Decision<'_>]> = list.chunks(chunk.max(1)).collect();
    let render = |part: &&[&Decision<'_>]| pretty(&Wrapper { v: Entries(part) });
    let mut first = true;
    in_order(&chunks, render, |rendered| {
        if !first {
            out.write_all(b",\n").map_err(io)?;
        }
        first = false;
        out.write_all(inside(&rendered, ENTRIES_START, ENTRIES_END)?)
            .map_err(io)
    })?;
    out.write_all(b"\n  ]").map_err(io)
}

fn pretty(value: &impl Serialize) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(value).map_err(|e| e.to_string())
}

/// `rendered` without the wrapper's `start` and `end`.
fn inside<'r>(rendered: &'r [u8], start: &[u8], end: &[u8]) -> Result<&'r [u8], String> {
    rendered
        .strip_prefix(start)
        .and_then(|rest| rest.strip_suffix(end))
        .ok_or_else(|| "the plan's JSON was not shaped as expected".to_owned())
}

/// Renders each item on a thread per core (up to four) and hands the
/// results to `write` in the items' order. Each thread has at most two
/// results waiting, so memory stays a few chunks whatever the plan's size.
/// When `write` fails, the threads stop at their next result.
fn in_order<I: Sync>(
    items: &[I],
    render: impl Fn(&I) -> Result<Vec<u8>, String> + Sync,
    mut write: impl FnMut(Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    std::thread::scope(|s| {
        let results: Vec<_> = (0..threads)
            .map(|t| {
                let (sender, results) = sync_channel(2);
                let render = &render;
                s.spawn(move || {
                    for item in items.iter().skip(t).step_by(threads) {
                        if sender.send(render(item)).is_err() {
                            break;
                        }
                    }
                });
                results
            })
            .collect();
        for i in 0..items.len() {
            let rendered = results[i % threads]
                .recv()
                .map_err(|_| "a thread rendering the plan stopped".to_owned())??;
            write(rendered)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Image;
    use crate::policy::Policy;

    /// The plan as serde_json writes it in one go: what `write_plan` must
    /// write, byte for byte.
    #[derive(Serialize)]
    struct Whole<'p, 'a> {
        now: DateTime<Utc>,
        delete: Vec<Planned<'p, 'a>>,
        transition: Vec<Planned<'p, 'a>>,
        keep: Vec<Planned<'p, 'a>>,
        summary: PlanSummary,
    }

    fn whole(plan: &Plan<'_>, now: DateTime<Utc>) -> String {
        let list = |action| {
            plan.decisions
                .iter()
                .filter(|d| d.action == action)
                .map(Planned)
                .collect()
        };
        let doc = Whole {
            now,
            delete: list(Action::Delete),
            transition: list(Action::Transition),
            keep: list(Action::Keep),
            summary: PlanSummary::of(plan, &Prices::default()),
        };
        serde_json::to_string_pretty(&doc).unwrap() + "\n"
    }

    fn check(name: &str, images: usize, policy: &str, chunk: usize) {
        let images: Vec<Image> = (0..images)
            .map(|i| {
                let tags = if i % 3 == 0 {
                    vec![]
                } else {
                    vec![format!("v{i}")]
                };
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                let mut image = Image::test(&format!("sha256:{i:064x}"), &tags);
                image.image_pushed_at += chrono::Duration::days(i as i64);
                image.image_size_in_bytes = Some(i as i64 * 1000);
                image
            })
            .collect();
        let policy = Policy::parse(policy).unwrap();
        let now = "2027-01-01T00:00:00Z".parse().unwrap();
        let plan = crate::plan::plan(&images, &policy, now);
        let mut written = Vec::new();
        write_plan_in(&mut written, &plan, now, &Prices::default(), chunk).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            whole(&plan, now),
            "{name}"
        );
    }

    #[test]
    fn writes_what_serde_json_writes_in_one_go() {
        let expire = r#"{"rules": [
            {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}
        ]}"#;
        let archive = r#"{"rules": [
            {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "transition", "targetStorageClass": "archive"}}
        ]}"#;
        let cases = [
            ("no images", 0, expire, 2),
            ("one image", 1, expire, 2),
            ("a chunk at a time", 25, expire, 1),
            ("uneven chunks", 25, expire, 4),
            ("one chunk", 25, expire, 2048),
            ("transitions", 10, archive, 3),
        ];
        for (name, images, policy, chunk) in cases {
            check(name, images, policy, chunk);
        }
    }

    #[test]
    fn stops_the_threads_when_writing_fails() {
        let items: Vec<usize> = (0..1000).collect();
        let mut written = 0;
        let result = in_order(
            &items,
            |i| Ok(i.to_string().into_bytes()),
            |_| {
                written += 1;
                if written == 10 {
                    Err("disk full".to_owned())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(result, Err("disk full".to_owned()));
        assert_eq!(written, 10);
    }
}
