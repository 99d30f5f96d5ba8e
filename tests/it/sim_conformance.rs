//! `inferbench sim` answers like vLLM: the same requests go to a real vLLM (0.32, CPU build, the
//! tiny random-weight Llama of `scripts/real-vllm`, served as `tiny-llama` with `--max-model-len
//! 2048`) and to a simulator configured alike, and what a client sees is compared — shapes, not the
//! (gibberish) text:
//!
//! - bad requests: the status and the whole error body (`type`, `param`, `code` and the message,
//!   which is deterministic: pydantic's error lists, CPython's JSON error positions, vLLM's checks);
//! - answers: the status, the media type, every JSON key with the type of its value (recursively),
//!   `object`, `finish_reason` and the token counts where both count alike (token-id prompts);
//! - streams (completions and chat, with and without `include_usage`, and with
//!   `continuous_usage_stats`): the sequence of event kinds (role chunk, content chunks, the
//!   `finish_reason` chunk, the usage chunk, `[DONE]`) — one chunk per token on both — and the
//!   keys and value types of each kind;
//! - `/v1/models`, `/version`, `/health`, unknown routes and wrong methods;
//! - `/metrics`: each family the simulator exposes has vLLM's type, help text, label names and
//!   histogram bounds (`le` strings); each family vLLM has is in the simulator; the load engine's
//!   watched families (`WATCHED`) that vLLM has are all there.
//!
//! Every difference that stays is in an allow-list below with its reason, and in the README ("The
//! simulator" → "Differences from vLLM 0.32 that stay"). Any other difference fails the test, and
//! so does an allow-list entry that no longer matches anything (the list stays the true one).
//!
//! The real server: see `common/real_vllm.rs` (a machine where it cannot be had fails these tests
//! with the script's reason: they are never skipped).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use clap::Parser;
use inferbench::{load::scrape::WATCHED, sim::Server};
use serde_json::{Value, json};

use crate::common::real_vllm::{MAX_MODEL_LEN, MODEL, real, turn};

// ---------------------------------------------------------------------------------------------
// The differences that stay (each also in the README, "Differences from vLLM 0.32 that stay").

/// JSON paths whose shape differs in answers and stream events: (path prefix, reason).
const ALLOWED_SHAPES: &[(&str, &str)] = &[(
    "usage.prompt_tokens_details",
    "the simulator always reports prefix-cache hits (vLLM's shape with --enable-prompt-tokens-details), so a benchmark sees them without a server flag",
)];

/// Requests the simulator answers otherwise: (case name, reason).
const ALLOWED_ANSWERS: &[(&str, &str)] = &[
    ("completions n=2", "the simulator generates one choice per request; n > 1 is refused (400)"),
    ("completions batched prompts", "the simulator takes one prompt per request; a list of several is refused (400)"),
];

/// Families only vLLM has (a trailing `*` matches a prefix, a leading `*` a suffix): (pattern, reason).
const ALLOWED_VLLM_ONLY: &[(&str, &str)] = &[
    ("*_created", "prometheus_client's creation-time series of each counter and histogram (Python client only)"),
    ("python_*", "the Python runtime's own metrics"),
    ("process_*", "process metrics of Python's prometheus_client"),
    ("http_*", "prometheus-fastapi-instrumentator's per-route HTTP metrics"),
    (
        "vllm:estimated_flops_per_gpu_total",
        "model-FLOPs accounting needs the model's architecture, which the latency model does not have",
    ),
    ("vllm:estimated_read_bytes_per_gpu_total", "the same (memory-traffic estimate of the model's architecture)"),
    ("vllm:estimated_write_bytes_per_gpu_total", "the same (memory-traffic estimate of the model's architecture)"),
];

