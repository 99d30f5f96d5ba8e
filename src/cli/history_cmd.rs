//! `inferbench history …`: the results history (every run in a SQL database) — import run
//! folders, list them, a metric's trend, a regression gate against a baseline, read-only SQL —
//! and `--history`, which `run`, `load` and `report` share.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use clap::{Args, Subcommand};

use super::{CommandResult, Failure};
use crate::history::{
    self, HistoryError, Location, Store,
    query::{self, ListFilter},
};

/// Exit code of `history check` when something got worse beyond noise.
pub const EXIT_REGRESSION: u8 = 3;

/// `--history`, shared by the commands that write or read the history.
#[derive(Debug, Clone, Args)]
pub struct HistoryArg {
    /// The results history: a SQLite file, or spanner://projects/P/instances/I/databases/D
    /// (Google's usual credentials; SPANNER_EMULATOR_HOST for an emulator). Default: history.db
    /// beside the run folders. `none`: record nothing.
    #[arg(long, env = "INFERBENCH_HISTORY", value_name = "FILE_OR_URL")]
    pub history: Option<String>,
}

impl HistoryArg {
    /// Where the history is: `--history`, else `{runs_dir}/history.db`; `None` for `none`.
    pub fn location(&self, runs_dir: &Path) -> Result<Option<Location>, HistoryError> {
        match self.history.as_deref() {
            Some("none") => Ok(None),
            Some(spec) => Location::parse(spec).map(Some),
            None => Ok(Some(Location::File(runs_dir.join(DEFAULT_FILE)))),
        }
    }

    /// Whether `--history` was given (or its variable set).
    pub fn given(&self) -> bool {
        self.history.is_some()
    }
}

/// The default history's file name, beside the run folders.
pub const DEFAULT_FILE: &str = "history.db";

/// Records a finished run folder (or a stand-alone load's output folder) in the history; best
/// effort: a failure is printed as a warning and changes no exit code.
pub fn record_after(history: &HistoryArg, runs_dir: &Path, dir: &Path, who: &str) {
    let at = match history.location(runs_dir) {
        Ok(Some(at)) => at,
        Ok(None) => return,
        Err(e) => {
            eprintln!("{who}: warning: {e} (the results are in {}; nothing else is affected)", dir.display());
            return;
        }
    };
    let recorded = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HistoryError::Question(e.to_string()))
        .and_then(|rt| rt.block_on(history::record_after_run(&at, dir)));
    match recorded {
        Ok(r) => eprintln!("{who}: {r} recorded in the history {at}"),
        Err(e) => eprintln!(
            "{who}: warning: not recorded in the history: {e} (the results are in {}; add them later with inferbench history import)",
            dir.display()
        ),
    }
}

/// Arguments every `history` subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    #[command(flatten)]
    pub history: HistoryArg,
    /// Root folder of runs: the default history is OUTPUT/history.db, and a bare run id names a
    /// folder under it.
    #[arg(long, env = "INFERBENCH_OUTPUT", default_value = "output", value_name = "DIR")]
    pub output: PathBuf,
}

impl Common {
    fn location(&self) -> Result<Location, Failure> {
        self.history
            .location(&self.output)
            .map_err(Failure::new)?
            .ok_or_else(|| Failure::new("--history none: there is no history to read"))
    }
}

/// `history` subcommands.
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Record run folders (of inferbench, or of the original tool's latency-profile-generator), a
    /// stand-alone load's --output-dir, or a folder of run folders. Importing a run again
    /// replaces it with the same rows: nothing changes.
    Import(ImportArgs),
    /// Runs and their benchmarks, oldest first, filtered.
    List(ListArgs),
    /// One metric of a benchmark over its runs, oldest first.
    Trend(TrendArgs),
    /// Compare a run with a baseline by the report's rule (95 % confidence intervals that do not
    /// overlap): exit 0 when nothing got worse beyond noise, 3 when something did.
    Check(CheckArgs),
    /// Read-only SQL over the history (tables: `inferbench history schema`), in the dialect of
    /// the store: SQLite, or Spanner's GoogleSQL.
    Sql(SqlArgs),
    /// The tables and their columns.
    Schema,
}

