//! inference-perf's `stage_{i}_lifecycle_metrics.json`: `load_summary`, `successes`, `failures`,
//! statistics in seconds as `{mean, min, max, p0.1, p1, p5, p10, p25, median, p75, p90, p95, p99,
//! p99.9}`. Its TPOT excludes the first token and its ITL is per token, as ours.

use serde_json::{Value, json};

use super::{Context, totals};
use inferbench_schema::{Distribution, StageResult};

/// (file name, content) of stage `i`.
pub fn file(_cx: &Context<'_>, i: usize, s: &StageResult) -> (String, Value) {
    (format!("stage_{i}_lifecycle_metrics.json"), content(s))
}

/// inference-perf's stats object of `d`, each value × `scale`.
fn stats(d: Option<Distribution>, scale: f64) -> Value {
    let d = d.unwrap_or_default();
    json!({
        "mean": d.mean * scale, "min": d.min * scale, "max": d.max * scale,
        "p0.1": d.p0_1 * scale, "p1": d.p1 * scale, "p5": d.p5 * scale, "p10": d.p10 * scale,
        "p25": d.p25 * scale, "median": d.p50 * scale, "p75": d.p75 * scale, "p90": d.p90 * scale,
        "p95": d.p95 * scale, "p99": d.p99 * scale, "p99.9": d.p999 * scale,
    })
}

fn content(s: &StageResult) -> Value {
    let c = s.counts.clone().unwrap_or_default();
    let t = s.throughput.unwrap_or_default();
    let o = s.offered.clone().unwrap_or_default();
    let (input, output) = totals(s);
    let ms = 1e-3;
    let mut load = json!({
        "count": c.sent,
        "schedule_delay": stats(s.schedule_lag_ms, ms),
        "send_duration": s.duration_seconds,
        "requested_rate": if o.requested_rate.is_finite() { json!(o.requested_rate) } else { json!("inf") },
        "achieved_rate": o.achieved_rate,
    });
    if o.users > 0 {
        load["concurrency"] = json!(o.users);
    }
    let by_label: serde_json::Map<String, Value> =
        c.errors.iter().map(|(k, v)| (k.clone(), json!({"count": v, "messages": []}))).collect();
    let g = s.goodput.unwrap_or_default();
    let mut successes = json!({
        "count": c.succeeded,
        "latency": {
            "request_latency": stats(s.e2e_ms, ms),
            "normalized_time_per_output_token": stats(s.ntpot_ms, ms),
            "time_per_output_token": stats(s.tpot_ms, ms),
            "time_to_first_token": stats(s.ttft_ms, ms),
            "inter_token_latency": stats(s.itl_ms, ms),
        },
        "throughput": {
            "input_tokens_per_sec": t.input_tokens_per_second,
            "output_tokens_per_sec": t.output_tokens_per_second,
            "total_tokens_per_sec": t.input_tokens_per_second + t.output_tokens_per_second,
            "requests_per_sec": t.requests_per_second,
        },
        "prompt_tokens": {"total": input, "cached": s.cached_prompt_tokens},
        "output_len": stats(s.output_tokens, 1.0),
        "output_tokens": {"total": output},
        "prompt_token_mismatches": c.prompt_token_mismatches,
        "output_length_mismatches": c.output_length_mismatches,
    });
    if g.ttft_ms + g.tpot_ms + g.e2e_ms > 0.0 {
        successes["goodput_metrics"] = json!({
            "goodput_percentage": g.fraction * 100.0,
            "request_goodput": g.good_requests_per_second,
            "good_requests": g.good_requests,
            "total_requests": c.sent,
        });
    }
    json!({
        "load_summary": load,
        "successes": successes,
        "failures": {"count": c.failed, "by_label": by_label},
    })
}
