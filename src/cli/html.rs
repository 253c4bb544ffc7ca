//! `--output html`: the plan, or a run, as one self-contained HTML page
//! (no external script, font, style or request): the totals, then per
//! repository a timeline of its images by push time, one lane per decision
//! (expired, archived, held, protected, kept), each image's tags, rule and
//! reason on hover.
//!
//! A lane is cut into bins a few pixels wide, and the images of a bin are
//! drawn as one mark: a dot for one image, a bar for several, whose hover
//! says how many and shows a few. So the page stays small and readable at
//! 100,000 images in one repository (at most [`BINS`] marks a lane). A
//! small inline script adds up the marks once the page has loaded and
//! writes the sums into `#rendered`, so that a browser test can check that
//! what was drawn accounts for every image.

use std::fmt::Write as _;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use super::figures;
use super::summary::notes;
use crate::plan::{Action, Plan};
use crate::policy::Policy;
use crate::run::report::{Collection, PlannedImage};

/// What happened, or would happen, to an image: a lane of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Expired,
    Archived,
    Held,
    Protected,
    Kept,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Expired,
        Kind::Archived,
        Kind::Held,
        Kind::Protected,
        Kind::Kept,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Expired => "expired",
            Kind::Archived => "archived",
            Kind::Held => "held",
            Kind::Protected => "protected",
            Kind::Kept => "kept",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Kind::Expired => "#d64545",
            Kind::Archived => "#e08a00",
            Kind::Held => "#7b61ff",
            Kind::Protected => "#2f9e44",
            Kind::Kept => "#8a94a6",
        }
    }
}

/// One repository's images: each one's push time (epoch milliseconds)
/// and lane, and how to describe image `i` on hover.
pub struct Repository<'a> {
    pub name: String,
    /// A line under the name: a hold, an error.
    pub note: Option<String>,
    pub images: Vec<(i64, Kind)>,
    pub describe: Box<dyn Fn(usize) -> String + 'a>,
}

/// The page's heading and what it says above the repositories.
pub struct Page<'a> {
    pub title: String,
    pub notes: Vec<String>,
    pub repositories: Vec<Repository<'a>>,
}

/// Bins per lane: a mark at most every 3 pixels of a 960-pixel plot.
pub const BINS: usize = 320;
const PLOT: f64 = 960.0;
const LEFT: f64 = 90.0;
const LANE: f64 = 22.0;
/// Examples named in an aggregate mark's hover.
const EXAMPLES: usize = 3;

/// Text with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn date(ms: i64) -> String {
    date_as(ms, "%Y-%m-%d %H:%M")
}

