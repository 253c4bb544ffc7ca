//! The CLI: `plan`, `validate` and `explain` (offline) and `run` (live),
//! over the same engine as the Lambda function; `completions` and `man`.
//! One module per command.
//!
//! Exit status: 0 on success; 1 when a repository could not be collected or
//! an image was not deleted; 2 on invalid input, with the message on stderr.

mod completions;
mod explain;
mod figures;
mod html;
mod listing;
mod live;
mod offline;
mod plan_json;
mod summary;
mod terminal;
mod validate;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::policy::Policy;
use crate::run::report::Detail;
use completions::{completions, man_page};
use explain::explain_command;
use live::{Reporting, run_command};
use offline::plan_command;
use terminal::{Paint, Style};
use validate::validate_command;

#[derive(Debug, Parser)]
#[command(
    name = "ecr-gc",
    version,
    about = "Garbage-collect Amazon ECR images with ECR lifecycle-policy rules"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan offline: which images of a `describe-images` listing the policy expires.
    Plan {
        #[command(flatten)]
        listing: Listing,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Collect live repositories through the standard AWS credential chain. A dry run unless --apply.
    Run {
        #[arg(long)]
        policy: String,
        /// Collect this repository (repeatable). Without it, the policy's settings select repositories.
        #[arg(long = "repository", value_name = "NAME")]
        repositories: Vec<String>,
        /// Delete what the plan expires. Without it, nothing is deleted.
        #[arg(long)]
        apply: bool,
        /// The registry (AWS account id) to collect, when it is not the caller's own.
        #[arg(long, value_name = "ACCOUNT_ID", conflicts_with = "targets")]
        registry_id: Option<String>,
        /// A targets document (regions, and accounts with roles to assume), as in ECR_GC_TARGETS.
        #[arg(long, value_name = "FILE")]
        targets: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        output: Format,
        /// What the report keeps of each repository: `images` (every image's outcome) or `summary` (counts only, so memory stays flat over a whole organisation). The log lines on stderr have every image either way.
        #[arg(long, value_name = "images|summary", default_value = "images", value_parser = parse_detail)]
        detail: Detail,
        /// Also write CloudWatch metrics (Embedded Metric Format, namespace ECRGC), a line per target, to stderr with the log lines.
        #[arg(long)]
        emf: bool,
        /// No progress line on stderr (it is shown only when stderr is a terminal).
        #[arg(long, short)]
        quiet: bool,
        /// Append the JSON log lines to this file instead of writing them to stderr.
        #[arg(long, value_name = "FILE")]
        log_file: Option<String>,
    },
    /// Check a policy document: whether it loads, and what each rule does. Exit 1 if it does not load.
    Validate {
        #[arg(long)]
        policy: String,
        /// Also say, rule by rule, whether ECR's own lifecycle policies accept it; exit 1 if not.
        #[arg(long)]
        native: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell), generated from this CLI's definition.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this CLI's definition: `ecr-gc man > ecr-gc.1`.
    Man,
    /// Explain one image of a `describe-images` listing: the rule that decides it, what it counted, what every rule says, and the protections.
    Explain {
        #[command(flatten)]
        listing: Listing,
        /// The image: a tag, a digest, or the start of a digest.
        image: String,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// What an offline command reads: a policy, a listing, and a time.
#[derive(Debug, clap::Args)]
pub struct Listing {
    /// The policy document (ECR lifecycle-policy JSON, plus optional settings).
    #[arg(long)]
    policy: String,
    /// The output of `aws ecr describe-images` (CLI v1 or v2).
    #[arg(long)]
    images: String,
    /// Evaluate as of this time (RFC 3339); defaults to now.
    #[arg(long)]
    now: Option<String>,
    /// Plan under this repository's rules: the first of `settings.overrides` that selects it, else the document's.
    #[arg(long, value_name = "NAME")]
    repository: Option<String>,
}

fn parse_detail(text: &str) -> Result<Detail, String> {
    Detail::parse(text).ok_or_else(|| format!("{text:?}: expected `images` or `summary`"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// How `plan` and `run` write their report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// The whole report, every image.
    Json,
    /// The summary and a table per repository, to paste into a ticket or
    /// a pull request.
    Markdown,
    /// One self-contained page: the totals, and per repository a timeline
    /// of its images by push time, coloured by decision.
    Html,
}

/// Runs the CLI with `args` (the first is the program name) and returns
/// the exit status.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Plan { listing, output } => plan_command(&listing, output),
        Command::Run {
            policy,
            repositories,
            apply,
            registry_id,
            targets,
            output,
            detail,
            emf,
            quiet,
            log_file,
        } => run_command(
            &policy,
            repositories,
            apply,
            registry_id,
            targets,
            Reporting {
                output,
                detail,
                emf,
                quiet,
                log_file,
            },
        ),
        Command::Validate {
            policy,
            native,
            output,
        } => validate_command(&policy, native, output),
        Command::Explain {
            listing,
            image,
            output,
        } => explain_command(&listing, &image, output),
        Command::Completions { shell } => completions(shell),
        Command::Man => man_page(),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ecr-gc: {message}");
            ExitCode::from(2)
        }
    }
}

/// `value` as pretty JSON on stdout, or as people read it.
/// Buffered, since stdout alone flushes every line.
fn emit<T: serde::Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>, &T),
) -> Result<(), String> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, value).map_err(|e| e.to_string())?;
            let _ = writeln!(stdout);
        }
        Output::Table => table(&mut stdout, value),
    }
    stdout
        .flush()
        .map_err(|e| format!("cannot write the output: {e}"))
}

