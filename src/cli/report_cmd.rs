//! `inferbench report RUN_DIR [--compare OTHER_RUN_DIR] [--out DIR]`: the full summary table on
//! the terminal, and `RUN_DIR/report/` (index.html, summary.csv, plots/).

use std::{io::Write as _, path::PathBuf, process::ExitCode, time::Instant};

use clap::Args;

use super::{CommandResult, Failure};
use crate::report::{self, Options};

/// Arguments of `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The run folder (output/RUN_ID), or a run id under --output. Partial runs (failed, pending
    /// benchmarks) and older runs' latency-profile-generator result files are read too.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Compare with this run, the baseline (e.g. before a model-server upgrade): benchmarks and
    /// stages of the same name side by side, differences beyond run-to-run noise flagged.
    #[arg(long, env = "INFERBENCH_COMPARE", value_name = "OTHER_RUN_DIR")]
    pub compare: Option<PathBuf>,
    /// Where to write the report. Default: RUN_DIR/report. Replaced whole on every report; a
    /// folder that is not an inferbench report is never replaced.
    #[arg(long, env = "INFERBENCH_REPORT_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The results history the report's history section comes from (default: history.db beside
    /// the run folder, when there).
    #[command(flatten)]
    pub history: super::history_cmd::HistoryArg,
    /// Root folder of runs, where a bare run id is looked for (seed: output_dir=...).
    #[arg(long, env = "INFERBENCH_OUTPUT", default_value = "output", value_name = "DIR")]
    pub output: PathBuf,
}

impl ReportArgs {
    /// A run folder as given, or a run id under `--output`.
    fn resolve(&self, given: &std::path::Path) -> PathBuf {
        let under_output = self.output.join(given);
        if !given.exists() && given.components().count() == 1 && under_output.is_dir() {
            under_output
        } else {
            given.to_path_buf()
        }
    }
}

/// Runs `inferbench report`.
pub fn report(a: &ReportArgs) -> CommandResult {
    let started = Instant::now();
    let run_dir = a.resolve(&a.run_dir);
    let opts = Options {
        history: history_points(a, &run_dir),
        run_dir,
        compare: a.compare.as_deref().map(|c| a.resolve(c)),
        out: a.out.clone(),
    };
    let r = report::build(&opts).map_err(Failure::new)?;
    let mut text = report::table::full(&r.run);
    text.push('\n');
    if let Some(c) = &r.comparison {
        text.push_str(&report::compare::terminal(c));
    }
    let plots = r.files.iter().filter(|f| f.extension().is_some_and(|x| x == "svg")).count();
    text.push_str(&format!(
        "report: {} (index.html, summary.csv, {plots} plots as SVG and PNG) in {:.2} s\n",
        r.out.display(),
        started.elapsed().as_secs_f64()
    ));
    let _ = std::io::stdout().write_all(text.as_bytes());
    for b in r.run.benchmarks.iter().filter(|b| b.unreadable.is_some()) {
        eprintln!("inferbench report: warning: {}: {}", b.name, b.why().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// The run's benchmarks in the history, for the report's history section: none when there is no
/// history beside the run (and `--history` was not given); a history that fails is a warning.
fn history_points(a: &ReportArgs, run_dir: &std::path::Path) -> Vec<report::model::HistoryPoint> {
    let Ok(run) = report::read::run(run_dir) else { return vec![] };
    let beside =
        std::path::absolute(run_dir).ok().and_then(|d| d.parent().map(|p| p.to_path_buf())).unwrap_or_default();
    let at = match a.history.location(&beside) {
        Ok(Some(crate::history::Location::File(f))) if !a.history.given() && !f.is_file() => return vec![],
        Ok(Some(at)) => at,
        Ok(None) => return vec![],
        Err(e) => {
            eprintln!("inferbench report: warning: no history section: {e}");
            return vec![];
        }
    };
    let names: Vec<String> = run.benchmarks.iter().map(|b| b.name.clone()).collect();
    let points =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string()).and_then(|rt| {
            rt.block_on(async {
                let store = crate::history::Store::open(&at, false).await.map_err(|e| e.to_string())?;
                crate::history::query::report_points(&store, &run.id, &names).await.map_err(|e| e.to_string())
            })
        });
    points.unwrap_or_else(|e| {
        eprintln!("inferbench report: warning: no history section: {e}");
        vec![]
    })
}
