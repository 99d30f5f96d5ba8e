//! Per-request latencies of a results folder (`requests.jsonl.zst`), by stage: what the
//! comparison's noise test needs. `summary.json` holds percentiles, not how uncertain they are;
//! the records give the whole sample, from which a percentile's confidence interval follows.
//! The definitions are those of `proto/results.proto` (times after `sent`), so these latencies
//! are the ones the summary's histograms were filled with.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::Path,
};

use serde::Deserialize;

use super::ReportError;

/// One stage's requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageSamples {
    /// TTFT (ms) of each successful streamed request, sorted.
    pub ttft: Vec<f64>,
    /// TPOT (ms) of each successful request with more than one output token, sorted.
    pub tpot: Vec<f64>,
    /// End-to-end latency (ms) of each successful request, sorted.
    pub e2e: Vec<f64>,
    /// Requests recorded.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
}

/// The fields used of a record (see `load::output::RecordJson`).
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    stage: Cow<'a, str>,
    #[serde(default)]
    first_token_us: Option<u64>,
    #[serde(default)]
    last_token_us: Option<u64>,
    end_us: u64,
    output_tokens: u64,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
}

/// Reads `requests.jsonl.zst`.
pub fn read(path: &Path) -> Result<BTreeMap<String, StageSamples>, ReportError> {
    let err = |m: String| ReportError { path: path.to_path_buf(), message: m };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let decoder = zstd::Decoder::new(file).map_err(|e| err(e.to_string()))?;
    let mut out: BTreeMap<String, StageSamples> = BTreeMap::new();
    for (i, line) in BufReader::new(decoder).lines().enumerate() {
        let line = line.map_err(|e| err(e.to_string()))?;
        let r: Record<'_> =
            serde_json::from_str(&line).map_err(|e| err(format!("record {}: not a request record: {e}", i + 1)))?;
        if !out.contains_key(r.stage.as_ref()) {
            out.insert(r.stage.clone().into_owned(), StageSamples::default());
        }
        let s = out.get_mut(r.stage.as_ref()).expect("inserted above");
        s.requests += 1;
        if r.error.is_some() {
            s.failed += 1;
            continue;
        }
        s.e2e.push(r.end_us as f64 / 1e3);
        if let Some(first) = r.first_token_us {
            s.ttft.push(first as f64 / 1e3);
            if let Some(last) = r.last_token_us.filter(|_| r.output_tokens > 1) {
                s.tpot.push(last.saturating_sub(first) as f64 / 1e3 / (r.output_tokens - 1) as f64);
            }
        }
    }
    for s in out.values_mut() {
        for v in [&mut s.ttft, &mut s.tpot, &mut s.e2e] {
            v.sort_by(f64::total_cmp);
        }
    }
    Ok(out)
}