/// Families only the simulator has: (name, reason).
const ALLOWED_SIM_ONLY: &[(&str, &str)] = &[
    (
        "vllm:gpu_cache_usage_perc",
        "vLLM V0's name of kv_cache_usage_perc, still read by older dashboards and endpoint pickers",
    ),
    ("vllm:num_requests_swapped", "vLLM V0's swapped-requests gauge (always 0), still read by older dashboards"),
    (
        "vllm:time_per_output_token_seconds",
        "the inter-token histogram's name before vLLM 0.11, still read by older dashboards",
    ),
    ("inferbench_sim:delivery_lag_seconds", "the simulator's own lateness against its timeline"),
    ("inferbench_sim:requests_rejected_total", "the simulator's own --max-waiting-queue-length refusals"),
    ("DCGM_FI_DEV_GPU_UTIL", "the simulated GPUs' DCGM metrics, which a node's DCGM exporter serves beside vLLM"),
    ("DCGM_FI_PROF_SM_ACTIVE", "the simulated GPUs' DCGM metrics"),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "the simulated GPUs' DCGM metrics"),
    ("DCGM_FI_DEV_POWER_USAGE", "the simulated GPUs' DCGM metrics"),
    ("DCGM_FI_DEV_FB_USED", "the simulated GPUs' DCGM metrics"),
    ("DCGM_FI_DEV_FB_FREE", "the simulated GPUs' DCGM metrics"),
];

/// Families whose label names are a subset of vLLM's: (name, reason).
const ALLOWED_LABEL_SUBSETS: &[(&str, &str)] = &[(
    "vllm:cache_config_info",
    "only the cache settings the simulator models (block_size, num_gpu_blocks, enable_prefix_caching, kv_cache_size_tokens, engine), not vLLM's ~35",
)];

// ---------------------------------------------------------------------------------------------
// The two servers.

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    sim: inferbench::sim::args::SimArgs,
}

