//! `inferbench run` on the local platform, as a user runs it (a child process): several benchmarks
//! to verified results, regex selection, dry run, parallelism, a failing benchmark among good ones,
//! resume after a real SIGKILL, and Ctrl-C.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{ChildStdout, Command, Stdio},
};

use crate::common::{
    results::sent,
    run::{Run, text},
};

/// A benchmark on a fast simulated server: `name`, its base (or a full config), and load.
fn sim_benchmark(name: &str, replicas: u32, load: &str) -> String {
    format!(
        r#"benchmarks {{
  name: "{name}"
  config {{
    model_server {{
      accelerator: "nvidia-l4"
      replicas: {replicas}
      simulator {{ model: "meta-llama/Llama-2-7b-hf" time_scale: 0.01 seed: 1 }}
    }}
    load_balancer {{ k8s_service {{}} }}
    benchmark_tool {{ load {{ dataset {{ synthetic {{ input {{ mean: 32 }} output {{ mean: 8 }} }} }} {load} }} }}
  }}
}}
"#
    )
}

fn summary(bench_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bench_dir.join("results/summary.json")).unwrap()).unwrap()
}

/// Hidden staging folders left in a benchmark folder.
fn staging(bench_dir: &Path) -> Vec<String> {
    std::fs::read_dir(bench_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Reads stdout lines until one contains `needle`; returns every line read.
fn read_until(out: &mut BufReader<ChildStdout>, needle: &str) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the run ended before {needle:?}:\n{all}");
        all.push_str(&line);
        if line.contains(needle) {
            return all;
        }
    }
}

