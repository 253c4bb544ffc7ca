//! What a person at a terminal sees of `run`, and what a pipe gets: the
//! progress line only when stderr is a terminal (and not with `--quiet`),
//! colour only when stdout is one (and never with `NO_COLOR`), lines that
//! fit its width, and Markdown to paste. The terminal is a real
//! pseudo-terminal (`pty_run.py`), the registry moto.

use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, Moto, cli, keep_newest_reading, policy_file, push_tags};

const PTY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/pty_run.py");

/// Two repositories of three images and a newest; the policy keeps only
/// the newest of each, so a dry run would delete 6.
async fn registry(moto: &Moto) {
    let ecr = moto.ecr();
    push_tags(&ecr, "term-a", &["1", "2", "3"]).await;
    push_tags(&ecr, "term-b", &["1", "2", "3"]).await;
}

/// `ecr-gc ARGS --policy P` under `pty_run.py` with `pty` flags and `env`:
/// what the terminal showed, the piped stdout, and the exit status.
fn on_terminal(
    moto: &Moto,
    pty: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
) -> (String, String, i64) {
    let path = policy_file(&keep_newest_reading(&[]));
    let out = Command::new("python3")
        .arg(PTY)
        .args(pty)
        .arg("--")
        .arg(BIN)
        .args(args)
        .arg("--policy")
        .arg(&path)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("NO_COLOR")
        .envs(moto.env())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (
        shown["terminal"].as_str().unwrap().to_owned(),
        shown["stdout"].as_str().unwrap().to_owned(),
        shown["status"].as_i64().unwrap(),
    )
}

const PROGRESS: &str = "ecr-gc: repositories 2/2, 6 images would be deleted";

#[tokio::test]
async fn progress_shows_on_a_terminal_only() {
    let moto = Moto::start();
    registry(&moto).await;
    let run = ["run", "--repository", "term-a", "--repository", "term-b"];

    // stderr a terminal: the log lines, and the progress line redrawn under them.
    let (shown, stdout, status) = on_terminal(&moto, &[], &run, &[]);
    assert_eq!(status, 0, "{shown}");
    assert!(shown.contains(PROGRESS), "{shown}");
    assert!(shown.contains("\r\x1b[K"), "{shown}");
    assert!(
        shown.contains("\"message\":\"image would be deleted (dry run)\""),
        "every log line is kept: {shown}"
    );
    assert!(stdout.contains("Dry run: nothing was deleted"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "no colour into a pipe: {stdout}");

    // --quiet: the log lines, no progress.
    let quiet: Vec<&str> = run.iter().copied().chain(["--quiet"]).collect();
    let (shown, _, status) = on_terminal(&moto, &[], &quiet, &[]);
    assert_eq!(status, 0);
    assert!(
        !shown.contains("ecr-gc: repositories") && !shown.contains("\x1b[K"),
        "{shown}"
    );
    assert!(
        shown.contains("image would be deleted (dry run)"),
        "{shown}"
    );

    // Piped: no progress, nothing but JSON lines on stderr.
    let path = policy_file(&keep_newest_reading(&[]));
    let out = cli(
        &moto.endpoint,
        &[&run[..], &["--policy"]].concat(),
        &path,
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{stderr}"
    );
    assert!(!stderr.contains('\r'));
}

#[tokio::test]
async fn colour_and_width_follow_the_terminal() {
    let moto = Moto::start();
    registry(&moto).await;
    let dir = std::env::temp_dir().join(format!("ecr-gc-term-{}", crate::support::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log.json");
    let log = log.to_str().unwrap();
    let run = [
        "run",
        "--repository",
        "term-a",
        "--repository",
        "term-b",
        "--log-file",
        log,
    ];
    let tty = ["--stdout-tty", "--columns", "60"];

    let (shown, _, status) = on_terminal(&moto, &tty, &run, &[]);
    assert_eq!(status, 0, "{shown}");
    assert!(
        shown.contains("\x1b[32mDry run"),
        "colour on a terminal: {shown}"
    );
    for line in shown.split(['\n', '\r']) {
        let visible = line
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "")
            .replace("\x1b[K", "");
        assert!(visible.chars().count() <= 60, "wider than 60: {visible:?}");
    }
    let lines = std::fs::read_to_string(log).unwrap();
    assert!(
        lines
            .lines()
            .filter(|l| l.contains("image would be deleted (dry run)"))
            .count()
            == 6,
        "{lines}"
    );

    for no_color in ["1", "yes"] {
        let (shown, _, _) = on_terminal(&moto, &tty, &run, &[("NO_COLOR", no_color)]);
        assert!(
            !shown.contains("\x1b[3") && !shown.contains("\x1b[0m"),
            "NO_COLOR={no_color}: {shown}"
        );
        assert!(shown.contains("Dry run"), "{shown}");
    }
}

#[tokio::test]
async fn markdown_is_ready_to_paste() {
    let moto = Moto::start();
    registry(&moto).await;
    let path = policy_file(&keep_newest_reading(&[]));
    let args = [
        "run",
        "--repository",
        "term-a",
        "--repository",
        "term-b",
        "--output",
        "markdown",
        "--policy",
    ];
    let out = cli(&moto.endpoint, &args, &path, &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = [
        "## ecr-gc run (dry run, nothing deleted, ",
        "| target | repositories | held | images | kept | expired | protected | failed | freed |",
        "| own account/own region | 2 | 0 | 8 | 2 | 6 | 0 | 0 | ≤ 5.9 KiB |",
        "- Would free 5.9 KiB (image sizes, an upper bound: layers shared with kept images stay); estimated saving < $0.01 a month",
        "- Dry run: nothing was deleted; pass --apply to delete.",
        "### Repositories",
        "| `term-a` | 4 | 1 | 3 | 0 | 0 | 0 | ≤ 2.9 KiB |  |",
    ];
    for line in expected {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}
