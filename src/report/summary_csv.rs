//! `summary.csv`: the full table for spreadsheets, one row per benchmark × stage (and one per
//! benchmark without results, saying why). Numbers are written whole — Rust's shortest form that
//! reads back to the same value — so a spreadsheet sees exactly what `summary.json` holds; an
//! unknown figure (an LPG file has no p95) is an empty cell.

use super::model::Run;
use crate::schema::{Distribution, StageResult};

/// A distribution of a stage.
type Pick = fn(&StageResult) -> Option<Distribution>;
/// A figure of a distribution.
type Stat = fn(&Distribution) -> f64;

/// The latency columns: (prefix, distribution), each written as mean, p50, p90, p95, p99, max.
const LATENCIES: &[(&str, Pick)] = &[
    ("ttft_ms", |s| s.ttft_ms),
    ("tpot_ms", |s| s.tpot_ms),
    ("itl_ms", |s| s.itl_ms),
    ("e2e_ms", |s| s.e2e_ms),
    ("ntpot_ms", |s| s.ntpot_ms),
    ("schedule_lag_ms", |s| s.schedule_lag_ms),
];

const STATS: &[(&str, Stat)] = &[
    ("mean", |d| d.mean),
    ("p50", |d| d.p50),
    ("p90", |d| d.p90),
    ("p95", |d| d.p95),
    ("p99", |d| d.p99),
    ("max", |d| d.max),
];

/// A number as a cell.
pub fn cell(v: f64) -> String {
    if v.is_nan() { String::new() } else { format!("{v}") }
}

/// The header row.
pub fn header() -> Vec<String> {
    let mut h: Vec<String> = [
        "benchmark",
        "state",
        "results",
        "stage",
        "offered_rate",
        "users",
        "process",
        "duration_s",
        "sent",
        "succeeded",
        "failed",
        "errors",
        "achieved_qps",
        "requests_per_s",
        "input_tokens_per_s",
        "output_tokens_per_s",
    ]
    .map(String::from)
    .to_vec();
    for (prefix, _) in LATENCIES {
        h.extend(STATS.iter().map(|(stat, _)| format!("{prefix}_{stat}")));
    }
    h.extend(
        [
            "goodput_fraction",
            "good_requests_per_s",
            "client_cpu_s",
            "client_cores",
            "host_steal_s",
            "load_delivered",
            "load_reasons",
            "note",
        ]
        .map(String::from),
    );
    h
}

/// The CSV text of a run.
pub fn csv(run: &Run) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(vec![]);
    let header = header();
    w.write_record(&header)?;
    for b in &run.benchmarks {
        let kind = b.results.as_ref().map_or(String::new(), |r| format!("{:?}", r.kind).to_lowercase());
        if b.stages().is_empty() {
            let mut row = vec![String::new(); header.len()];
            row[0].clone_from(&b.name);
            row[1] = b.state_label().into();
            row[2] = kind;
            *row.last_mut().expect("non-empty header") = b.why().unwrap_or_default();
            w.write_record(&row)?;
            continue;
        }
        for s in b.stages() {
            let o = s.offered.clone().unwrap_or_default();
            let c = s.counts.clone().unwrap_or_default();
            let t = s.throughput.unwrap_or_default();
            let mut row = vec![
                b.name.clone(),
                b.state_label().into(),
                kind.clone(),
                s.name.clone(),
                if o.users > 0 { String::new() } else { cell(o.requested_rate) },
                if o.users > 0 { o.users.to_string() } else { String::new() },
                o.process.clone(),
                cell(s.duration_seconds),
                c.sent.to_string(),
                c.succeeded.to_string(),
                c.failed.to_string(),
                super::table::error_kinds(&c),
                cell(o.achieved_rate.unwrap_or(f64::NAN)),
                cell(t.requests_per_second),
                cell(t.input_tokens_per_second),
                cell(t.output_tokens_per_second),
            ];
            for (_, get) in LATENCIES {
                match get(s).filter(|d| d.count > 0) {
                    Some(d) => row.extend(STATS.iter().map(|(_, f)| cell(f(&d)))),
                    None => row.extend(STATS.iter().map(|_| String::new())),
                }
            }
            match &s.goodput {
                Some(g) if g.ttft_ms > 0.0 || g.tpot_ms > 0.0 || g.e2e_ms > 0.0 => {
                    row.extend([cell(g.fraction), cell(g.good_requests_per_second)]);
                }
                _ => row.extend([String::new(), String::new()]),
            }
            // Why a client fell behind, if it did (see `load::host`); none in results from before.
            match o.client_cores {
                0 => row.extend([String::new(), String::new(), String::new()]),
                n => row.extend([cell(o.client_cpu_seconds), n.to_string(), cell(o.host_steal_seconds)]),
            }
            match &s.verdict {
                None => row.extend([String::new(), String::new()]),
                Some(v) => row.extend([v.delivered.to_string(), v.reasons.join("; ")]),
            }
            row.push(b.why().unwrap_or_default());
            w.write_record(&row)?;
        }
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
