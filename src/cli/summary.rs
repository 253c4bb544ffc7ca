//! The closing summary of `run`, per target and in total, as a table for a
//! terminal and as Markdown to paste into a ticket or a pull request:
//! kept, expired, archived, protected (by kind), held (by what), failed,
//! the bytes freed and the estimated saving.

use std::collections::BTreeMap;
use std::io::Write;

use super::figures;
use super::print_table;
use super::terminal::{Paint, Style, wrap};
use crate::run::reclaim::ExactReclaim;
use crate::run::report::{Collection, Report, RepositoryReport};

/// One row of the summary: a target, or the total.
#[derive(Debug, Default, Clone)]
struct Row {
    label: String,
    repositories: u64,
    held: u64,
    not_collected: u64,
    images: u64,
    kept: u64,
    /// Deleted, or in a dry run, to be deleted (not counting held
    /// repositories).
    expired: u64,
    archived: u64,
    protected: u64,
    failed: u64,
    /// Bytes freed: exact where counted, else the image sizes.
    bytes: u64,
    exact: bool,
    usd: f64,
}

impl Row {
    /// A target's row: what was done, or in a dry run what would be done
    /// (held repositories and those not collected change nothing).
    fn of(label: String, report: &Report, dry_run: bool) -> Row {
        let s = &report.summary;
        let mut row = Row {
            label,
            repositories: s.repositories,
            held: s.repositories_held,
            not_collected: s.repositories_failed,
            images: s.images_scanned,
            kept: s.images_kept,
            protected: s.counts.images_protected,
            failed: s.counts.images_failed + s.counts.transitions_failed,
            exact: true,
            ..Row::default()
        };
        let mut counted = false;
        for r in &report.repositories {
            let (expired, archived, bytes, exact, usd) = changes(r, dry_run);
            row.expired += expired;
            row.archived += archived;
            row.bytes += bytes;
            row.usd += usd;
            if expired > 0 {
                counted = true;
                row.exact &= exact;
            }
        }
        row.exact &= counted;
        row
    }

    fn add(&mut self, o: &Row) {
        self.repositories += o.repositories;
        self.held += o.held;
        self.not_collected += o.not_collected;
        self.images += o.images;
        self.kept += o.kept;
        self.expired += o.expired;
        self.archived += o.archived;
        self.protected += o.protected;
        self.failed += o.failed;
        self.exact = if self.bytes == 0 {
            o.exact
        } else {
            self.exact && (o.exact || o.bytes == 0)
        };
        self.bytes += o.bytes;
        self.usd += o.usd;
    }

    fn cells(&self) -> [String; 10] {
        let bytes = figures::bytes(self.bytes);
        [
            self.label.clone(),
            self.repositories.to_string(),
            self.held.to_string(),
            self.images.to_string(),
            self.kept.to_string(),
            self.expired.to_string(),
            self.archived.to_string(),
            self.protected.to_string(),
            self.failed.to_string(),
            if self.exact {
                bytes
            } else {
                format!("≤ {bytes}")
            },
        ]
    }
}

/// What a repository changed (or in a dry run would change): images
/// expired and archived, bytes freed (exact where the manifests were read,
/// else the image sizes), whether exact, and the estimated saving.
fn changes(r: &RepositoryReport, dry_run: bool) -> (u64, u64, u64, bool, f64) {
    let c = r.counts();
    if dry_run && (r.held.is_some() || r.error.is_some()) {
        return (0, 0, 0, false, 0.0);
    }
    let exact = match &r.exact_reclaim {
        Some(ExactReclaim::Counted {
            bytes_planned,
            bytes_reclaimed,
            ..
        }) => Some(if dry_run {
            *bytes_planned
        } else {
            *bytes_reclaimed
        }),
        _ => None,
    };
    let (expired, archived, bound, usd) = if dry_run {
        let usd = r.estimated_monthly_saving.planned_usd;
        (
            c.images_planned,
            c.transitions_planned,
            r.bytes_planned,
            usd,
        )
    } else {
        let usd = r.estimated_monthly_saving.reclaimed_usd;
        (
            c.images_deleted,
            c.images_transitioned,
            r.bytes_reclaimed,
            usd,
        )
    };
    let freed = exact.unwrap_or_else(|| u64::try_from(bound).unwrap_or(0));
    (expired, archived, freed, exact.is_some(), usd)
}

