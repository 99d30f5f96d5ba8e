//! latency-profile-generator's result file (`benchmark_serving.py --save-json-results`, as pinned
//! by the original tool, inference-benchmark 07628c9), plus the `_ms` keys its later versions
//! renamed to, so parsers of either version read it. Name:
//! `{file_prefix}-{backend}-{rate}qps-{YYYYmmdd-HHMMSS}-{model}.json`; LPG writes one per model and
//! a `weighted` aggregate — our stage result is the aggregate, so it is written as `weighted`, and
//! under the model's own name as well when there is only one model.

use serde_json::{Map, Value, json};

use super::{Context, file_safe, rate_label, totals};
use inferbench_schema::{Distribution, StageResult};

/// (file name, content) of every LPG file of the stage.
pub fn files(cx: &Context<'_>, s: &StageResult) -> Vec<(String, Value)> {
    let v = file(cx, s);
    let name = |model: &str| {
        format!("{}-{}-{}qps-{}-{}.json", cx.file_prefix, cx.backend(), rate_label(s), cx.date(), file_safe(model))
    };
    let mut out = vec![(name("weighted"), v.clone())];
    if cx.run.models.len() == 1 {
        out.push((name(cx.model()), v));
    }
    out
}

/// `{avg,median,sd,min,max,p90,p99}_{name}` of `d`, each value × `scale`.
fn stats(m: &mut Map<String, Value>, name: &str, d: Option<Distribution>, scale: f64) {
    let d = d.unwrap_or_default();
    for (k, v) in [
        ("avg", d.mean),
        ("median", d.p50),
        ("sd", d.stddev),
        ("min", d.min),
        ("max", d.max),
        ("p90", d.p90),
        ("p99", d.p99),
    ] {
        m.insert(format!("{k}_{name}"), json!(v * scale));
    }
}

/// The `{mean, median, sd, min, max, p90, p99}` object of `summary_stats`.
fn summary(d: Option<Distribution>) -> Value {
    let d = d.unwrap_or_default();
    json!({"mean": d.mean, "median": d.p50, "sd": d.stddev, "min": d.min, "max": d.max, "p90": d.p90, "p99": d.p99})
}

fn file(cx: &Context<'_>, s: &StageResult) -> Value {
    let c = s.counts.clone().unwrap_or_default();
    let t = s.throughput.unwrap_or_default();
    let o = s.offered.clone().unwrap_or_default();
    let (input, output) = totals(s);
    let secs = s.duration_seconds.max(f64::MIN_POSITIVE);
    let rate =
        if o.users > 0 || o.requested_rate.is_infinite() { o.achieved_rate.unwrap_or(0.0) } else { o.requested_rate };
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("num_prompts_attempted", json!(c.sent));
    put("num_prompts_succeeded", json!(c.succeeded));
    put("request_rate", json!(rate));
    put("benchmark_time", json!(s.duration_seconds));
    put("throughput_rps", json!(c.sent as f64 / secs));
    put("throughput", json!(t.output_tokens_per_second));
    put("total_output_token", json!(output));
    put("output_tokens_per_min", json!(output * 60.0 / secs));
    put("total_input_tokens", json!(input));
    put("input_tokens_per_min", json!(input * 60.0 / secs));
    put("total_tokens", json!(input + output));
    put("tokens_per_min", json!((input + output) * 60.0 / secs));
    let err = |k: &str| c.errors.get(k).copied().unwrap_or(0);
    let named = err("connect") + err("timeout") + err("parse") + err("stream_cut");
    put("ClientConnectorError", json!(err("connect")));
    put("TimeoutError", json!(err("timeout")));
    put("ContentTypeError", json!(err("parse")));
    put("ClientOSError", json!(0));
    put("ServerDisconnectedError", json!(err("stream_cut")));
    put("unknown_error", json!(c.failed - named.min(c.failed)));
    // 07628c9 units: latency ms/request, per_token_latency s/token, per_output_token_latency
    // ms/token, TTFT/ITL/TPOT seconds; then the later `_ms` names.
    stats(&mut m, "per_token_latency", s.per_token_ms, 1e-3);
    stats(&mut m, "latency", s.e2e_ms, 1.0);
    stats(&mut m, "per_output_token_latency", s.ntpot_ms, 1.0);
    stats(&mut m, "input_len", s.input_tokens, 1.0);
    stats(&mut m, "output_len", s.output_tokens, 1.0);
    stats(&mut m, "latency_ms", s.e2e_ms, 1.0);
    stats(&mut m, "per_token_latency_ms", s.per_token_ms, 1.0);
    stats(&mut m, "normalized_time_per_output_token_ms", s.ntpot_ms, 1.0);
    if cx.streaming {
        stats(&mut m, "TTFT", s.ttft_ms, 1e-3);
        stats(&mut m, "ITL", s.itl_ms, 1e-3);
        stats(&mut m, "TPOT", s.tpot_ms, 1e-3);
        stats(&mut m, "TTFT_ms", s.ttft_ms, 1.0);
        stats(&mut m, "ITL_ms", s.itl_ms, 1.0);
        stats(&mut m, "TPOT_ms", s.tpot_ms, 1.0);
    }
    let mut server = Map::new();
    let mut server_list = vec![];
    for (name, x) in &s.server_metrics {
        let v = match x.kind.as_str() {
            "counter" => json!({"Rate": x.mean, "Mean": x.mean, "Min": x.min, "Max": x.max}),
            _ => json!({"Mean": x.mean, "Min": x.min, "Max": x.max}),
        };
        let mut listed = v.as_object().cloned().unwrap_or_default();
        listed.insert("Name".into(), json!(name));
        server_list.push(Value::Object(listed));
        server.insert(name.clone(), v);
    }
    m.insert("server_metrics".into(), Value::Object(server));
    let mut dimensions = Map::new();
    dimensions.insert("date".into(), json!(cx.date()));
    dimensions.insert("backend".into(), json!(cx.backend()));
    dimensions.insert("model_id".into(), json!(cx.model()));
    dimensions.insert("tokenizer_id".into(), json!(cx.tokenizer));
    for (k, v) in &cx.run.metadata {
        dimensions.insert(k.clone(), json!(v));
    }
    let start = cx.ended - time::Duration::seconds_f64(s.duration_seconds);
    json!({
        "metrics": m,
        "dimensions": dimensions,
        "config": {
            "model": cx.run.models.join(","),
            "num_models": cx.run.models.len(),
            "model_server": cx.backend(),
            "start_time": {"seconds": start.unix_timestamp(), "nanos": start.nanosecond()},
        },
        "summary_stats": {"stats": [{
            "request_rate": rate,
            "request_latency": summary(s.e2e_ms),
            "input_length": summary(s.input_tokens),
            "output_length": summary(s.output_tokens),
            "tpot": summary(s.ntpot_ms),
            "throughput": {"mean": t.output_tokens_per_second},
            "model_server_metrics": server_list,
        }]},
    })
}
