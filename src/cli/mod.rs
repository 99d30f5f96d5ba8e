//! Command line: clap definitions and dispatch. Every flag has an `INFERBENCH_*` environment
//! variable; the original tool's lower-case script variables (`run_id`, `dry_run`, `gcs_bucket`,
//! `skip_tear_down`, `benchmark_name_regex`, `regex`, `benchmarks`, `output_dir`) are accepted too
//! (see [`apply_seed_env_aliases`]).

mod catalog_cmd;
mod dev_cmd;
mod generate_cmd;
pub mod history_cmd;
pub mod load_cmd;
mod progress;
pub mod report_cmd;
pub mod run_cmd;
pub mod sim_cmd;
pub mod upload_cmd;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

use crate::catalog::select::FileSelection;

/// Exit code for problems in the user's input (catalog errors, tampered snapshots).
pub const EXIT_INPUT: u8 = 1;
/// Exit code for an option that is not built yet (`--platform kube`), and for usage errors.
pub const EXIT_UNAVAILABLE: u8 = 2;
/// Exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a command failed. Commands return it; [`run`] is the one place it is printed (on stderr)
/// and turned into the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The whole text printed.
    text: String,
}

impl Failure {
    /// An error the user can act on: printed as `error: {message}`, exit code [`EXIT_INPUT`].
    pub fn new(message: impl std::fmt::Display) -> Failure {
        Failure { code: EXIT_INPUT, text: format!("error: {message}") }
    }

    /// Catalog diagnostics, printed as they are (an `error: file:line:col: …` line each, then the
    /// count).
    pub fn diagnostics(d: &crate::catalog::Diagnostics) -> Failure {
        Failure { code: EXIT_INPUT, text: d.to_string() }
    }

    /// A closing line that is not an error of its own (the errors it counts were printed).
    pub fn summary(text: impl Into<String>) -> Failure {
        Failure { code: EXIT_INPUT, text: text.into() }
    }
}

impl From<anyhow::Error> for Failure {
    /// The error with its causes (`a: b: c`).
    fn from(e: anyhow::Error) -> Failure {
        Failure::new(format!("{e:#}"))
    }
}

/// What a command returns: its exit code, or why it failed.
pub type CommandResult = Result<ExitCode, Failure>;

/// SIGINT (Ctrl-C) and SIGTERM (how Kubernetes and CI stop a process), as one stream. Made once,
/// before anything runs: a second Ctrl-C is never lost between the first one's handling and a
/// new listener.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Listens (inside a runtime).
    pub(crate) fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
    }

    /// The next SIGINT or SIGTERM.
    pub(crate) async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// The seed's script variables and the flags' environment variables they stand for.
pub const SEED_ENV_ALIASES: &[(&str, &str)] = &[
    ("run_id", "INFERBENCH_RUN_ID"),
    ("dry_run", "INFERBENCH_DRY_RUN"),
    ("gcs_bucket", "INFERBENCH_GCS_BUCKET"),
    ("skip_tear_down", "INFERBENCH_SKIP_TEAR_DOWN"),
    ("benchmark_name_regex", "INFERBENCH_BENCHMARK_NAME_REGEX"),
    ("regex", "INFERBENCH_REGEX"),
    ("benchmarks", "INFERBENCH_BENCHMARKS"),
    ("output_dir", "INFERBENCH_OUTPUT"),
];

/// Copies each set seed variable to its `INFERBENCH_*` name unless that is set already.
///
/// # Safety
/// Mutates the process environment: call it first thing in `main`, before any thread starts.
pub unsafe fn apply_seed_env_aliases() {
    for (seed, ours) in SEED_ENV_ALIASES {
        if std::env::var_os(ours).is_none()
            && let Some(v) = std::env::var_os(seed)
        {
            // SAFETY: the caller guarantees no other thread runs yet.
            unsafe { std::env::set_var(ours, v) };
        }
    }
}

