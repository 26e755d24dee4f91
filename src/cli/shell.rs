//! What a shell user expects of a command-line tool: completions for bash, zsh and fish
//! (`sim completions`), man pages (`sim man`), and examples at the end of every `--help`.
//! Completions and pages are generated from the same clap definitions as the parser, so they
//! cannot drift from it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, CliError};

/// The examples ending `sim --help`.
pub(super) const SIM: &str = "Examples:
  sim run scripts/darooghe.rhai                    stream live into an embedded broker
  sim check scripts/*.rhai                         validate scenarios (exit status for CI)";

/// The examples ending `sim run --help`.
pub(super) const RUN: &str = "Examples:
  sim run scripts/darooghe.rhai
  sim run scripts/darooghe.rhai --brokers localhost:9092 --metrics :9464 --dashboard";

/// The examples ending `sim sample --help`.
pub(super) const SAMPLE: &str = "Examples:
  sim sample scripts/darooghe.rhai -n 5
  sim sample scripts/darooghe.rhai -n 1000 --seed 1 --now 2024-01-15T10:00:00Z > events.jsonl";

/// The examples ending `sim backfill --help`.
pub(super) const BACKFILL: &str = "Examples:
  sim backfill scripts/darooghe.rhai --count 3000000 --sink file:history.jsonl
  sim backfill scripts/darooghe.rhai --brokers localhost:9092 --days 30";

/// The examples ending `sim check --help`.
pub(super) const CHECK: &str = "Examples:
  sim check scripts/*.rhai
  sim check scripts/darooghe.rhai --strict --format json";

/// The examples ending `sim bench --help`.
pub(super) const BENCH: &str = "Examples:
  sim bench scripts/darooghe.rhai
  sim bench scripts/darooghe.rhai -n 50000 --workers 4 --format json";

/// The examples ending `sim schema --help`.
pub(super) const SCHEMA: &str = "Examples:
  sim schema scripts/darooghe.rhai
  sim schema scripts/darooghe.rhai --format json-schema";

/// The examples ending `sim analyze --help`.
pub(super) const ANALYZE: &str = "Examples:
  sim analyze --brokers localhost:9092
  sim analyze --brokers localhost:9092 --from-beginning --until-idle --format json > summary.json";

/// The examples ending `sim report --help`.
pub(super) const REPORT: &str = "Examples:
  sim report summary.json -o report.html
  sim report summary.json --scenario scripts/darooghe.rhai -o report.html";

/// The examples ending `sim completions --help`.
pub(super) const COMPLETIONS: &str = "Examples:
  sim completions bash > ~/.local/share/bash-completion/completions/sim
  sim completions zsh > ~/.zfunc/_sim";

/// The examples ending `sim man --help`.
pub(super) const MAN: &str = "Examples:
  sim man | man -l -
  sim man --dir /usr/local/share/man/man1";

/// `sim completions SHELL`: the completion script on standard output.
pub(super) fn completions(shell: Shell) -> ExitCode {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "sim", &mut out);
    let _ = std::io::stdout().write_all(&out);
    ExitCode::SUCCESS
}

/// `sim man`: the page `sim(1)` on standard output, or with `dir`, one page a command written
/// there (`sim.1`, `sim-run.1`, ...).
pub(super) fn man(dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let command = Cli::command();
    match dir {
        None => {
            let mut out = Vec::new();
            render(&command, "sim", &mut out)
                .map_err(|e| CliError::Write(PathBuf::from("-"), e))?;
            let _ = std::io::stdout().write_all(&out);
        }
        Some(dir) => write_pages(&command, &dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The page of `command`, titled `title` (`sim`, `sim-run`).
fn render(command: &clap::Command, title: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
    clap_mangen::Man::new(command.clone())
        .title(title.to_uppercase())
        .render(out)
}

/// Writes `sim.1` and a page for each command, named as man names them (`sim-run.1`).
fn write_pages(command: &clap::Command, dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::Write(dir.to_path_buf(), e))?;
    let mut pages = vec![("sim".to_string(), command.clone())];
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        pages.push((format!("sim-{}", sub.get_name()), sub.clone()));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        render(&page, &name, &mut out).map_err(|e| CliError::Write(path.clone(), e))?;
        std::fs::write(&path, out).map_err(|e| CliError::Write(path.clone(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Every example block, with the command it belongs to.
    const ALL: &[(&str, &str)] = &[
        ("", SIM),
        ("run", RUN),
        ("sample", SAMPLE),
        ("backfill", BACKFILL),
        ("check", CHECK),
        ("bench", BENCH),
        ("schema", SCHEMA),
        ("analyze", ANALYZE),
        ("report", REPORT),
        ("completions", COMPLETIONS),
        ("man", MAN),
    ];

    /// The arguments of an example line: up to a redirection, a pipe, or the two spaces before
    /// a comment.
    fn example_args(line: &str) -> Vec<&str> {
        let line = line.trim();
        let line = line.split("  ").next().unwrap_or(line);
        line.split_whitespace()
            .take_while(|word| !matches!(*word, ">" | "|"))
            .collect()
    }

    #[test]
    fn every_example_parses_as_the_command_it_illustrates() {
        for (command, examples) in ALL {
            let lines: Vec<&str> = examples.lines().skip(1).collect();
            assert!(!lines.is_empty(), "{command}: no example");
            for line in lines {
                let args = example_args(line);
                if !command.is_empty() {
                    assert_eq!(
                        args.get(1),
                        Some(command),
                        "{line:?} is not `sim {command}`"
                    );
                }
                if let Err(err) = Cli::try_parse_from(&args) {
                    panic!("{line:?} does not parse: {err}");
                }
            }
        }
    }

    #[test]
    fn every_command_has_examples_at_the_end_of_its_help() {
        let command = Cli::command();
        let names: Vec<&str> = command
            .get_subcommands()
            .map(|s| s.get_name())
            .filter(|name| *name != "help")
            .collect();
        for name in &names {
            assert!(
                ALL.iter().any(|(command, _)| command == name),
                "sim {name} has no examples"
            );
        }
        for (name, examples) in ALL {
            let mut args = vec!["sim"];
            if !name.is_empty() {
                args.push(name);
            }
            args.push("--help");
            let help = Cli::try_parse_from(&args).unwrap_err().to_string();
            assert!(
                help.trim_end().ends_with(examples.trim_end()),
                "sim {name} --help does not end with its examples:\n{help}"
            );
        }
    }
}