#[test]
fn several_benchmarks_each_get_verified_results() {
    let mut catalog = sim_benchmark("a", 1, "num_prompts: 20 rates { request_rates: [40, 80] }");
    catalog.push_str("benchmarks { name: \"b\" base_benchmark_name: \"a\" config { model_server { replicas: 2 } } }\n");
    catalog.push_str(
        "benchmarks { name: \"c\" base_benchmark_name: \"a\" config { benchmark_tool { load { api: OPENAI_CHAT_COMPLETIONS concurrency { users: [2] } } } } }\n",
    );
    let f = Run::new(&catalog);
    let o = f.run(&[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for line in ["[a] rate-40", "[a] rate-80", "[b] rate-80", "[c] users-2", "[a] done in", "3 done, 0 failed"] {
        assert!(t.contains(line), "missing {line:?} in:\n{t}");
    }
    assert!(t.contains("TTFT p50") && t.contains("goodput"), "the summary table:\n{t}");
    let run = f.run_json();
    for (name, stages, engines) in [("a", 2, 1), ("b", 2, 2), ("c", 1, 1)] {
        let dir = f.bench_dir(name);
        let s = summary(&dir);
        assert_eq!(s["stages"].as_array().unwrap().len(), stages, "{name}");
        for st in s["stages"].as_array().unwrap() {
            assert_eq!(st["counts"]["succeeded"], 20, "{name}: {st}");
        }
        assert_eq!(s["run"]["api"], if name == "c" { "OPENAI_CHAT_COMPLETIONS" } else { "OPENAI_COMPLETIONS" });
        let runtime: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("results/runtime.json")).unwrap()).unwrap();
        assert_eq!(runtime["platform"], "local");
        assert!(runtime["simulator"].as_str().unwrap().contains(&format!("{engines} engine(s)")), "{runtime}");
        assert!(runtime["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
        assert!(dir.join("results/requests.jsonl.zst").is_file() && dir.join("results/server_metrics.json").is_file());
        assert!(staging(&dir).is_empty(), "{:?}", staging(&dir));
        let rec = &run["benchmarks"][name];
        assert_eq!(rec["state"], "done", "{rec}");
        assert!(rec["seconds"].as_f64().unwrap() > 0.0 && rec["finished_at"].is_string(), "{rec}");
    }
}

#[test]
fn regex_selects_and_dry_run_writes_only_manifests() {
    let mut catalog = sim_benchmark("x-l4", 1, "num_prompts: 10 rates { request_rates: [50] }");
    catalog.push_str("benchmarks { name: \"x-h100\" base_benchmark_name: \"x-l4\" }\n");
    let f = Run::new(&catalog);
    let o = f.run(&["--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    for name in ["x-l4", "x-h100"] {
        assert!(f.bench_dir(name).join("manifests/SHA256SUMS").is_file());
        assert!(!f.bench_dir(name).join("results").exists(), "a dry run runs nothing");
    }
    assert!(f.run_json()["benchmarks"].as_object().unwrap().values().all(|b| b["state"] == "pending"));
    let id = f.run_dir().file_name().unwrap().to_str().unwrap().to_owned();
    let o = f.run(&["--run-id", &id, "--benchmark-name-regex", ".*h100.*"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(f.bench_dir("x-h100").join("results/summary.json").is_file());
    assert!(!f.bench_dir("x-l4").join("results").exists(), "not selected");
    let l4 = &f.run_json()["benchmarks"]["x-l4"];
    assert_eq!(l4["state"], "skipped", "left out of this invocation: {l4}");
    assert!(l4["reason"].as_str().unwrap().contains("benchmark-name-regex"), "{l4}");
    assert_eq!(f.run_json()["benchmarks"]["x-h100"]["state"], "done");
}

#[test]
fn parallelism_bounds_benchmarks_at_once() {
    let catalog: String =
        (0..4).map(|i| sim_benchmark(&format!("p{i}"), 1, "num_prompts: 20 rates { request_rates: [40] }")).collect();
    let f = Run::new(&catalog);
    let o = f.run(&["--parallelism", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = f.run_json();
    let t = |s: &serde_json::Value| {
        time::OffsetDateTime::parse(s.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    let spans: Vec<_> =
        run["benchmarks"].as_object().unwrap().values().map(|b| (t(&b["started_at"]), t(&b["finished_at"]))).collect();
    assert_eq!(spans.len(), 4);
    // At each start, how many benchmarks were running (itself included).
    let at_once: Vec<usize> =
        spans.iter().map(|(s, _)| spans.iter().filter(|(s2, e2)| s2 <= s && s < e2).count()).collect();
    assert!(at_once.iter().all(|&n| n <= 2), "never more than 2 at once: {at_once:?}");
    assert!(at_once.contains(&2), "two did run at once: {at_once:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_benchmark_does_not_stop_the_others() {
    // An external server whose every answer is a 503, and one nobody listens on.
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        sim: inferbench::cli::sim_cmd::SimArgs,
    }
    let args = <Flags as clap::Parser>::try_parse_from(["sim", "--zero-latency", "--error-rate", "1"]).unwrap().sim;
    let failing =
        inferbench::sim::Server::bind(args.to_config().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let external = |name: &str, url: &str| {
        format!(
            "benchmarks {{ name: \"{name}\" config {{ model_server {{ external {{ url: \"{url}\" model: \"meta-llama/Llama-3.1-8B-Instruct\" }} }} benchmark_tool {{ load {{ num_prompts: 5 rates {{ request_rates: [50] }} }} }} }} }}\n"
        )
    };
    let mut catalog = external("errors", &failing.url());
    catalog.push_str(&external("unreachable", "http://127.0.0.1:1"));
    catalog.push_str(&sim_benchmark("fine", 1, "num_prompts: 5 rates { request_rates: [50] }"));
    let f = Run::new(&catalog);
    let o = tokio::task::spawn_blocking(move || (f.run(&["--ready-timeout", "1"]), f)).await.unwrap();
    let (o, f) = o;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "exit code = benchmarks failed:\n{t}");
    let run = f.run_json();
    assert_eq!(run["benchmarks"]["fine"]["state"], "done", "{t}");
    let errors = &run["benchmarks"]["errors"];
    assert_eq!(errors["state"], "failed");
    assert!(errors["reason"].as_str().unwrap().contains("every request failed (http_5xx 5)"), "{errors}");
    assert!(!f.bench_dir("errors").join("results").exists(), "a failed benchmark has no results/");
    assert!(f.bench_dir("errors").join("failed-results/summary.json").is_file(), "its evidence is kept");
    let unreachable = &run["benchmarks"]["unreachable"];
    assert_eq!(unreachable["state"], "failed");
    assert!(unreachable["reason"].as_str().unwrap().contains("external server cannot be reached"), "{unreachable}");
    assert!(f.bench_dir("fine").join("results/summary.json").is_file());
}

#[test]
fn a_killed_run_resumes_with_only_the_missing_benchmarks() {
    let catalog: String = ["k1", "k2", "k3"]
        .iter()
        .map(|n| sim_benchmark(n, 1, "num_prompts: 20 rates { request_rates: [20, 40] }"))
        .collect();
    let f = Run::new(&catalog);
    let (mut child, mut out) = f.spawn(&[]);
    read_until(&mut out, "[k1] done in");
    // k2's first stage is written to its staging folder: half-collected results.
    read_until(&mut out, "[k2] rate-20");
    let half = staging(&f.bench_dir("k2"));
    assert_eq!(half.len(), 1, "{half:?}");
    assert!(f.bench_dir("k2").join(&half[0]).join("summary.json").is_file());
    child.kill().unwrap(); // a real SIGKILL, during k2's second stage
    child.wait().unwrap();
    let k1 = f.bench_dir("k1");
    let before = std::fs::read(k1.join("results/summary.json")).unwrap();
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(k1.join("results/summary.json")).unwrap());
    assert!(!f.bench_dir("k2").join("results").exists(), "k2 was cut: no results/");
    assert_eq!(f.run_json()["benchmarks"]["k2"]["state"], "running", "what a SIGKILL leaves");
    let id = f.run_dir().file_name().unwrap().to_str().unwrap().to_owned();
    // Another invocation that does not select k2 still sees it is no longer running.
    let o = f.run(&["--run-id", &id, "--dry-run", "--benchmark-name-regex", "k3"]);
    assert!(o.status.success(), "{}", text(&o));
    let k2 = &f.run_json()["benchmarks"]["k2"];
    assert_eq!(k2["state"], "failed", "{k2}");
    assert!(k2["reason"].as_str().unwrap().starts_with("interrupted: the process running it (pid"), "{k2}");

    let o = f.run(&["--run-id", &id]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("[k1] done before: results exist, skipped"), "{t}");
    assert!(!t.contains("[k1] deploying"), "{t}");
    assert!(t.contains("[k2] deploying") && t.contains("[k3] deploying"), "{t}");
    assert!(t.contains("exists, verified, reused"), "snapshots verified, not rewritten:\n{t}");
    let after = k1.join("results/summary.json");
    assert_eq!(std::fs::read(&after).unwrap(), before, "a done benchmark is never touched");
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&after).unwrap()), inode);
    for n in ["k1", "k2", "k3"] {
        let dir = f.bench_dir(n);
        let s = summary(&dir);
        assert_eq!(s["stages"].as_array().unwrap().len(), 2, "{n}: both stages, redone whole");
        assert_eq!(s["stages"][1]["counts"]["succeeded"], 20, "{n}");
        assert!(staging(&dir).is_empty(), "{n}: half-collected results were discarded: {:?}", staging(&dir));
        assert_eq!(f.run_json()["benchmarks"][n]["state"], "done");
    }
}

#[test]
fn ctrl_c_stops_and_leaves_no_half_results() {
    let catalog = sim_benchmark("long", 1, "num_prompts: 400 rates { request_rates: [40, 40] }");
    let f = Run::new(&catalog);
    let (mut child, mut out) = f.spawn(&[]);
    // After the first stage's results are staged, during the second.
    read_until(&mut out, "[long] rate-40");
    assert_eq!(staging(&f.bench_dir("long")).len(), 1);
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let dir = f.bench_dir("long");
    assert!(!dir.join("results").exists(), "no half results/");
    assert!(staging(&dir).is_empty(), "{:?}", staging(&dir));
    let rec = &f.run_json()["benchmarks"]["long"];
    assert_eq!(rec["state"], "failed");
    assert!(rec["reason"].as_str().unwrap().contains("interrupted: results discarded; resume with --run-id"), "{rec}");
    // The snapshot is intact: a resume verifies it (and would run it).
    let id = f.run_dir().file_name().unwrap().to_str().unwrap().to_owned();
    let o = f.run(&["--run-id", &id, "--dry-run"]);
    assert!(o.status.success() && text(&o).contains("exists, verified, reused"), "{}", text(&o));
}

#[test]
fn a_second_ctrl_c_exits_at_once_without_corrupting_anything() {
    // Real-time simulated L4 with long answers: requests in flight take seconds, so the first
    // Ctrl-C's grace is still running when the second one comes.
    let catalog = r#"benchmarks {
  name: "slow"
  config {
    model_server { accelerator: "nvidia-l4" simulator { model: "meta-llama/Llama-2-7b-hf" } }
    load_balancer { k8s_service {} }
    benchmark_tool { load { ignore_eos: true num_prompts: 100 rates { request_rates: [20] }
      dataset { synthetic { input { mean: 32 } output { mean: 400 min: 400 max: 400 } } } } }
  }
}
"#;
    let f = Run::new(catalog);
    let mut child = f.cmd(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut err = BufReader::new(child.stderr.take().unwrap());
    read_until(&mut out, "[slow] ready at");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let mut line = String::new();
    while !line.contains("stopping") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no stopping message");
    }
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(rest.contains("exiting now"), "{rest}");
    let dir = f.bench_dir("slow");
    assert!(!dir.join("results").exists(), "no half results/");
    // run.json is whole (written atomically) and says where the benchmark was.
    assert_eq!(f.run_json()["benchmarks"]["slow"]["state"], "running");
    // The next run resumes it: the leftover staging folder is removed, the snapshot reused.
    let id = f.run_dir().file_name().unwrap().to_str().unwrap().to_owned();
    let o = f.run(&["--run-id", &id, "--dry-run"]);
    assert!(o.status.success() && text(&o).contains("exists, verified, reused"), "{}", text(&o));
    let rec = &f.run_json()["benchmarks"]["slow"];
    assert_eq!(rec["state"], "pending", "a running state left by a gone process is no longer running: {rec}");
}

#[test]
fn a_benchmark_with_three_load_workers_gives_one_merged_result_equal_to_one_workers_requests() {
    let load = "duration_seconds: 1.5 rates { request_rates: [40, 80] }";
    let mut catalog = sim_benchmark("one", 1, load);
    catalog.push_str("benchmarks { name: \"three\" base_benchmark_name: \"one\" config { benchmark_tool { load { workers: 3 } } } }\n");
    let f = Run::new(&catalog);
    let o = f.run(&[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let (one, three) = (f.bench_dir("one"), f.bench_dir("three"));
    let by_one = sent(&one.join("results"));
    assert!(by_one.len() > 100, "{}", by_one.len());
    assert_eq!(sent(&three.join("results")), by_one, "the same prompts on the same intended times");
    let s = summary(&three);
    for st in s["stages"].as_array().unwrap() {
        let workers = st["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 3, "{st}");
        assert_eq!(
            workers.iter().map(|w| w["sent"].as_u64().unwrap()).sum::<u64>(),
            st["counts"]["sent"].as_u64().unwrap()
        );
    }
    let no_workers = &summary(&one)["stages"][0]["workers"];
    assert!(no_workers.is_null() || no_workers == &serde_json::json!([]), "one process has no workers table");
    assert!(three.join("results/workers/2/summary.json").is_file(), "each worker's own results are kept");
    // The report shows the workers.
    let o = Command::new(env!("CARGO_BIN_EXE_inferbench")).args(["report"]).arg(f.run_dir()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(f.run_dir().join("report/index.html")).unwrap();
    assert!(
        html.contains("<table class=\"workers\">") && html.contains("start skew between workers"),
        "the report shows the workers"
    );
    // `--workers` overrides the catalog, and the snapshot records it.
    let o = f.run(&["--workers", "2", "--benchmark-name-regex", "one", "--run-id", "override"]);
    assert!(o.status.success(), "{}", text(&o));
    let overridden = f.out().join("override/one-override");
    assert_eq!(summary(&overridden)["stages"][0]["workers"].as_array().unwrap().len(), 2);
    assert_eq!(sent(&overridden.join("results")), by_one);
}
