//! The simulator over real HTTP on 127.0.0.1: every API shape, streamed and not, errors, metrics
//! parsed back by a Prometheus text parser, faults, LoRA names, prefix caching.

use clap::Parser;
use inferbench::{cli::sim_cmd::SimArgs, sim::Server};
use openmetrics_parser::{PrometheusType, PrometheusValue};
use serde_json::{Value, json};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    sim: SimArgs,
}

/// A simulator with no latency on a free port.
async fn server(flags: &[&str]) -> Server {
    server_with_latency(&[&["--zero-latency"], flags].concat()).await
}

/// A simulator with the latency model the flags give.
async fn server_with_latency(flags: &[&str]) -> Server {
    let args = Flags::try_parse_from(["sim"].iter().chain(flags)).unwrap().sim;
    Server::bind(args.to_config().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

async fn post(s: &Server, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
    post_with(s, path, body, &[]).await
}

async fn post_with(
    s: &Server,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new().post(format!("{}{path}", s.url())).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let (status, h) = (r.status().as_u16(), r.headers().clone());
    (status, h, r.text().await.unwrap())
}

/// The `data:` payloads of an SSE body.
fn frames(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "frames end with a blank line: {body:?}");
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| f.strip_prefix("data:").unwrap_or_else(|| panic!("not a data frame: {f:?}")).trim_start().to_owned())
        .collect()
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[tokio::test]
async fn completions_answer_with_vllms_shape_and_usage() {
    let s = server(&[]).await;
    let body = json!({"model": "meta-llama/Llama-3.1-8B-Instruct", "prompt": "Hello there, world", "max_tokens": 7, "ignore_eos": true});
    let (status, headers, text) = post_with(&s, "/v1/completions", body, &[("x-request-id", "abc-1")]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-request-id"], "abc-1");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], "cmpl-abc-1");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(words(v["choices"][0]["text"].as_str().unwrap()), 7);
    assert_eq!(
        v["usage"],
        json!({
            "prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11, "completion_tokens_details": null,
            "prompt_tokens_details": {"cached_tokens": 0, "created_cache_tokens": null, "multimodal_tokens": null},
        })
    );
    // Token ids are a prompt too; the text is deterministic for the same request.
    let ids = json!({"prompt": [1, 2, 3], "max_tokens": 3, "ignore_eos": true});
    let (_, _, a) = post(&s, "/v1/completions", ids.clone()).await;
    let (_, _, b) = post(&s, "/v1/completions", ids).await;
    let (a, b): (Value, Value) = (serde_json::from_str(&a).unwrap(), serde_json::from_str(&b).unwrap());
    assert_eq!(a["usage"]["prompt_tokens"], 3);
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
}

#[tokio::test]
async fn completion_streams_end_with_finish_reason_optional_usage_and_done() {
    let s = server(&[]).await;
    let req = json!({"prompt": "Say something", "max_tokens": 5, "ignore_eos": true, "stream": true});
    let (status, headers, body) = post(&s, "/v1/completions", req.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
    let f = frames(&body);
    assert_eq!(f.len(), 5 + 1, "one chunk per token, then [DONE]: {f:?}");
    assert_eq!(f.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = f[..5].iter().map(|c| serde_json::from_str(c).unwrap()).collect();
    assert!(chunks[..4].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "length");
    assert!(chunks.iter().all(|c| c["object"] == "text_completion" && c.get("usage").is_none()));
    let text: String = chunks.iter().map(|c| c["choices"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(words(&text), 5);

    let mut with_usage = req;
    with_usage["stream_options"] = json!({"include_usage": true});
    let f = frames(&post(&s, "/v1/completions", with_usage).await.2);
    assert_eq!(f.len(), 5 + 2);
    let usage: Value = serde_json::from_str(&f[5]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(usage["usage"]["prompt_tokens"], 3, "Say, ' someth', 'ing'");
}

#[tokio::test]
async fn chat_streams_start_with_a_role_chunk_and_carry_several_tokens_per_chunk_when_speculating() {
    let s = server(&["--tokens-per-step", "4"]).await;
    let req = json!({
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_completion_tokens": 10, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true},
    });
    let f = frames(&post(&s, "/v1/chat/completions", req).await.2);
    let chunks: Vec<Value> = f[..f.len() - 1].iter().map(|c| serde_json::from_str(c).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    // 1 token from prefill, then 4, 4, 1.
    let per_chunk: Vec<usize> = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| words(c["choices"][0]["delta"]["content"].as_str().unwrap()))
        .collect();
    assert_eq!(per_chunk, [1, 4, 4, 1]);
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "length");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 10);
    assert_eq!(f.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn non_streamed_chat_and_eos_draws() {
    let s = server(&["--mean-output-tokens", "4", "--seed", "3"]).await;
    let mut stops = 0;
    for i in 0..20 {
        let req = json!({"messages": [{"role": "user", "content": format!("question {i}")}], "max_tokens": 50});
        let (status, _, body) = post(&s, "/v1/chat/completions", req).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        let n = v["usage"]["completion_tokens"].as_u64().unwrap();
        let text_tokens = words(v["choices"][0]["message"]["content"].as_str().unwrap()) as u64;
        if v["choices"][0]["finish_reason"] == "stop" {
            stops += 1;
            assert!(n < 50);
            assert_eq!(text_tokens, n - 1, "EOS counts as a token but is not text");
        } else {
            assert_eq!(text_tokens, n);
        }
    }
    assert!(stops >= 15, "EOS with a mean of 4 tokens ends most answers before 50: {stops}");
}

#[tokio::test]
async fn bad_requests_get_the_status_and_error_body_of_the_real_server() {
    let s = server(&["--max-model-len", "64", "--lora-modules", "sql-lora=/adapters/sql", "--enable-lora"]).await;
    let cases = [
        ("not json", 400, "'type': 'json_invalid', 'loc': 'body.0', 'msg': 'JSON decode error'"),
        (r#"{"prompt": "x", "model": "nope"}"#, 404, "The model `nope` does not exist."),
        (r#"{"prompt": "x", "max_tokens": 0}"#, 400, "max_tokens must be at least 1, got 0."),
        (r#"{"prompt": "x", "n": 2}"#, 400, "n must be 1"),
        (r#"{"max_tokens": 3}"#, 400, "Either prompt or prompt_embeds must be provided and non-empty."),
        (
            r#"{"prompt": "x", "max_tokens": 2, "min_tokens": 3}"#,
            400,
            "min_tokens must be less than or equal to max_tokens=2",
        ),
        (r#"{"prompt": ""}"#, 400, "Either prompt or prompt_embeds must be provided and non-empty."),
    ];
    let client = reqwest::Client::new();
    for (body, status, msg) in cases {
        let r = client
            .post(format!("{}/v1/completions", s.url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains(msg), "{body}: {v}");
        assert_eq!(v["error"]["code"], status);
    }
    let huge = "word ".repeat(100_000);
    let (status, _, body) = post(&s, "/v1/completions", json!({"prompt": huge, "max_tokens": 10})).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("maximum context length is 64 tokens. However, your prompt contains at least 65 input tokens"),
        "{body}"
    );
    // A prompt that fits with max_tokens past the context: max_tokens is cut to what is left.
    let (status, _, body) =
        post(&s, "/v1/completions", json!({"prompt": vec![1; 60], "max_tokens": 10, "ignore_eos": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["usage"]["completion_tokens"], 4);
    // A LoRA adapter's name is a model.
    let (status, _, body) =
        post(&s, "/v1/completions", json!({"prompt": "x", "model": "sql-lora", "max_tokens": 2})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["model"], "sql-lora");
    let models: Value = reqwest::get(format!("{}/v1/models", s.url())).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["meta-llama/Llama-3.1-8B-Instruct", "sql-lora"]);
    assert_eq!(models["data"][1]["parent"], "meta-llama/Llama-3.1-8B-Instruct");
}

#[tokio::test]
async fn a_full_waiting_queue_answers_429() {
    let s = server(&["--max-waiting-queue-length", "0"]).await;
    let (status, _, body) = post(&s, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(status, 429);
    assert!(body.contains("waiting queue is full"), "{body}");
}

#[tokio::test]
async fn tgi_jetstream_and_triton_shapes() {
    let s = server(&[]).await;
    // TGI /generate with details.
    let (status, _, body) = post(
        &s,
        "/generate",
        json!({"inputs": "Hello", "parameters": {"max_new_tokens": 6, "details": true, "ignore_eos_token": true}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(words(v["generated_text"].as_str().unwrap()), 6);
    assert_eq!(v["details"]["finish_reason"], "length");
    assert_eq!(v["details"]["generated_tokens"], 6);
    // TGI /generate_stream: one event per token, no space after "data:", the last with everything.
    let (_, _, body) = post(
        &s,
        "/generate_stream",
        json!({"inputs": "Hello", "parameters": {"max_new_tokens": 4, "ignore_eos_token": true}}),
    )
    .await;
    assert!(body.starts_with("data:{"), "{body}");
    let events: Vec<Value> = frames(&body).iter().map(|f| serde_json::from_str(f).unwrap()).collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events.iter().map(|e| e["index"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(events[..3].iter().all(|e| e["generated_text"].is_null() && e["details"].is_null()));
    let all: String = events.iter().map(|e| e["token"]["text"].as_str().unwrap()).collect();
    assert_eq!(events[3]["generated_text"], all.as_str());
    assert_eq!(events[3]["details"]["generated_tokens"], 4);
    // TGI validation errors are 422 {error, error_type}.
    let (status, _, body) = post(&s, "/generate", json!({"inputs": "x", "parameters": {"max_new_tokens": 0}})).await;
    assert_eq!(status, 422);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error_type"], "validation");
    // JetStream, as latency-profile-generator sends it and as its HTTP server takes it.
    for path in ["/generate", "/v1/generate"] {
        let (status, _, body) = post(&s, path, json!({"prompt": "Hi", "max_tokens": 3, "ignore_eos": true})).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(words(serde_json::from_str::<Value>(&body).unwrap()["response"].as_str().unwrap()), 3);
    }
    // Triton / TensorRT-LLM.
    let (status, _, body) =
        post(&s, "/v2/models/ensemble/generate", json!({"text_input": "Hi", "max_tokens": 3, "ignore_eos": true}))
            .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["model_name"].as_str(), v["model_version"].as_str()), (Some("ensemble"), Some("1")));
    assert_eq!(words(v["text_output"].as_str().unwrap()), 3);
    let (_, _, body) = post(
        &s,
        "/v2/models/ensemble/generate_stream",
        json!({"text_input": "Hi", "max_tokens": 3, "ignore_eos": true}),
    )
    .await;
    let f = frames(&body);
    assert_eq!(f.len(), 3);
    assert!(f.iter().all(|c| words(serde_json::from_str::<Value>(c).unwrap()["text_output"].as_str().unwrap()) == 1));
    let (status, _, body) = post(&s, "/v2/models/other/generate", json!({"text_input": "Hi"})).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown model"), "{body}");
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_was_served() {
    let s = server(&[]).await;
    for _ in 0..5 {
        let (status, _, _) =
            post(&s, "/v1/completions", json!({"prompt": "a b c", "max_tokens": 4, "ignore_eos": true})).await;
        assert_eq!(status, 200);
    }
    let r = reqwest::get(format!("{}/metrics", s.url())).await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let scrape = openmetrics_parser::prometheus::parse_prometheus(&text).unwrap();
    // Sum of a family's samples (counters, gauges; a histogram's count), optionally one label's.
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let family = scrape.families.get(name).unwrap_or_else(|| panic!("no family {name}"));
        family
            .iter_samples()
            .filter(|s| label.is_none_or(|(k, v)| s.get_labelset().unwrap().get_label_value(k) == Some(v)))
            .map(|s| match &s.value {
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Gauge(v) | PrometheusValue::Unknown(v) => v.as_f64(),
                PrometheusValue::Histogram(h) => h.count.unwrap() as f64,
                PrometheusValue::Summary(_) => f64::NAN,
            })
            .sum()
    };
    assert_eq!(value("vllm:request_success_total", Some(("finished_reason", "length"))), 5.0);
    assert_eq!(value("vllm:generation_tokens_total", None), 20.0);
    // The prompt "a b c" is 3 tokens; the prefix cache has no full block of it.
    assert_eq!(value("vllm:prompt_tokens_total", None), 15.0);
    assert_eq!(value("vllm:num_requests_running", None), 0.0);
    assert_eq!(value("vllm:num_requests_waiting", None), 0.0);
    assert_eq!(value("vllm:kv_cache_usage_perc", None), 0.0);
    assert_eq!(value("vllm:time_to_first_token_seconds", None), 5.0, "histogram count");
    assert_eq!(value("vllm:inter_token_latency_seconds", None), 15.0, "3 gaps per request");
    assert_eq!(value("vllm:e2e_request_latency_seconds", None), 5.0);
    assert_eq!(value("vllm:cache_config_info", Some(("block_size", "16"))), 1.0);
    assert_eq!(value("vllm:num_requests_running", Some(("model_name", "meta-llama/Llama-3.1-8B-Instruct"))), 0.0);
    let types = |name: &str| scrape.families[name].family_type.clone();
    assert_eq!(types("vllm:num_requests_waiting"), PrometheusType::Gauge);
    assert_eq!(types("vllm:prompt_tokens_total"), PrometheusType::Counter);
    assert_eq!(types("vllm:e2e_request_latency_seconds"), PrometheusType::Histogram);
}

#[tokio::test]
async fn faults_change_at_run_time_and_per_request() {
    let s = server(&["--startup-delay", "3600"]).await;
    let health = || async { reqwest::get(format!("{}/health", s.url())).await.unwrap().status().as_u16() };
    assert_eq!(health().await, 503, "not ready during the start-up delay");
    let (status, _, _) = post(&s, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(status, 503);
    let (status, _, body) = post(&s, "/admin/faults", json!({"not_ready_seconds": 0})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(health().await, 200);

    let (status, _, body) = post(&s, "/admin/faults", json!({"error_rate": 1.0, "error_status": 503})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(&s, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(status, 503, "{body}");
    let (status, _, body) = post(&s, "/admin/faults", json!({"error_rat": 1})).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown fault setting"), "{body}");
    post(&s, "/admin/faults", json!({"error_rate": 0})).await;

    // Per request: an error status, and a connection cut after 2 tokens of a stream.
    let req = json!({"prompt": "x", "max_tokens": 8, "ignore_eos": true, "stream": true});
    let (status, _, _) = post_with(&s, "/v1/completions", req.clone(), &[("x-inferbench-fault", "error=429")]).await;
    assert_eq!(status, 429);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/completions", s.url()))
        .header("x-inferbench-fault", "reset-after=2")
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the stream starts");
    assert!(r.text().await.is_err(), "the body is cut");
    let faults: Value = reqwest::get(format!("{}/admin/faults", s.url())).await.unwrap().json().await.unwrap();
    assert_eq!(faults["error_rate"], 0.0);
}

#[tokio::test]
async fn a_shared_prompt_prefix_is_reported_as_cached() {
    let s = server(&[]).await;
    let prompt = "The same long system prompt. ".repeat(20);
    let req = json!({"prompt": prompt, "max_tokens": 1});
    let first: Value = serde_json::from_str(&post(&s, "/v1/completions", req.clone()).await.2).unwrap();
    let second: Value = serde_json::from_str(&post(&s, "/v1/completions", req).await.2).unwrap();
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let prompt_tokens = second["usage"]["prompt_tokens"].as_u64().unwrap();
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert_eq!(cached, (prompt_tokens - 1) / 16 * 16, "every full block but the last token's");
}

#[tokio::test]
async fn an_injected_stall_pauses_the_stream_after_the_given_tokens() {
    let s = server(&[]).await;
    let req = json!({"prompt": "x", "max_tokens": 4, "ignore_eos": true, "stream": true});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/completions", s.url()))
        .header("x-inferbench-fault", "stall=0.3@2")
        .json(&req)
        .send()
        .await
        .unwrap();
    let mut stream = r.bytes_stream();
    let (mut tokens, mut gap_before_third) = (0, None);
    let mut last = std::time::Instant::now();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.unwrap();
        let n = String::from_utf8_lossy(&chunk).matches("\"text\"").count();
        if n > 0 && tokens == 2 {
            gap_before_third = Some(last.elapsed());
        }
        tokens += n;
        last = std::time::Instant::now();
    }
    assert_eq!(tokens, 4);
    // A lower bound only: the stall cannot end early, whatever the machine's speed.
    assert!(gap_before_third.unwrap() >= std::time::Duration::from_millis(300), "{gap_before_third:?}");
}

#[tokio::test]
async fn data_parallel_engines_share_the_load_and_report_per_engine_series() {
    // Steps of one second: the first request is still running when the second arrives.
    let s = server_with_latency(&["--data-parallel-size", "2", "--step-base-us", "1000000"]).await;
    let req = json!({"prompt": "x", "max_tokens": 1, "ignore_eos": true});
    let (a, b) = tokio::join!(post(&s, "/v1/completions", req.clone()), post(&s, "/v1/completions", req));
    assert_eq!((a.0, b.0), (200, 200));
    let text = reqwest::get(format!("{}/metrics", s.url())).await.unwrap().text().await.unwrap();
    for engine in ["0", "1"] {
        let series = format!("vllm:request_success_total{{engine=\"{engine}\",finished_reason=\"length\",");
        let line = text.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("{series} in {text}"));
        assert!(line.ends_with(" 1"), "each engine served one: {line}");
    }
}

#[tokio::test]
async fn an_answer_ending_at_eos_streams_tgis_special_token_and_openais_stop() {
    // A mean of one token: EOS comes first, after `min_tokens`.
    let s = server(&["--mean-output-tokens", "1"]).await;
    let (_, _, body) =
        post(&s, "/generate_stream", json!({"inputs": "Hi", "parameters": {"max_new_tokens": 10}})).await;
    let events: Vec<Value> = frames(&body).iter().map(|f| serde_json::from_str(f).unwrap()).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["token"]["special"], true);
    assert_eq!(events[0]["generated_text"], "");
    assert_eq!(events[0]["details"]["finish_reason"], "eos_token");
    let req = json!({"prompt": "Hi", "max_tokens": 10, "min_tokens": 3});
    let v: Value = serde_json::from_str(&post(&s, "/v1/completions", req).await.2).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 4, "min_tokens, then EOS");
    assert_eq!(words(v["choices"][0]["text"].as_str().unwrap()), 3);
}

/// A client that opens connections and walks away does not keep the server's files: an idle
/// keep-alive connection is closed after the idle timeout (tokio's paused clock skips the wait),
/// one that sends a request in time is served.
#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s = server(&[]).await;
    let addr = s.url().trim_start_matches("http://").to_owned();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let opened = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).await.unwrap();
    assert_eq!(n, 0, "closed by the server");
    let waited = opened.elapsed();
    assert!(
        waited >= inferbench::sim::api::IDLE_TIMEOUT && waited < inferbench::sim::api::IDLE_TIMEOUT * 2,
        "after the idle timeout: {waited:?}"
    );
    let mut used = tokio::net::TcpStream::connect(&addr).await.unwrap();
    used.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let n = used.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
}
