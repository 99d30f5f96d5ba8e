//! The `inferbench` binary: parse the command line, run the command. Everything else is the
//! library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc rather than glibc's malloc: the load engine allocates and frees small buffers for every
/// request (bodies, headers, records) from several threads, where glibc's arenas cost a measured
/// share of the client's time (`_int_malloc`, `malloc_consolidate` high in its profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { inferbench::cli::apply_seed_env_aliases() };
    inferbench::cli::run(inferbench::cli::Cli::parse())
}