/// A simulator configured as `scripts/real-vllm serve` configures vLLM.
async fn sim() -> Server {
    let flags = ["sim", "--zero-latency", "--served-model-name", MODEL, "--max-model-len", "2048"];
    let args = Flags::try_parse_from(flags).unwrap().sim;
    Server::bind(args.to_config().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// The real server's URL, found or started off the async runtime.
async fn real_url() -> String {
    tokio::task::spawn_blocking(|| real().url.clone()).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Requests and what a client sees.

/// A request: method, path, body (raw bytes), content type.
#[derive(Clone)]
struct Req {
    name: String,
    method: &'static str,
    path: &'static str,
    body: Vec<u8>,
    content_type: Option<&'static str>,
}

fn post(name: &str, path: &'static str, body: &Value) -> Req {
    Req {
        name: name.into(),
        method: "POST",
        path,
        body: body.to_string().into_bytes(),
        content_type: Some("application/json"),
    }
}

fn raw(name: &str, path: &'static str, body: &[u8], content_type: Option<&'static str>) -> Req {
    Req { name: name.into(), method: "POST", path, body: body.to_vec(), content_type }
}

fn get(name: &str, path: &'static str) -> Req {
    Req { name: name.into(), method: "GET", path, body: vec![], content_type: None }
}

/// What came back: status, media type (before any `;`), body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    media_type: String,
    content_type: String,
    body: String,
}

async fn send(base: &str, r: &Req) -> Answer {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let url = format!("{base}{}", r.path);
    let mut b = match r.method {
        "GET" => client.get(url),
        _ => client.post(url).body(r.body.clone()),
    };
    if let Some(ct) = r.content_type {
        b = b.header("content-type", ct);
    }
    let resp = b.send().await.unwrap_or_else(|e| panic!("{}: {base}: {e}", r.name));
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap().trim().to_owned();
    Answer { status, media_type, content_type, body: resp.text().await.unwrap() }
}

/// The shape of a JSON value: every path (`a.b[].c`) with the type of its value.
fn shape(v: &Value) -> BTreeMap<String, &'static str> {
    fn walk(v: &Value, path: String, out: &mut BTreeMap<String, &'static str>) {
        let ty = match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_f64() => "float",
            Value::Number(_) => "int",
            Value::String(_) => "string",
            Value::Array(a) => {
                for x in a {
                    walk(x, format!("{path}[]"), out);
                }
                "array"
            }
            Value::Object(o) => {
                for (k, x) in o {
                    walk(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
                }
                "object"
            }
        };
        if !path.is_empty() {
            out.insert(path, ty);
        }
    }
    let mut out = BTreeMap::new();
    walk(v, String::new(), &mut out);
    out
}

/// Differences between two shapes: `path: vllm=TYPE sim=TYPE`, with the path.
fn shape_diff(vllm: &BTreeMap<String, &'static str>, sim: &BTreeMap<String, &'static str>) -> Vec<(String, String)> {
    let paths: BTreeSet<&String> = vllm.keys().chain(sim.keys()).collect();
    paths
        .into_iter()
        .filter_map(|p| {
            let (a, b) = (vllm.get(p).copied().unwrap_or("absent"), sim.get(p).copied().unwrap_or("absent"));
            (a != b).then(|| (p.clone(), format!("{p}: vllm={a} sim={b}")))
        })
        .collect()
}

/// Collects differences, and which allow-list entries they used.
#[derive(Default)]
struct Findings {
    unexplained: Vec<String>,
    used: BTreeSet<&'static str>,
}

impl Findings {
    /// A shape difference at `path`: allowed if under an allowed prefix.
    fn shape(&mut self, context: &str, path: &str, text: &str) {
        match ALLOWED_SHAPES.iter().find(|(p, _)| path == *p || path.starts_with(&format!("{p}."))) {
            Some((p, _)) => {
                self.used.insert(p);
            }
            None => self.unexplained.push(format!("{context}: {text}")),
        }
    }

    fn answer(&mut self, name: &str, text: String) {
        match ALLOWED_ANSWERS.iter().find(|(n, _)| *n == name) {
            Some((n, _)) => {
                self.used.insert(n);
            }
            None => self.unexplained.push(format!("{name}: {text}")),
        }
    }

    /// Fails on unexplained differences and on entries of `allowed` nothing used.
    fn check(self, allowed: &[&[(&'static str, &'static str)]]) {
        let stale: Vec<&str> =
            allowed.iter().flat_map(|a| a.iter()).map(|(k, _)| *k).filter(|k| !self.used.contains(k)).collect();
        assert!(
            self.unexplained.is_empty() && stale.is_empty(),
            "the simulator differs from vLLM 0.32 (fix it in src/sim, or allow-list it in tests/it/sim_conformance.rs and the README with the reason):\n  {}\nallow-list entries that no longer match a difference: {stale:?}",
            self.unexplained.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad requests: the whole error body.

fn bad_requests() -> Vec<Req> {
    let c = "/v1/completions";
    let ch = "/v1/chat/completions";
    let hi = json!([{"role": "user", "content": "hi"}]);
    let ids = |n: usize| json!(vec![100; n]);
    let long_text = " the".repeat(3 * MAX_MODEL_LEN);
    vec![
        post("completions unknown model", c, &json!({"model": "nope", "prompt": "Hello", "max_tokens": 3})),
        post("chat unknown model", ch, &json!({"model": "nope", "messages": hi, "max_tokens": 3})),
        raw(
            "completions invalid JSON",
            c,
            br#"{"model":"tiny-llama","prompt":"Hello world","max_tokens":3"#,
            Some("application/json"),
        ),
        raw(
            "chat invalid JSON",
            ch,
            br#"{"model":"tiny-llama","messages":[{"role":"user","content":"hi"}],}"#,
            Some("application/json"),
        ),
        raw("completions JSON with extra data", c, br#"{"prompt":"x"} x"#, Some("application/json")),
        raw("completions empty body", c, b"", Some("application/json")),
        raw("completions body not an object", c, b"[]", Some("application/json")),
        raw("completions body not UTF-8", c, b"{\"prompt\":\"\xff\"}", Some("application/json")),
        raw("completions without a content type", c, br#"{"prompt":"x","max_tokens":2}"#, None),
        raw("completions as text/plain", c, br#"{"prompt":"x","max_tokens":2}"#, Some("text/plain")),
        post("completions without prompt", c, &json!({"model": MODEL, "max_tokens": 3})),
        post("completions empty prompt", c, &json!({"model": MODEL, "prompt": "", "max_tokens": 3})),
        post("completions empty prompt list", c, &json!({"model": MODEL, "prompt": [], "max_tokens": 3})),
        post("chat without messages", ch, &json!({"model": MODEL, "max_tokens": 3})),
        post("chat empty messages", ch, &json!({"model": MODEL, "messages": [], "max_tokens": 3})),
        post("completions max_tokens 0", c, &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 0})),
        post("completions max_tokens -1", c, &json!({"model": MODEL, "prompt": "Hello", "max_tokens": -1})),
        post("chat max_tokens 0", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 0})),
        post(
            "chat max_completion_tokens -5",
            ch,
            &json!({"model": MODEL, "messages": hi, "max_completion_tokens": -5}),
        ),
        post("completions prompt of 2500 token ids", c, &json!({"model": MODEL, "prompt": ids(2500), "max_tokens": 3})),
        post("completions prompt of 2049 token ids", c, &json!({"model": MODEL, "prompt": ids(2049), "max_tokens": 3})),
        post(
            "completions prompt of max-model-len ids",
            c,
            &json!({"model": MODEL, "prompt": ids(MAX_MODEL_LEN), "max_tokens": 3}),
        ),
        post(
            "completions text prompt past the context",
            c,
            &json!({"model": MODEL, "prompt": long_text, "max_tokens": 3}),
        ),
        post(
            "chat prompt past the context",
            ch,
            &json!({"model": MODEL, "messages": [{"role": "user", "content": long_text}], "max_tokens": 3}),
        ),
        post("completions max_tokens a word", c, &json!({"model": MODEL, "prompt": "Hello", "max_tokens": "x"})),
        post("completions max_tokens fractional", c, &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3.5})),
        post("completions prompt a number", c, &json!({"model": MODEL, "prompt": 42, "max_tokens": 3})),
        post("completions negative token id", c, &json!({"model": MODEL, "prompt": [1, -1], "max_tokens": 3})),
        post("completions model a number", c, &json!({"model": 5, "prompt": "Hello", "max_tokens": 3})),
        post("chat messages a string", ch, &json!({"model": MODEL, "messages": "hi", "max_tokens": 3})),
        post("chat stream a list", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "stream": []})),
        post(
            "completions two wrong types",
            c,
            &json!({"model": MODEL, "prompt": "Hello", "max_tokens": "x", "temperature": "hot"}),
        ),
        post(
            "completions temperature -1",
            c,
            &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "temperature": -1}),
        ),
        post(
            "completions temperature 3",
            c,
            &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "temperature": 3}),
        ),
        post(
            "chat temperature -0.5",
            ch,
            &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "temperature": -0.5}),
        ),
        post(
            "completions temperature a word",
            c,
            &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "temperature": "hot"}),
        ),
        post("chat top_p 0", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "top_p": 0})),
        post("chat top_k -2", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "top_k": -2})),
        post("chat min_p 2", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "min_p": 2})),
        post(
            "chat presence_penalty 5",
            ch,
            &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "presence_penalty": 5}),
        ),
        post(
            "chat repetition_penalty 0",
            ch,
            &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "repetition_penalty": 0}),
        ),
        post(
            "completions stream_options without stream",
            c,
            &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "stream_options": {"include_usage": true}}),
        ),
        post(
            "chat stream_options without stream",
            ch,
            &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "stream_options": {"include_usage": false}}),
        ),
        post(
            "chat stream_options not an object",
            ch,
            &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "stream": true, "stream_options": 5}),
        ),
        post("completions n 0", c, &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "n": 0})),
        post("completions n null", c, &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "n": null})),
        post(
            "completions ignore_eos null",
            c,
            &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "ignore_eos": null}),
        ),
        post("chat min_tokens null", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "min_tokens": null})),
        post(
            "completions min_tokens over max_tokens",
            c,
            &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "min_tokens": 5}),
        ),
        post("chat min_tokens -1", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 3, "min_tokens": -1})),
        post(
            "completions prompt missing before a wrong type",
            c,
            &json!({"model": MODEL, "max_tokens": "x", "stream_options": {"include_usage": true}}),
        ),
        post(
            "completions unknown model before a wrong max_tokens",
            c,
            &json!({"model": "nope", "prompt": "Hello", "max_tokens": 0}),
        ),
        // Differences that stay (ALLOWED_ANSWERS).
        post("completions n=2", c, &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3, "n": 2})),
        post("completions batched prompts", c, &json!({"model": MODEL, "prompt": ["Hello", "World"], "max_tokens": 3})),
        // Routes.
        get("unknown route", "/v1/nope"),
        get("GET on a POST route", "/v1/completions"),
        post("POST on a GET route", "/v1/models", &json!({})),
    ]
}