fn date_as(ms: i64, format: &str) -> String {
    Utc.timestamp_millis_opt(ms).single().map_or_else(
        || "?".into(),
        |t: DateTime<Utc>| t.format(format).to_string(),
    )
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#1f2933}\
h1{font-size:20px}h2{font-size:16px;margin:24px 0 4px}\
table{border-collapse:collapse}td,th{padding:4px 10px;border:1px solid #d9dee5;text-align:right}\
th{background:#f3f5f8}.note{color:#52606d;margin:2px 0}.legend span{margin-right:14px}\
.sw{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}\
svg text{font-size:11px;fill:#52606d}";

const SCRIPT: &str = "(function(){var r=document.getElementById('rendered');try{var c={};\
document.querySelectorAll('.m').forEach(function(m){var k=m.getAttribute('data-kind');\
c[k]=(c[k]||0)+Number(m.getAttribute('data-n'));});\
Object.keys(c).forEach(function(k){r.setAttribute('data-'+k,c[k]);});\
r.setAttribute('data-marks',document.querySelectorAll('.m').length);\
r.setAttribute('data-status','ok');}catch(e){r.setAttribute('data-status','error: '+e);}})();";

/// Writes the page.
pub fn write(out: &mut impl Write, page: &Page<'_>) -> std::io::Result<()> {
    let mut totals = [0u64; 5];
    for r in &page.repositories {
        for (_, kind) in &r.images {
            totals[*kind as usize] += 1;
        }
    }
    let mut html = String::with_capacity(1 << 16);
    let title = escape(&page.title);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head>\n<body>\n<h1>{title}</h1>\n<table id=\"totals\"><tr><th>images</th>"
    );
    for kind in Kind::ALL {
        let _ = write!(html, "<th>{}</th>", kind.name());
    }
    let _ = write!(
        html,
        "</tr><tr><td data-count=\"images\">{}</td>",
        totals.iter().sum::<u64>()
    );
    for kind in Kind::ALL {
        let _ = write!(
            html,
            "<td data-count=\"{}\">{}</td>",
            kind.name(),
            totals[kind as usize]
        );
    }
    html.push_str("</tr></table>\n");
    for note in &page.notes {
        let _ = writeln!(html, "<p class=\"note\">{}</p>", escape(note));
    }
    html.push_str("<p class=\"legend\">");
    for kind in Kind::ALL {
        let _ = write!(
            html,
            "<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>",
            kind.colour(),
            kind.name()
        );
    }
    html.push_str("</p>\n");
    out.write_all(html.as_bytes())?;
    for repository in &page.repositories {
        out.write_all(timeline(repository).as_bytes())?;
    }
    let end = format!(
        "<div id=\"rendered\" data-status=\"not run\"></div>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    out.write_all(end.as_bytes())
}

/// One repository's section: its name, note, counts and timeline.
fn timeline(r: &Repository<'_>) -> String {
    let mut html = String::new();
    let mut counts = [0usize; 5];
    for (_, kind) in &r.images {
        counts[*kind as usize] += 1;
    }
    let _ = write!(
        html,
        "<section data-repository=\"{}\"><h2>{}</h2>",
        escape(&r.name),
        escape(&r.name)
    );
    if let Some(note) = &r.note {
        let _ = write!(html, "<p class=\"note\">{}</p>", escape(note));
    }
    let said: Vec<String> = Kind::ALL
        .iter()
        .filter(|k| counts[**k as usize] > 0)
        .map(|k| format!("{} {}", counts[*k as usize], k.name()))
        .collect();
    let _ = write!(
        html,
        "<p class=\"note\">{} images: {}</p>",
        r.images.len(),
        said.join(", ")
    );
    if r.images.is_empty() {
        html.push_str("</section>\n");
        return html;
    }
    let lanes: Vec<Kind> = Kind::ALL
        .iter()
        .copied()
        .filter(|k| counts[*k as usize] > 0)
        .collect();
    let (first, last) = r
        .images
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), (t, _)| {
            (lo.min(*t), hi.max(*t))
        });
    let span = (last - first).max(1) as f64;
    let x = |t: i64| LEFT + (t - first) as f64 / span * PLOT;
    let height = LANE * lanes.len() as f64 + 24.0;
    let _ = write!(
        html,
        "<svg width=\"{}\" height=\"{height}\" role=\"img\">",
        LEFT + PLOT + 20.0
    );
    for (lane, kind) in lanes.iter().enumerate() {
        let y = LANE * lane as f64 + LANE / 2.0;
        let _ = write!(
            html,
            "<text x=\"0\" y=\"{}\">{}</text><line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eef1f5\"/>",
            y + 4.0,
            kind.name(),
            LEFT + PLOT
        );
    }
    axis(&mut html, lanes.len(), (first, last), &x);
    marks(&mut html, r, &lanes, &x);
    html.push_str("</svg></section>\n");
    html
}

/// The time axis under `lanes` lanes, from `first` to `last`: five ticks.
fn axis(html: &mut String, lanes: usize, (first, last): (i64, i64), x: &dyn Fn(i64) -> f64) {
    let axis = LANE * lanes as f64 + 16.0;
    // The axis says what tells its ticks apart: days, or the time of day.
    let format = if last - first > 4 * 86_400_000 {
        "%Y-%m-%d"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    for i in 0..=4 {
        let t = first + ((last - first) as f64 * f64::from(i) / 4.0) as i64;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            html,
            "<text x=\"{:.1}\" y=\"{axis}\" text-anchor=\"{anchor}\">{}</text>",
            x(t),
            date_as(t, format)
        );
    }
}

/// The marks of every lane: the images of each bin as one mark.
fn marks(html: &mut String, r: &Repository<'_>, lanes: &[Kind], x: &dyn Fn(i64) -> f64) {
    let mut bins: Vec<Vec<Vec<usize>>> = vec![vec![Vec::new(); BINS]; lanes.len()];
    for (i, (t, kind)) in r.images.iter().enumerate() {
        let lane = lanes.iter().position(|k| k == kind).unwrap_or(0);
        let bin = (((x(*t) - LEFT) / PLOT * BINS as f64) as usize).min(BINS - 1);
        bins[lane][bin].push(i);
    }
    for (lane, kind) in lanes.iter().enumerate() {
        let y = LANE * lane as f64 + LANE / 2.0;
        // Denser bins are darker, so clusters show at any scale.
        let densest = bins[lane].iter().map(Vec::len).max().unwrap_or(1).max(2) as f64;
        for (bin, members) in bins[lane].iter().enumerate() {
            let mark = |title: String, shape: String| {
                format!(
                    "<g class=\"m\" data-kind=\"{}\" data-n=\"{}\">{shape}<title>{}</title></g>",
                    kind.name(),
                    members.len(),
                    escape(&title)
                )
            };
            match members.as_slice() {
                [] => {}
                [one] => html.push_str(&mark(
                    (r.describe)(*one),
                    format!(
                        "<circle cx=\"{:.1}\" cy=\"{y}\" r=\"4\" fill=\"{}\"/>",
                        x(r.images[*one].0),
                        kind.colour()
                    ),
                )),
                many => {
                    let times = many.iter().map(|i| r.images[*i].0);
                    let (lo, hi) =
                        times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
                    let mut title = format!(
                        "{} {} images, pushed {} to {}; for example:",
                        many.len(),
                        kind.name(),
                        date(lo),
                        date(hi)
                    );
                    for i in many.iter().take(EXAMPLES) {
                        title.push('\n');
                        title.push_str(&(r.describe)(*i));
                    }
                    let h = (4.0 + (many.len() as f64).log10() * 4.0).min(LANE - 2.0);
                    let left = LEFT + bin as f64 * PLOT / BINS as f64;
                    html.push_str(&mark(
                        title,
                        format!(
                            "<rect x=\"{left:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" rx=\"1\" fill=\"{}\" fill-opacity=\"{:.2}\"/>",
                            y - h / 2.0,
                            PLOT / BINS as f64,
                            kind.colour(),
                            0.35 + 0.65 * (many.len() as f64).ln() / densest.ln()
                        ),
                    ));
                }
            }
        }
    }
}

/// A hover text: the tags, digest, push time, rule and reason.
fn describe(
    tags: &[String],
    digest: &str,
    pushed: DateTime<Utc>,
    rule: Option<u32>,
    reason: &str,
) -> String {
    let tags = if tags.is_empty() {
        "<untagged>".to_owned()
    } else {
        tags.join(", ")
    };
    let rule = rule.map_or_else(|| "no rule".to_owned(), |p| format!("rule {p}"));
    format!(
        "{tags} ({digest}), pushed {}; {rule}: {reason}",
        pushed.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// The offline plan as a page.
pub(super) fn write_plan(
    out: &mut impl Write,
    plan: &Plan<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
    repository: Option<&str>,
) -> std::io::Result<()> {
    let kind = |d: &crate::plan::Decision<'_>| match (d.action, &d.protection) {
        (Action::Delete, _) => Kind::Expired,
        (Action::Transition, _) => Kind::Archived,
        (Action::Keep, Some(_)) => Kind::Protected,
        (Action::Keep, None) => Kind::Kept,
    };
    let freed = super::plan_json::plan_freed(plan);
    let prices = &policy.settings.prices;
    let page = Page {
        title: format!(
            "ecr-gc plan (as of {})",
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        notes: vec![format!(
            "Up to {} freed (image sizes; layers shared with kept images stay); {}.",
            figures::bytes(freed.standard + freed.archive),
            figures::saving(prices.monthly_saving(freed), prices)
        )],
        repositories: vec![Repository {
            name: repository.unwrap_or("the listing").to_owned(),
            note: None,
            images: plan
                .decisions
                .iter()
                .map(|d| (d.image.image_pushed_at.timestamp_millis(), kind(d)))
                .collect(),
            describe: Box::new(|i| {
                let d = &plan.decisions[i];
                let image = d.image;
                describe(
                    &image.image_tags,
                    &image.image_digest,
                    image.image_pushed_at,
                    d.rule_priority,
                    &d.explain(),
                )
            }),
        }],
    };
    write(out, &page)
}

/// A run as a page: what each repository's plan decided, a held
/// repository's changes in the held lane.
pub(super) fn write_run(out: &mut impl Write, report: &Collection) -> std::io::Result<()> {
    let several = report.targets.len() > 1;
    let mode = if report.dry_run {
        "dry run, nothing deleted"
    } else {
        "applied"
    };
    let repositories = report
        .repositories()
        .map(|(target, r)| {
            let stopped = r.held.is_some() || r.error.is_some();
            let lists: [(&[PlannedImage], Kind); 4] = [
                (&r.planned, if stopped { Kind::Held } else { Kind::Expired }),
                (
                    &r.planned_transitions,
                    if stopped { Kind::Held } else { Kind::Archived },
                ),
                (&r.protected, Kind::Protected),
                (&r.kept, Kind::Kept),
            ];
            let all: Vec<(&PlannedImage, Kind)> = lists
                .iter()
                .flat_map(|(list, kind)| list.iter().map(move |p| (p, *kind)))
                .collect();
            let note = match (&r.error, &r.held, &r.unfinished) {
                (Some(e), _, _) => Some(format!("not collected: {}", e.error_message)),
                (None, Some(held), _) => Some(format!("held, nothing deleted: {held}")),
                (None, None, Some(why)) => Some(format!("unfinished: {why}")),
                _ => None,
            };
            Repository {
                name: if several {
                    format!("{target}: {}", r.repository_name)
                } else {
                    r.repository_name.clone()
                },
                note,
                images: all
                    .iter()
                    .map(|(p, k)| (p.image_pushed_at.timestamp_millis(), *k))
                    .collect(),
                describe: Box::new(move |i| {
                    let p = all[i].0;
                    let reason = match &p.protection {
                        Some(why) => format!("{}; kept: {why}", p.reason),
                        None => p.reason.clone(),
                    };
                    describe(
                        &p.image_tags,
                        &p.image_digest,
                        p.image_pushed_at,
                        p.rule_priority,
                        &reason,
                    )
                }),
            }
        })
        .collect();
    let page = Page {
        title: format!(
            "ecr-gc run ({mode}, {})",
            report.now.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        notes: notes(report).into_iter().map(|(n, _)| n).collect(),
        repositories,
    };
    write(out, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: usize) -> String {
        let images = (0..n)
            .map(|i| (i as i64 * 60_000, Kind::ALL[i % 5]))
            .collect();
        let page = Page {
            title: "plan <of> \"x\"".into(),
            notes: vec!["a & b".into()],
            repositories: vec![Repository {
                name: "team/<web>".into(),
                note: None,
                images,
                describe: Box::new(|i| format!("image {i} <tag>")),
            }],
        };
        let mut out = Vec::new();
        write(&mut out, &page).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_page_is_escaped_counted_and_bounded() {
        let small = page(10);
        assert!(
            small.contains("<h1>plan &lt;of&gt; &quot;x&quot;</h1>"),
            "{small}"
        );
        assert!(
            small.contains("<td data-count=\"images\">10</td><td data-count=\"expired\">2</td>"),
            "{small}"
        );
        assert!(small.contains("image 0 &lt;tag&gt;"));
        assert!(!small.contains("<tag>") && !small.contains("<web>"));
        assert_eq!(
            small.matches("class=\"m\"").count(),
            10,
            "one mark an image when none overlap"
        );
        let large = page(100_000);
        let marks = large.matches("class=\"m\"").count();
        assert!(marks <= 5 * BINS, "{marks} marks");
        let drawn: usize = large
            .split("data-n=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().parse::<usize>().unwrap())
            .sum();
        assert_eq!(drawn, 100_000);
        assert!(large.len() < 2 << 20, "{} bytes", large.len());
        assert!(!large.contains("http"), "self-contained");
    }
}