/// `history import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Run folders (output/RUN_ID), load output folders, or folders holding run folders.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// `history list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Benchmarks whose name matches this regex (unanchored).
    #[arg(long, value_name = "RE")]
    pub name: Option<String>,
    /// Benchmarks of this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Benchmarks on this accelerator (model_server.accelerator).
    #[arg(long)]
    pub accelerator: Option<String>,
    /// Benchmarks of this server kind (vllm, sglang, tgi, triton, jetstream, simulator, external).
    #[arg(long)]
    pub server: Option<String>,
    /// A config field's value, e.g. model_server.replicas=8 (repeatable; all must hold). Paths
    /// are those of BenchmarkConfig, lists as [i].
    #[arg(long = "where", value_name = "PATH=VALUE")]
    pub fields: Vec<String>,
    /// Runs started on or after this (RFC 3339, or a prefix of it such as 2026-12-01).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Runs started before this.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

/// `history trend`.
#[derive(Debug, Clone, Args)]
pub struct TrendArgs {
    /// The benchmark.
    pub benchmark: String,
    /// DISTRIBUTION_STATISTIC (ttft_p99, tpot_p50, e2e_mean, itl_p99, output_tokens_p50, …) or a
    /// stage figure (requests_per_second, output_tokens_per_second, achieved_rate, failed, …).
    #[arg(long)]
    pub metric: String,
    /// Only this stage (default: every stage).
    #[arg(long)]
    pub stage: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

/// `history check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The run: a run id in the history, or a run folder (recorded first if it is not yet).
    pub run: String,
    /// The baseline: a run id, a run folder, or `latest` (the newest run started before RUN that
    /// measured one of its benchmarks).
    #[arg(long, default_value = "latest", value_name = "RUN|latest")]
    pub baseline: String,
    /// A figure fails the check only when it got worse beyond noise AND by at least this many
    /// percent: the intervals take requests as independent, but a busy host shifts a whole run
    /// by a few percent. 0: fail on any difference beyond noise.
    #[arg(long, default_value_t = 5.0, value_name = "PERCENT")]
    pub min_change: f64,
    #[command(flatten)]
    pub common: Common,
}

/// `history sql`.
#[derive(Debug, Clone, Args)]
pub struct SqlArgs {
    /// The query (read-only: anything that writes is refused).
    pub query: String,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `inferbench history …`.
pub fn history(c: &HistoryCommand) -> CommandResult {
    if let HistoryCommand::Schema = c {
        print(&history::schema::describe());
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Failure::new)?;
    rt.block_on(async {
        match c {
            HistoryCommand::Import(a) => import(a).await,
            HistoryCommand::List(a) => list(a).await,
            HistoryCommand::Trend(a) => trend(a).await,
            HistoryCommand::Check(a) => check(a).await,
            HistoryCommand::Sql(a) => sql(a).await,
            HistoryCommand::Schema => unreachable!("answered above"),
        }
    })
}

fn print(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

async fn open(common: &Common, create: bool) -> Result<Store, Failure> {
    Store::open(&common.location()?, create).await.map_err(Failure::new)
}

/// The folders `path` stands for: itself, or (a folder of runs) each run folder in it.
fn run_folders(path: &Path) -> Vec<PathBuf> {
    let is_run = |p: &Path| {
        p.join(crate::snapshot::run_file::RUN_JSON).is_file() || p.join(crate::schema::result_files::SUMMARY).is_file()
    };
    if is_run(path) || !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let mut inner: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir() && is_run(p)).collect())
        .unwrap_or_default();
    inner.sort();
    if inner.is_empty() { vec![path.to_path_buf()] } else { inner }
}