#[tokio::test]
#[allow(
    clippy::await_holding_lock,
    reason = "the turn is held for the whole test on its own single-threaded runtime; the other holders are other tests' threads"
)]
async fn bad_requests_get_vllms_status_and_error_body() {
    let _turn = turn();
    let (real, sim) = (real_url().await, sim().await);
    let mut found = Findings::default();
    for r in bad_requests() {
        let (a, b) = (send(&real, &r).await, send(&sim.url(), &r).await);
        let parse = |x: &Answer| serde_json::from_str::<Value>(&x.body).unwrap_or(Value::String(x.body.clone()));
        let (va, vb) = (parse(&a), parse(&b));
        if a.status != b.status || a.media_type != b.media_type || va != vb {
            found.answer(
                &r.name,
                format!("vllm {} {} {va}\n      sim  {} {} {vb}", a.status, a.media_type, b.status, b.media_type),
            );
        }
    }
    found.check(&[ALLOWED_ANSWERS]);
}

// ---------------------------------------------------------------------------------------------
// Answers that succeed: status, media type, shape, and what both count alike.

#[tokio::test]
#[allow(
    clippy::await_holding_lock,
    reason = "the turn is held for the whole test on its own single-threaded runtime; the other holders are other tests' threads"
)]
async fn answers_have_vllms_fields_and_counts() {
    let _turn = turn();
    let (real, sim) = (real_url().await, sim().await);
    let c = "/v1/completions";
    let ch = "/v1/chat/completions";
    let hi = json!([{"role": "user", "content": "Hello"}]);
    let ids = |n: usize| json!(vec![100; n]);
    // (request, compare prompt_tokens: token-id prompts count alike)
    let cases = [
        (
            post("completions", c, &json!({"model": MODEL, "prompt": ids(12), "max_tokens": 5, "ignore_eos": true})),
            true,
        ),
        (
            post(
                "completions text",
                c,
                &json!({"model": MODEL, "prompt": "Hello world", "max_tokens": 4, "ignore_eos": true}),
            ),
            false,
        ),
        (
            post("completions default max_tokens", c, &json!({"model": MODEL, "prompt": ids(8), "ignore_eos": true})),
            true,
        ),
        (
            post(
                "completions max_tokens null",
                c,
                &json!({"model": MODEL, "prompt": ids(8), "max_tokens": null, "ignore_eos": true}),
            ),
            true,
        ),
        (
            post(
                "completions one-prompt lists",
                c,
                &json!({"model": MODEL, "prompt": [[100, 100, 100]], "max_tokens": 2, "ignore_eos": true}),
            ),
            true,
        ),
        // max_tokens past the context is cut to what is left: 2000 + 48 = 2048, finish "length".
        (
            post(
                "completions max_tokens past the context",
                c,
                &json!({"model": MODEL, "prompt": ids(2000), "max_tokens": 100, "ignore_eos": true}),
            ),
            true,
        ),
        (post("completions without model", c, &json!({"prompt": ids(4), "max_tokens": 2, "ignore_eos": true})), true),
        // What pydantic's lax mode accepts.
        (
            post(
                "completions lax types",
                c,
                &json!({"model": MODEL, "prompt": ids(4), "max_tokens": "3", "ignore_eos": "yes", "temperature": "0.5", "n": 1.0}),
            ),
            true,
        ),
        (
            post(
                "completions empty stream_options",
                c,
                &json!({"model": MODEL, "prompt": ids(4), "max_tokens": 2, "ignore_eos": true, "stream_options": {}}),
            ),
            true,
        ),
        (post("chat", ch, &json!({"model": MODEL, "messages": hi, "max_tokens": 5, "ignore_eos": true})), false),
        (
            post(
                "chat nulls where chat takes them",
                ch,
                &json!({"model": MODEL, "messages": hi, "max_tokens": 2, "ignore_eos": true, "n": null, "temperature": null, "stream": null}),
            ),
            false,
        ),
        (
            post(
                "chat max_completion_tokens",
                ch,
                &json!({"model": MODEL, "messages": hi, "max_tokens": 50, "max_completion_tokens": 3, "ignore_eos": true}),
            ),
            false,
        ),
        (
            post(
                "chat content parts and no content",
                ch,
                &json!({"model": MODEL, "messages": [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, {"role": "user"}], "max_tokens": 2, "ignore_eos": true}),
            ),
            false,
        ),
        (get("models", "/v1/models"), false),
        (get("version", "/version"), false),
        (get("health", "/health"), false),
    ];
    let mut found = Findings::default();
    for (r, same_prompt) in &cases {
        let (a, b) = (send(&real, r).await, send(&sim.url(), r).await);
        let name = &r.name;
        assert_eq!(
            (a.status, a.media_type.as_str()),
            (b.status, b.media_type.as_str()),
            "{name}: vllm {a:?}\nsim {b:?}"
        );
        if a.body.is_empty() || b.body.is_empty() {
            assert_eq!(a.body, b.body, "{name}");
            continue;
        }
        let (va, vb): (Value, Value) = (serde_json::from_str(&a.body).unwrap(), serde_json::from_str(&b.body).unwrap());
        for (path, text) in shape_diff(&shape(&va), &shape(&vb)) {
            found.shape(name, &path, &text);
        }
        for key in ["object", "model"] {
            assert_eq!(va.get(key), vb.get(key), "{name}: {key}");
        }
        if let Some(choices) = va.get("choices") {
            assert_eq!(choices.as_array().unwrap().len(), vb["choices"].as_array().unwrap().len(), "{name}");
            assert_eq!(choices[0]["finish_reason"], vb["choices"][0]["finish_reason"], "{name}");
            assert_eq!(va["usage"]["completion_tokens"], vb["usage"]["completion_tokens"], "{name}: {va}\n{vb}");
            if *same_prompt {
                assert_eq!(va["usage"]["prompt_tokens"], vb["usage"]["prompt_tokens"], "{name}");
            }
        }
    }
    // The cut answer is exactly the context left.
    let cut = send(&sim.url(), &cases[5].0).await;
    let v: Value = serde_json::from_str(&cut.body).unwrap();
    assert_eq!(
        (v["usage"]["completion_tokens"].as_u64(), v["choices"][0]["finish_reason"].as_str()),
        (Some(48), Some("length"))
    );
    found.check(&[ALLOWED_SHAPES]);
}

