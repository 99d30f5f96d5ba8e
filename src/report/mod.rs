//! `inferbench report`: a run's results turned into what a person compares — a terminal table,
//! `summary.csv`, plots (SVG and PNG) and one self-contained `index.html`, optionally side by
//! side with another run.
//!
//! Data flows one way: result files → [`read`] → the [`model`] → outputs ([`table`],
//! [`summary_csv`], [`plots`], [`html`], [`compare`]) → [`write`] (the report folder, whole or
//! not at all). Nothing here measures or recomputes a figure that `summary.json` already holds:
//! the tables show the run's own numbers; only the comparison's noise test goes back to the
//! per-request records ([`records`], [`stats`]).

pub mod compare;
pub mod config_diff;
pub mod html;
pub mod lpg;
pub mod model;
pub mod plots;
pub mod read;
pub mod records;
pub mod stats;
pub mod summary_csv;
pub mod table;
pub mod timeline;
pub mod write;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// A report failure, naming the file or folder.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReportError {
    /// The file or folder.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct Options {
    /// The run folder (`output/{run_id}`).
    pub run_dir: PathBuf,
    /// A baseline run to compare with.
    pub compare: Option<PathBuf>,
    /// Where to write (default `{run_dir}/report`).
    pub out: Option<PathBuf>,
    /// The run's benchmarks in earlier runs, from the results history: drawn as its history
    /// section (none: no section).
    pub history: Vec<model::HistoryPoint>,
}

/// A report written.
#[derive(Debug)]
pub struct Report {
    /// The report folder.
    pub out: PathBuf,
    /// The run, as read.
    pub run: model::Run,
    /// The comparison, when asked for.
    pub comparison: Option<compare::Comparison>,
    /// Files written, relative to `out`.
    pub files: Vec<PathBuf>,
}

/// Subfolder of the plots.
pub const PLOTS: &str = "plots";

/// Reads the run (and the baseline), draws and writes the report.
pub fn build(opts: &Options) -> Result<Report, ReportError> {
    let run = read::run(&opts.run_dir)?;
    let comparison = match &opts.compare {
        Some(other) => Some(compare::compare(&run, &read::run(other)?)?),
        None => None,
    };
    let out = opts.out.clone().unwrap_or_else(|| run.dir.join("report"));
    let mut figures = plots::figures(&run);
    figures.extend(plots::history(&run, &opts.history));
    let rendered: Vec<plots::Rendered> = figures
        .par_iter()
        .map(plots::render)
        .collect::<Result<_, plots::DrawError>>()
        .map_err(|e| ReportError { path: out.join(PLOTS), message: e.to_string() })?;
    let csv =
        summary_csv::csv(&run).map_err(|e| ReportError { path: out.join("summary.csv"), message: e.to_string() })?;
    let out_abs = std::path::absolute(&out).map_err(|e| ReportError { path: out.clone(), message: e.to_string() })?;
    let link = |p: &Path| relative_link(&out_abs, p);
    let page = html::page(&html::Page { run: &run, plots: &rendered, comparison: comparison.as_ref(), link: &link });
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        vec![(PathBuf::from("index.html"), page.into_bytes()), (PathBuf::from("summary.csv"), csv)];
    for r in rendered {
        let stem = Path::new(PLOTS).join(&r.figure.name);
        files.push((stem.with_extension("svg"), r.svg.into_bytes()));
        files.push((stem.with_extension("png"), r.png));
    }
    write::publish(&out, &files)?;
    Ok(Report { out, run, comparison, files: files.into_iter().map(|(p, _)| p).collect() })
}

/// A URL to `target` relative to the folder `from` (both made absolute), percent-encoded; a
/// folder's link ends with `/`.
pub fn relative_link(from: &Path, target: &Path) -> String {
    let target_abs = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    let rel = pathdiff::diff_paths(&target_abs, from).unwrap_or(target_abs);
    let mut s: String = rel
        .components()
        .map(|c| percent_encoding::utf8_percent_encode(&c.as_os_str().to_string_lossy(), URL_PART).to_string())
        .collect::<Vec<_>>()
        .join("/");
    if target.is_dir() {
        s.push('/');
    }
    s
}

/// Characters escaped in a path segment of a link.
const URL_PART: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_report_and_encoded() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("run1");
        std::fs::create_dir_all(run.join("b-run1/results")).unwrap();
        let out = run.join("report");
        assert_eq!(relative_link(&out, &run.join("b-run1/results/summary.json")), "../b-run1/results/summary.json");
        assert_eq!(relative_link(&out, &run.join("b-run1/results")), "../b-run1/results/");
        assert_eq!(relative_link(&out, &run.join("a b#.json")), "../a%20b%23.json");
    }
}
