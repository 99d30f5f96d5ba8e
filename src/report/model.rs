//! The report model: one run as read from its folder, before anything is drawn or written. Every
//! output (terminal table, CSV, plots, HTML, comparison) is made from this and nothing else, so
//! they cannot disagree about a number.

use std::path::PathBuf;

use serde::Deserialize;

use crate::{
    schema::{RunInfo, StageResult},
    snapshot::run_file::State,
};

/// A run folder, read.
#[derive(Debug, Clone)]
pub struct Run {
    /// `output/{run_id}/`.
    pub dir: PathBuf,
    /// The run id.
    pub id: String,
    /// When the run was created (from `run.json`).
    pub created_at: Option<String>,
    /// When `run.json` was last written.
    pub updated_at: Option<String>,
    /// The inferbench version that created it (from `run.json`).
    pub tool_version: Option<String>,
    /// Catalog files the run read.
    pub catalogs: Vec<String>,
    /// Its benchmarks, in catalog order when `run.json` says where each is defined.
    pub benchmarks: Vec<Bench>,
}

impl Run {
    /// The benchmark named `name`.
    pub fn bench(&self, name: &str) -> Option<&Bench> {
        self.benchmarks.iter().find(|b| b.name == name)
    }
}

/// One benchmark of a run, whatever became of it.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Its name.
    pub name: String,
    /// `output/{run_id}/{name}-{run_id}/`.
    pub dir: PathBuf,
    /// Its state in `run.json`; `None` for a run folder without one (an older tool's run).
    pub state: Option<State>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Seconds its last attempt took.
    pub seconds: Option<f64>,
    /// When its last attempt started and finished (RFC 3339, from `run.json`).
    pub started_at: Option<String>,
    /// See `started_at`.
    pub finished_at: Option<String>,
    /// Its results, complete or not.
    pub results: Option<Results>,
    /// Its results folder is there but could not be read (a cut-off `summary.json`): the error,
    /// naming the file. The report shows the other benchmarks and this one as unreadable; the
    /// results history refuses the run.
    pub unreadable: Option<super::ReportError>,
    /// Its resolved config (`benchmark.pbtxt`).
    pub config: Option<String>,
    /// Its base benchmark, when it has one.
    pub base: Option<Base>,
}

impl Bench {
    /// What the tables say of its state: `run.json`'s word, or what the folder shows.
    pub fn state_label(&self) -> &'static str {
        if self.unreadable.is_some() {
            return "unreadable";
        }
        match (self.state, self.results.as_ref().map(|r| r.kind)) {
            (Some(State::Done), _) => "done",
            (Some(State::Failed), _) => "failed",
            (Some(State::Pending), _) => "pending",
            (Some(State::Running), _) => "running",
            (Some(State::Skipped), _) => "skipped",
            (None, Some(ResultsKind::Failed)) => "failed",
            (None, Some(_)) => "done",
            (None, None) => "no results",
        }
    }

    /// Why it has no results to show: its unreadable file, else `run.json`'s reason.
    pub fn why(&self) -> Option<String> {
        match (&self.unreadable, &self.reason) {
            (Some(e), _) => Some(format!("results unreadable: {e}")),
            (None, r) => r.clone(),
        }
    }

    /// The stages measured (none when it has no results).
    pub fn stages(&self) -> &[StageResult] {
        self.results.as_ref().map_or(&[], |r| r.stages.as_slice())
    }
}

/// A benchmark's base and where its resolved config was found.
#[derive(Debug, Clone)]
pub struct Base {
    /// The base's name.
    pub name: String,
    /// Its resolved config, when found.
    pub config: Option<String>,
    /// Where it was found.
    pub origin: BaseOrigin,
}

/// Where a base's config came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseOrigin {
    /// `base.pbtxt` in the benchmark's own snapshot: the base as resolved when it was taken.
    Snapshot,
    /// The base's own snapshot in the same run (snapshots taken before `base.pbtxt` was kept).
    RunSnapshot,
    /// Not found.
    Missing,
}

/// What kind of results a benchmark has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultsKind {
    /// `results/summary.json`: complete and verified.
    Complete,
    /// `failed-results/summary.json`: an attempt whose every request failed.
    Failed,
    /// Latency-profile-generator JSON files (an older run): fewer figures, no per-request records.
    Lpg,
}

/// A benchmark's results folder, read.
#[derive(Debug, Clone)]
pub struct Results {
    /// Which kind.
    pub kind: ResultsKind,
    /// The folder (`results/` or `failed-results/`).
    pub dir: PathBuf,
    /// What the load engine recorded of the run (absent for LPG files).
    pub info: Option<RunInfo>,
    /// The stages, in the order they ran.
    pub stages: Vec<StageResult>,
    /// The model server's metrics over time (`server_metrics.json`).
    pub server: Option<ServerTimeline>,
    /// `requests.jsonl.zst`, when there.
    pub records: Option<PathBuf>,
    /// Every file of the folder, for links (sorted).
    pub files: Vec<PathBuf>,
}

/// `server_metrics.json` as the load engine writes it ([`crate::load::scrape::Scraped`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServerTimeline {
    /// The scraped URL.
    #[serde(default)]
    pub url: String,
    /// Seconds between scrapes.
    #[serde(default)]
    pub interval_seconds: f64,
    /// Scrapes that failed.
    #[serde(default)]
    pub failed_scrapes: u64,
    /// The first failure.
    #[serde(default)]
    pub first_error: Option<String>,
    /// Samples in time order.
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// Each stage's measured window (absent in files written before it was recorded).
    #[serde(default)]
    pub stages: Vec<Window>,
}

/// One scrape.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sample {
    /// Seconds since the scraper started.
    pub t: f64,
    /// Values by metric name.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, f64>,
}

/// A stage's window on the samples' clock.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Window {
    /// Stage name.
    pub name: String,
    /// When the stage started, warm-up included: where its records' times count from (absent in
    /// files written before it was recorded: `from` then, exact without a warm-up).
    #[serde(default)]
    pub start: Option<f64>,
    /// Start (s).
    pub from: f64,
    /// End (s).
    pub to: f64,
}

/// One headline figure (one of [`crate::report::compare::FIGURES`]) of one stage in one recorded
/// run: what the history section draws. The history gives these; the report only draws them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    /// The benchmark.
    pub benchmark: String,
    /// The run it was measured in.
    pub run_id: String,
    /// When that run started (RFC 3339).
    pub started_at: String,
    /// The stage.
    pub stage: String,
    /// The figure's name ("TTFT p99", "req/s", …).
    pub metric: &'static str,
    /// Its value.
    pub value: f64,
}
