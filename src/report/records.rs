//! Per-request latencies of a results folder (`requests.jsonl.zst`), by stage: what the
//! comparison's noise test needs. `summary.json` holds percentiles, not how uncertain they are;
//! the records give the whole sample, from which a percentile's confidence interval follows.
//! The definitions are those of `proto/results.proto` (times after `sent`), so these latencies
//! are the ones the summary's histograms were filled with.

use std::{collections::BTreeMap, path::Path};

use super::ReportError;
use crate::schema::result_files;

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

/// Reads `requests.jsonl.zst` (the records as [`result_files`] defines them).
pub fn read(path: &Path) -> Result<BTreeMap<String, StageSamples>, ReportError> {
    let mut out: BTreeMap<String, StageSamples> = BTreeMap::new();
    result_files::read_requests(path, |r| {
        if !out.contains_key(r.stage.as_ref()) {
            out.insert(r.stage.clone().into_owned(), StageSamples::default());
        }
        let s = out.get_mut(r.stage.as_ref()).expect("inserted above");
        s.requests += 1;
        if r.error.is_some() {
            s.failed += 1;
            return;
        }
        s.e2e.push(f64::from(r.end_us) / 1e3);
        if let Some(first) = r.first_token_us {
            s.ttft.push(f64::from(first) / 1e3);
            if let Some(last) = r.last_token_us.filter(|_| r.output_tokens > 1) {
                s.tpot.push(f64::from(last.saturating_sub(first)) / 1e3 / f64::from(r.output_tokens - 1));
            }
        }
    })
    .map_err(|e| ReportError { path: e.path, message: e.message })?;
    for s in out.values_mut() {
        for v in [&mut s.ttft, &mut s.tpot, &mut s.e2e] {
            v.sort_by(f64::total_cmp);
        }
    }
    Ok(out)
}
