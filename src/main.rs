//! The `sim` binary: parses arguments, runs the library, renders errors with miette (or as a
//! JSON line with `--log-format json`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// A Rhai script allocates at nearly every step (maps, strings, boxed native values, a scope per
/// function call): glibc's allocator took about a tenth of darooghe's instructions, mimalloc
/// (a thread-local free list per size) about half that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _ = miette::set_hook(Box::new(|_| {
        // Asked for each diagnostic, so the log format chosen after parsing counts: JSON lines
        // carry text, not a terminal's colours.
        let color = std::io::stderr().is_terminal() && !sim::cli::log::is_json();
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .build(),
        )
    }));
    match sim::cli::Cli::parse().execute() {
        Ok(code) => code,
        Err(err) => {
            sim::cli::log::fatal(err);
            ExitCode::FAILURE
        }
    }
}
