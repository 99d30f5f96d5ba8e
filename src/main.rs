//! The `inferbench` binary: parse the command line, run the command. Everything else is the
//! library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { inferbench::cli::apply_seed_env_aliases() };
    inferbench::cli::run(inferbench::cli::Cli::parse())
}