// ---------------------------------------------------------------------------------------------
// Streams: the sequence of event kinds, one chunk per token, each kind's shape.

/// The kind of an SSE event of an OpenAI stream.
fn event_kind(data: &str) -> (&'static str, Option<Value>) {
    if data == "[DONE]" {
        return ("done", None);
    }
    let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
    let choice = &v["choices"][0];
    let kind = if v["choices"].as_array().is_some_and(Vec::is_empty) {
        "usage"
    } else if choice["delta"].get("role").is_some() {
        "role"
    } else if !choice["finish_reason"].is_null() {
        "finish"
    } else {
        "content"
    };
    (kind, Some(v))
}

/// The `data:` payloads of an SSE body (vLLM and the simulator write `data: ` with a space).
fn events(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "events end with a blank line: {body:?}");
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| f.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {f:?}")).to_owned())
        .collect()
}

/// A stream as kinds (in order) and the shape of each kind (the union over its events).
fn read_stream(body: &str) -> (Vec<&'static str>, BTreeMap<&'static str, BTreeMap<String, &'static str>>) {
    let mut kinds = Vec::new();
    let mut shapes: BTreeMap<&'static str, BTreeMap<String, &'static str>> = BTreeMap::new();
    for e in events(body) {
        let (kind, v) = event_kind(&e);
        kinds.push(kind);
        if let Some(v) = v {
            shapes.entry(kind).or_default().extend(shape(&v));
        }
    }
    (kinds, shapes)
}