fn read(path: &str, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {what} {path}: {e}"))
}

fn load_policy(path: &str) -> Result<Policy, String> {
    Policy::parse(&read(path, "policy file")?).map_err(|e| format!("{path}: invalid policy: {e}"))
}

fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}", &hex[..12]),
        _ => digest.to_owned(),
    }
}

fn tags(tags: &[String]) -> String {
    if tags.is_empty() {
        "<untagged>".into()
    } else {
        tags.join(",")
    }
}

/// Prints aligned columns, then an optional free-text last column (its
/// header, and a cell per row): each line cut to the style's width, and
/// the first cell of row `i` in `paint(i)`'s colour.
fn print_table<R: AsRef<[String]>>(
    out: &mut impl Write,
    header: &[&str],
    rows: &[R],
    last: Option<(&str, &[String])>,
    style: Style,
    paint: impl Fn(usize) -> Option<Paint>,
) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // On a terminal, the free text wraps under its own column when there
    // is room for it; every line is cut to the width.
    let start: usize = widths.iter().map(|w| w + 2).sum();
    let room = style
        .width
        .map(|w| w.saturating_sub(start))
        .filter(|r| *r >= 20);
    let line = |cells: Vec<&str>, extra: &str| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            text.push_str(&format!("{cell:<w$}  "));
        }
        let extra = match room {
            Some(room) => terminal::wrap(extra, room).join(&format!("\n{:start$}", "")),
            None => extra.to_owned(),
        };
        text.push_str(&extra);
        text.trim_end()
            .lines()
            .map(|l| style.fit(l.trim_end()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let _ = writeln!(
        out,
        "{}",
        line(header.to_vec(), last.map_or("", |(name, _)| name))
    );
    for (i, row) in rows.iter().enumerate() {
        let extra = last
            .and_then(|(_, cells)| cells.get(i))
            .map(String::as_str)
            .unwrap_or("");
        let row = row.as_ref();
        let mut text = line(row.iter().map(String::as_str).collect(), extra);
        if let (Some(p), Some(first)) = (paint(i), row.first())
            && text.starts_with(first.as_str())
            && !first.is_empty()
        {
            text = format!("{}{}", style.paint(first, p), &text[first.len()..]);
        }
        let _ = writeln!(out, "{text}");
    }
}
