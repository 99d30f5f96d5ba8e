//! Reads a run folder into the report [`model`](super::model): `run.json` for each benchmark's
//! state, each benchmark's `results/` (or `failed-results/`, or an older run's LPG files), its
//! `server_metrics.json`, and its snapshot's configs. Works on partial runs (failed, pending,
//! running benchmarks are listed with what they have) and on run folders of the original tool
//! (no `run.json`: benchmarks are found as `{name}-{run_id}/` folders). A benchmark's results that
//! are there but cannot be read make it *unreadable*, the error naming the file (the report shows
//! it so, beside the others; a report quietly missing a benchmark would mislead); anything else
//! unreadable (`run.json`, a config) is an error naming the file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{
    ReportError, lpg,
    model::{Base, BaseOrigin, Bench, Results, ResultsKind, Run, ServerTimeline},
};
use crate::{
    results::store::{FAILED_RESULTS, RESULTS},
    schema::{
        Benchmark,
        result_files::{REQUESTS, SERVER_METRICS, SUMMARY, parse_summary},
    },
    snapshot::{
        BASE_PBTXT, BENCHMARK_PBTXT,
        run_file::{self, RUN_JSON},
    },
};

fn err(path: &Path, message: impl Into<String>) -> ReportError {
    ReportError { path: path.to_path_buf(), message: message.into() }
}

/// Reads the run in `dir`.
pub fn run(dir: &Path) -> Result<Run, ReportError> {
    if !dir.is_dir() {
        return Err(err(dir, "not a run folder: no such folder"));
    }
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let recorded = if dir.join(RUN_JSON).is_file() {
        Some(run_file::read(dir).map_err(|e| ReportError { path: e.path, message: e.message })?)
    } else {
        None
    };
    let id = recorded.as_ref().map_or(dir_name, |r| r.run_id.clone());
    // (sort key, name, folder, record): catalog order (file, line) where run.json says.
    let mut found: BTreeMap<String, (String, PathBuf, Option<run_file::BenchmarkRecord>)> = BTreeMap::new();
    if let Some(r) = &recorded {
        for (name, rec) in &r.benchmarks {
            found.insert(name.clone(), (source_key(&rec.source, name), dir.join(&rec.namespace), Some(rec.clone())));
        }
    }
    let suffix = format!("-{id}");
    let entries = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
    for e in entries.flatten() {
        let path = e.path();
        let folder = e.file_name().to_string_lossy().into_owned();
        let looks_like_benchmark = [BENCHMARK_PBTXT, RESULTS, FAILED_RESULTS].iter().any(|f| path.join(f).exists());
        if folder.starts_with('.') || !path.is_dir() || !looks_like_benchmark {
            continue;
        }
        let name = folder.strip_suffix(&suffix).filter(|n| !n.is_empty()).unwrap_or(&folder).to_owned();
        found.entry(name.clone()).or_insert_with(|| (format!("~{name}"), path, None));
    }
    if found.is_empty() {
        return Err(err(
            dir,
            format!(
                "not a run folder: no {RUN_JSON} and no benchmark folders ({{name}}-{{run_id}}/ with {BENCHMARK_PBTXT} or {RESULTS}/)"
            ),
        ));
    }
    let mut ordered: Vec<_> = found.into_iter().collect();
    ordered.sort_by(|a, b| a.1.0.cmp(&b.1.0));
    let mut benchmarks = vec![];
    for (name, (_, bench_dir, rec)) in ordered {
        benchmarks.push(bench(dir, &id, name, bench_dir, rec)?);
    }
    Ok(Run {
        dir: dir.to_path_buf(),
        id,
        created_at: recorded.as_ref().map(|r| r.created_at.clone()),
        updated_at: recorded.as_ref().map(|r| r.updated_at.clone()),
        tool_version: recorded.as_ref().map(|r| r.version.clone()),
        catalogs: recorded.map(|r| r.catalogs).unwrap_or_default(),
        benchmarks,
    })
}

/// Sorts benchmarks by where they are defined: `file:line:col` → (file, zero-padded line).
fn source_key(source: &str, name: &str) -> String {
    let mut parts = source.rsplitn(3, ':');
    let (_col, line, file) = (parts.next(), parts.next(), parts.next());
    match (file, line.and_then(|l| l.parse::<u64>().ok())) {
        (Some(f), Some(l)) => format!("{f}\0{l:012}"),
        _ => format!("~{name}"),
    }
}