#[tokio::test]
#[allow(
    clippy::await_holding_lock,
    reason = "the turn is held for the whole test on its own single-threaded runtime; the other holders are other tests' threads"
)]
async fn streams_send_vllms_events_one_token_per_chunk() {
    let _turn = turn();
    let (real, sim) = (real_url().await, sim().await);
    let tokens = 5;
    let base_c =
        json!({"model": MODEL, "prompt": vec![100; 12], "max_tokens": tokens, "ignore_eos": true, "stream": true});
    let base_ch = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": tokens, "ignore_eos": true, "stream": true});
    let with = |base: &Value, opts: Value| {
        let mut b = base.clone();
        b["stream_options"] = opts;
        b
    };
    let cases = [
        ("completions", "/v1/completions", base_c.clone()),
        ("completions include_usage", "/v1/completions", with(&base_c, json!({"include_usage": true}))),
        ("completions include_usage false", "/v1/completions", with(&base_c, json!({"include_usage": false}))),
        (
            "completions continuous usage",
            "/v1/completions",
            with(&base_c, json!({"include_usage": true, "continuous_usage_stats": true})),
        ),
        ("chat", "/v1/chat/completions", base_ch.clone()),
        ("chat include_usage", "/v1/chat/completions", with(&base_ch, json!({"include_usage": true}))),
        (
            "chat continuous usage",
            "/v1/chat/completions",
            with(&base_ch, json!({"include_usage": true, "continuous_usage_stats": true})),
        ),
    ];
    let mut found = Findings::default();
    for (name, path, body) in cases {
        let r = post(name, path, &body);
        let chat = path.contains("chat");
        let usage = body["stream_options"]["include_usage"] == true;
        let mut expected = Vec::new();
        if chat {
            expected.push("role");
        }
        expected.extend(std::iter::repeat_n("content", tokens - 1));
        expected.push("finish");
        if usage {
            expected.push("usage");
        }
        expected.push("done");
        // vLLM merges tokens into one chunk when its API server falls behind the engine (a busy
        // machine): ask again a few times for the one-chunk-per-token stream it sends otherwise.
        let mut a = send(&real, &r).await;
        for _ in 0..4 {
            if read_stream(&a.body).0 == expected {
                break;
            }
            a = send(&real, &r).await;
        }
        let b = send(&sim.url(), &r).await;
        assert_eq!((a.status, b.status), (200, 200), "{name}: {}\n{}", a.body, b.body);
        assert_eq!(a.content_type, b.content_type, "{name}");
        let ((ka, sa), (kb, sb)) = (read_stream(&a.body), read_stream(&b.body));
        assert_eq!(ka, expected, "{name}: vLLM's events (one chunk per token): {}", a.body);
        assert_eq!(kb, expected, "{name}: the simulator's events (one chunk per token): {}", b.body);
        for (kind, shape_a) in &sa {
            for (p, text) in shape_diff(shape_a, &sb[kind]) {
                found.shape(&format!("{name} {kind} event"), &p, &text);
            }
        }
        // The usage chunk counts what was asked.
        if usage {
            let last = |body: &str| {
                let e = events(body);
                serde_json::from_str::<Value>(&e[e.len() - 2]).unwrap()["usage"]["completion_tokens"].clone()
            };
            assert_eq!((last(&a.body), last(&b.body)), (json!(tokens), json!(tokens)), "{name}");
        }
    }
    found.check(&[ALLOWED_SHAPES]);
}

