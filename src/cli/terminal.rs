//! The terminal a person watches: whether stdout is one, how wide it is,
//! whether to colour (only on a terminal, never with `NO_COLOR`), and the
//! progress line a `run` keeps at the bottom of stderr while it works.
//!
//! Nothing here changes what is written when output is piped: no colour,
//! no progress, tables at full width.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::run::lines::{Line, LogSink, Step};

/// How a table is written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours.
    pub colour: bool,
    /// Cut each line to this many characters.
    pub width: Option<usize>,
}

/// The colours ecr-gc uses.
#[derive(Debug, Clone, Copy)]
pub enum Paint {
    Red,
    Yellow,
    Green,
}

impl Style {
    /// No colour, full width: for pipes, files and tests.
    pub const PLAIN: Style = Style {
        colour: false,
        width: None,
    };

    /// Stdout's style: colour and its width only when it is a terminal, and
    /// no colour when `NO_COLOR` is set to anything but the empty string.
    pub fn of_stdout(env: impl Fn(&str) -> Option<String>) -> Style {
        if !std::io::stdout().is_terminal() {
            return Style::PLAIN;
        }
        Style {
            colour: env("NO_COLOR").is_none_or(|v| v.is_empty()),
            width: terminal_size::terminal_size_of(std::io::stdout())
                .map(|(w, _)| usize::from(w.0))
                .filter(|w| *w >= 20),
        }
    }

    /// `text` in `paint`, when colouring.
    pub fn paint(&self, text: &str, paint: Paint) -> String {
        if !self.colour {
            return text.to_owned();
        }
        let code = match paint {
            Paint::Red => 31,
            Paint::Yellow => 33,
            Paint::Green => 32,
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// `line` cut to the width, with `…` where it was cut.
    pub fn fit(&self, line: &str) -> String {
        fit(line, self.width)
    }
}

/// `text` in lines of at most `width` characters, broken between words
/// (a word longer than the width is cut across lines).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let room = if used == 0 {
                width
            } else {
                width.saturating_sub(used + 1)
            };
            if word.len() <= room {
                if used > 0 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used == 0 {
                line.extend(word.drain(..width));
            }
            lines.push(std::mem::take(&mut line));
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn fit(line: &str, width: Option<usize>) -> String {
    match width {
        Some(w) if line.chars().count() > w => {
            let mut cut: String = line.chars().take(w.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
        _ => line.to_owned(),
    }
}

/// How far a run has come.
#[derive(Debug, Default)]
struct Counts {
    targets: usize,
    targets_done: usize,
    repositories: usize,
    repositories_done: usize,
    changed: u64,
    archived: u64,
    failed: u64,
}

/// A log sink that keeps a progress line at the bottom of stderr when it
/// is `shown`: the log lines (to stderr, or a file) go through it, and
/// each step redraws the line, at most ten times a second.
pub struct Progress {
    log: Box<dyn LogSink>,
    shown: bool,
    /// Whether the log lines go to stderr too, so the line must be cleared
    /// before each and drawn again after it.
    log_on_stderr: bool,
    dry_run: bool,
    width: usize,
    state: Mutex<(Counts, Option<Instant>)>,
}

const REDRAW: Duration = Duration::from_millis(100);

impl Progress {
    /// The log lines go to `log` (stderr when `log_on_stderr`); the line is
    /// shown when stderr is a terminal, unless `quiet`.
    pub fn new(log: Box<dyn LogSink>, log_on_stderr: bool, dry_run: bool, quiet: bool) -> Progress {
        let stderr = std::io::stderr();
        Progress {
            log,
            shown: !quiet && stderr.is_terminal(),
            log_on_stderr,
            dry_run,
            width: terminal_size::terminal_size_of(stderr).map_or(80, |(w, _)| usize::from(w.0)),
            state: Mutex::new((Counts::default(), None)),
        }
    }

    /// Clears the line, for what is written after the run.
    pub fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.1.take().is_some() {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
    }

    fn text(&self, c: &Counts) -> String {
        let verb = if self.dry_run {
            "would be deleted"
        } else {
            "deleted"
        };
        let mut text = String::from("ecr-gc: ");
        if c.targets > 1 {
            text.push_str(&format!("targets {}/{}, ", c.targets_done, c.targets));
        }
        text.push_str(&format!(
            "repositories {}/{}, {} images {verb}",
            c.repositories_done, c.repositories, c.changed
        ));
        if c.archived > 0 {
            let verb = if self.dry_run {
                "would be archived"
            } else {
                "archived"
            };
            text.push_str(&format!(", {} {verb}", c.archived));
        }
        if c.failed > 0 {
            text.push_str(&format!(", {} failed", c.failed));
        }
        fit(&text, Some(self.width.saturating_sub(1).max(20)))
    }

    fn draw(&self, state: &mut (Counts, Option<Instant>)) {
        let line = format!("\r\x1b[K{}", self.text(&state.0));
        let _ = std::io::stderr().write_all(line.as_bytes());
        state.1 = Some(Instant::now());
    }
}

impl LogSink for Progress {
    fn emit(&self, line: Line) {
        if !(self.shown && self.log_on_stderr) {
            return self.log.emit(line);
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.1.is_some() {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
        self.log.emit(line);
        self.draw(&mut state);
    }

    fn progress(&self, step: Step<'_>) {
        if !self.shown {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let c = &mut state.0;
        match step {
            Step::Targets(n) => c.targets = n,
            Step::Repositories(n) => c.repositories += n,
            Step::Target => c.targets_done += 1,
            Step::Repository(r) => {
                let n = r.counts();
                c.repositories_done += 1;
                c.changed += if self.dry_run && r.held.is_none() {
                    n.images_planned
                } else {
                    n.images_deleted
                };
                c.archived += if self.dry_run && r.held.is_none() {
                    n.transitions_planned
                } else {
                    n.images_transitioned
                };
                c.failed += n.images_failed + n.transitions_failed;
            }
        }
        let due = state.1.is_none_or(|at| at.elapsed() >= REDRAW) || matches!(step, Step::Target);
        if due {
            self.draw(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_the_width() {
        for (line, width, expected) in [
            ("short", Some(10), "short"),
            ("exactly10!", Some(10), "exactly10!"),
            ("eleven char", Some(10), "eleven ch…"),
            ("no width at all", None, "no width at all"),
            ("ünïcödé chars", Some(5), "ünïc…"),
        ] {
            assert_eq!(fit(line, width), expected);
        }
        for (text, width, expected) in [
            ("", 10, vec![""]),
            ("one two three", 7, vec!["one two", "three"]),
            ("one two three", 13, vec!["one two three"]),
            ("abcdefghij k", 4, vec!["abcd", "efgh", "ij k"]),
        ] {
            assert_eq!(wrap(text, width), expected, "{text:?} at {width}");
        }
        let plain = Style::PLAIN;
        assert_eq!(plain.paint("delete", Paint::Red), "delete");
        let colour = Style {
            colour: true,
            width: None,
        };
        assert_eq!(colour.paint("delete", Paint::Red), "\x1b[31mdelete\x1b[0m");
    }
}
