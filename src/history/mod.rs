//! The results history: every run in a SQL database, so trends, regression gates and any other
//! question over many runs are a query away (`inferbench history …`).
//!
//! Two stores, one schema ([`schema`]), one code path: a run is read as the report reads it
//! ([`crate::report::read`]), turned into rows once ([`rows`]), and written by whichever store
//! is in use — the embedded default, one SQLite file (`output/history.db`, [`sqlite`]), or Cloud
//! Spanner for a team ([`spanner`]). The questions ([`query`]) are SQL both dialects accept.
//! A run is replaced whole in one transaction, so importing it again changes nothing and two
//! runs ending together never mix.
//!
//! In the pipeline this comes after the report: it reads run folders through it, and gives the
//! report its history section as plain data ([`crate::report::model::HistoryPoint`]).

pub mod query;
pub mod rows;
pub mod schema;
pub mod spanner;
pub mod sqlite;

use std::path::{Path, PathBuf};

use crate::report::{self, ReportError, model::Run};
pub use rows::Value;
use rows::{RunKind, RunRows};

/// A history failure, naming the store (its file or URL).
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The store refused or failed.
    #[error("history {store}: {message}")]
    Store {
        /// The file or URL.
        store: String,
        /// What went wrong.
        message: String,
    },
    /// Written by a newer inferbench.
    #[error(
        "history {store}: written by a newer inferbench (history schema {found}; this inferbench reads and writes schema {}): upgrade inferbench to use it",
        schema::VERSION
    )]
    Newer {
        /// The file or URL.
        store: String,
        /// The version found.
        found: i64,
    },
    /// A run folder that cannot be read.
    #[error(transparent)]
    Read(#[from] ReportError),
    /// A question that cannot be asked (unknown metric, no such run).
    #[error("{0}")]
    Question(String),
}

/// Where the history is: a SQLite file, or a Spanner database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    File(PathBuf),
    /// `spanner://projects/P/instances/I/databases/D`.
    Spanner(spanner::Database),
}

impl Location {
    /// Parses `--history`: `spanner://projects/P/instances/I/databases/D`, or a file path.
    pub fn parse(spec: &str) -> Result<Location, HistoryError> {
        if let Some(rest) = spec.strip_prefix("spanner://") {
            return spanner::Database::parse(rest).map(Location::Spanner).ok_or_else(|| HistoryError::Store {
                store: spec.to_owned(),
                message: "not a Spanner database URL: expected spanner://projects/PROJECT/instances/INSTANCE/databases/DATABASE".into(),
            });
        }
        if let Some((scheme, _)) = spec.split_once("://") {
            return Err(HistoryError::Store {
                store: spec.to_owned(),
                message: format!(
                    "unknown kind of store `{scheme}://`: give a file path (SQLite) or spanner://projects/PROJECT/instances/INSTANCE/databases/DATABASE"
                ),
            });
        }
        if spec.is_empty() {
            return Err(HistoryError::Question("--history is empty: give a file path or a spanner:// URL".into()));
        }
        Ok(Location::File(PathBuf::from(spec)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Spanner(d) => write!(f, "{d}"),
        }
    }
}

/// Rows a query returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// Values, a row each.
    pub rows: Vec<Vec<Value>>,
}

/// An open history.
pub enum Store {
    /// SQLite.
    Sqlite(sqlite::SqliteStore),
    /// Cloud Spanner.
    Spanner(spanner::SpannerStore),
}

impl Store {
    /// Opens the history at `at` (migrating its schema); a missing SQLite file is created when
    /// `create`, else an error that says how runs get there.
    pub async fn open(at: &Location, create: bool) -> Result<Store, HistoryError> {
        Ok(match at {
            Location::File(p) => Store::Sqlite(sqlite::SqliteStore::open(p.clone(), create)?),
            Location::Spanner(d) => Store::Spanner(spanner::SpannerStore::open(d.clone()).await?),
        })
    }

    /// The dialect of its SQL.
    pub fn dialect(&self) -> schema::Dialect {
        match self {
            Store::Sqlite(_) => schema::Dialect::Sqlite,
            Store::Spanner(_) => schema::Dialect::Spanner,
        }
    }

    /// Replaces each run of `runs` with its rows, each run whole (SQLite: all of them in one
    /// transaction; Spanner: one commit per run).
    pub async fn write(&mut self, runs: &[RunRows]) -> Result<(), HistoryError> {
        match self {
            Store::Sqlite(s) => s.write(runs),
            Store::Spanner(s) => {
                for rows in runs {
                    s.write(rows).await?;
                }
                Ok(())
            }
        }
    }