// ---------------------------------------------------------------------------------------------
// /metrics.

/// A family of the text exposition.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    labels: BTreeSet<BTreeSet<String>>,
    bounds: BTreeSet<String>,
}

fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.into()).or_default().kind = kind.into();
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().help = help.into();
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, labels) = match line.find('{') {
                Some(i) => (&line[..i], &line[i + 1..line.rfind('}').unwrap()]),
                None => (line.split(' ').next().unwrap(), ""),
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| series.strip_suffix(s).filter(|f| out.get(*f).is_some_and(|f| f.kind == "histogram")))
                .unwrap_or(series)
                .to_owned();
            let mut names = BTreeSet::new();
            let mut rest = labels;
            while let Some(eq) = rest.find("=\"") {
                let name = rest[..eq].trim_start_matches(',').trim().to_owned();
                let value_start = eq + 2;
                let mut end = value_start;
                let bytes = rest.as_bytes();
                while end < bytes.len() && !(bytes[end] == b'"' && bytes[end - 1] != b'\\') {
                    end += 1;
                }
                if name == "le" {
                    out.entry(family.clone()).or_default().bounds.insert(rest[value_start..end].to_owned());
                } else {
                    names.insert(name);
                }
                rest = &rest[(end + 1).min(rest.len())..];
            }
            out.entry(family).or_default().labels.insert(names);
        }
    }
    out
}