/// inferbench: benchmark-as-code for LLM serving.
///
/// Catalogs of benchmarks (protobuf text format, `catalog/*.pbtxt`, schema `proto/benchmark.proto`)
/// are resolved (inheritance), validated, rendered into Kubernetes manifests and snapshotted
/// immutably under `output/{run_id}/{benchmark}-{run_id}/`.
#[derive(Debug, Parser)]
#[command(name = "inferbench", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, list and show catalog benchmarks.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Render manifests into immutable snapshots (the same as `run --dry-run`).
    Generate(GenerateArgs),
    /// Run benchmarks: deploy, load, collect results, tear down.
    Run(RunArgs),
    /// The load engine: offers load to an LLM server (OpenAI, TGI, Triton, JetStream APIs) and
    /// measures it. Takes a LoadSpec (--spec) and latency-profile-generator-style flags.
    Load(Box<load_cmd::LoadArgs>),
    /// The simulated model server: vLLM-like continuous batching on a hardware latency model,
    /// speaking the OpenAI, TGI, Triton and JetStream HTTP APIs, with vLLM's /metrics.
    Sim(Box<sim_cmd::SimArgs>),
    /// Tables, plots and an HTML report of a run (RUN_DIR/report/: index.html, summary.csv,
    /// plots/), optionally compared with another run.
    Report(report_cmd::ReportArgs),
    /// The results history: every run in a SQL database (output/history.db, or Cloud Spanner) —
    /// import, list, trend, check against a baseline (a CI gate), SQL.
    #[command(subcommand)]
    History(history_cmd::HistoryCommand),
    /// Upload a run folder to GCS (gs://BUCKET/RUN_ID/…), skipping files already there; running it
    /// again resumes an interrupted upload.
    Upload(upload_cmd::UploadArgs),
    /// Results inside a load pod: what the kube platform execs to fetch them (check, pack, release).
    #[command(subcommand)]
    Results(dev_cmd::ResultsCommand),
    /// Developer tools: the node emulator that runs a local cluster's pods as processes.
    #[command(subcommand)]
    Dev(dev_cmd::DevCommand),
}

/// Catalog commands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Parse, resolve and validate every selected catalog file; report every error with file:line:col.
    Validate(CatalogArgs),
    /// List benchmarks: name, where defined, base chain, server.
    List(CatalogArgs),
    /// Print one benchmark as text format, as written or resolved.
    Show(ShowArgs),
}

/// Which catalog files and benchmarks a command reads.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Catalog files or folders (folders are searched for *.pbtxt). Default: every file under --catalog-dir.
    #[arg(value_name = "CATALOG_OR_DIR")]
    pub catalogs: Vec<PathBuf>,
    /// The catalog folder.
    #[arg(long, env = "INFERBENCH_CATALOG_DIR", default_value = "catalog", value_name = "DIR")]
    pub catalog_dir: PathBuf,
    /// A catalog file under --catalog-dir, by name without .pbtxt (seed: benchmarks=NAME).
    #[arg(long, env = "INFERBENCH_BENCHMARKS", value_name = "NAME")]
    pub benchmarks: Option<String>,
    /// Keep catalog files whose whole path (e.g. catalog/benchmarks.pbtxt) matches this regex;
    /// anchored, as `find -regex` (seed: regex=...).
    #[arg(long, env = "INFERBENCH_REGEX", value_name = "FILE_RE")]
    pub regex: Option<String>,
    /// The hardware table. Default: CATALOG_DIR/hardware.pbtxt, else the built-in one.
    #[arg(long, env = "INFERBENCH_HARDWARE", value_name = "FILE")]
    pub hardware: Option<PathBuf>,
}

impl Selection {
    /// The file part of the selection.
    pub fn files(&self) -> FileSelection {
        FileSelection {
            paths: self.catalogs.clone(),
            catalog_dir: self.catalog_dir.clone(),
            benchmarks: self.benchmarks.clone().filter(|b| !b.is_empty()),
            regex: self.regex.clone().filter(|r| !r.is_empty()),
        }
    }
}

/// Arguments of `catalog validate` and `catalog list`.
#[derive(Debug, Clone, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Keep benchmarks whose whole name matches this regex (anchored: '.*h100.*' selects names containing h100).
    #[arg(long, env = "INFERBENCH_BENCHMARK_NAME_REGEX", value_name = "RE")]
    pub benchmark_name_regex: Option<String>,
}

/// Arguments of `catalog show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// Benchmark name.
    pub name: String,
    #[command(flatten)]
    pub selection: Selection,
    /// Print it with inheritance resolved (what is rendered), instead of as written.
    #[arg(long, env = "INFERBENCH_RESOLVED")]
    pub resolved: bool,
}

