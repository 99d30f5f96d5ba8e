//! A benchmark's `results/`: it exists only when complete. The load engine writes into a hidden
//! staging folder beside it (`.results.tmp-{pid}-{n}`); the folder is verified (the summary parses,
//! the per-request file holds as many records as the summary counts), synced and renamed to
//! `results/` in one step. A crash or Ctrl-C leaves at most a staging folder, which the next run
//! of that benchmark removes — never a half `results/`.

use std::{
    io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::schema::{
    Results,
    result_files::{self, REQUESTS, SUMMARY},
};

/// The folder name of complete results.
pub const RESULTS: &str = "results";
/// Where the results of a benchmark whose every request failed are kept (for a look; a resumed
/// run tries the benchmark again).
pub const FAILED_RESULTS: &str = "failed-results";
/// Run-time facts (the server's address, what was simulated).
pub const RUNTIME: &str = "runtime.json";
const STAGING_PREFIX: &str = ".results.tmp-";

/// A failure naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    /// The file or folder.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl From<result_files::FileError> for StoreError {
    fn from(e: result_files::FileError) -> Self {
        StoreError { path: e.path, message: e.message }
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |e| StoreError { path: path.to_path_buf(), message: e.to_string() }
}

/// Whether the benchmark in `bench_dir` has complete results.
pub fn is_done(bench_dir: &Path) -> bool {
    bench_dir.join(RESULTS).is_dir()
}

/// Removes staging folders left by processes that are gone (a crash, a SIGKILL): half-collected
/// results are redone, never published. Returns how many were removed.
pub fn discard_stale(bench_dir: &Path) -> Result<usize, StoreError> {
    let mut n = 0;
    let entries = match std::fs::read_dir(bench_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(bench_dir)(e)),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(STAGING_PREFIX) else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| p != std::process::id() && crate::schema::clock::pid_alive(p));
        if !alive {
            // Folders, and the files beside them (a kube download's archive).
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let r = if is_dir { std::fs::remove_dir_all(e.path()) } else { std::fs::remove_file(e.path()) };
            r.map_err(io_err(&e.path()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// A new, empty staging folder in `bench_dir`.
pub fn staging(bench_dir: &Path) -> Result<PathBuf, StoreError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = bench_dir.join(format!("{STAGING_PREFIX}{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir(&dir).map_err(io_err(&dir))?;
    Ok(dir)
}

/// What a verified results folder holds.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The summary.
    pub results: Results,
    /// Per-request records found.
    pub records: u64,
}

/// Reads `summary.json` back and counts `requests.jsonl.zst`'s records: with `per_request` records
/// on, every request sent has one, except those cut by a stop ("cancelled").
pub fn verify(dir: &Path, per_request: bool) -> Result<Verified, StoreError> {
    let summary = dir.join(SUMMARY);
    let text = std::fs::read_to_string(&summary).map_err(io_err(&summary))?;
    let results =
        result_files::parse_summary(&text).map_err(|e| StoreError { path: summary.clone(), message: e.to_string() })?;
    let requests = dir.join(REQUESTS);
    let records = result_files::count_requests(&requests)?;
    let counts = results.stages.iter().filter_map(|s| s.counts.as_ref());
    let expected: u64 = counts.map(|c| c.sent - c.errors.get("cancelled").copied().unwrap_or(0)).sum();
    if per_request && records != expected {
        return Err(StoreError {
            path: requests,
            message: format!("{records} request records, but the summary counts {expected} requests sent"),
        });
    }
    Ok(Verified { results, records })
}

/// Writes `runtime.json` into the staging folder.
pub fn write_runtime(staging: &Path, runtime: &serde_json::Value) -> Result<(), StoreError> {
    result_files::write_json(staging, RUNTIME, runtime).map(drop).map_err(StoreError::from)
}

/// Publishes a verified staging folder as `bench_dir/results` (synced, then renamed: all or
/// nothing). Fails when results exist already (another process finished the benchmark first).
pub fn publish(staging: &Path, bench_dir: &Path) -> Result<PathBuf, StoreError> {
    publish_as(staging, bench_dir, RESULTS, false)
}

/// Keeps the results of a failed benchmark as `failed-results/` (replacing older ones).
pub fn keep_failed(staging: &Path, bench_dir: &Path) -> Result<PathBuf, StoreError> {
    publish_as(staging, bench_dir, FAILED_RESULTS, true)
}

fn publish_as(staging: &Path, bench_dir: &Path, name: &str, replace: bool) -> Result<PathBuf, StoreError> {
    let target = bench_dir.join(name);
    for e in std::fs::read_dir(staging).map_err(io_err(staging))?.flatten() {
        std::fs::File::open(e.path()).and_then(|f| f.sync_all()).map_err(io_err(&e.path()))?;
    }
    std::fs::File::open(staging).and_then(|d| d.sync_all()).map_err(io_err(staging))?;
    // The old folder is moved aside (hidden: a later run removes it if we die here), the new one
    // renamed in, then the old one removed — at every instant one whole folder has the name.
    let old = bench_dir.join(format!("{STAGING_PREFIX}{}-old-{name}", std::process::id()));
    if target.exists() {
        if !replace {
            return Err(StoreError { path: target, message: "results exist already; nothing was replaced".into() });
        }
        std::fs::rename(&target, &old).map_err(io_err(&target))?;
    }
    std::fs::rename(staging, &target).map_err(io_err(&target))?;
    std::fs::File::open(bench_dir).and_then(|d| d.sync_all()).map_err(io_err(bench_dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    Ok(target)
}

/// Removes a staging folder (a run cut short: its results are redone).
pub fn discard(staging: &Path) {
    let _ = std::fs::remove_dir_all(staging);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Counts, StageResult};

    /// A staging folder with a summary of `sent` requests (`cancelled` of them cut) and `records`
    /// request lines.
    fn staged(bench: &Path, sent: u64, cancelled: u64, records: usize) -> PathBuf {
        let dir = staging(bench).unwrap();
        let mut counts = Counts { sent, ..Default::default() };
        if cancelled > 0 {
            counts.errors.insert("cancelled".into(), cancelled);
        }
        let results =
            Results { stages: vec![StageResult { counts: Some(counts), ..Default::default() }], ..Default::default() };
        let lines: String = (0..records).map(|i| format!("{{\"i\": {i}}}\n")).collect();
        std::fs::write(dir.join(REQUESTS), zstd::encode_all(lines.as_bytes(), 1).unwrap()).unwrap();
        std::fs::write(dir.join(SUMMARY), result_files::summary_json(&results)).unwrap();
        dir
    }

    #[test]
    fn verify_checks_the_record_count_against_the_summary() {
        let bench = tempfile::tempdir().unwrap();
        let ok = staged(bench.path(), 5, 0, 5);
        assert_eq!(verify(&ok, true).unwrap().records, 5);
        let cut = staged(bench.path(), 5, 2, 3);
        assert_eq!(verify(&cut, true).unwrap().records, 3, "cancelled requests have no record");
        let short = staged(bench.path(), 5, 0, 4);
        let e = verify(&short, true).unwrap_err().to_string();
        assert!(e.contains("4 request records, but the summary counts 5 requests sent"), "{e}");
        assert!(verify(&short, false).is_ok(), "records off: not counted");
        std::fs::write(short.join(SUMMARY), "{\"stages\": 3}").unwrap();
        let e = verify(&short, false).unwrap_err().to_string();
        assert!(e.contains("summary.json: not a results summary"), "{e}");
    }

    #[test]
    fn publish_is_all_or_nothing_and_never_replaces_results() {
        let bench = tempfile::tempdir().unwrap();
        let first = staged(bench.path(), 1, 0, 1);
        let dir = publish(&first, bench.path()).unwrap();
        assert!(is_done(bench.path()) && dir.join(SUMMARY).is_file() && !first.exists());
        let second = staged(bench.path(), 2, 0, 2);
        let e = publish(&second, bench.path()).unwrap_err().to_string();
        assert!(e.contains("results exist already"), "{e}");
        assert_eq!(verify(&dir, true).unwrap().records, 1, "the first results are untouched");
    }

    #[test]
    fn failed_results_are_replaced_whole() {
        let bench = tempfile::tempdir().unwrap();
        keep_failed(&staged(bench.path(), 1, 0, 1), bench.path()).unwrap();
        let kept = keep_failed(&staged(bench.path(), 3, 0, 3), bench.path()).unwrap();
        assert_eq!(verify(&kept, true).unwrap().records, 3);
        let names: Vec<String> =
            std::fs::read_dir(bench.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, [FAILED_RESULTS], "no staging or old folder left");
    }

    #[test]
    fn stale_staging_of_dead_processes_is_removed_and_live_ones_kept() {
        let bench = tempfile::tempdir().unwrap();
        let mine = staging(bench.path()).unwrap();
        // pid 0 never exists; pid 1 (init) always does.
        let dead = bench.path().join(format!("{STAGING_PREFIX}0-7"));
        let live = bench.path().join(format!("{STAGING_PREFIX}1-7"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::create_dir(&live).unwrap();
        assert_eq!(discard_stale(bench.path()).unwrap(), 2, "the dead one, and this process's own leftover");
        assert!(!dead.exists() && live.exists() && !mine.exists());
    }
}