async fn import(a: &ImportArgs) -> CommandResult {
    let started = Instant::now();
    // Every folder is read before anything is written: one that is not a run stops the import
    // with nothing half-written.
    let folders: Vec<PathBuf> = a.paths.iter().flat_map(|p| run_folders(p)).collect();
    let all: Vec<history::rows::RunRows> = {
        use rayon::prelude::*;
        folders.par_iter().map(|d| history::read_folder(d, None)).collect::<Result<_, _>>().map_err(Failure::new)?
    };
    let read = started.elapsed().as_secs_f64();
    let at = a.common.location()?;
    let mut store = Store::open(&at, true).await.map_err(Failure::new)?;
    let recorded = history::record(&mut store, &all).await.map_err(Failure::new)?;
    let stages: usize = recorded.iter().map(|r| r.stages).sum();
    if recorded.len() <= 20 {
        for r in &recorded {
            print(&format!("imported {r}\n"));
        }
    }
    let total = started.elapsed().as_secs_f64();
    print(&format!(
        "{} run(s), {stages} stage(s) in the history {at} in {total:.2} s (folders read in {read:.2} s, written in {:.2} s)\n",
        all.len(),
        total - read
    ));
    Ok(ExitCode::SUCCESS)
}

async fn list(a: &ListArgs) -> CommandResult {
    let name = a
        .name
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| Failure::new(format!("--name: not a regex: {e}")))?;
    let mut fields = vec![];
    for w in &a.fields {
        let (p, v) = w
            .split_once('=')
            .ok_or_else(|| Failure::new(format!("--where {w}: expected PATH=VALUE, e.g. model_server.replicas=8")))?;
        fields.push((p.trim().to_owned(), v.trim().to_owned()));
    }
    let filter = ListFilter {
        name,
        model: a.model.clone(),
        accelerator: a.accelerator.clone(),
        server: a.server.clone(),
        fields,
        since: a.since.clone(),
        until: a.until.clone(),
    };
    let store = open(&a.common, false).await?;
    let rows = query::list(&store, &filter).await.map_err(Failure::new)?;
    print(&format!("{}\n{} benchmark run(s)\n", query::table_text(&rows), rows.rows.len()));
    Ok(ExitCode::SUCCESS)
}

async fn trend(a: &TrendArgs) -> CommandResult {
    let metric = query::metric(&a.metric).map_err(Failure::new)?;
    let store = open(&a.common, false).await?;
    let mut rows = query::trend(&store, &a.benchmark, &metric, a.stage.as_deref()).await.map_err(Failure::new)?;
    if rows.rows.is_empty() {
        return Err(Failure::new(format!(
            "no {} recorded for benchmark {}{} (inferbench history list shows what is)",
            a.metric,
            a.benchmark,
            a.stage.as_deref().map(|s| format!(", stage {s}")).unwrap_or_default()
        )));
    }
    if let Some(last) = rows.columns.last_mut() {
        *last = a.metric.clone();
    }
    print(&format!("{}\n", query::table_text(&rows)));
    Ok(ExitCode::SUCCESS)
}

/// A run given as an id in the history, or as a folder (recorded first when it is not yet).
async fn resolve_run(store: &mut Store, given: &str, output: &Path) -> Result<query::RunRef, Failure> {
    if let Some(r) = query::run(store, given).await.map_err(Failure::new)? {
        return Ok(r);
    }
    let path = [PathBuf::from(given), output.join(given)].into_iter().find(|p| p.is_dir());
    let Some(path) = path else {
        return Err(Failure::new(format!("run {given}: not in the history and not a run folder")));
    };
    let rows = history::read_folder(&path, None).map_err(Failure::new)?;
    if let Some(r) = query::run(store, &rows.run_id).await.map_err(Failure::new)? {
        return Ok(r);
    }
    for r in history::record(store, std::slice::from_ref(&rows)).await.map_err(Failure::new)? {
        eprintln!("history: {r} was not recorded yet: imported from {}", path.display());
    }
    query::run(store, &rows.run_id)
        .await
        .map_err(Failure::new)?
        .ok_or_else(|| Failure::new(format!("run {}: recorded but not found", rows.run_id)))
}