/// Arguments of `generate` (and of `run`).
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Keep benchmarks whose whole name matches this regex (anchored: '.*h100.*' selects names
    /// containing h100; seed: benchmark_name_regex=...).
    #[arg(long, env = "INFERBENCH_BENCHMARK_NAME_REGEX", value_name = "RE")]
    pub benchmark_name_regex: Option<String>,
    /// Reuse this run id: resume it, or add benchmarks to it (seed: run_id=...). Default: a new
    /// 8-hex-character id.
    #[arg(long, env = "INFERBENCH_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,
    /// Root folder of runs (seed: output_dir=...).
    #[arg(long, env = "INFERBENCH_OUTPUT", default_value = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Replace existing snapshots instead of verifying and reusing them (never one with results).
    #[arg(long, env = "INFERBENCH_OVERWRITE_SNAPSHOT")]
    pub overwrite_snapshot: bool,
    /// Load workers for every benchmark selected, overriding the catalogs' `workers` (1…1024;
    /// processes on the local platform): recorded in each snapshot's load spec.
    #[arg(long, env = "INFERBENCH_WORKERS", value_name = "N")]
    pub workers: Option<u32>,
    /// Image with the inferbench binary, for load engine and simulator pods.
    #[arg(long, env = "INFERBENCH_IMAGE", value_name = "IMAGE", default_value_t = crate::render::context::default_image())]
    pub image: String,
    /// Render with the templates of this folder instead of the built-in ones.
    #[arg(long, env = "INFERBENCH_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// Arguments of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub generate: GenerateArgs,
    /// Only write manifests; deploy nothing (seed: dry_run=true).
    #[arg(long, env = "INFERBENCH_DRY_RUN")]
    pub dry_run: bool,
    /// Where benchmarks run.
    #[arg(long, env = "INFERBENCH_PLATFORM", default_value = "local", value_parser = ["local", "kube"])]
    pub platform: String,
    /// Upload the run folder to this GCS bucket (seed: gcs_bucket=...).
    #[arg(long, env = "INFERBENCH_GCS_BUCKET", value_name = "BUCKET")]
    pub gcs_bucket: Option<String>,
    /// Keep the deployed environment after each benchmark (seed: skip_tear_down=true).
    #[arg(long, env = "INFERBENCH_SKIP_TEAR_DOWN")]
    pub skip_tear_down: bool,
    /// Benchmarks run at once.
    #[arg(long, env = "INFERBENCH_PARALLELISM", default_value_t = 1, value_name = "N")]
    pub parallelism: u32,
    /// On the local platform: simulate vllm/sglang/tgi/… servers (`simulated`), or run the real
    /// server's program with the Deployment's arguments (`real`: `vllm serve`, the binary from
    /// INFERBENCH_VLLM or PATH). Default: each catalog's `model_server.local_server`, else simulated.
    #[arg(long, env = "INFERBENCH_SERVERS", value_parser = ["simulated", "real"])]
    pub servers: Option<String>,
    /// How long a model server (or an external one) may take to answer before its benchmark fails.
    #[arg(long, env = "INFERBENCH_READY_TIMEOUT", default_value_t = 300.0, value_name = "SECONDS")]
    pub ready_timeout: f64,
    #[command(flatten)]
    pub history: history_cmd::HistoryArg,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `run --platform kube` settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kubernetes (--platform kube)")]
pub struct KubeArgs {
    /// kubeconfig context (default: the current one; KUBECONFIG and in-cluster config work).
    #[arg(long, env = "INFERBENCH_KUBE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// Apply every manifest with a server-side dry run (checks them against the cluster's API,
    /// CRDs included) and stop; nothing is created.
    #[arg(long, env = "INFERBENCH_SERVER_DRY_RUN")]
    pub server_dry_run: bool,
    /// Time limit for applying the manifests.
    #[arg(long, env = "INFERBENCH_APPLY_TIMEOUT", default_value_t = 120, value_name = "SECONDS")]
    pub apply_timeout: u64,
    /// Added to the load Job's activeDeadlineSeconds: how long the load may take to seal its results.
    #[arg(long, env = "INFERBENCH_LOAD_TIMEOUT_MARGIN", default_value_t = 120, value_name = "SECONDS")]
    pub load_timeout_margin: u64,
    /// Time limit for downloading the results from the load pod.
    #[arg(long, env = "INFERBENCH_FETCH_TIMEOUT", default_value_t = 1800, value_name = "SECONDS")]
    pub fetch_timeout: u64,
    /// Time limit for the namespace to be gone after deletion.
    #[arg(long, env = "INFERBENCH_DELETE_TIMEOUT", default_value_t = 600, value_name = "SECONDS")]
    pub delete_timeout: u64,
}

/// Runs a parsed command line; prints a failure (the only place one is printed).
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Catalog(CatalogCommand::Validate(a)) => catalog_cmd::validate(&a),
        Command::Catalog(CatalogCommand::List(a)) => catalog_cmd::list(&a),
        Command::Catalog(CatalogCommand::Show(a)) => catalog_cmd::show(&a),
        Command::Generate(a) => generate_cmd::generate(&a, "generate"),
        Command::Run(a) if a.dry_run => generate_cmd::generate(&a.generate, "run --dry-run"),
        Command::Run(a) => run_cmd::run(&a),
        Command::Load(a) => load_cmd::load(&a),
        Command::Sim(a) => sim_cmd::sim(&a),
        Command::Report(a) => report_cmd::report(&a),
        Command::Upload(a) => upload_cmd::upload(&a),
        Command::History(c) => history_cmd::history(&c),
        Command::Results(c) => dev_cmd::results(&c),
        Command::Dev(c) => dev_cmd::dev(c),
    };
    result.unwrap_or_else(|f| {
        if !f.text.is_empty() {
            eprintln!("{}", f.text);
        }
        ExitCode::from(f.code)
    })
}
