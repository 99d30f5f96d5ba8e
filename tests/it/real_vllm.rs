//! inferbench against a server it did not write: a real vLLM (its CPU build, serving a tiny
//! random-weight Llama built offline by `scripts/real-vllm`). The load engine for completions and
//! chat, streamed and not, with the model's own tokenizer; a request vLLM refuses; `/metrics`
//! summarised per stage; the client's figures against the server's own clock and counters; and
//! `inferbench run --servers real` on the local platform, then `inferbench report` on it.
//!
//! The server: see `common/real_vllm.rs` (scripts/test starts one while the tests build; a machine
//! where vLLM cannot be installed or started fails these tests with the script's reason; they are
//! never skipped).
//!
//! The tests share the one server and compare its global counters with one load's requests, so
//! they take turns ([`turn`]).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_inferbench");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

use crate::common::real_vllm::{MODEL, real, turn};

/// Runs `inferbench load --spec` with `body` after the target, model and tokenizer lines; results
/// in `dir/NAME`.
fn load(dir: &Path, name: &str, body: &str) -> (Output, PathBuf) {
    let r = real();
    let spec = dir.join(format!("{name}.pbtxt"));
    std::fs::write(
        &spec,
        format!("url: \"{}\"\nmodels: \"{MODEL}\"\ntokenizer: \"{}\"\n{body}", r.url, r.model_dir.display()),
    )
    .unwrap();
    let out = dir.join(name);
    let o = Command::new(BIN)
        .args(["load", "--spec", spec.to_str().unwrap(), "--output-dir", out.to_str().unwrap()])
        .env_remove("INFERBENCH_URL")
        .output()
        .unwrap();
    (o, out)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn summary(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn completions_and_chat_streamed_and_not_count_tokens_as_vllm_does() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    // Fixed lengths: exactly 64 prompt tokens asking for exactly 16; then sampled ones.
    let fixed = "dataset { synthetic { input { mean: 64 min: 64 max: 64 } output { mean: 16 min: 16 max: 16 } } }";
    let sampled = "dataset { synthetic { input { mean: 100 stddev: 40 min: 20 max: 300 } output { mean: 12 stddev: 6 min: 4 max: 40 } } }";
    for (api, stream, dataset) in [
        ("OPENAI_COMPLETIONS", true, fixed),
        ("OPENAI_COMPLETIONS", false, fixed),
        ("OPENAI_CHAT_COMPLETIONS", true, fixed),
        ("OPENAI_CHAT_COMPLETIONS", false, fixed),
        ("OPENAI_COMPLETIONS", true, sampled),
        ("OPENAI_CHAT_COMPLETIONS", true, sampled),
    ] {
        let name = format!("{api}-{stream}-{}", if dataset == fixed { "fixed" } else { "sampled" }).to_lowercase();
        let (o, out) = load(
            dir.path(),
            &name,
            &format!(
                "api: {api}\nstreaming: {stream}\nignore_eos: true\nnum_prompts: 12\nconcurrency {{ users: 4 }}\n{dataset}\n"
            ),
        );
        assert!(o.status.success(), "{name}: {}", text(&o));
        let s = &summary(&out)["stages"][0];
        let c = &s["counts"];
        assert_eq!((u(&c["sent"]), u(&c["succeeded"])), (12, 12), "{name}: {c}");
        // Every count from the server's usage, and both exact checks clean.
        assert_eq!(u(&c["token_count_source"]["usage"]), 12, "{name}: {c}");
        assert_eq!(u(&c["prompt_token_mismatches"]), 0, "{name}: vLLM counted the prompt otherwise: {c}");
        assert_eq!(u(&c["output_length_mismatches"]), 0, "{name}: vLLM did not honour the length: {c}");
        let recs = crate::common::results::records(&out);
        for r in &recs {
            let (server, dataset) = (u(&r["input_tokens"]), u(&r["dataset_input_tokens"]));
            if api == "OPENAI_COMPLETIONS" {
                // The tiny model's tokenizer adds no BOS: the server's count is the dataset's.
                assert_eq!(server, dataset, "{name}: {r}");
            } else {
                // The chat template's role markers: a fixed overhead for one user message.
                assert!(server > dataset, "{name}: {r}");
                assert_eq!(server - dataset, u(&recs[0]["input_tokens"]) - u(&recs[0]["dataset_input_tokens"]));
            }
            if dataset == 64 || name.ends_with("fixed") {
                assert_eq!((dataset, u(&r["output_tokens"])), (64, 16), "{name}: exactly the asked lengths: {r}");
            }
        }
        if name.ends_with("sampled") {
            let lens: std::collections::BTreeSet<u64> = recs.iter().map(|r| u(&r["dataset_input_tokens"])).collect();
            assert!(lens.len() > 3, "{name}: sampled lengths vary: {lens:?}");
        }
        // A streamed answer has a first token; a whole body has none (absent, never e2e or 0).
        assert_eq!(s.get("ttft_ms").is_some(), stream, "{name}: {s}");
        assert_eq!(s.get("tpot_ms").is_some(), stream, "{name}: {s}");
        assert!(s["e2e_ms"]["count"].as_u64() == Some(12), "{name}: {s}");
        let line = String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with("users-4")).unwrap().to_owned();
        if !stream {
            assert!(line.contains("TTFT p50        - p99        - ms"), "{name}: {line}");
        }
    }
}