    /// Runs a query with `@name` parameters; `read_only` refuses anything that writes.
    pub async fn query(&self, sql: &str, params: &[(&str, Value)], read_only: bool) -> Result<Rows, HistoryError> {
        match self {
            Store::Sqlite(s) => s.query(sql, params, read_only),
            Store::Spanner(s) => s.query(sql, params).await,
        }
    }
}

/// What was recorded of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The run id.
    pub run_id: String,
    /// Benchmarks recorded.
    pub benchmarks: usize,
    /// Stages recorded.
    pub stages: usize,
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {} ({} benchmark(s), {} stage(s))", self.run_id, self.benchmarks, self.stages)
    }
}

/// A folder of results as rows: a run folder (`run.json`, or the original tool's
/// `{name}-{run_id}/` folders), or a stand-alone load's output folder (`summary.json` in it).
pub fn read_folder(dir: &Path, host: Option<&str>) -> Result<RunRows, HistoryError> {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if abs.join(crate::schema::result_files::SUMMARY).is_file() {
        let run = load_folder(&abs)?;
        return Ok(rows::rows(&run, RunKind::Load, host)?);
    }
    let run = report::read::run(&abs)?;
    // A history keeps whole runs: one with a benchmark whose results cannot be read is refused
    // (the report shows the rest; an import would silently lose that benchmark).
    if let Some(e) = run.benchmarks.iter().find_map(|b| b.unreadable.clone()) {
        return Err(e.into());
    }
    let kind = if run.created_at.is_none()
        && run.benchmarks.iter().any(|b| b.results.as_ref().is_some_and(|r| r.kind == report::model::ResultsKind::Lpg))
    {
        RunKind::Lpg
    } else {
        RunKind::Run
    };
    Ok(rows::rows(&run, kind, host)?)
}

/// A stand-alone load's output folder, as a run of one benchmark (named by its metadata's
/// `benchmark`, else `load`); its run id is its metadata's `run_id`, else `load-` and its start.
fn load_folder(dir: &Path) -> Result<Run, ReportError> {
    let results = report::read::results(dir, report::model::ResultsKind::Complete)?;
    let info = results.info.clone().unwrap_or_default();
    let id = info.metadata.get("run_id").cloned().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        let compact: String = info.started_at.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        format!("load-{compact}")
    });
    let name = info.metadata.get("benchmark").cloned().filter(|s| !s.is_empty()).unwrap_or_else(|| "load".into());
    Ok(Run {
        dir: dir.to_path_buf(),
        id,
        created_at: Some(info.started_at.clone()).filter(|s| !s.is_empty()),
        updated_at: None,
        tool_version: Some(info.tool_version.clone()).filter(|s| !s.is_empty()),
        catalogs: vec![],
        benchmarks: vec![report::model::Bench {
            name,
            dir: dir.to_path_buf(),
            state: Some(crate::snapshot::run_file::State::Done),
            reason: None,
            seconds: None,
            started_at: None,
            finished_at: None,
            results: Some(results),
            unreadable: None,
            config: None,
            base: None,
        }],
    })
}

/// Writes `runs` into `store`: what was recorded of each.
pub async fn record(store: &mut Store, runs: &[RunRows]) -> Result<Vec<Recorded>, HistoryError> {
    store.write(runs).await?;
    Ok(runs
        .iter()
        .map(|rows| Recorded {
            run_id: rows.run_id.clone(),
            benchmarks: rows.of("benchmarks").len(),
            stages: rows.of("stages").len(),
        })
        .collect())
}

/// This machine's name, recorded as the host of the runs it ends.
pub fn hostname() -> Option<String> {
    rustix::system::uname().nodename().to_str().ok().map(str::to_owned).filter(|h| !h.is_empty())
}

/// Records the folder `dir` in the history at `at` at the end of a run; best effort: the caller
/// prints the error as a warning, never as a failed benchmark.
pub async fn record_after_run(at: &Location, dir: &Path) -> Result<Recorded, HistoryError> {
    let rows = read_folder(dir, hostname().as_deref())?;
    let mut store = Store::open(at, true).await?;
    let recorded = record(&mut store, std::slice::from_ref(&rows)).await?;
    Ok(recorded.into_iter().next().expect("one run written"))
}
