//! Shell habits, through the real binary: completion scripts that the shells themselves accept,
//! man pages in roff (rendered by `man` when the machine has it), and clear errors for a shell
//! `sim` does not know or a directory it cannot write.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The commands `sim --help` lists.
const COMMANDS: &[&str] = &[
    "run",
    "sample",
    "backfill",
    "check",
    "bench",
    "schema",
    "analyze",
    "report",
    "completions",
    "man",
];

fn sim(args: &[&str]) -> common::Output {
    common::run(common::sim().args(args), WAIT)
}

#[test]
fn the_bash_completion_is_valid_bash_and_completes_every_command() {
    let out = sim(&["completions", "bash"]);
    assert!(out.status.success(), "{}", out.stderr);
    let script = out.stdout_text();
    for command in COMMANDS {
        assert!(script.contains(command), "no {command} in:\n{script}");
    }
    // bash itself reads it, and the completion function it defines offers the commands.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.bash");
    std::fs::write(&path, &script).unwrap();
    let probe = format!(
        "source '{}' && COMP_WORDS=(sim ru) && COMP_CWORD=1 && _sim sim ru sim && \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let answer = Command::new("bash")
        .args(["-c", &probe])
        .stderr(Stdio::piped())
        .output()
        .expect("run bash");
    assert!(
        answer.status.success(),
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
    let offered = String::from_utf8_lossy(&answer.stdout);
    assert_eq!(offered.trim(), "run", "bash offered {offered:?}");
}

#[test]
fn zsh_and_fish_completions_name_every_command_and_an_unknown_shell_is_refused() {
    for shell in ["zsh", "fish"] {
        let out = sim(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", out.stderr);
        let script = out.stdout_text();
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    let out = sim(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("invalid value 'tcsh'"),
        "{}",
        out.stderr
    );
}

#[test]
fn man_pages_are_roff_for_sim_and_each_command() {
    let out = sim(&["man"]);
    assert!(out.status.success(), "{}", out.stderr);
    let page = out.stdout_text();
    assert!(page.contains(".TH SIM 1"), "{page}");
    assert!(
        page.contains(".SH NAME") && page.contains(".SH SUBCOMMANDS"),
        "{page}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = sim(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    for command in COMMANDS {
        let page = std::fs::read_to_string(dir.path().join(format!("sim-{command}.1")))
            .unwrap_or_else(|e| panic!("sim-{command}.1: {e}"));
        let title = format!(".TH SIM-{} 1", command.to_uppercase());
        assert!(page.contains(&title), "sim-{command}.1 lacks {title}");
        assert!(
            page.contains("Examples:"),
            "sim-{command}.1 lacks its examples"
        );
    }
    // Rendered as a person reads it, where the machine has man and groff.
    let has_man = Command::new("man")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_man {
        let shown = Command::new("man")
            .arg("-l")
            .arg(dir.path().join("sim-run.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("run man");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("--metrics"), "{text}");
    }
}

#[test]
fn a_directory_that_cannot_be_written_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let target = blocker.join("man1");
    let out = sim(&["man", "--dir", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        common::mentions(&out.stderr, &format!("cannot write {}", target.display())),
        "{}",
        out.stderr
    );
}