/// Records a difference of family `name`: allowed if `list` has a pattern matching it.
fn allow(list: &[(&'static str, &'static str)], name: &str, text: String, found: &mut Findings) {
    match list.iter().find(|(p, _)| matches(p, name)) {
        Some((p, _)) => {
            found.used.insert(p);
        }
        None => found.unexplained.push(text),
    }
}

fn matches(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        name.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        name.ends_with(suffix)
    } else {
        pattern == name
    }
}

#[tokio::test]
#[allow(
    clippy::await_holding_lock,
    reason = "the turn is held for the whole test on its own single-threaded runtime; the other holders are other tests' threads"
)]
async fn metrics_have_vllms_families_types_labels_and_buckets() {
    let _turn = turn();
    let (real, sim) = (real_url().await, sim().await);
    // A request on each, so every series a request creates exists.
    let r = post(
        "warm",
        "/v1/completions",
        &json!({"model": MODEL, "prompt": vec![100; 8], "max_tokens": 2, "ignore_eos": true}),
    );
    send(&real, &r).await;
    send(&sim.url(), &r).await;
    let m = get("metrics", "/metrics");
    let (a, b) = (send(&real, &m).await, send(&sim.url(), &m).await);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.media_type, b.media_type);
    let (fa, fb) = (families(&a.body), families(&b.body));
    assert!(fa.len() > 40 && fb.len() > 30, "{} and {} families", fa.len(), fb.len());
    let mut found = Findings::default();
    for (name, f) in &fa {
        if !fb.contains_key(name) {
            allow(ALLOWED_VLLM_ONLY, name, format!("{name} ({}): only vLLM has it", f.kind), &mut found);
        }
    }
    for (name, s) in &fb {
        let Some(v) = fa.get(name) else {
            allow(ALLOWED_SIM_ONLY, name, format!("{name} ({}): only the simulator has it", s.kind), &mut found);
            continue;
        };
        if (&v.kind, &v.help) != (&s.kind, &s.help) {
            found.unexplained.push(format!("{name}: vllm {} {:?}, sim {} {:?}", v.kind, v.help, s.kind, s.help));
        }
        if v.bounds != s.bounds {
            found.unexplained.push(format!("{name}: buckets vllm {:?}, sim {:?}", v.bounds, s.bounds));
        }
        if v.labels != s.labels {
            let subset = s.labels.iter().all(|l| v.labels.iter().any(|vl| l.is_subset(vl)));
            let text = format!("{name}: label names vllm {:?}, sim {:?}", v.labels, s.labels);
            if subset {
                allow(ALLOWED_LABEL_SUBSETS, name, text, &mut found);
            } else {
                found.unexplained.push(text);
            }
        }
    }
    // What the load engine watches and vLLM serves is in the simulator, allow-list or not.
    for (name, _) in WATCHED {
        if fa.contains_key(*name) {
            assert!(
                fb.contains_key(*name),
                "{name}: the load engine watches it and vLLM has it; the simulator must too"
            );
        }
    }
    found.check(&[ALLOWED_VLLM_ONLY, ALLOWED_SIM_ONLY, ALLOWED_LABEL_SUBSETS]);
}
