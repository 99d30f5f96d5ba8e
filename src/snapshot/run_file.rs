//! `output/{run_id}/run.json`: what a run is made of and where each benchmark stands.
//!
//! Several processes may share a run id (the seed's "run benchmarks on different accelerator types
//! in parallel using the same run_id"), so every update is a read-modify-write under an exclusive
//! lock on `run.json.lock`, and the file is replaced atomically (temp file + rename): a crash never
//! leaves half a `run.json`.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::schema::clock::{now, pid_alive};

/// File name.
pub const RUN_JSON: &str = "run.json";

/// Where a benchmark stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Snapshot written; not run yet.
    Pending,
    /// Deployed or loading.
    Running,
    /// Results complete.
    Done,
    /// Failed; see `reason`.
    Failed,
    /// Left out of this run; see `reason`.
    Skipped,
}

/// One benchmark's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRecord {
    /// Namespace / folder name.
    pub namespace: String,
    /// Where it is defined (file:line:col).
    pub source: String,
    /// State.
    pub state: State,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// RFC 3339 time its last attempt started (deploying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339 time its last attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Seconds its last attempt took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Process id of the `inferbench run` that has it `running` (so another process sharing the
    /// run id leaves it alone, and a resume can tell a crashed run's leftover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
}

impl BenchmarkRecord {
    /// A record first seen now, in `state`.
    pub fn new(namespace: String, source: String, state: State, reason: Option<String>) -> Self {
        BenchmarkRecord {
            namespace,
            source,
            state,
            reason,
            updated_at: now(),
            started_at: None,
            finished_at: None,
            seconds: None,
            owner: None,
        }
    }

    /// `running` in a process that is gone (killed, crashed): a leftover, not a live run.
    pub fn is_stale_running(&self) -> bool {
        self.state == State::Running && !self.owner.is_some_and(pid_alive)
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    /// "inferbench".
    pub tool: String,
    /// Version of the tool that created the run.
    pub version: String,
    /// The run id.
    pub run_id: String,
    /// RFC 3339 time the run was created.
    pub created_at: String,
    /// RFC 3339 time of the last update.
    pub updated_at: String,
    /// Every catalog file any invocation of this run read.
    pub catalogs: Vec<String>,
    /// Filters of each invocation, in order.
    #[serde(default)]
    pub invocations: Vec<Invocation>,
    /// Benchmarks by name.
    pub benchmarks: BTreeMap<String, BenchmarkRecord>,
}

/// One command that worked on the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// RFC 3339 start time.
    pub at: String,
    /// The command (`generate`, `run`, `run --dry-run`).
    pub command: String,
    /// The command line arguments.
    pub args: Vec<String>,
}

/// Errors naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RunFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Applies `f` to the run file of `run_dir` (created when missing) under an exclusive lock, and
/// saves the result atomically.
pub fn update<T>(run_dir: &Path, run_id: &str, f: impl FnOnce(&mut RunFile) -> T) -> Result<T, RunFileError> {
    let path = run_dir.join(RUN_JSON);
    let err = |p: &Path, e: io::Error| RunFileError { path: p.to_path_buf(), message: e.to_string() };
    fs::create_dir_all(run_dir).map_err(|e| err(run_dir, e))?;
    let lock_path = run_dir.join(".run.json.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| err(&lock_path, e))?;
    lock.lock().map_err(|e| err(&lock_path, e))?;
    let mut run = match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<RunFile>(&text)
            .map_err(|e| RunFileError { path: path.clone(), message: format!("not a valid run.json: {e}") })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let t = now();
            RunFile {
                tool: "inferbench".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                run_id: run_id.into(),
                created_at: t.clone(),
                updated_at: t,
                catalogs: vec![],
                invocations: vec![],
                benchmarks: BTreeMap::new(),
            }
        }
        Err(e) => return Err(err(&path, e)),
    };
    let out = f(&mut run);
    run.updated_at = now();
    let tmp = run_dir.join(format!(".run.json.tmp.{}", std::process::id()));
    let mut text = serde_json::to_string_pretty(&run).expect("run file serializes");
    text.push('\n');
    let mut file = fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| err(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| err(&path, e))?;
    drop(lock);
    Ok(out)
}

/// Reads a run file.
pub fn read(run_dir: &Path) -> Result<RunFile, RunFileError> {
    let path = run_dir.join(RUN_JSON);
    let text = fs::read_to_string(&path).map_err(|e| RunFileError { path: path.clone(), message: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| RunFileError { path, message: format!("not a valid run.json: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_accumulate_across_calls_and_threads() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("abcd1234");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let d = run_dir.clone();
                std::thread::spawn(move || {
                    update(&d, "abcd1234", |r| {
                        r.benchmarks.insert(
                            format!("b{i}"),
                            BenchmarkRecord::new(format!("b{i}-abcd1234"), String::new(), State::Pending, None),
                        );
                    })
                    .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let r = read(&run_dir).unwrap();
        assert_eq!(r.benchmarks.len(), 8, "no update lost");
        assert_eq!(r.run_id, "abcd1234");
    }
}