const HEADER: [&str; 10] = [
    "TARGET",
    "REPOS",
    "HELD",
    "IMAGES",
    "KEPT",
    "EXPIRED",
    "ARCHIVED",
    "PROTECTED",
    "FAILED",
    "FREED",
];
/// The ARCHIVED column's place.
const ARCHIVED: usize = 6;

/// A row per collected target, then the total.
fn rows(report: &Collection) -> Vec<Row> {
    let mut total = Row {
        label: "total".into(),
        ..Row::default()
    };
    let mut rows = Vec::new();
    for t in &report.targets {
        if let Some(r) = &t.report {
            let row = Row::of(t.target.to_string(), r, report.dry_run);
            total.add(&row);
            rows.push(row);
        }
    }
    if rows.len() != 1 {
        rows.push(total);
    }
    rows
}

/// `3 in use, 1 grace period`.
fn by_kind(counts: &BTreeMap<&'static str, u64>, what: &str) -> String {
    counts
        .iter()
        .map(|(kind, n)| format!("{n} {what}{kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sentences under the table: protections and holds by kind, the
/// saving, and whether anything was deleted.
pub(super) fn notes(report: &Collection) -> Vec<(String, Option<Paint>)> {
    let s = &report.summary;
    let mut notes = Vec::new();
    if !s.images_protected_by.is_empty() {
        notes.push((
            format!("Protected: {}.", by_kind(&s.images_protected_by, "")),
            None,
        ));
    }
    if !s.repositories_held_by.is_empty() {
        let held = by_kind(&s.repositories_held_by, "held by ");
        notes.push((
            format!("Held repositories: {held}; nothing was deleted in them."),
            Some(Paint::Yellow),
        ));
    }
    if report.targets_failed + s.repositories_failed > 0 {
        notes.push((
            format!(
                "Not collected: {} targets, {} repositories (their errors are above and in the log).",
                report.targets_failed, s.repositories_failed
            ),
            Some(Paint::Red),
        ));
    }
    let total = rows(report).pop().unwrap_or_default();
    let verb = if report.dry_run {
        "Would free"
    } else {
        "Freed"
    };
    let how = if total.exact {
        "shared layers counted once"
    } else {
        "image sizes, an upper bound: layers shared with kept images stay"
    };
    notes.push((
        format!(
            "{verb} {} ({how}); {}.",
            figures::bytes(total.bytes),
            figures::saving(total.usd, &report.prices)
        ),
        None,
    ));
    notes.push(if report.dry_run {
        (
            "Dry run: nothing was deleted; pass --apply to delete.".into(),
            Some(Paint::Green),
        )
    } else {
        ("Applied.".into(), None)
    });
    notes
}

/// The header and rows, without the ARCHIVED column when nothing was
/// or would be archived.
fn table(report: &Collection) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let rows = rows(report);
    let archive = rows.iter().any(|r| r.archived > 0);
    let keep = |i: &usize| archive || *i != ARCHIVED;
    let header = HEADER
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(i))
        .map(|(_, h)| *h)
        .collect();
    let cells = rows
        .iter()
        .map(|r| {
            r.cells()
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep(i))
                .map(|(_, c)| c)
                .collect()
        })
        .collect();
    (header, cells)
}

