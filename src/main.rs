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
    no_transparent_huge_pages();
    more_open_files();
    inferbench::cli::run(inferbench::cli::Cli::parse())
}

/// Small pages only, for this process. mimalloc asks for transparent huge pages on its arenas, so
/// the first touch of each fresh 64 KiB allocator page made the kernel zero a whole 2 MiB: at the
/// start of a load stage, while every thread grows its heap, that was ~14 ms of zeroing in the
/// first 16 ms, and every arrival meant for the first ~10 ms went out 4–11 ms late (measured at
/// 20 000 req/s; up to 600 late requests of a run's 1 % budget). The engine's working set is
/// small: a TLB miss now and then costs less than a stall.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and sets a flag of this process only.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// As many open files as the hard limit allows. The engine holds a connection per request in
/// flight: a closed loop of 2 000 users, or a slow server at a high rate, needs more than the soft
/// limit of 1 024 that many systems start a process with, and past it every new connection would
/// fail with EMFILE mid-run (counted as connect errors that are the client's, not the server's).
fn more_open_files() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let l = getrlimit(Resource::Nofile);
        if l.current != l.maximum {
            // Refused (a hard limit the kernel will not take): the soft limit stays, as before.
            let _ = setrlimit(Resource::Nofile, Rlimit { current: l.maximum, maximum: l.maximum });
        }
    }
}
