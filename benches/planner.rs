//! Planner benchmark: 10k, 100k and 1M images under a realistic 4-rule
//! policy. Prints wall time (best of several runs) and the process's peak
//! resident memory. Run one size per process so peaks do not mix:
//!
//!     cargo bench --bench planner -- 1000000
//!
//! With the argument `extensions`, the policy uses ecr-gc's extensions
//! instead: a keep rule with regexes, semver order and groups per minor
//! version, and groups per feature branch by a regex capture.
//!
//! `scripts/bench-planner.sh` runs every size and prints a table.

use std::time::Instant;

use chrono::{TimeDelta, TimeZone, Utc};
use ecr_gc::model::{Image, ImageStatus};
use ecr_gc::plan::plan;
use ecr_gc::policy::Policy;

const POLICY: &str = r#"{"rules":[
  {"rulePriority":1,"description":"keep 20 releases","selection":{"tagStatus":"tagged","tagPatternList":["v*.*.*"],"countType":"imageCountMoreThan","countNumber":20},"action":{"type":"expire"}},
  {"rulePriority":2,"description":"feature branches for 14 days","selection":{"tagStatus":"tagged","tagPrefixList":["feature-"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}},
  {"rulePriority":3,"description":"keep 10 untagged","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}},
  {"rulePriority":4,"description":"anything else for 90 days","selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":90},"action":{"type":"expire"}}
]}"#;

/// The same registry under the extensions: keep the 3 highest patches of
/// every minor release, the 5 newest builds of every feature branch.
const EXTENSIONS: &str = r#"{"rules":[
  {"rulePriority":1,"description":"3 patches per minor","selection":{"tagStatus":"tagged","tagRegexList":["v[0-9]+\\.[0-9]+\\.[0-9]+"],"orderBy":"semver","groupBy":{"semver":"minor"},"countType":"imageCountMoreThan","countNumber":3},"action":{"type":"keep"}},
  {"rulePriority":2,"description":"5 per feature branch","selection":{"tagStatus":"tagged","tagRegexList":["feature-[0-9]+"],"groupBy":{"tagRegex":"(?P<group>feature-[0-9]+)"},"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}},
  {"rulePriority":3,"description":"keep 10 untagged","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}},
  {"rulePriority":4,"description":"anything else for 90 days","selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":90},"action":{"type":"expire"}}
]}"#;

/// A registry shaped like a busy CI repository: releases, feature-branch
/// builds, commit builds and untagged leftovers, over a year.
fn images(n: usize) -> Vec<Image> {
    let start = Utc
        .timestamp_opt(1_767_225_600, 0)
        .single()
        .unwrap_or_default();
    (0..n)
        .map(|i| {
            let tags = match i % 10 {
                0 => vec![format!("v1.{}.{}", i / 1000, i % 1000)],
                1..=3 => vec![format!("feature-{}", i % 97), format!("sha-{i:x}")],
                4..=6 => vec![format!("sha-{i:x}")],
                _ => Vec::new(),
            };
            Image {
                image_digest: format!("sha256:{:064x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                image_tags: tags,
                image_pushed_at: start
                    + TimeDelta::seconds((i as i64 * 31_536_000) / n.max(1) as i64),
                image_size_in_bytes: Some(50_000_000),
                image_manifest_media_type: None,
                subject_manifest_digest: None,
                image_status: ImageStatus::Active,
                last_recorded_pull_time: None,
                last_archived_at: None,
                last_activated_at: None,
            }
        })
        .collect()
}

/// A `/proc/self/status` memory figure (`VmHWM:` peak, `VmRSS:` now), MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // a measurement in debug build is no measurement.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let extensions = std::env::args().any(|a| a == "extensions");
    let policy = match Policy::parse(if extensions { EXTENSIONS } else { POLICY }) {
        Ok(policy) => policy,
        Err(error) => panic!("the benchmark policy is invalid: {error}"),
    };
    let now = Utc
        .timestamp_opt(1_798_761_600, 0)
        .single()
        .unwrap_or_default();
    for n in sizes {
        let images = images(n);
        // What the input alone holds, before any plan: the planner's own
        // memory is the peak above this.
        let input_rss = status_mib("VmRSS:");
        let runs = if n >= 1_000_000 { 5 } else { 20 };
        let mut best = f64::INFINITY;
        let mut deleted = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let plan = plan(&images, &policy, now);
            deleted = plan.to_delete().count();
            best = best.min(started.elapsed().as_secs_f64());
            drop(plan);
        }
        let peak = status_mib("VmHWM:");
        println!(
            "planner policy={} images={n} best_ms={:.1} deleted={deleted} input_rss_mib={input_rss:.0} peak_rss_mib={peak:.0} planner_mib={:.0}",
            if extensions { "extensions" } else { "ecr" },
            best * 1000.0,
            peak - input_rss
        );
    }
}