async fn check(a: &CheckArgs) -> CommandResult {
    if !(a.min_change.is_finite() && a.min_change >= 0.0) {
        return Err(Failure::new(format!("--min-change must be a percentage ≥ 0, got {}", a.min_change)));
    }
    let mut store = open(&a.common, true).await?;
    let this = resolve_run(&mut store, &a.run, &a.common.output).await?;
    let baseline = if a.baseline == "latest" {
        query::latest_before(&store, &this).await.map_err(Failure::new)?.ok_or_else(|| {
            Failure::new(format!(
                "run {}: no earlier run in the history measured any of its benchmarks: nothing to compare with",
                this.run_id
            ))
        })?
    } else {
        resolve_run(&mut store, &a.baseline, &a.common.output).await?
    };
    let c = query::check(&store, &this, &baseline).await.map_err(Failure::new)?;
    if c.stages.is_empty() {
        return Err(Failure::new(format!(
            "run {} and baseline {} have no benchmark × stage in common: nothing was compared",
            this.run_id, baseline.run_id
        )));
    }
    let mut text = format!("run {} ({})\n", this.run_id, this.started_at);
    text.push_str(&crate::report::compare::terminal(&c));
    // Figures measured under less load than asked compare nothing: say which, whatever the result.
    let compared: Vec<(&str, &str)> = c.stages.iter().map(|s| (s.benchmark.as_str(), s.stage.as_str())).collect();
    for run in [&this, &baseline] {
        for (b, st, why) in query::undelivered(&store, &run.run_id).await.map_err(Failure::new)? {
            if compared.contains(&(b.as_str(), st.as_str())) {
                text.push_str(&format!(
                    "check: warning: run {} {b} {st}: the client did not deliver the configured load ({}): its figures are not the load's\n",
                    run.run_id,
                    why.replace('\n', "; ")
                ));
            }
        }
    }
    let flagged_worse = || {
        c.stages.iter().flat_map(|s| {
            s.metrics.iter().filter(|m| m.verdict == crate::report::compare::Verdict::Worse).map(move |m| (s, m))
        })
    };
    // A change from 0 (errors appearing) is always large enough.
    let large = |m: &crate::report::compare::MetricDelta| {
        let r = m.relative().abs() * 100.0;
        r.is_nan() || r >= a.min_change
    };
    let worse: Vec<String> = flagged_worse()
        .filter(|(_, m)| large(m))
        .map(|(s, m)| format!("{} {} {} {}", s.benchmark, s.stage, m.metric, crate::report::compare::change(m)))
        .collect();
    let small = flagged_worse().count() - worse.len();
    if small > 0 {
        text.push_str(&format!(
            "check: {small} figure(s) worse beyond noise by less than --min-change {} %: not failing\n",
            a.min_change
        ));
    }
    if worse.is_empty() {
        text.push_str("check: nothing got worse beyond noise\n");
        print(&text);
        Ok(ExitCode::SUCCESS)
    } else {
        text.push_str(&format!(
            "check: {} figure(s) got worse beyond noise and by at least {} %:\n",
            worse.len(),
            a.min_change
        ));
        for w in &worse {
            text.push_str(&format!("  {w}\n"));
        }
        print(&text);
        Ok(ExitCode::from(EXIT_REGRESSION))
    }
}

async fn sql(a: &SqlArgs) -> CommandResult {
    let store = open(&a.common, false).await?;
    let rows = store.query(&a.query, &[], true).await.map_err(Failure::new)?;
    if a.csv {
        let mut w = csv::Writer::from_writer(vec![]);
        let _ = w.write_record(&rows.columns);
        for r in &rows.rows {
            let _ = w.write_record(r.iter().map(|v| match v {
                history::Value::Null => String::new(),
                history::Value::Float(x) => x.to_string(),
                v => query::cell(v),
            }));
        }
        print(&String::from_utf8_lossy(&w.into_inner().unwrap_or_default()));
    } else {
        print(&format!("{}\n{} row(s)\n", query::table_text(&rows), rows.rows.len()));
    }
    Ok(ExitCode::SUCCESS)
}