fn bench(
    run_dir: &Path,
    id: &str,
    name: String,
    dir: PathBuf,
    rec: Option<run_file::BenchmarkRecord>,
) -> Result<Bench, ReportError> {
    // A results folder that cannot be read is kept as unreadable, not fatal: one cut-off file
    // must not hide the rest of the run.
    let read = if dir.join(RESULTS).is_dir() {
        Some(results(&dir.join(RESULTS), ResultsKind::Complete))
    } else if dir.join(FAILED_RESULTS).is_dir() {
        Some(results(&dir.join(FAILED_RESULTS), ResultsKind::Failed))
    } else {
        None
    };
    let (results, unreadable) = match read {
        None => (None, None),
        Some(Ok(r)) => (Some(r), None),
        Some(Err(e)) => (None, Some(e)),
    };
    let config = read_optional(&dir.join(BENCHMARK_PBTXT))?;
    let base = match config.as_deref().and_then(base_name) {
        None => None,
        Some(base) => {
            let (config, origin) = if let Some(text) = read_optional(&dir.join(BASE_PBTXT))? {
                (Some(text), BaseOrigin::Snapshot)
            } else if let Some(text) = read_optional(&run_dir.join(format!("{base}-{id}")).join(BENCHMARK_PBTXT))? {
                (Some(text), BaseOrigin::RunSnapshot)
            } else {
                (None, BaseOrigin::Missing)
            };
            Some(Base { name: base, config, origin })
        }
    };
    Ok(Bench {
        name,
        dir,
        state: rec.as_ref().map(|r| r.state),
        reason: rec.as_ref().and_then(|r| r.reason.clone()),
        seconds: rec.as_ref().and_then(|r| r.seconds),
        started_at: rec.as_ref().and_then(|r| r.started_at.clone()),
        finished_at: rec.as_ref().and_then(|r| r.finished_at.clone()),
        results,
        unreadable,
        config,
        base,
    })
}

/// The `base_benchmark_name` of a resolved config (none when it does not parse: the config is
/// still shown as text).
fn base_name(pbtxt: &str) -> Option<String> {
    let msg = prost_reflect::DynamicMessage::parse_text_format(crate::schema::message("Benchmark"), pbtxt).ok()?;
    let b: Benchmark = msg.transcode_to().ok()?;
    b.base_benchmark_name.filter(|n| !n.is_empty())
}

fn read_optional(path: &Path) -> Result<Option<String>, ReportError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path, e.to_string())),
    }
}

/// Reads a results folder: `summary.json` when there, else LPG files.
pub fn results(dir: &Path, kind: ResultsKind) -> Result<Results, ReportError> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    let summary = dir.join(SUMMARY);
    let (kind, info, stages) = if summary.is_file() {
        let text = std::fs::read_to_string(&summary).map_err(|e| err(&summary, e.to_string()))?;
        let r = parse_summary(&text).map_err(|m| err(&summary, m.to_string()))?;
        (kind, r.run, r.stages)
    } else {
        let lpg = lpg::read_dir(dir)?;
        if lpg.is_empty() {
            return Err(err(dir, format!("no {SUMMARY} and no latency-profile-generator result files")));
        }
        let info = lpg.first().map(|f| f.info.clone());
        (
            if kind == ResultsKind::Failed { kind } else { ResultsKind::Lpg },
            info,
            lpg.into_iter().map(|f| f.stage).collect(),
        )
    };
    let metrics = dir.join(SERVER_METRICS);
    let server = match read_optional(&metrics)? {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<ServerTimeline>(&text)
                .map_err(|e| err(&metrics, format!("not a server metrics file: {e}")))?,
        ),
    };
    let records = Some(dir.join(REQUESTS)).filter(|p| p.is_file());
    Ok(Results { kind, dir: dir.to_path_buf(), info, stages, server, records, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_locations_sort_in_catalog_order() {
        let mut v = [source_key("c/t.pbtxt:10:1", "b"), source_key("c/t.pbtxt:2:1", "a"), source_key("", "z")];
        v.sort();
        assert_eq!(v[0], source_key("c/t.pbtxt:2:1", "a"));
        assert_eq!(v[2], "~z", "unknown places last");
    }

    #[test]
    fn not_a_run_folder_says_so() {
        let d = tempfile::tempdir().unwrap();
        let e = run(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a run folder: no run.json and no benchmark folders"), "{e}");
        let e = run(&d.path().join("nope")).unwrap_err().to_string();
        assert!(e.ends_with("nope: not a run folder: no such folder"), "{e}");
    }
}
