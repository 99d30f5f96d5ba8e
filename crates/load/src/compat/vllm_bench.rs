//! `vllm bench serve --save-result`'s flat object, one file per stage:
//! `{backend}-{rate}qps[-concurrency{N}]-{model basename}-{YYYYmmdd-HHMMSS}.json`. vLLM's TPOT
//! excludes the first token (ours too); its ITL is per chunk (our `itl_chunk_ms`); statistics in ms.

use serde_json::{Map, Value, json};

use super::{Context, rate_label, totals};
use inferbench_schema::{Distribution, StageResult};

/// (file name, content) of the stage's file.
pub fn file(cx: &Context<'_>, s: &StageResult) -> (String, Value) {
    let o = s.offered.clone().unwrap_or_default();
    let concurrency = if o.users > 0 { format!("-concurrency{}", o.users) } else { String::new() };
    let base = cx.model().rsplit('/').next().unwrap_or("model");
    let name = format!("{}-{}qps{concurrency}-{base}-{}.json", cx.backend(), rate_label(s), cx.date());
    (name, content(cx, s))
}

fn stats(m: &mut Map<String, Value>, metric: &str, d: Option<Distribution>) {
    let d = d.unwrap_or_default();
    for (k, v) in [
        (format!("mean_{metric}_ms"), d.mean),
        (format!("median_{metric}_ms"), d.p50),
        (format!("std_{metric}_ms"), d.stddev),
        (format!("p90_{metric}_ms"), d.p90),
        (format!("p95_{metric}_ms"), d.p95),
        (format!("p99_{metric}_ms"), d.p99),
        (format!("p99.9_{metric}_ms"), d.p999),
    ] {
        m.insert(k, json!(v));
    }
}

fn content(cx: &Context<'_>, s: &StageResult) -> Value {
    let c = s.counts.clone().unwrap_or_default();
    let t = s.throughput.unwrap_or_default();
    let o = s.offered.clone().unwrap_or_default();
    let (input, output) = totals(s);
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("date", json!(cx.date()));
    put("endpoint_type", json!(if cx.backend() == "openai-chat" { "openai-chat" } else { "openai" }));
    put("backend", json!(cx.backend()));
    put("label", Value::Null);
    put("model_id", json!(cx.model()));
    put("tokenizer_id", json!(cx.tokenizer));
    put("num_prompts", json!(c.sent));
    for (k, v) in &cx.run.metadata {
        put(k, json!(v));
    }
    put(
        "request_rate",
        if o.requested_rate.is_infinite() || o.users > 0 { json!("inf") } else { json!(o.requested_rate) },
    );
    put("burstiness", json!(burstiness(&o.process)));
    put("max_concurrency", if o.users > 0 { json!(o.users) } else { Value::Null });
    put("duration", json!(s.duration_seconds));
    put("completed", json!(c.succeeded));
    put("failed", json!(c.failed));
    put("total_input_tokens", json!(input));
    put("total_output_tokens", json!(output));
    put("request_throughput", json!(t.requests_per_second));
    let g = s.goodput.unwrap_or_default();
    let slo_set = g.ttft_ms + g.tpot_ms + g.e2e_ms > 0.0;
    put("request_goodput", if slo_set { json!(g.good_requests_per_second) } else { Value::Null });
    put("output_throughput", json!(t.output_tokens_per_second));
    put("total_token_throughput", json!(t.input_tokens_per_second + t.output_tokens_per_second));
    put("max_output_tokens_per_s", json!(t.max_output_tokens_per_second));
    stats(&mut m, "ttft", s.ttft_ms);
    stats(&mut m, "tpot", s.tpot_ms);
    stats(&mut m, "itl", s.itl_chunk_ms);
    stats(&mut m, "e2el", s.e2e_ms);
    Value::Object(m)
}

/// vLLM's `burstiness` (1 = Poisson) from our process name.
fn burstiness(process: &str) -> f64 {
    process
        .strip_prefix("gamma(burstiness=")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|b| b.parse().ok())
        .unwrap_or(1.0)
}
