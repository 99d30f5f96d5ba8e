//! Results of older runs, in latency-profile-generator's JSON (`benchmark_serving.py
//! --save-json-results`): the original benchmark tool downloaded them into `results/json/`, and
//! inferbench writes them to `results/lpg/` when a spec asks (see [`crate::load::compat::lpg`]).
//! Read back into [`StageResult`]s so the report treats old and new runs alike.
//!
//! LPG changed its units (inference-benchmark `72b861e`): 07628c9 wrote TTFT/ITL/TPOT in seconds
//! and per_token_latency in s/token, later versions added `_ms` keys. The `_ms` keys are used when
//! present, else the old ones are converted. LPG keeps only mean, median, sd, min, max, p90 and
//! p99 of each quantity: the other percentiles of a [`Distribution`] read from it are NaN
//! ("unknown"), which tables print as "-" and plots leave out.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ReportError;
use crate::schema::{Counts, Distribution, Offered, RunInfo, ServerSeries, StageResult, Throughput};

/// One LPG file, read.
#[derive(Debug, Clone)]
pub struct LpgFile {
    /// The file.
    pub path: PathBuf,
    /// The model it is about (`weighted` for LPG's aggregate of all models).
    pub model: String,
    /// Its stage.
    pub stage: StageResult,
    /// Backend and model names.
    pub info: RunInfo,
}

/// Whether a JSON value is an LPG result (has `metrics.request_rate` and the prompt counts).
pub fn is_lpg(v: &Value) -> bool {
    let m = &v["metrics"];
    m["request_rate"].is_number() && m["num_prompts_attempted"].is_number()
}

/// The LPG files of a results folder: the first of `json/` (the original tool's downloads),
/// `lpg/` (ours) and the folder itself that has any. Of each rate, LPG's `weighted` aggregate
/// when there is one, else every model's file. Files that are not LPG results are ignored; an
/// LPG-looking `.json` that does not parse is an error naming it.
pub fn read_dir(results: &Path) -> Result<Vec<LpgFile>, ReportError> {
    read_files(results).map_err(|message| ReportError { path: results.to_path_buf(), message })
}

fn read_files(results: &Path) -> Result<Vec<LpgFile>, String> {
    for dir in [results.join("json"), results.join("lpg"), results.to_path_buf()] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut files = vec![];
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let v: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) if path.file_name().is_some_and(|n| n.to_string_lossy().contains("qps")) => {
                    return Err(format!("{}: not a latency-profile-generator result: {e}", path.display()));
                }
                Err(_) => continue,
            };
            if is_lpg(&v) {
                files.push(file(&path, &v));
            }
        }
        if files.is_empty() {
            continue;
        }
        if files.iter().any(|f| f.model == "weighted") {
            files.retain(|f| f.model == "weighted");
        }
        files.sort_by(|a, b| {
            let rate = |f: &LpgFile| f.stage.offered.as_ref().map_or(0.0, |o| o.requested_rate);
            rate(a).total_cmp(&rate(b)).then_with(|| a.model.cmp(&b.model))
        });
        // Several files of one rate (several models, no aggregate): the model names the stage.
        let names: Vec<String> = files.iter().map(|f| f.stage.name.clone()).collect();
        for f in &mut files {
            if names.iter().filter(|n| **n == f.stage.name).count() > 1 {
                f.stage.name = format!("{}-{}", f.stage.name, f.model);
            }
        }
        return Ok(files);
    }
    Ok(vec![])
}

/// The model part of LPG's file name `{prefix}-{backend}-{rate}qps-{date}-{model}.json`, else
/// `dimensions.model_id`.
fn model_of(path: &Path, v: &Value) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // After "qps-", the date is YYYYmmdd-HHMMSS (two dash-separated parts), then the model.
    if let Some((_, rest)) = stem.split_once("qps-") {
        let parts: Vec<&str> = rest.splitn(3, '-').collect();
        if parts.len() == 3 {
            return parts[2].to_owned();
        }
    }
    v["dimensions"]["model_id"].as_str().unwrap_or("model").to_owned()
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The `{avg,median,sd,min,max,p90,p99}_{name}` family of `m`, × `scale`, as a distribution of
/// `count` observations; `None` when LPG did not write it.
fn family(m: &Value, name: &str, scale: f64, count: u64) -> Option<Distribution> {
    let get = |k: &str| num(&m[format!("{k}_{name}")]).map(|x| x * scale);
    let p50 = get("median")?;
    let nan = f64::NAN;
    Some(Distribution {
        count,
        mean: get("avg").unwrap_or(nan),
        min: get("min").unwrap_or(nan),
        p50,
        p90: get("p90").unwrap_or(nan),
        p95: nan,
        p99: get("p99").unwrap_or(nan),
        p999: nan,
        max: get("max").unwrap_or(nan),
        stddev: get("sd").unwrap_or(nan),
        p0_1: nan,
        p1: nan,
        p5: nan,
        p10: nan,
        p25: nan,
        p75: nan,
    })
}