#[test]
fn a_prompt_beyond_max_model_len_is_the_400_vllm_answers() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    // 2 500 tokens against --max-model-len 2048.
    let (o, out) = load(
        dir.path(),
        "too-long",
        "api: OPENAI_COMPLETIONS\nnum_prompts: 3\nconcurrency { users: 1 }\ndataset { max_input_length: 4000 synthetic { input { mean: 2500 } output { mean: 8 } } }\n",
    );
    assert_eq!(o.status.code(), Some(1), "every request failed: {}", text(&o));
    let s = &summary(&out)["stages"][0];
    assert_eq!(u(&s["counts"]["errors"]["http_4xx"]), 3, "{s}");
    assert_eq!(u(&s["counts"]["failed"]), 3, "{s}");
    for absent in ["e2e_ms", "ttft_ms", "tpot_ms", "output_tokens"] {
        assert!(s.get(absent).is_none(), "{absent} was not measured: {s}");
    }
    assert!(crate::common::results::records(&out).iter().all(|r| r["status"] == 400), "vLLM answers 400");
    let line = String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with("users-1")).unwrap().to_owned();
    assert!(line.contains("TTFT p50        - p99        - ms  TPOT p50       - ms"), "{line}");
}

/// Mean of a record field over successful requests, in ms (µs fields).
fn mean_ms(recs: &[Value], field: &str) -> f64 {
    let ok: Vec<&Value> = recs.iter().filter(|r| r.get("error").is_none()).collect();
    ok.iter().map(|r| r[field].as_f64().unwrap()).sum::<f64>() / ok.len() as f64 / 1000.0
}

#[test]
fn the_clients_figures_agree_with_vllms_own_clock_and_counters() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = load(
        dir.path(),
        "rates",
        "api: OPENAI_COMPLETIONS\nstreaming: true\nignore_eos: true\nnum_prompts: 30\nrates { request_rates: [2, 4] }\narrival: CONSTANT\nserver_metrics { interval_seconds: 5 }\ndataset { synthetic { input { mean: 128 } output { mean: 32 } } }\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let sum = summary(&out);
    let recs = crate::common::results::records(&out);
    let mut report = String::new();
    for s in sum["stages"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let stage: Vec<Value> = recs.iter().filter(|r| r["stage"] == name).cloned().collect();
        assert_eq!(stage.len(), 30, "{name}");
        let m = &s["server_metrics"];
        let total = |k: &str| m[k]["total"].as_f64().unwrap_or_else(|| panic!("{name}: no {k} total in {m}"));
        let mean = |k: &str| m[k]["mean"].as_f64().unwrap() * 1000.0;
        // Counters: exactly the tokens and requests of this stage.
        let out_tokens: u64 = stage.iter().map(|r| u(&r["output_tokens"])).sum();
        let in_tokens: u64 = stage.iter().map(|r| u(&r["input_tokens"])).sum();
        assert_eq!(total("vllm:generation_tokens_total"), out_tokens as f64, "{name}");
        assert_eq!(total("vllm:prompt_tokens_total"), in_tokens as f64, "{name}");
        assert_eq!(total("vllm:request_success_total"), 30.0, "{name}");
        assert_eq!(total("vllm:e2e_request_latency_seconds"), 30.0, "{name}: the histogram timed each request");
        // The server's clock: its TTFT and e2e start when its API server has the request and end
        // when its engine has the token; the client's start before the request is written and end
        // when the bytes are read. So the client's means are at least the server's, and exceed
        // them by the cost of loopback, HTTP and SSE framing, and vLLM's own detokenising and
        // serialising after its clock stops (measured here: see the bound below).
        let (c_ttft, s_ttft) = (mean_ms(&stage, "first_token_us"), mean("vllm:time_to_first_token_seconds"));
        let (c_e2e, s_e2e) = (mean_ms(&stage, "end_us"), mean("vllm:e2e_request_latency_seconds"));
        report.push_str(&format!(
            "{name}: TTFT client {c_ttft:.2} ms server {s_ttft:.2} ms; e2e client {c_e2e:.2} ms server {s_e2e:.2} ms\n"
        ));
        // The run says the same itself, on every stage (summary.json's server_agreement).
        let a = &s["server_agreement"];
        assert_eq!(a["agrees"], true, "{name}: {a}\n{report}");
        assert_eq!(a["figures"].as_array().map(Vec::len), Some(5), "{name}: every figure compared: {a}");
        for (what, c, s) in [("TTFT", c_ttft, s_ttft), ("e2e", c_e2e, s_e2e)] {
            assert!(c >= s, "{name}: the client's mean {what} {c:.2} ms is below the server's {s:.2} ms\n{report}");
            assert!(
                c - s <= GAP_BOUND_MS,
                "{name}: the client's mean {what} {c:.2} ms exceeds the server's {s:.2} ms by more than {GAP_BOUND_MS} ms\n{report}"
            );
        }
    }
    eprintln!("{report}");
}

