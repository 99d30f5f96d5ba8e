//! `inferbench load` as a user runs it, against the simulator: an LPG-style command line, a
//! LoadSpec file, result files, and input errors.

use std::{
    io::Read as _,
    process::{Command, Output},
};

use clap::Parser;
use inferbench::{cli::sim_cmd::SimArgs, sim::Server};

const BIN: &str = env!("CARGO_BIN_EXE_inferbench");

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    sim: SimArgs,
}

/// Runs `inferbench load --spec` of `body` (after the target and model lines) with results in
/// `dir/r`.
async fn run_spec(dir: &std::path::Path, url: &str, body: &str) -> (Output, std::path::PathBuf) {
    let spec = dir.join("load.pbtxt");
    std::fs::write(&spec, format!("url: \"{url}\"\nmodels: \"meta-llama/Llama-3.1-8B-Instruct\"\n{body}")).unwrap();
    let out = dir.join("r");
    let o =
        load(vec!["--spec".into(), spec.to_str().unwrap().into(), "--output-dir".into(), out.to_str().unwrap().into()])
            .await;
    (o, out)
}

/// The per-request records of a `requests.jsonl.zst`.
fn read_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    let mut jsonl = String::new();
    zstd::Decoder::new(std::fs::File::open(path).unwrap()).unwrap().read_to_string(&mut jsonl).unwrap();
    jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn sim() -> Server {
    let args = Flags::try_parse_from(["sim", "--zero-latency"]).unwrap().sim;
    Server::bind(args.to_config().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

async fn load(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN).arg("load").args(args).env_remove("INFERBENCH_URL").output().unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lpg_command_line_runs_and_writes_results() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("prompts.jsonl");
    let lines: String = (0..10)
        .map(|i| format!("{{\"prompt\": \"Question number {i}, tell me a story about it.\", \"output_len\": 12}}\n"))
        .collect();
    std::fs::write(&data, lines).unwrap();
    let out_dir = dir.path().join("results");
    let args = [
        "--backend",
        "vllm",
        "--host",
        "127.0.0.1",
        "--port",
        &s.addr.port().to_string(),
        "--models",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--request-rate",
        "50,100",
        "--num-prompts",
        "20",
        "--dataset",
        data.to_str().unwrap(),
        "--max-output-length",
        "64",
        "--stream-request",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ];
    let o = load(args.iter().map(|s| s.to_string()).collect()).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rate-50"), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let stages = summary["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    for st in stages {
        assert_eq!(st["counts"]["sent"], 20, "{st}");
        assert_eq!(st["counts"]["succeeded"], 20, "{st}");
        assert_eq!(st["counts"]["token_count_source"]["usage"], 20);
        assert_eq!(st["output_tokens"]["mean"], 12.0);
        assert!(st["ttft_ms"]["p50"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(summary["run"]["api"], "OPENAI_COMPLETIONS");
    let records = read_records(&out_dir.join("requests.jsonl.zst"));
    assert_eq!(records.len(), 40);
    assert!(records.iter().all(|r| r["output_tokens"] == 12 && r["status"] == 200 && r["first_token_us"].is_u64()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_spec_file_runs_closed_loop_users_on_the_chat_api() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_spec(dir.path(), &s.url(), "api: OPENAI_CHAT_COMPLETIONS\nconcurrency { users: [2] }\nnum_prompts: 10\ndataset { synthetic { input { mean: 32 } output { mean: 8 } } }\nslo { ttft_ms: 10000 }\n").await;
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let st = &summary["stages"][0];
    assert_eq!(st["name"], "users-2");
    assert_eq!(st["counts"]["succeeded"], 10);
    assert_eq!(st["goodput"]["good_requests"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_are_scraped_over_time_and_summarised_per_stage() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_spec(dir.path(), &s.url(), "rates { request_rates: [40, 80] }\nnum_prompts: 20\nignore_eos: true\ndataset { synthetic { input { mean: 32 } output { mean: 8 min: 8 max: 8 } } }\nserver_metrics { interval_seconds: 0.1 }\n").await;
    assert!(o.status.success(), "{}", text(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("server_metrics.json")).unwrap()).unwrap();
    assert_eq!(m["url"], format!("{}/metrics", s.url()));
    assert_eq!(m["failed_scrapes"], 0, "{m}");
    let samples = m["samples"].as_array().unwrap();
    assert!(samples.len() >= 4, "a scrape at each stage's start and end at least: {}", samples.len());
    let times: Vec<f64> = samples.iter().map(|x| x["t"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order: {times:?}");
    // The scrape at the end of the last stage comes after every answer: 2 stages × 20 × 8 tokens.
    assert_eq!(samples.last().unwrap()["values"]["vllm:generation_tokens_total"], 320.0);
    assert_eq!(m["kinds"]["vllm:num_requests_waiting"], "gauge");
    // Each stage's window on the samples' clock, in order, each with samples inside.
    let windows: Vec<(&str, f64, f64)> = m["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["from"].as_f64().unwrap(), w["to"].as_f64().unwrap()))
        .collect();
    assert_eq!(windows.iter().map(|w| w.0).collect::<Vec<_>>(), ["rate-40", "rate-80"]);
    assert!(windows.iter().all(|w| w.1 < w.2) && windows[0].2 <= windows[1].1, "{windows:?}");
    for w in &windows {
        assert!(times.iter().filter(|t| (w.1..=w.2).contains(*t)).count() >= 2, "{w:?} in {times:?}");
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for st in summary["stages"].as_array().unwrap() {
        let gen_tokens = &st["server_metrics"]["vllm:generation_tokens_total"];
        assert_eq!(gen_tokens["kind"], "counter", "{st}");
        assert!(gen_tokens["mean"].as_f64().unwrap() > 0.0, "tokens/s over the stage: {gen_tokens}");
        assert_eq!(st["server_metrics"]["vllm:num_requests_running"]["kind"], "gauge");
        // The client's figures agree with the simulator's own clock and counters: totals equal.
        let a = &st["server_agreement"];
        assert_eq!(a["agrees"], true, "{a}");
        let figures: Vec<&str> = a["figures"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(figures, ["ttft_mean_ms", "e2e_mean_ms", "requests", "input_tokens", "output_tokens"], "{a}");
        assert_eq!(a["figures"][4]["server"], 160.0, "20 requests × 8 tokens: {a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_result_files_are_written_where_their_tools_put_them_and_agree_with_the_summary() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let spec = dir.path().join("load.pbtxt");
    std::fs::write(&spec, "outputs { vllm_bench_json: true inference_perf_json: true }\n").unwrap();
    let out = dir.path().join("out");
    let args: Vec<String> = [
        "load",
        "--spec",
        spec.to_str().unwrap(),
        "--backend",
        "vllm",
        "--host",
        "127.0.0.1",
        "--port",
        &s.addr.port().to_string(),
        "--models",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--request-rate",
        "40",
        "--num-prompts",
        "20",
        "--stream-request",
        "--save-json-results",
        "--file-prefix",
        "mine",
        "--additional-metadata-metrics-to-save",
        r#"{"team": "serving", "gpus": 8}"#,
        "--output-dir",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let o = tokio::task::spawn_blocking(move || {
        Command::new(BIN).args(args).current_dir(&cwd).env_remove("INFERBENCH_URL").output().unwrap()
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let json =
        |p: &std::path::Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let summary = json(&out.join("summary.json"));
    let st = &summary["stages"][0];
    let names = |d: std::path::PathBuf| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    // LPG: in the working folder (LPG's place) and under results/lpg/, its name pattern.
    let lpg = names(dir.path().join("cwd"));
    assert_eq!(lpg, names(out.join("lpg")));
    assert_eq!(lpg.len(), 2, "{lpg:?}");
    assert!(
        lpg[0].starts_with("mine-vllm-40.0qps-") && lpg[0].ends_with("-meta-llama-Llama-3.1-8B-Instruct.json"),
        "{lpg:?}"
    );
    assert!(lpg[1].starts_with("mine-vllm-40.0qps-") && lpg[1].ends_with("-weighted.json"), "{lpg:?}");
    let l = json(&dir.path().join("cwd").join(&lpg[1]));
    assert_eq!(l["metrics"]["num_prompts_succeeded"], 20);
    assert_eq!(l["metrics"]["request_rate"], 40.0);
    assert_eq!(l["metrics"]["avg_latency"], st["e2e_ms"]["mean"], "LPG's latency is ms");
    let close = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() <= b.abs() * 1e-12;
    assert!(close(&l["metrics"]["avg_TTFT"], st["ttft_ms"]["mean"].as_f64().unwrap() / 1000.0), "TTFT in s");
    assert_eq!(l["metrics"]["avg_TTFT_ms"], st["ttft_ms"]["mean"], "and the later _ms key");
    assert_eq!(l["metrics"]["p99_per_output_token_latency"], st["ntpot_ms"]["p99"]);
    assert!(close(&l["metrics"]["total_output_token"], 20.0 * st["output_tokens"]["mean"].as_f64().unwrap()));
    assert_eq!(l["dimensions"]["team"], "serving");
    assert_eq!(l["dimensions"]["gpus"], "8");
    assert_eq!(l["summary_stats"]["stats"][0]["request_latency"]["p90"], st["e2e_ms"]["p90"]);
    // vllm bench serve: flat keys in ms; its ITL is per chunk.
    let v = names(out.join("vllm-bench"));
    assert!(v.len() == 1 && v[0].starts_with("vllm-40.0qps-Llama-3.1-8B-Instruct-"), "{v:?}");
    let v = json(&out.join("vllm-bench").join(&v[0]));
    assert_eq!(v["completed"], 20);
    assert_eq!(v["request_rate"], 40.0);
    assert_eq!(v["p99_ttft_ms"], st["ttft_ms"]["p99"]);
    assert_eq!(v["mean_itl_ms"], st["itl_chunk_ms"]["mean"]);
    assert_eq!(v["team"], "serving", "metadata at the top level, as --metadata");
    // inference-perf: seconds, its percentile keys.
    let ip = json(&out.join("inference-perf/stage_0_lifecycle_metrics.json"));
    assert_eq!(ip["successes"]["count"], 20);
    assert_eq!(ip["load_summary"]["requested_rate"], 40.0);
    let p75 = &ip["successes"]["latency"]["time_to_first_token"]["p75"];
    assert!(close(p75, st["ttft_ms"]["p75"].as_f64().unwrap() / 1000.0));
    for k in ["mean", "min", "max", "p0.1", "p1", "p5", "p10", "p25", "median", "p75", "p90", "p95", "p99", "p99.9"] {
        assert!(ip["successes"]["latency"]["request_latency"][k].is_number(), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_measures_saturation_then_runs_rates_up_to_just_past_it() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_spec(dir.path(), &s.url(), "sweep { num_rates: 3 probe_concurrency: 4 probe_seconds: 1 }\nduration_seconds: 0.5\ndataset { synthetic { input { mean: 16 } output { mean: 4 } } }\n").await;
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let stages = summary["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4, "the probe, then 3 rates");
    assert_eq!(stages[0]["name"], "sweep-probe");
    assert_eq!(stages[0]["offered"]["users"], 4);
    let saturation = stages[0]["throughput"]["requests_per_second"].as_f64().unwrap();
    assert!(saturation > 0.0);
    for (i, st) in stages[1..].iter().enumerate() {
        let want = (saturation * 1.1 * (i + 1) as f64 / 3.0 * 100.0).round() / 100.0;
        assert_eq!(st["offered"]["requested_rate"].as_f64().unwrap(), want, "{st}");
        assert_eq!(st["name"], format!("rate-{want}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_turn_chats_run_against_the_simulator_turn_by_turn() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_spec(dir.path(), &s.url(), "api: OPENAI_CHAT_COMPLETIONS\nconcurrency { users: [2] }\nnum_prompts: 6\ndataset { multi_turn { turns: 3 input { mean: 16 } output { mean: 8 } } }\n").await;
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let c = &summary["stages"][0]["counts"];
    assert_eq!((c["sent"].as_u64(), c["succeeded"].as_u64()), (Some(18), Some(18)), "6 conversations of 3 turns: {c}");
    // Later turns carry the history: their prompts are longer than a first turn's 16 tokens.
    let records = read_records(&out.join("requests.jsonl.zst"));
    assert!(records.iter().filter(|r| r["input_tokens"].as_u64().unwrap() > 16 + 8).count() >= 12, "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error() {
    let o = load(vec!["--request-rate".into(), "1".into()]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no target: give --url"), "{}", text(&o));
    let o =
        load(["--url", "http://127.0.0.1:9", "--backend", "nope", "--request-rate", "1"].map(String::from).to_vec())
            .await;
    assert!(text(&o).contains("unknown API/backend \"nope\""), "{}", text(&o));
    let o = load(
        ["--url", "http://127.0.0.1:9", "--request-rate", "1", "--additional-metadata-metrics-to-save", "[1]"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert!(text(&o).contains("--additional-metadata-metrics-to-save: expected a JSON object"), "{}", text(&o));
    let o = load(
        [
            "--url",
            "http://127.0.0.1:9",
            "--request-rate",
            "1",
            "--models",
            "m",
            "--tokenizer",
            "meta-llama/Llama-3.1-8B",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(text(&o).contains("downloads nothing at run time"), "{}", text(&o));
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.pbtxt");
    std::fs::write(&spec, "url: \"http://x\"\nrates { request_rates: [1] }\nbogus: 3\n").unwrap();
    let o = load(vec!["--spec".into(), spec.to_str().unwrap().into()]).await;
    assert!(text(&o).contains("bad.pbtxt:3:1"), "{}", text(&o));
    // Nothing listening: the run completes, every request is a connect error, exit 1.
    let o = load(
        ["--url", "http://127.0.0.1:9", "--request-rate", "20", "--num-prompts", "3", "--models", "m"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("connect 3") && text(&o).contains("every request failed"), "{}", text(&o));
    assert!(text(&o).contains("first connect error: /v1/completions: connect to 127.0.0.1:9: "), "{}", text(&o));
    // A server that does not speak HTTP: the failure says so, in the summary and on the screen.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        }
    });
    let out = dir.path().join("not-http");
    let url = format!("http://{addr}");
    let args = ["--url", &url, "--request-rate", "20", "--num-prompts", "2", "--models", "m", "--output-dir"];
    let o = load([&args[..], &[out.to_str().unwrap()]].concat().into_iter().map(String::from).collect()).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let said = format!("{addr}: the answer's head is not HTTP/1: invalid HTTP version");
    assert!(text(&o).contains(&said), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let first = summary["stages"][0]["counts"]["first_errors"]["connect"].as_str().unwrap_or_default();
    assert!(first.ends_with(&said), "{summary}");
}

/// Starts `inferbench load` with `args` (and the output folder), stdout piped.
fn spawn_load(
    url: &str,
    out_dir: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, std::io::BufReader<std::process::ChildStdout>) {
    let mut child = std::process::Command::new(BIN)
        .args(["load", "--url", url, "--models", "meta-llama/Llama-3.1-8B-Instruct"])
        .args(args)
        .args(["--output-dir", out_dir.to_str().unwrap()])
        .env_remove("INFERBENCH_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// Blocks until the load engine prints its first stage line: that stage's results are on disk.
async fn first_stage_done(mut stdout: std::io::BufReader<std::process::ChildStdout>) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_what_was_measured() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("r");
    // A quick first stage (20 prompts at 1 000/s), then a slow one (1/s) interrupted.
    let (child, stdout) = spawn_load(&s.url(), &out_dir, &["--request-rate", "1000,1", "--num-prompts", "20"]);
    assert!(first_stage_done(stdout).await.starts_with("rate-1000"));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(130), "interrupted, as `run` exits: {status:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["stages"][0]["counts"]["succeeded"], 20, "{summary}");
}

/// A server that answers `GET /health` and never answers a POST; each POST's arrival is sent on
/// the channel. Runs until the test process ends.
fn server_that_never_answers() -> (String, std::sync::mpsc::Receiver<()>) {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let post = line.starts_with("POST");
                    // The rest of the head.
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    if post {
                        let _ = tx.send(());
                        // Holds the connection open, never answering.
                        let _ = reader.read_line(&mut String::new());
                        std::thread::park();
                        return;
                    }
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, rx)
}

/// Ctrl-C before any answer: the requests in flight are cancelled after the announced grace, the
/// stage's window runs to the stop, and every figure written is one a reader can trust (no
/// 2.2e-308 s window, no infinite rate, no latency of nothing) — or absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_before_any_answer_writes_only_trustworthy_figures() {
    let (url, posts) = server_that_never_answers();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("r");
    let mut child = Command::new(BIN)
        .args(["load", "--url", &url, "--models", "m", "--request-rate", "20", "--benchmark-time-seconds", "60"])
        .args(["--output-dir", out_dir.to_str().unwrap()])
        .env_remove("INFERBENCH_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Three requests are stuck in the server before the interrupt.
    for _ in 0..3 {
        posts.recv_timeout(std::time::Duration::from_secs(60)).expect("the load engine sends");
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let (mut o, mut e) = (String::new(), String::new());
        child.stdout.take().unwrap().read_to_string(&mut o).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
        (child.wait().unwrap(), o, e)
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("get up to 5 s to finish"), "the grace is announced: {stderr}");
    let text = std::fs::read_to_string(out_dir.join("summary.json")).unwrap();
    assert!(!text.contains("e-30") && !text.contains("Infinity") && !text.contains("NaN"), "{text}");
    let s = &serde_json::from_str::<serde_json::Value>(&text).unwrap()["stages"][0];
    let c = &s["counts"];
    assert_eq!(c["succeeded"], 0, "{s}");
    assert!(c["errors"]["cancelled"].as_u64().unwrap() >= 3, "{s}");
    let window = s["duration_seconds"].as_f64().unwrap();
    assert!((0.1..60.0).contains(&window), "the window runs from the stage start to the stop: {s}");
    let rate = s["offered"]["achieved_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 100.0, "{s}");
    for absent in ["ttft_ms", "e2e_ms", "tpot_ms", "output_tokens"] {
        assert!(s.get(absent).is_none(), "nothing was measured of {absent}: {s}");
    }
    let cpu = s["offered"]["client_cpu_seconds"].as_f64().unwrap();
    assert!(cpu.is_finite() && cpu < window * 4.0, "{s}");
    // The stage line and table show "-" for what was not measured; the client cell is short.
    let line = stdout.lines().find(|l| l.starts_with("rate-20")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("TTFT p50        - p99        - ms"), "{line}");
    assert!(line.len() < 300, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_a_later_stage_keeps_the_stages_already_measured() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("r");
    let (mut child, stdout) = spawn_load(&s.url(), &out_dir, &["--request-rate", "1000,1", "--num-prompts", "10"]);
    first_stage_done(stdout).await;
    child.kill().unwrap(); // SIGKILL during the second stage
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(v["stages"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["stages"][0]["counts"]["sent"], 10, "{v}");
    assert!(out_dir.join("requests.jsonl.zst").exists());
}

/// Started with a soft limit of 128 open files (as a shell with `ulimit -n 128` would), 300
/// closed-loop users still get a connection each: the engine raises its soft limit to the hard one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_users_than_the_soft_open_files_limit_all_connect() {
    use std::os::unix::process::CommandExt as _;
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("load.pbtxt");
    let body = "concurrency { users: [300] }\nnum_prompts: 900\ndataset { synthetic { input { mean: 16 } output { mean: 2 } } }\n";
    std::fs::write(&spec, format!("url: \"{}\"\nmodels: \"meta-llama/Llama-3.1-8B-Instruct\"\n{body}", s.url()))
        .unwrap();
    let out = dir.path().join("r");
    let mut hard = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) }, 0);
    assert!(hard.rlim_max >= 1024, "this machine's hard limit is {}", hard.rlim_max);
    let mut cmd = Command::new(BIN);
    cmd.args(["load", "--spec", spec.to_str().unwrap(), "--output-dir", out.to_str().unwrap()]);
    // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let low = libc::rlimit { rlim_cur: 128, rlim_max: hard.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &low) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let c = &summary["stages"][0]["counts"];
    assert_eq!(c["succeeded"], 900, "no request failed for want of a file descriptor: {c}");
    assert!(c.get("failed").is_none_or(|f| f == 0), "{c}");
}

/// The stage's failed verdict checks, by name, from a `summary.json`.
fn failed_checks(stage: &serde_json::Value) -> Vec<String> {
    let checks = stage["verdict"]["checks"].as_array().unwrap_or_else(|| panic!("no verdict: {stage}"));
    checks.iter().filter(|c| c["passed"] != true).map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verdict_flags_a_starved_client_and_not_a_healthy_one() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    // Healthy: 50 req/s, easily sent on time.
    let (o, out) = run_spec(
        dir.path(),
        &s.url(),
        "rates { request_rates: [50] }\nduration_seconds: 3\ndataset { synthetic { input { mean: 16 } output { mean: 4 } } }\n",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let st = &summary["stages"][0];
    // Every check passes but the lag's, which a pause of the host (tens of ms on a busy shared
    // VM, `inferbench dev pauses`) can fail with the client on time: met while the machine is quiet.
    let failed = failed_checks(st);
    assert!(failed.is_empty() || failed == ["lag"], "a healthy run: {}", st["verdict"]);
    if failed.is_empty() {
        assert_eq!(st["verdict"]["delivered"], true, "{}", st["verdict"]);
        assert!(text(&o).contains("load delivered"), "{}", text(&o));
    } else {
        eprintln!("the host paused the healthy run: {}", st["verdict"]["reasons"]);
    }
    let names: Vec<&str> =
        st["verdict"]["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in ["dropped", "rate", "arrivals", "lag", "cap", "cpu"] {
        assert!(names.contains(&want), "{want} checked: {names:?}");
    }

    // Starved: pinned to one core and asked for 100 000 req/s, far beyond what one core sends
    // (10 000 arrivals: the late ones are still sent, and counted late).
    let spec = dir.path().join("starved.pbtxt");
    std::fs::write(
        &spec,
        format!(
            "url: \"{}\"\nmodels: \"meta-llama/Llama-3.1-8B-Instruct\"\nrates {{ request_rates: [100000] }}\nduration_seconds: 0.1\ndataset {{ synthetic {{ input {{ mean: 16 }} output {{ mean: 4 }} }} }}\n",
            s.url()
        ),
    )
    .unwrap();
    let starved = dir.path().join("starved");
    let args: Vec<String> =
        ["-c", "0", BIN, "load", "--spec", spec.to_str().unwrap(), "--output-dir", starved.to_str().unwrap()]
            .map(String::from)
            .to_vec();
    let o = tokio::task::spawn_blocking(move || {
        Command::new("taskset").args(args).env_remove("INFERBENCH_URL").output().unwrap()
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("LOAD NOT DELIVERED: "), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(starved.join("summary.json")).unwrap()).unwrap();
    let st = &summary["stages"][0];
    assert_eq!(st["verdict"]["delivered"], false, "{}", st["verdict"]);
    assert_eq!(st["offered"]["client_cores"], 1, "pinned");
    let failed = failed_checks(st);
    for want in ["rate", "lag"] {
        assert!(failed.iter().any(|f| f == want), "{want} failed: {failed:?} {}", st["verdict"]);
    }
    let reasons = st["verdict"]["reasons"].to_string();
    assert!(reasons.contains("it fell behind its schedule") && reasons.contains("requests left late"), "{reasons}");
}

/// A child's stderr, line by line, read to its end by a thread of its own (a pipe left unread or
/// closed must not be what a test measures).
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// A GET of `http://{addr}{path}`: the body, or None when nothing answers.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

/// A sample's value in an exposition text (`name` with its labels, as written).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_move_during_the_run_and_end_equal_to_summary_json() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(BIN)
        .args(["load", "--url", &s.url(), "--models", "meta-llama/Llama-3.1-8B-Instruct"])
        .args(["--request-rate", "40,80", "--benchmark-time-seconds", "1.5", "--metrics-port", &port.to_string()])
        .args(["--output-dir", out.to_str().unwrap(), "--hold-results", "--hold-timeout", "120"])
        .env_remove("INFERBENCH_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The engine's stderr, line by line: it says where the metrics are, then when it holds.
    let rx = stderr_lines(&mut child);
    let addr2 = addr.clone();
    let (said, stages, sent) = tokio::task::spawn_blocking(move || {
        let (mut said, mut stages, mut sent) = (vec![], vec![], vec![]);
        loop {
            // The next line the engine says, or 20 ms: a sample of the metrics then (they are
            // read while the run goes on), until it says it holds.
            match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(line) => said.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the engine ended, never holding: {said:?}")
                }
            }
            while let Ok(line) = rx.try_recv() {
                said.push(line);
            }
            if said.iter().any(|l| l.contains("holding until they are fetched")) {
                return (said, stages, sent);
            }
            assert!(said.len() < 1000, "{said:?}");
            if let Some(t) = http_get(&addr2, "/metrics") {
                for l in t.lines().filter(|l| l.starts_with("inferbench_stage_info{") && l.ends_with(" 1")) {
                    if stages.last() != Some(&l.to_owned()) {
                        stages.push(l.to_owned());
                    }
                }
                sent.push(sample(&t, "inferbench_requests_sent_total").unwrap());
            }
        }
    })
    .await
    .unwrap();
    assert!(said.iter().any(|l| l.contains(&format!("live metrics at http://{addr}/metrics"))), "{said:?}");
    assert_eq!(
        stages,
        ["inferbench_stage_info{stage=\"rate-40\"} 1", "inferbench_stage_info{stage=\"rate-80\"} 1"],
        "the stage changed"
    );
    let moving = sent.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(moving >= 5, "the counters moved during the run: {sent:?}");

    // The end, while the engine holds its results: equal to summary.json's figures.
    let end = http_get(&addr, "/metrics").unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let st = summary["stages"].as_array().unwrap();
    let sum = |f: &dyn Fn(&serde_json::Value) -> f64| st.iter().map(f).sum::<f64>();
    let count = |k: &str| sum(&|s: &serde_json::Value| s[k]["count"].as_f64().unwrap_or(0.0));
    let tokens = |k: &str| {
        sum(&|s: &serde_json::Value| {
            (s["throughput"][k].as_f64().unwrap() * s["duration_seconds"].as_f64().unwrap()).round()
        })
    };
    for (metric, want) in [
        (
            "inferbench_requests_completed_total",
            sum(&|s: &serde_json::Value| s["counts"]["succeeded"].as_f64().unwrap()),
        ),
        ("inferbench_requests_sent_total", sum(&|s: &serde_json::Value| s["counts"]["sent"].as_f64().unwrap())),
        ("inferbench_requests_in_flight", 0.0),
        ("inferbench_time_to_first_token_seconds_count", count("ttft_ms")),
        ("inferbench_request_latency_seconds_count", count("e2e_ms")),
        ("inferbench_inter_token_latency_seconds_count", count("itl_ms")),
        ("inferbench_schedule_lag_seconds_count", count("schedule_lag_ms")),
        ("inferbench_output_tokens_total", tokens("output_tokens_per_second")),
        ("inferbench_input_tokens_total", tokens("input_tokens_per_second")),
        ("inferbench_stage_index", 2.0),
    ] {
        assert_eq!(sample(&end, metric), Some(want), "{metric}\n{end}");
    }
    for s in st {
        let delivered = if s["verdict"]["delivered"] == true { 1.0 } else { 0.0 };
        let name = format!("inferbench_stage_load_delivered{{stage=\"{}\"}}", s["name"].as_str().unwrap());
        assert_eq!(sample(&end, &name), Some(delivered), "{name}\n{end}");
    }
    assert!(sample(&end, "inferbench_client_cpu_seconds_total").unwrap() > 0.0);
    assert_eq!(sample(&end, "inferbench_requests_failed_total{kind=\"http_5xx\"}"), Some(0.0), "every kind, from 0");
    let released = Command::new(BIN).args(["results", "release", out.to_str().unwrap()]).output().unwrap();
    assert!(released.status.success(), "{}", text(&released));
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_gpu_metrics_are_summarised_per_stage_and_per_gpu() {
    // An H100 at its real speed, two GPUs (tensor parallelism 2).
    let args = Flags::try_parse_from(["sim", "--tensor-parallelism", "2"]).unwrap().sim;
    let s = Server::bind(args.to_config().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_spec(
        dir.path(),
        &s.url(),
        "rates { request_rates: [5, 40] }\nduration_seconds: 3\ndataset { synthetic { input { mean: 256 } output { mean: 64 } } }\nserver_metrics { interval_seconds: 0.5 }\n",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let util = |st: &serde_json::Value| st["server_metrics"]["DCGM_FI_DEV_GPU_UTIL"]["mean"].as_f64().unwrap();
    let stages = summary["stages"].as_array().unwrap();
    for st in stages {
        let m = &st["server_metrics"];
        let u = util(st);
        assert!(u > 0.0 && u <= 100.0, "GPU utilisation {u}: {m}");
        // vLLM holds 90 % of each GPU's memory from the start: 2 × 0.9 × 81 559 MiB.
        assert_eq!(m["DCGM_FI_DEV_FB_USED"]["mean"].as_f64(), Some(2.0 * 73_403.0), "{m}");
        let watts = m["DCGM_FI_DEV_POWER_USAGE"]["mean"].as_f64().unwrap();
        assert!((140.0..=1400.0).contains(&watts), "two GPUs between idle and TDP: {watts}");
        let per_gpu: Vec<&String> =
            m.as_object().unwrap().keys().filter(|k| k.starts_with("DCGM_FI_DEV_GPU_UTIL{")).collect();
        assert_eq!(per_gpu.len(), 2, "one series per GPU: {per_gpu:?}");
        assert!(per_gpu[1].ends_with(",gpu=\"1\"}"), "{per_gpu:?}");
    }
    assert!(util(&stages[1]) > util(&stages[0]), "8 × the rate keeps the GPUs busier");
    let scraped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("server_metrics.json")).unwrap()).unwrap();
    assert_eq!(scraped["kinds"]["DCGM_FI_PROF_SM_ACTIVE"], "gauge");
    assert!(scraped["samples"][0]["values"]["DCGM_FI_DEV_FB_FREE"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_alone_load_keeps_serving_its_final_metrics_while_it_lingers() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(BIN)
        .args(["load", "--url", &s.url(), "--models", "meta-llama/Llama-3.1-8B-Instruct"])
        .args(["--request-rate", "50", "--num-prompts", "20", "--metrics-port", &port.to_string()])
        .args(["--metrics-linger", "600", "--output-dir", out.to_str().unwrap()])
        .env_remove("INFERBENCH_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    let said = tokio::task::spawn_blocking(move || {
        rx.iter().find(|l| l.contains("serving the final metrics")).unwrap_or_default()
    })
    .await
    .unwrap();
    assert!(said.contains(&format!("http://127.0.0.1:{port}/metrics for 600 s")), "{said:?}");
    let end = http_get(&format!("127.0.0.1:{port}"), "/metrics").unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let succeeded = summary["stages"][0]["counts"]["succeeded"].as_f64().unwrap();
    assert_eq!(sample(&end, "inferbench_requests_completed_total"), Some(succeeded), "{end}");
    assert_eq!(succeeded, 20.0);
    // Ctrl-C ends the lingering; the run itself was complete: exit 0.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}
