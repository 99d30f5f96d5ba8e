//! One timeline per benchmark: the client's and the server's series on one time axis (seconds
//! since the load engine started scraping), each stage's window shaded.
//! - client, from the per-request records (`requests.jsonl.zst`): requests sent per second,
//!   requests in flight, TTFT p50 of the requests sent in each interval;
//! - server, from `server_metrics.json`: its queue and running batch, its KV-cache usage and its
//!   GPUs' utilisation (DCGM).
//!
//! The records count time from their stage's start, and `server_metrics.json` says where each
//! stage started on the scraper's clock (`stages[].start`): that is the one clock. Nothing new
//! is measured: a stall in the client and a queue in the server line up, or they do not.

use std::collections::BTreeMap;

use super::{
    model::Bench,
    plots::{Figure, Line, Panel},
};
use crate::schema::result_files;

/// Intervals the client's series are cut into (their width follows the run's length).
const INTERVALS: f64 = 120.0;

/// The first of `names` the samples hold.
fn first<'a>(server: &super::model::ServerTimeline, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| server.samples.iter().any(|x| x.values.contains_key(*n)))
}

/// The timeline figure of `b`, or None when it has neither server metrics nor records.
pub fn figure(b: &Bench) -> Option<Figure> {
    let results = b.results.as_ref()?;
    let server = results.server.as_ref();
    // Where each stage's records start on the one clock.
    let starts: BTreeMap<&str, f64> = server
        .map(|s| s.stages.iter().map(|w| (w.name.as_str(), w.start.unwrap_or(w.from))).collect())
        .unwrap_or_default();
    // (sent, first token, end) of each request, seconds on the one clock.
    let mut requests: Vec<(f64, Option<f64>, f64)> = vec![];
    if let Some(path) = &results.records {
        let _ = result_files::read_requests(path, |r| {
            let Some(start) = starts.get(r.stage.as_ref()) else { return };
            let sent = start + r.sent_us as f64 / 1e6;
            let first = r.first_token_us.filter(|_| r.error.is_none()).map(|f| sent + f64::from(f) / 1e6);
            requests.push((sent, first, sent + f64::from(r.end_us) / 1e6));
        });
    }
    let end = requests
        .iter()
        .map(|r| r.2)
        .chain(server.into_iter().flat_map(|s| s.samples.iter().map(|x| x.t)))
        .fold(0.0f64, f64::max);
    if end <= 0.0 {
        return None;
    }
    let width = (end / INTERVALS).clamp(0.1, 10.0);
    let n = (end / width).ceil() as usize + 1;
    let mid = |i: usize| (i as f64 + 0.5) * width;
    let slot = |t: f64| ((t / width) as usize).min(n - 1);
    // Sent per interval; in flight as a time average per interval (a difference array on a grid
    // ten times finer); TTFT p50 of the requests sent in the interval.
    let mut sent = vec![0u64; n];
    let fine = n * 10;
    let mut delta = vec![0i64; fine + 1];
    let mut ttft: Vec<Vec<f64>> = vec![vec![]; n];
    for &(s, f, e) in &requests {
        sent[slot(s)] += 1;
        let (a, z) = (((s / width * 10.0) as usize).min(fine), ((e / width * 10.0) as usize).min(fine));
        delta[a] += 1;
        delta[z] -= 1;
        if let Some(f) = f {
            ttft[slot(s)].push((f - s) * 1e3);
        }
    }
    let mut open = 0i64;
    let mut in_flight = vec![0.0; n];
    for (k, d) in delta.iter().take(fine).enumerate() {
        open += d;
        in_flight[k / 10] += open as f64 / 10.0;
    }
    let bands: Vec<(f64, f64, String)> =
        server.map(|s| s.stages.iter().map(|w| (w.from, w.to, w.name.clone())).collect()).unwrap_or_default();
    let panel = |title: &str, y: &str, lines: Vec<Line>| Panel {
        title: title.into(),
        x: "time (s)".into(),
        y: y.into(),
        lines: lines.into_iter().filter(|l| !l.points.is_empty()).collect(),
        bands: bands.clone(),
        ..Default::default()
    };
    let line =
        |label: &str, color: usize, points: Vec<(f64, f64)>| Line { label: label.into(), color, dashed: false, points };
    let busy = |i: usize| i as f64 * width <= requests.iter().map(|r| r.2).fold(0.0, f64::max);
    let rate: Vec<(f64, f64)> = (0..n).filter(|i| busy(*i)).map(|i| (mid(i), sent[i] as f64 / width)).collect();
    let flight: Vec<(f64, f64)> = (0..n).filter(|i| busy(*i)).map(|i| (mid(i), in_flight[i])).collect();
    let p50: Vec<(f64, f64)> = ttft
        .iter_mut()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| {
            v.sort_by(f64::total_cmp);
            (mid(i), v[(v.len() - 1) / 2])
        })
        .collect();
    let series = |names: &[&str], scale: f64, color: usize| -> Option<Line> {
        let s = server?;
        let name = first(s, names)?;
        let points = s.samples.iter().filter_map(|x| x.values.get(name).map(|v| (x.t, v * scale))).collect();
        Some(line(name, color, points))
    };
    let queue = series(
        &["vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size", "jetstream_prefill_backlog_size"],
        1.0,
        3,
    );
    let batch = series(&["vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size"], 1.0, 0);
    let kv = series(&["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"], 100.0, 4);
    let gpu = series(&["DCGM_FI_DEV_GPU_UTIL"], 1.0, 2);
    let panels = vec![
        panel("client: requests sent per second", "req/s", vec![line(&format!("sent (per {width:.1} s)"), 0, rate)]),
        panel("client: requests in flight", "requests", vec![line("in flight (mean)", 1, flight)]),
        panel("client: TTFT p50 of the requests sent", "ms", vec![line("TTFT p50", 2, p50)]),
        panel("server: waiting (queue) and running (batch)", "requests", queue.into_iter().chain(batch).collect()),
        panel("server: KV cache and GPU utilisation", "%", kv.into_iter().chain(gpu).collect()),
    ];
    Some(Figure {
        name: format!("timeline-{}", b.name),
        title: format!("{}: client and server on one time axis", b.name),
        caption: format!(
            "Seconds since the load engine started. Client (from the per-request records, per {width:.1} s): requests sent per second, requests in flight, TTFT p50 of the requests sent. Server (its /metrics as scraped): requests waiting in its queue and in its running batch, KV-cache usage and its GPUs' mean utilisation (DCGM_FI_DEV_GPU_UTIL, when there). Shaded: each load stage's measured window."
        ),
        panels,
        grid: (5, 1),
        size: (1000, 1150),
    })
}