/// The summary as a table, and its notes (wrapped to the width).
pub(super) fn print_summary(out: &mut impl Write, report: &Collection, style: Style) {
    let (header, rows) = table(report);
    let _ = writeln!(out);
    print_table(out, &header, &rows, None, style, |_| None);
    for (note, paint) in notes(report) {
        let lines = style
            .width
            .map_or_else(|| vec![note.clone()], |w| wrap(&note, w));
        for line in lines {
            let _ = writeln!(
                out,
                "{}",
                paint.map_or(line.clone(), |p| style.paint(&line, p))
            );
        }
    }
}

/// A Markdown table cell: one line, with what Markdown or HTML would read
/// as markup escaped (`<untagged>` is not a tag).
fn cell(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// Whether a cell reads as a number, a size or an amount.
fn numeric(cell: &str) -> bool {
    cell.trim_start_matches("≤ ")
        .trim_start_matches('$')
        .starts_with(|c: char| c.is_ascii_digit())
}

/// Writes a Markdown table; columns of numbers are aligned right.
pub(super) fn markdown_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let align: Vec<&str> = (0..header.len())
        .map(|i| {
            let right =
                !rows.is_empty() && rows.iter().all(|r| r.get(i).is_some_and(|c| numeric(c)));
            if right { "---:" } else { "---" }
        })
        .collect();
    let _ = writeln!(out, "| {} |", align.join(" | "));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// The most repositories the Markdown lists by name.
const MARKDOWN_REPOSITORIES: usize = 200;

/// The run as Markdown: the summary, its notes, and a row per repository
/// with something to say (changes, protections, holds, failures).
pub(super) fn write_markdown(out: &mut impl Write, report: &Collection) {
    let mode = if report.dry_run {
        "dry run, nothing deleted"
    } else {
        "applied"
    };
    let _ = writeln!(
        out,
        "## ecr-gc run ({mode}, {})\n",
        report.now.format("%Y-%m-%d %H:%M UTC")
    );
    let (header, rows) = table(report);
    let header: Vec<String> = header
        .iter()
        .map(|h| {
            if *h == "REPOS" {
                "repositories".into()
            } else {
                h.to_lowercase()
            }
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    markdown_table(out, &header, &rows);
    let _ = writeln!(out);
    for (note, _) in notes(report) {
        let _ = writeln!(out, "- {note}");
    }
    let several = report.targets.len() > 1;
    let listed: Vec<Vec<String>> = report
        .repositories()
        .filter(|(_, r)| worth_a_row(r))
        .map(|(t, r)| repository_row(several.then(|| t.to_string()), r, report.dry_run))
        .collect();
    if listed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Repositories\n");
    let mut header = vec![
        "repository",
        "images",
        "kept",
        "expired",
        "archived",
        "protected",
        "failed",
        "freed",
        "note",
    ];
    if several {
        header.insert(0, "target");
    }
    let shown = listed.len().min(MARKDOWN_REPOSITORIES);
    markdown_table(out, &header, &listed[..shown]);
    if listed.len() > shown {
        let _ = writeln!(
            out,
            "\n…and {} more repositories; `--output json` has every one.",
            listed.len() - shown
        );
    }
}

fn worth_a_row(r: &RepositoryReport) -> bool {
    let c = r.counts();
    r.needs_attention() || c.images_planned + c.transitions_planned + c.images_protected > 0
}

fn repository_row(target: Option<String>, r: &RepositoryReport, dry_run: bool) -> Vec<String> {
    let c = r.counts();
    let note = match (&r.error, &r.held, &r.unfinished) {
        (Some(e), _, _) => format!("not collected: {}", e.error_message),
        (None, Some(held), _) => format!("held: {held}"),
        (None, None, Some(why)) => format!("unfinished: {why}"),
        _ => String::new(),
    };
    let (expired, archived, bytes, exact, _) = changes(r, dry_run);
    let freed = if exact {
        figures::bytes(bytes)
    } else {
        format!("≤ {}", figures::bytes(bytes))
    };
    let mut row = vec![
        format!("`{}`", r.repository_name),
        r.images_scanned.to_string(),
        r.images_kept.to_string(),
        expired.to_string(),
        archived.to_string(),
        c.images_protected.to_string(),
        (c.images_failed + c.transitions_failed).to_string(),
        freed,
        note,
    ];
    if let Some(t) = target {
        row.insert(0, t);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::targets::{Target, Targets};
    use crate::run::report::{Cause, Detail, TargetReport};
    use crate::run::totals::Summary;

    /// A repository that planned (and unless held, would delete) `planned`
    /// images of `bytes` each, keeping `kept`, one protected by the grace
    /// period.
    fn repository(name: &str, planned: u64, held: Option<&'static str>) -> RepositoryReport {
        let mut r = RepositoryReport {
            repository_name: name.into(),
            images_scanned: planned + 3,
            images_kept: 3,
            bytes_planned: (planned * 1_048_576) as i64,
            held: held.map(|by| format!("the plan deletes {planned} images, more than {by} (1)")),
            held_by: held,
            dropped: Some(crate::run::totals::ImageCounts {
                images_planned: planned,
                images_protected: 1,
                ..Default::default()
            }),
            ..RepositoryReport::default()
        };
        r.protected_by.insert("grace period", 1);
        r.estimated_monthly_saving.planned_usd = planned as f64;
        r
    }

    fn target(account: &str, repositories: Vec<RepositoryReport>) -> TargetReport {
        let targets = Targets::parse(&format!(
            r#"{{"regions":["eu-west-1"],"accounts":[{{"accountId":"{account}"}}]}}"#
        ))
        .unwrap();
        let target: Target = targets.expand().remove(0);
        TargetReport {
            target,
            error: None,
            report: Some(Report {
                trigger: Cause::Cli,
                dry_run: true,
                now: chrono::Utc::now(),
                summary: Summary::of(&repositories),
                repositories,
                api_calls: Default::default(),
                in_use_sources: vec![],
                not_started: vec![],
                duration_ms: 0,
                detail: Detail::Summary,
                repositories_not_listed: 0,
                prices: Default::default(),
            }),
        }
    }

    #[test]
    fn the_summary_is_per_target_and_in_total() {
        let collection = Collection::new(
            Cause::Cli,
            true,
            chrono::Utc::now(),
            vec![
                target(
                    "111122223333",
                    vec![
                        repository("a", 2, None),
                        repository("b", 5, Some("maxDeletesPerRepository")),
                    ],
                ),
                target("444455556666", vec![repository("c", 1, None)]),
            ],
            0,
            0,
        );
        let mut out = Vec::new();
        print_summary(&mut out, &collection, Style::PLAIN);
        let text = String::from_utf8(out).unwrap();
        let expected = [
            "TARGET                  REPOS  HELD  IMAGES  KEPT  EXPIRED  PROTECTED  FAILED  FREED",
            "111122223333/eu-west-1  2      1     13      6     2        2          0       ≤ 2.0 MiB",
            "444455556666/eu-west-1  1      0     4       3     1        1          0       ≤ 1.0 MiB",
            "total                   3      1     17      9     3        3          0       ≤ 3.0 MiB",
            "Protected: 3 grace period.",
            "Held repositories: 1 held by maxDeletesPerRepository; nothing was deleted in them.",
            "Would free 3.0 MiB (image sizes, an upper bound: layers shared with kept images stay); estimated saving $3.00 a month",
            "Dry run: nothing was deleted; pass --apply to delete.",
        ];
        for line in expected {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let mut markdown = Vec::new();
        write_markdown(&mut markdown, &collection);
        let markdown = String::from_utf8(markdown).unwrap();
        for line in [
            "| total | 3 | 1 | 17 | 9 | 3 | 3 | 0 | ≤ 3.0 MiB |",
            "| 111122223333/eu-west-1 | `b` | 8 | 3 | 0 | 0 | 1 | 0 | ≤ 0 B | held: the plan deletes 5 images, more than maxDeletesPerRepository (1) |",
        ] {
            assert!(markdown.contains(line), "{line:?} not in\n{markdown}");
        }
    }
}