/// The later `_ms` family when present, else the 07628c9 one converted to ms.
fn either(m: &Value, new: &str, old: &str, old_scale: f64, count: u64) -> Option<Distribution> {
    family(m, new, 1.0, count).or_else(|| family(m, old, old_scale, count))
}

/// Reads one LPG file's content.
pub fn file(path: &Path, v: &Value) -> LpgFile {
    let m = &v["metrics"];
    let u = |k: &str| num(&m[k]).unwrap_or(0.0).max(0.0) as u64;
    let (sent, ok) = (u("num_prompts_attempted"), u("num_prompts_succeeded"));
    let rate = num(&m["request_rate"]).unwrap_or(0.0);
    let secs = num(&m["benchmark_time"]).unwrap_or(0.0);
    let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
    let mut errors = std::collections::HashMap::new();
    for (lpg, ours) in [
        ("ClientConnectorError", "connect"),
        ("ClientOSError", "connect"),
        ("TimeoutError", "timeout"),
        ("ContentTypeError", "parse"),
        ("ServerDisconnectedError", "stream_cut"),
        ("unknown_error", "unknown"),
    ] {
        let n = u(lpg);
        if n > 0 {
            *errors.entry(ours.to_owned()).or_insert(0) += n;
        }
    }
    let server_metrics = m["server_metrics"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(name, x)| {
                    let g = |k: &str| num(&x[k]).unwrap_or(f64::NAN);
                    let counter = x.get("Rate").is_some();
                    let series = ServerSeries {
                        kind: if counter { "counter" } else { "gauge" }.into(),
                        mean: if counter { g("Rate") } else { g("Mean") },
                        min: g("Min"),
                        max: g("Max"),
                        last: f64::NAN,
                        samples: 0,
                        total: None,
                    };
                    (name.clone(), series)
                })
                .collect()
        })
        .unwrap_or_default();
    let stage = StageResult {
        name: if rate.is_infinite() || rate == 0.0 { "rate-inf".into() } else { format!("rate-{rate}") },
        offered: Some(Offered {
            requested_rate: if rate == 0.0 { f64::INFINITY } else { rate },
            process: "poisson".into(),
            achieved_rate: Some(num(&m["throughput_rps"]).unwrap_or_else(|| per_s(sent as f64))),
            ..Default::default()
        }),
        duration_seconds: secs,
        counts: Some(Counts { sent, succeeded: ok, failed: sent.saturating_sub(ok), errors, ..Default::default() }),
        throughput: Some(Throughput {
            requests_per_second: per_s(ok as f64),
            input_tokens_per_second: per_s(num(&m["total_input_tokens"]).unwrap_or(0.0)),
            output_tokens_per_second: num(&m["throughput"]).unwrap_or(0.0),
            max_output_tokens_per_second: f64::NAN,
        }),
        ttft_ms: either(m, "TTFT_ms", "TTFT", 1e3, ok),
        e2e_ms: either(m, "latency_ms", "latency", 1.0, ok),
        tpot_ms: either(m, "TPOT_ms", "TPOT", 1e3, ok),
        itl_ms: either(m, "ITL_ms", "ITL", 1e3, ok),
        ntpot_ms: either(m, "normalized_time_per_output_token_ms", "per_output_token_latency", 1.0, ok),
        per_token_ms: either(m, "per_token_latency_ms", "per_token_latency", 1e3, ok),
        input_tokens: family(m, "input_len", 1.0, ok),
        output_tokens: family(m, "output_len", 1.0, ok),
        server_metrics,
        ..Default::default()
    };
    let d = &v["dimensions"];
    let info = RunInfo {
        tool_version: "latency-profile-generator".into(),
        api: d["backend"].as_str().unwrap_or_default().into(),
        models: d["model_id"].as_str().map(|s| vec![s.to_owned()]).unwrap_or_default(),
        ..Default::default()
    };
    LpgFile { path: path.to_path_buf(), model: model_of(path, v), stage, info }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An 07628c9 file: TTFT/ITL/TPOT in seconds, latency in ms, no `_ms` keys.
    fn old_file() -> Value {
        serde_json::json!({
            "metrics": {
                "num_prompts_attempted": 100, "num_prompts_succeeded": 98, "request_rate": 4.0,
                "benchmark_time": 25.0, "throughput_rps": 4.0, "throughput": 512.0, "total_input_tokens": 25000,
                "avg_latency": 900.0, "median_latency": 850.0, "sd_latency": 10.0, "min_latency": 400.0,
                "max_latency": 2000.0, "p90_latency": 1200.0, "p99_latency": 1900.0,
                "avg_TTFT": 0.05, "median_TTFT": 0.04, "sd_TTFT": 0.01, "min_TTFT": 0.02, "max_TTFT": 0.3,
                "p90_TTFT": 0.08, "p99_TTFT": 0.25,
                "TimeoutError": 2, "ClientConnectorError": 0,
                "server_metrics": {"vllm:num_requests_waiting": {"Mean": 3.0, "Min": 0.0, "Max": 9.0}}
            },
            "dimensions": {"backend": "vllm", "model_id": "meta-llama/Llama-2-7b-hf"}
        })
    }

    #[test]
    fn old_units_are_converted_and_unknown_percentiles_are_nan() {
        let f = file(Path::new("/r/benchmark-catalog-vllm-4.0qps-20240101-120000-weighted.json"), &old_file());
        assert_eq!(f.model, "weighted");
        let s = &f.stage;
        assert_eq!(s.name, "rate-4");
        let ttft = s.ttft_ms.unwrap();
        assert_eq!((ttft.p50, ttft.p90, ttft.p99, ttft.count), (40.0, 80.0, 250.0, 98));
        assert!(ttft.p95.is_nan() && ttft.p25.is_nan());
        assert_eq!(s.e2e_ms.unwrap().p50, 850.0, "latency was ms already");
        assert!(s.tpot_ms.is_none(), "not streamed: no TPOT");
        let c = s.counts.clone().unwrap();
        assert_eq!((c.sent, c.succeeded, c.failed, c.errors["timeout"]), (100, 98, 2, 2));
        assert_eq!(s.throughput.unwrap().requests_per_second, 98.0 / 25.0);
        assert_eq!(s.server_metrics["vllm:num_requests_waiting"].mean, 3.0);
    }

    #[test]
    fn ms_keys_win_over_old_ones() {
        let mut v = old_file();
        v["metrics"]["median_TTFT_ms"] = serde_json::json!(41.5);
        let f = file(Path::new("x.json"), &v);
        assert_eq!(f.stage.ttft_ms.unwrap().p50, 41.5);
        assert_eq!(f.model, "meta-llama/Llama-2-7b-hf", "no LPG file name: the dimensions say");
    }

    #[test]
    fn weighted_files_are_preferred_and_json_dir_first() {
        let d = tempfile::tempdir().unwrap();
        let json = d.path().join("json");
        std::fs::create_dir(&json).unwrap();
        let put = |name: &str, rate: f64| {
            let mut v = old_file();
            v["metrics"]["request_rate"] = serde_json::json!(rate);
            std::fs::write(json.join(name), v.to_string()).unwrap();
        };
        put("p-vllm-2.0qps-20240101-120000-weighted.json", 2.0);
        put("p-vllm-2.0qps-20240101-120000-meta-llama-Llama-2-7b-hf.json", 2.0);
        put("p-vllm-1.0qps-20240101-110000-weighted.json", 1.0);
        std::fs::write(json.join("notes.json"), "{\"other\": 1}").unwrap();
        let files = read_dir(d.path()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.stage.name.as_str()).collect();
        assert_eq!(names, ["rate-1", "rate-2"]);
        std::fs::write(json.join("p-vllm-3.0qps-20240101-130000-weighted.json"), "{broken").unwrap();
        let e = read_dir(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("p-vllm-3.0qps-20240101-130000-weighted.json: not a latency-profile-generator result"),
            "{e}"
        );
    }
}
