//! `completions` and `man`: a shell's completion script and the man page,
//! both generated from the CLI's own definition (`Cli`), so neither can
//! drift from the flags it describes.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

pub(super) fn completions(shell: Shell) -> Result<ExitCode, String> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "ecr-gc", &mut script);
    write_out(&script)
}

pub(super) fn man_page() -> Result<ExitCode, String> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| format!("cannot render the man page: {e}"))?;
    write_out(&page)
}

fn write_out(bytes: &[u8]) -> Result<ExitCode, String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