/// The most the client's mean TTFT or e2e may exceed vLLM's own. vLLM's clock starts when its API
/// server hands the request to the engine (after parsing and tokenizing it) and stops when the API
/// server takes the token from the engine (before detokenizing, framing and writing it); the rest,
/// and loopback and the client's parsing, is the gap. Measured on this 2-core machine while quiet
/// (release client, 60 requests): TTFT 2.5-2.8 ms, e2e 3.5-8.3 ms at 2 and 4 req/s; this debug
/// client 3-16 ms and 3-7 ms. The bound leaves room for the host's pauses (`inferbench dev
/// pauses`: up to ~28 ms here). What it does not allow for: scraping vLLM's /metrics while it
/// streams. vLLM renders them on the API server's thread, stalling every stream meanwhile (scrapes
/// of up to 0.33 s at 16 req/s took the client's mean TTFT from 13-16 ms to 130-500 ms against its
/// histograms' 10-16; vLLM's own `vllm bench serve` sees it too): this test scrapes at its default
/// interval, 5 s, and `inferbench load` warns of a slow scrape.
const GAP_BOUND_MS: f64 = 30.0;

#[test]
fn run_servers_real_runs_vllm_on_the_local_platform_and_report_shows_it() {
    let _turn = turn();
    let r = real();
    let dir = tempfile::tempdir().unwrap();
    let model = r.model_dir.display();
    let catalog = format!(
        r#"benchmarks {{
  name: "real-local"
  config {{
    model_server {{
      accelerator: "cpu"
      vllm {{ model: "{model}" }}
      env {{ name: "VLLM_CPU_KVCACHE_SPACE" value: "1" }}
      env {{ name: "HF_HUB_OFFLINE" value: "1" }}
      extra_args: ["--max-model-len", "2048", "--dtype", "bfloat16", "--enforce-eager"]
    }}
    load_balancer {{ k8s_service {{}} }}
    benchmark_tool {{ load {{
      api: OPENAI_COMPLETIONS
      models: "{model}"
      tokenizer: "{model}"
      ignore_eos: true
      num_prompts: 16
      rates {{ request_rates: [8] }}
      dataset {{ synthetic {{ input {{ mean: 64 }} output {{ mean: 16 }} }} }}
    }} }}
  }}
}}
"#
    );
    std::fs::write(dir.path().join("real.pbtxt"), catalog).unwrap();
    let output = dir.path().join("output");
    let o = Command::new(BIN)
        .args(["run", dir.path().join("real.pbtxt").to_str().unwrap(), "--servers", "real"])
        .args(["--output", output.to_str().unwrap(), "--ready-timeout", "600"])
        .env("INFERBENCH_VLLM", &r.vllm)
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = std::fs::read_dir(&output).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    let id = run_dir.file_name().unwrap().to_str().unwrap().to_owned();
    let bench = run_dir.join(format!("real-local-{id}"));
    let results = bench.join("results");
    let runtime: Value = serde_json::from_slice(&std::fs::read(results.join("runtime.json")).unwrap()).unwrap();
    assert_eq!(runtime["model_server"], "vllm, real: its own server as a local process", "{runtime}");
    assert_eq!(runtime["server_command"][1], "serve", "{runtime}");
    let log = std::fs::read_to_string(bench.join("diagnostics/model-server.log")).unwrap();
    assert!(log.contains("vLLM") || log.contains("vllm"), "the server's own log: {log}");
    let s = &summary(&results)["stages"][0];
    assert_eq!(u(&s["counts"]["succeeded"]), 16, "{s}");
    assert_eq!(u(&s["counts"]["prompt_token_mismatches"]), 0, "{s}");
    assert_eq!(s["server_metrics"]["vllm:generation_tokens_total"]["total"].as_f64(), Some(16.0 * 16.0), "{s}");
    let metrics: Value = serde_json::from_slice(&std::fs::read(results.join("server_metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["failed_scrapes"], 0, "{metrics}");
    assert!(
        metrics["samples"].as_array().unwrap().iter().any(|x| x["values"].get("vllm:kv_cache_usage_perc").is_some())
    );
    // The server is gone after tear-down.
    let port = runtime["url"].as_str().unwrap().rsplit(':').next().unwrap().to_owned();
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(), "torn down");

    let rep = Command::new(BIN).args(["report", run_dir.to_str().unwrap()]).output().unwrap();
    assert!(rep.status.success(), "{}", text(&rep));
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(html.contains("real-local"), "the report names the benchmark");
    // The server's own figures beside the client's, per stage: 16 requests, 256 output tokens.
    let view = &html[html.find("<table class=\"server-view\">").expect("the server's view in the report")..];
    let row = &view[view.find("<tr><td>rate-8</td>").expect("a row for the stage")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.ends_with("<td class=\"n\">16</td><td class=\"n\">256</td><td>yes</td>"), "and they agree: {row}");
}
