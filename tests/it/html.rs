//! `--output html` in a real browser: headless Chromium (Debian's
//! `chromium`) loads the page, its inline script adds up the marks it drew,
//! and the counts on the page must equal the plan's, at 10 images and at
//! 100,000 in one repository; a run's page must equal its report. Each
//! page's screenshot is kept under `target/tmp/html/` as the test's
//! artifact.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, Moto, cli, keep_newest_reading, policy_file, push_tags};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What Chromium rendered of `page`: the `#rendered` element's counts
/// (written by the page's own script once it had drawn), and the totals
/// table's; saves a screenshot as `shot`.
fn render(page: &Path, shot: &str) -> (Value, Value) {
    let url = format!("file://{}", page.display());
    let chromium = |args: &[&str]| {
        Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .args(["--enable-logging=stderr", "--v=0"])
            .args(args)
            .arg(&url)
            .output()
            .unwrap_or_else(|e| panic!("chromium must be installed (`apt-get install chromium`; `make tools` and .ci/run install it): {e}"))
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let console = String::from_utf8_lossy(&dom.stderr);
    assert!(!console.contains("Uncaught"), "the page threw: {console}");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let attributes = |tag: &str| -> Value {
        let element = dom
            .split(tag)
            .nth(1)
            .unwrap_or_else(|| panic!("no {tag} in the page"));
        let element = element.split('>').next().unwrap();
        element
            .split(" data-")
            .skip(1)
            .filter_map(|a| a.split_once("=\""))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    Value::String(v.trim_end_matches('"').to_owned()),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let rendered = attributes("<div id=\"rendered\"");
    let totals: serde_json::Map<String, Value> = dom
        .split("<td data-count=\"")
        .skip(1)
        .filter_map(|c| {
            let (kind, rest) = c.split_once("\">")?;
            Some((
                kind.to_owned(),
                Value::String(rest.split('<').next()?.to_owned()),
            ))
        })
        .collect();
    let path = artifacts().join(shot);
    let shot = chromium(&[
        "--window-size=1280,900",
        &format!("--screenshot={}", path.display()),
    ]);
    assert!(shot.status.success());
    let png = std::fs::read(&path).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{}",
        path.display()
    );
    (rendered, totals.into())
}

fn number(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_str)
        .map_or(0, |s| s.parse().unwrap())
}

/// `ecr-gc plan` of `images` as `format`.
fn plan(images: &Path, format: &str) -> Vec<u8> {
    let out = Command::new(BIN)
        .args([
            "plan",
            "--policy",
            &format!("{ROOT}/examples/policy.json"),
            "--now",
            "2026-11-27T12:00:00Z",
        ])
        .arg("--images")
        .arg(images)
        .args(["--output", format])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[track_caller]
fn check_plan(images: &Path, expected_images: u64) {
    let json: Value = serde_json::from_slice(&plan(images, "json")).unwrap();
    let summary = &json["summary"];
    let page = artifacts().join(format!("plan-{expected_images}.html"));
    std::fs::write(&page, plan(images, "html")).unwrap();
    let (rendered, totals) = render(&page, &format!("plan-{expected_images}.png"));
    assert_eq!(rendered["status"], "ok", "{rendered}");
    let drawn = |k: &str| number(&rendered, k);
    let shown = |k: &str| number(&totals, k);
    assert_eq!(summary["images"], expected_images);
    for (what, plan) in [
        ("expired", summary["delete"].as_u64().unwrap()),
        ("archived", summary["transition"].as_u64().unwrap()),
        ("kept and protected", summary["keep"].as_u64().unwrap()),
    ] {
        let (d, s) = match what {
            "kept and protected" => (
                drawn("kept") + drawn("protected"),
                shown("kept") + shown("protected"),
            ),
            k => (drawn(k), shown(k)),
        };
        assert_eq!(
            (d, s),
            (plan, plan),
            "{what}: drawn {d}, shown {s}, planned {plan}"
        );
    }
    assert_eq!(shown("images"), expected_images);
    // Readable at any size: at most 320 marks a lane.
    assert!(drawn("marks") <= 5 * 320, "{rendered}");
}

#[test]
fn the_plan_page_shows_what_the_plan_says_at_10_and_100000_images() {
    check_plan(Path::new(&format!("{ROOT}/examples/images.json")), 10);
    let listing = artifacts().join("listing-100000.json");
    let generated = Command::new("python3")
        .arg(format!("{ROOT}/scripts/gen-listing.py"))
        .arg("100000")
        .output()
        .unwrap();
    assert!(generated.status.success());
    std::fs::write(&listing, generated.stdout).unwrap();
    check_plan(&listing, 100_000);
}

#[tokio::test]
async fn the_run_page_shows_what_the_run_reports() {
    let moto = Moto::start();
    let ecr = moto.ecr();
    push_tags(&ecr, "page-a", &["1", "2", "3"]).await;
    push_tags(&ecr, "page-b", &["1"]).await;
    let mut policy = keep_newest_reading(&[]);
    policy["settings"]["maxDeletesPerRepository"] = serde_json::json!(2);
    let path = policy_file(&policy);
    let args = |format| {
        [
            "run",
            "--repository",
            "page-a",
            "--repository",
            "page-b",
            "--output",
            format,
            "--policy",
        ]
    };
    let report: Value =
        serde_json::from_slice(&cli(&moto.endpoint, &args("json"), &path, &[]).stdout).unwrap();
    let html = cli(&moto.endpoint, &args("html"), &path, &[]);
    assert!(
        html.status.success(),
        "{}",
        String::from_utf8_lossy(&html.stderr)
    );
    let page = artifacts().join("run.html");
    std::fs::write(&page, &html.stdout).unwrap();
    let (rendered, totals) = render(&page, "run.png");
    assert_eq!(rendered["status"], "ok");
    // page-a would lose 3 of 4, more than maxDeletesPerRepository: held.
    // page-b loses 1 of 2.
    let s = &report["summary"];
    assert_eq!(
        (s["imagesScanned"].as_u64(), s["repositoriesHeld"].as_u64()),
        (Some(6), Some(1))
    );
    for (kind, n) in [
        ("held", 3),
        ("expired", 1),
        ("kept", 2),
        ("protected", 0),
        ("images", 6),
    ] {
        assert_eq!(number(&totals, kind), n, "{kind}: {totals}");
        if kind != "images" {
            assert_eq!(number(&rendered, kind), n, "{kind}: {rendered}");
        }
    }
    let text = String::from_utf8_lossy(&html.stdout);
    assert!(
        text.contains("held, nothing deleted: the plan deletes 3 images"),
        "{text}"
    );
    assert!(
        !text.contains("<script src") && !text.contains("<link") && !text.contains("http"),
        "self-contained"
    );
}
