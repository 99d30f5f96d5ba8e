//! `inferbench report` on real runs: results written by `inferbench run` on the local platform
//! (the simulator in-process, short loads), reported as a user does (the built binary). Numbers
//! in the table and `summary.csv` are checked against `summary.json`; plots are parsed (SVG as
//! XML, PNG decoded); the page is loaded in headless Chromium, which must show the tables and
//! plots without a console error; `--compare`, partial runs, older runs' LPG files and bad input.
//!
//! The runs are made once (first test to need them) and shared; each test writes its report to
//! a folder of its own.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_inferbench");

/// A catalog: an abstract base on a fast simulated server (`time_scale`), benchmarks derived from
/// it, a chat one, one whose server cannot be reached, and one whose server answers every request
/// with an error (at `errors_url`).
fn catalog(time_scale: f64, errors_url: &str) -> String {
    format!(
        r#"benchmarks {{
  name: "base"
  abstract: true
  config {{
    model_server {{
      accelerator: "nvidia-l4"
      replicas: 1
      simulator {{ model: "meta-llama/Llama-2-7b-hf" time_scale: {time_scale} seed: 1 }}
    }}
    load_balancer {{ k8s_service {{}} }}
    benchmark_tool {{ load {{
      dataset {{ synthetic {{ input {{ mean: 32 }} output {{ mean: 8 }} }} }}
      num_prompts: 60
      rates {{ request_rates: [40, 80] }}
      slo {{ ttft_ms: 50 }}
      server_metrics {{ interval_seconds: 0.1 }}
      outputs {{ lpg_json: true }}
    }} }}
  }}
}}
benchmarks {{ name: "one" base_benchmark_name: "base" }}
benchmarks {{ name: "two" base_benchmark_name: "one" config {{ model_server {{ replicas: 2 }} }} }}
benchmarks {{
  name: "chat"
  base_benchmark_name: "base"
  config {{ benchmark_tool {{ load {{ api: OPENAI_CHAT_COMPLETIONS concurrency {{ users: [2] }} }} }} }}
}}
benchmarks {{
  name: "down"
  config {{
    model_server {{ external {{ url: "http://127.0.0.1:1" model: "meta-llama/Llama-2-7b-hf" }} }}
    benchmark_tool {{ load {{ num_prompts: 5 rates {{ request_rates: [50] }} }} }}
  }}
}}
benchmarks {{
  name: "errors"
  config {{
    model_server {{ external {{ url: "{errors_url}" model: "meta-llama/Llama-3.1-8B-Instruct" }} }}
    benchmark_tool {{ load {{ num_prompts: 5 rates {{ request_rates: [50] }} }} }}
  }}
}}
benchmarks {{ name: "later" base_benchmark_name: "base" }}
"#
    )
}

/// A child process we started; killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `inferbench sim` answering every request with a 500, and its URL.
fn failing_server() -> (Killed, String) {
    let mut child = Command::new(BIN)
        .args(["sim", "--zero-latency", "--error-rate", "1", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.rsplit(" on ").next().unwrap().trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (Killed(child), url)
}

pub struct Runs {
    pub root: PathBuf,
    /// one, two, chat done; down and errors failed; later skipped.
    pub fast: PathBuf,
    /// one and two on a server 4× slower.
    pub slow: PathBuf,
}

fn inferbench(args: &[&str], cwd: &Path) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(cwd);
    for v in ["INFERBENCH_RUN_ID", "run_id", "INFERBENCH_OUTPUT", "output_dir", "INFERBENCH_COMPARE"] {
        c.env_remove(v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The shared runs, made on first use under the target folder (replaced on every test run).
pub fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-tests");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let (_server, errors_url) = failing_server();
        std::fs::write(root.join("fast.pbtxt"), catalog(0.01, &errors_url)).unwrap();
        std::fs::write(root.join("slow.pbtxt"), catalog(0.04, &errors_url)).unwrap();
        // Every snapshot first, then a run of some: "later" stays not done.
        let o = inferbench(&["generate", "fast.pbtxt", "--output", "out", "--run-id", "fast0001"], &root);
        assert!(o.status.success(), "{}", text(&o));
        let run = ["run", "fast.pbtxt", "--output", "out", "--run-id", "fast0001", "--ready-timeout", "1"];
        let o = inferbench(&[&run[..], &["--benchmark-name-regex", "one|two|chat|down|errors"]].concat(), &root);
        assert_eq!(o.status.code(), Some(2), "two benchmarks (down, errors) fail:\n{}", text(&o));
        let o = inferbench(
            &["run", "slow.pbtxt", "--output", "out", "--run-id", "slow0001", "--benchmark-name-regex", "one|two"],
            &root,
        );
        assert!(o.status.success(), "{}", text(&o));
        Runs { fast: root.join("out/fast0001"), slow: root.join("out/slow0001"), root }
    })
}

/// A fresh folder for one test's report.
fn out_dir(name: &str) -> PathBuf {
    let d = runs().root.join("reports").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn summary(bench_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bench_dir.join("results/summary.json")).unwrap()).unwrap()
}

/// Stages of each done benchmark of a run: (benchmark, stage JSON).
fn stages(run: &Path, names: &[&str]) -> Vec<(String, Value)> {
    let id = run.file_name().unwrap().to_str().unwrap();
    names
        .iter()
        .flat_map(|n| {
            let s = summary(&run.join(format!("{n}-{id}")));
            s["stages"].as_array().unwrap().iter().map(|st| (n.to_string(), st.clone())).collect::<Vec<_>>()
        })
        .collect()
}

/// `shown` (a table cell's number, rounded) stands for `exact`: equal to the decimals shown.
fn shows(shown: &str, exact: f64) -> bool {
    let decimals = shown.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let v: f64 = shown.trim().parse().unwrap_or_else(|_| panic!("not a number: {shown:?}"));
    (v - exact).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-9
}

fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records().map(|rec| header.iter().cloned().zip(rec.unwrap().iter().map(String::from)).collect()).collect()
}

/// The text elements of an SVG file.
fn svg_texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(|t| t.trim().to_owned()).collect()
}

#[test]
fn the_report_of_a_real_run_shows_summary_json_numbers_in_table_and_csv() {
    let r = runs();
    let started = Instant::now();
    let o = inferbench(&["report", r.fast.to_str().unwrap()], &r.root);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let report = r.fast.join("report");
    assert!(t.contains(&format!("report: {}", report.display())), "{t}");
    eprintln!("report of {} written in {:.2} s", r.fast.display(), started.elapsed().as_secs_f64());

    let all = stages(&r.fast, &["one", "two", "chat"]);
    assert_eq!(all.len(), 5, "one and two: 2 rates each; chat: 1 users stage");
    let csv = csv_rows(&report.join("summary.csv"));
    for (bench, st) in &all {
        let name = st["name"].as_str().unwrap();
        // The terminal row of this stage: its cells, split on the table's column separators.
        let line = t
            .lines()
            .find(|l| {
                let cells: Vec<&str> = l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
                cells.len() > 2 && cells[0].trim_start_matches('│').trim() == bench && cells[1] == name
            })
            .unwrap_or_else(|| panic!("no row for {bench} {name} in:\n{t}"));
        let triples: Vec<Vec<&str>> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| c.matches(" / ").count() == 2)
            .map(|c| c.split(" / ").collect())
            .collect();
        assert_eq!(triples.len(), 4, "TTFT, TPOT, ITL, e2e in {line}");
        for (cells, key) in triples.iter().zip(["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"]) {
            for (cell, p) in cells.iter().zip(["p50", "p90", "p99"]) {
                let exact = st[key][p].as_f64().unwrap();
                assert!(shows(cell, exact), "{bench} {name} {key} {p}: table {cell}, summary.json {exact}");
            }
        }
        // Whether the client kept up: its lag p99 and CPU, as in summary.json.
        let client = line
            .split("  ")
            .map(|c| c.trim().trim_end_matches('│').trim())
            .find(|c| c.starts_with("lag p99 "))
            .unwrap_or_else(|| panic!("no client cell in {line}"));
        let (lag, cpu) = client.trim_start_matches("lag p99 ").split_once(" ms, ").unwrap();
        assert!(shows(lag, st["schedule_lag_ms"]["p99"].as_f64().unwrap()), "{bench} {name} lag p99: {client}");
        let o = |k: &str| st["offered"][k].as_f64().unwrap_or(0.0);
        let busy = 100.0 * o("client_cpu_seconds") / (st["duration_seconds"].as_f64().unwrap() * o("client_cores"));
        assert!(cpu.starts_with(&format!("CPU {busy:.0} % of ")), "{bench} {name} CPU {busy}: {client}");
        // The CSV holds the numbers whole.
        let row = csv
            .iter()
            .find(|row| row["benchmark"] == *bench && row["stage"] == name)
            .unwrap_or_else(|| panic!("no CSV row for {bench} {name}"));
        let f = |k: &str| row[k].parse::<f64>().unwrap_or_else(|_| panic!("{k} = {:?}", row[k]));
        assert_eq!(f("ttft_ms_p50"), st["ttft_ms"]["p50"].as_f64().unwrap());
        assert_eq!(f("ttft_ms_p99"), st["ttft_ms"]["p99"].as_f64().unwrap());
        assert_eq!(f("tpot_ms_p90"), st["tpot_ms"]["p90"].as_f64().unwrap());
        assert_eq!(f("itl_ms_p50"), st["itl_ms"]["p50"].as_f64().unwrap());
        assert_eq!(f("e2e_ms_mean"), st["e2e_ms"]["mean"].as_f64().unwrap());
        assert_eq!(f("achieved_qps"), st["offered"]["achieved_rate"].as_f64().unwrap());
        assert_eq!(f("output_tokens_per_s"), st["throughput"]["output_tokens_per_second"].as_f64().unwrap());
        assert_eq!(f("goodput_fraction"), st["goodput"]["fraction"].as_f64().unwrap());
        // The client's CPU and the host's steal (proto3 JSON leaves a zero out).
        let offered = |k: &str| st["offered"][k].as_f64().unwrap_or(0.0);
        assert_eq!(f("client_cpu_s"), offered("client_cpu_seconds"));
        assert!(f("client_cpu_s") > 0.0, "a stage that sent requests used some CPU");
        assert_eq!(f("client_cores"), offered("client_cores"));
        assert!(f("client_cores") >= 1.0);
        assert_eq!(f("host_steal_s"), offered("host_steal_seconds"));
        assert_eq!(row["sent"], st["counts"]["sent"].to_string());
        assert_eq!(row["failed"], st["counts"]["failed"].to_string());
        assert_eq!(row["state"], "done");
    }
    // The partial run: the failed and the skipped benchmarks are listed with why.
    let run_json: Value = serde_json::from_slice(&std::fs::read(r.fast.join("run.json")).unwrap()).unwrap();
    assert!(run_json["benchmarks"].get("base").is_none(), "an abstract template is no benchmark of the run");
    for name in ["down", "later"] {
        let state = run_json["benchmarks"][name]["state"].as_str().unwrap();
        let row = csv.iter().find(|row| row["benchmark"] == name).unwrap();
        assert_eq!(row["state"], state);
        assert_eq!(row["note"], run_json["benchmarks"][name]["reason"].as_str().unwrap());
        assert!(t.lines().any(|l| l.contains(name) && l.contains(state)), "{name} {state} in:\n{t}");
    }
    assert_eq!(run_json["benchmarks"]["down"]["state"], "failed");
    assert_eq!(run_json["benchmarks"]["later"]["state"], "skipped");
    // A benchmark whose every request failed: its failed attempt's stage, from failed-results/.
    let errors = csv.iter().find(|row| row["benchmark"] == "errors").unwrap();
    assert_eq!(
        (errors["state"].as_str(), errors["results"].as_str(), errors["stage"].as_str()),
        ("failed", "failed", "rate-50")
    );
    assert_eq!(
        (errors["sent"].as_str(), errors["failed"].as_str(), errors["errors"].as_str()),
        ("5", "5", "http_5xx 5")
    );
    assert_eq!(errors["ttft_ms_p50"], "", "no latency of failed requests");
    assert!(t.lines().any(|l| l.contains("errors") && l.contains("rate-50") && l.contains("5 (http_5xx 5)")), "{t}");

    // Plots: every one valid SVG with drawn lines and text, and a PNG of the same figure.
    let plots = report.join("plots");
    let mut svgs: Vec<String> = std::fs::read_dir(&plots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    svgs.sort();
    let expected = [
        "cdf-chat.svg",
        "cdf-one.svg",
        "cdf-two.svg",
        "latency-vs-throughput-e2e.svg",
        "latency-vs-throughput-tpot.svg",
        "latency-vs-throughput-ttft.svg",
        "throughput-vs-offered.svg",
        "timeline-chat.svg",
        "timeline-errors.svg", // a failed benchmark's server was scraped too
        "timeline-one.svg",
        "timeline-two.svg",
    ];
    assert_eq!(svgs, expected);
    for name in &svgs {
        let text = std::fs::read_to_string(plots.join(name)).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{name}");
        let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
        assert!(count("polyline") + count("path") >= 3, "{name}: lines drawn");
        assert!(count("text") >= 10, "{name}: axis labels and titles");
        let png = image::open(plots.join(name.replace(".svg", ".png"))).unwrap().to_rgb8();
        assert!(png.width() >= 800 && png.height() >= 400, "{name}: {:?}", png.dimensions());
        let colours: std::collections::HashSet<[u8; 3]> = png.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 20, "{name}.png is not blank: {} colours", colours.len());
    }
    // The latency plot has a line per done benchmark, p50 and p99.
    let ttft = svg_texts(&plots.join("latency-vs-throughput-ttft.svg"));
    for label in ["one p50", "one p99", "two p50", "two p99", "chat p50"] {
        assert!(ttft.iter().any(|t| t == label), "legend {label} in {ttft:?}");
    }
    // One time axis: the client's series above the server's, the stages shaded.
    let timeline = svg_texts(&plots.join("timeline-one.svg"));
    for label in [
        "rate-40",
        "rate-80",
        "client: requests in flight",
        "client: TTFT p50 of the requests sent",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "DCGM_FI_DEV_GPU_UTIL",
    ] {
        assert!(timeline.iter().any(|t| t == label), "{label} in {timeline:?}");
    }

    // The page: self-contained, with the tables, the plots inline and each benchmark's config.
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), expected.len());
    assert!(!html.contains("<script") && !html.contains("src=\""), "nothing loaded from anywhere");
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    let diff_start = html.find("id=\"bench-two\"").unwrap();
    let two = &html[diff_start..];
    assert!(two.contains("Changes from its base <b>one</b>"), "two's base");
    assert!(two.contains("<span class=\"del\">-     replicas: 1</span>"), "{}", &two[..two.len().min(3000)]);
    assert!(two.contains("<span class=\"add\">+     replicas: 2</span>"));
    assert!(html.contains("href=\"../one-fast0001/results/summary.json\""), "links to raw files");
    assert!(html.contains("Changes from its base <b>base</b>"), "an abstract base is diffed too");
}

#[test]
fn compare_flags_a_slower_server_and_nothing_against_itself() {
    let r = runs();
    let out = out_dir("compare-slow");
    let o = inferbench(
        &["report", r.slow.to_str().unwrap(), "--compare", r.fast.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &r.root,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("compared with run fast0001"), "{t}");
    assert!(t.contains("only in the baseline: chat"), "{t}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    // The median end-to-end latency of a server 4× slower: worse beyond noise, at both rates.
    for stage in ["rate-40", "rate-80"] {
        let row = format!("<tr class=\"worse\" data-benchmark=\"one\" data-stage=\"{stage}\" data-metric=\"e2e p50\">");
        assert!(html.contains(&row), "{row} in the comparison table:\n{t}");
    }
    let slow = summary(&r.slow.join("one-slow0001"));
    let fast = summary(&r.fast.join("one-fast0001"));
    assert!(
        slow["stages"][0]["e2e_ms"]["p50"].as_f64().unwrap() > fast["stages"][0]["e2e_ms"]["p50"].as_f64().unwrap(),
        "the premise: the slow server is slower"
    );
    assert!(t.contains("WORSE"), "flagged on the terminal too:\n{t}");

    // A run against itself: the same samples, nothing beyond noise.
    let out = out_dir("compare-self");
    let me = r.fast.to_str().unwrap();
    let o = inferbench(&["report", me, "--compare", me, "--out", out.to_str().unwrap()], &r.root);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("6 stage(s) in both; 0 difference(s) beyond noise"), "{t}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!html.contains("class=\"worse\"") && !html.contains("class=\"better\""));
    assert!(html.contains("too few requests to bound it"), "a p99 of 60 requests is not assessed");
}

/// Removes LPG's later `_ms` keys: the file as inference-benchmark 07628c9 wrote it (TTFT, ITL,
/// TPOT in seconds).
fn as_07628c9(mut v: Value) -> Value {
    let m = v["metrics"].as_object_mut().unwrap();
    m.retain(|k, _| !k.ends_with("_ms"));
    v
}

#[test]
fn an_older_run_of_lpg_files_is_reported_with_the_same_numbers() {
    let r = runs();
    // The layout of the original tool: no run.json, results/json/*.json from LPG, no summary.
    let old = r.root.join("old/abcd0001");
    let _ = std::fs::remove_dir_all(&old);
    let results = old.join("one-abcd0001/results/json");
    std::fs::create_dir_all(&results).unwrap();
    let ours = r.fast.join("one-fast0001");
    std::fs::copy(ours.join("benchmark.pbtxt"), old.join("one-abcd0001/benchmark.pbtxt")).unwrap();
    for e in std::fs::read_dir(ours.join("results/lpg")).unwrap() {
        let p = e.unwrap().path();
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        std::fs::write(results.join(p.file_name().unwrap()), as_07628c9(v).to_string()).unwrap();
    }
    let out = out_dir("old-lpg");
    let o = inferbench(&["report", old.to_str().unwrap(), "--out", out.to_str().unwrap()], &r.root);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let csv = csv_rows(&out.join("summary.csv"));
    let original = stages(&r.fast, &["one"]);
    assert_eq!(csv.len(), original.len(), "one row per rate (the weighted file of each)");
    for ((_, st), row) in original.iter().zip(&csv) {
        assert_eq!(row["stage"], st["name"].as_str().unwrap());
        assert_eq!((row["results"].as_str(), row["state"].as_str()), ("lpg", "done"));
        let close = |k: &str, exact: f64| {
            let v: f64 = row[k].parse().unwrap();
            assert!((v - exact).abs() <= 1e-9 * exact.abs().max(1.0), "{k}: {v} from LPG, {exact} in summary.json");
        };
        for (key, col) in [("ttft_ms", "ttft_ms"), ("tpot_ms", "tpot_ms"), ("e2e_ms", "e2e_ms")] {
            for p in ["p50", "p90", "p99", "mean", "max"] {
                close(&format!("{col}_{p}"), st[key][p].as_f64().unwrap());
            }
        }
        close("output_tokens_per_s", st["throughput"]["output_tokens_per_second"].as_f64().unwrap());
        assert_eq!(row["ttft_ms_p95"], "", "LPG keeps no p95");
        assert_eq!(row["sent"], st["counts"]["sent"].to_string());
    }
    // Plots from LPG's percentiles, and the page says where the numbers came from.
    assert!(out.join("plots/latency-vs-throughput-ttft.svg").is_file() && out.join("plots/cdf-one.svg").is_file());
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("latency-profile-generator result files of an older run"));

    // The new run compared with the old one: stages match by name; no records there, so latency
    // differences are not assessed, throughputs are.
    let vs_old = out_dir("vs-old");
    let o = inferbench(
        &["report", r.fast.to_str().unwrap(), "--compare", old.to_str().unwrap(), "--out", vs_old.to_str().unwrap()],
        &r.root,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("compared with run abcd0001") && t.contains("2 stage(s) in both"), "{t}");
    let html = std::fs::read_to_string(vs_old.join("index.html")).unwrap();
    assert!(html.contains("no per-request records"));
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let r = runs();
    let bad = r.root.join("bad");
    let _ = std::fs::remove_dir_all(&bad);
    std::fs::create_dir_all(&bad).unwrap();
    let o = inferbench(&["report", bad.to_str().unwrap()], &r.root);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains(&format!("{}: not a run folder", bad.display())), "{}", text(&o));

    // A run whose one summary.json is cut off: the report shows the other benchmarks and names
    // the broken file; the results history refuses the run whole.
    let run = bad.join("slow0001");
    let copied = Command::new("cp").args(["-r", r.slow.to_str().unwrap(), run.to_str().unwrap()]).status().unwrap();
    assert!(copied.success());
    let _ = std::fs::remove_dir_all(run.join("report"));
    let cut = run.join("one-slow0001/results/summary.json");
    let whole = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let o = inferbench(&["report", run.to_str().unwrap()], &r.root);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains(&format!("warning: one: results unreadable: {}: not a results summary", cut.display())), "{t}");
    let page = std::fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(page.contains("class=\"state-unreadable\">unreadable</td>"), "one is shown as unreadable");
    assert!(page.contains(&format!("results unreadable: {}", cut.display())), "the broken file is named");
    for (bench, st) in stages(&r.slow, &["two"]) {
        let name = st["name"].as_str().unwrap();
        assert!(page.contains(&format!("data-benchmark=\"{bench}\" data-stage=\"{name}\"")), "{bench} {name} reported");
    }
    let db = bad.join("history.db");
    let o = inferbench(&["history", "import", run.to_str().unwrap(), "--history", db.to_str().unwrap()], &r.root);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&format!("{}: not a results summary", cut.display())), "{}", text(&o));

    // --out pointing at a folder of other files is refused, and the files are kept.
    let o = inferbench(&["report", r.fast.to_str().unwrap(), "--out", r.root.to_str().unwrap()], &r.root);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("is not an inferbench report"), "{}", text(&o));
    assert!(r.root.join("fast.pbtxt").is_file());
}

// ---- The page in headless Chromium, driven over the DevTools protocol. ----

/// Chromium, installed by the project's script on first use (as CI does); a machine where it
/// cannot be installed fails this test with the script's reason.
fn chromium() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/chromium");
    let out = Command::new(&script)
        .arg("--install")
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "headless Chromium is needed for this test and `{} --install` could not install it (see its message above)",
        script.display()
    );
    let path = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(path.lines().last().expect("the script prints the binary's path"))
}

/// A browser we started; killed when dropped if it has not exited.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools session on one page.
struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
    session: Option<String>,
    events: Vec<Value>,
}

impl Cdp {
    fn send(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(tungstenite::Message::text(msg.to_string())).unwrap();
        loop {
            let v = self.read();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn read(&mut self) -> Value {
        loop {
            match self.ws.read().expect("DevTools answers within the socket's timeout") {
                tungstenite::Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                tungstenite::Message::Close(_) => panic!("the browser closed the DevTools connection"),
                _ => {}
            }
        }
    }

    /// Reads until an event `method` of this session arrives (every event read is kept).
    fn wait_for(&mut self, method: &str) {
        if self.events.iter().any(|e| e["method"] == method) {
            return;
        }
        loop {
            let v = self.read();
            let done = v["method"] == method;
            self.events.push(v);
            if done {
                return;
            }
        }
    }
}

fn launch(bin: &Path) -> (Browser, Cdp) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    // The browser says where its DevTools listen; the rest of its log is drained so it never
    // blocks on a full pipe.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(url) = line.split_once("DevTools listening on ").map(|(_, u)| u.trim().to_owned()) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Ok(url));
                }
            } else if let Some(t) = &tx {
                let _ = t.send(Err(line));
            }
        }
    });
    let browser = Browser { child, _profile: profile };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = vec![];
    let url = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(url)) => break url,
            Ok(Err(line)) => log.push(line),
            Err(_) => panic!("Chromium did not open its DevTools port; its log:\n{}", log.join("\n")),
        }
    };
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap().to_owned();
    let stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let (ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
    (browser, Cdp { ws, next: 0, session: None, events: vec![] })
}

#[test]
fn the_page_renders_in_headless_chromium_with_its_tables_and_plots_and_no_console_error() {
    let r = runs();
    let out = out_dir("browser");
    let o = inferbench(
        &["report", r.slow.to_str().unwrap(), "--compare", r.fast.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &r.root,
    );
    assert!(o.status.success(), "{}", text(&o));
    let page = out.join("index.html").canonicalize().unwrap();

    let (_browser, mut cdp) = launch(&chromium());
    let target = cdp.send("Target.createTarget", json!({"url": "about:blank"}));
    let attached = cdp.send("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}));
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
        cdp.send(domain, json!({}));
    }
    cdp.send(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    );
    cdp.events.clear();
    cdp.send("Page.navigate", json!({"url": format!("file://{}", page.display())}));
    cdp.wait_for("Page.loadEventFired");

    let probe = r#"JSON.stringify({
        plots: [...document.querySelectorAll('figure.plot svg')].map(s => {
            const b = s.getBoundingClientRect();
            return {w: b.width, h: b.height, lines: s.querySelectorAll('polyline, path').length};
        }),
        summary: [...document.querySelectorAll('#summary-table tbody tr')].map(tr => [...tr.cells].map(c => c.textContent)),
        compare: document.querySelectorAll('#compare-table tbody tr').length,
        worse: [...document.querySelectorAll('#compare-table tr.worse')].map(tr => tr.dataset.benchmark + ' ' + tr.dataset.stage + ' ' + tr.dataset.metric),
        diffs: document.querySelectorAll('details.diff').length,
        height: document.documentElement.scrollHeight,
        pageWidth: document.documentElement.scrollWidth,
        tables: [...document.querySelectorAll('main table')].map(t => {
            const w = t.closest('.wrap');
            return {
                table: t.id || t.className,
                fits: t.getBoundingClientRect().right <= document.documentElement.clientWidth,
                scrolls: !!w && getComputedStyle(w).overflowX === 'auto' && w.scrollWidth > w.clientWidth,
            };
        }),
        title: document.title
    })"#;
    let v = cdp.send("Runtime.evaluate", json!({"expression": probe, "returnByValue": true}));
    let dom: Value = serde_json::from_str(v["result"]["value"].as_str().unwrap()).unwrap();

    // Console errors, uncaught exceptions, and the browser's own errors (a blocked fetch, a
    // missing file) — none.
    let errors: Vec<&Value> = cdp
        .events
        .iter()
        .filter(|e| {
            (e["method"] == "Runtime.consoleAPICalled"
                && matches!(e["params"]["type"].as_str(), Some("error" | "assert")))
                || e["method"] == "Runtime.exceptionThrown"
                || (e["method"] == "Log.entryAdded" && e["params"]["entry"]["level"] == "error")
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    assert_eq!(dom["title"], "inferbench report: run slow0001");
    let plots = dom["plots"].as_array().unwrap();
    let files = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "svg"));
    assert_eq!(plots.len(), files.count(), "every plot is on the page");
    for p in plots {
        assert!(p["w"].as_f64().unwrap() > 300.0 && p["h"].as_f64().unwrap() > 150.0, "plot laid out: {p}");
        assert!(p["lines"].as_u64().unwrap() >= 3, "plot drawn: {p}");
    }
    // The summary table shows summary.json's numbers: one and two, both rates (TTFT p50 column).
    let rows = dom["summary"].as_array().unwrap();
    for (bench, st) in stages(&r.slow, &["one", "two"]) {
        let name = st["name"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|row| row[0] == bench.as_str() && row[1] == name)
            .unwrap_or_else(|| panic!("{bench} {name} in {rows:?}"));
        for (col, key, p) in [(5, "ttft_ms", "p50"), (7, "ttft_ms", "p99"), (16, "e2e_ms", "p99")] {
            let cell = row[col].as_str().unwrap();
            assert!(shows(cell, st[key][p].as_f64().unwrap()), "{bench} {name} {key} {p}: {cell} vs {}", st[key][p]);
        }
        let client = row[20].as_str().unwrap();
        let lag = client.strip_prefix("lag p99 ").and_then(|c| c.split_once(" ms, CPU ")).map(|(l, _)| l);
        let lag = lag.unwrap_or_else(|| panic!("{bench} {name} client cell: {client}"));
        assert!(shows(lag, st["schedule_lag_ms"]["p99"].as_f64().unwrap()), "{bench} {name} lag: {client}");
    }
    assert!(dom["compare"].as_u64().unwrap() >= 4 * 9, "the comparison table: {}", dom["compare"]);
    assert!(dom["worse"].as_array().unwrap().iter().any(|w| w == "one rate-40 e2e p50"), "{}", dom["worse"]);
    assert!(dom["diffs"].as_u64().unwrap() >= 2, "configs diffed against their bases");
    // Wide tables fit the page or scroll inside it: nothing is cut off at its right edge, and the
    // page itself never scrolls sideways.
    assert_eq!(dom["pageWidth"], 1400, "the page is as wide as the window");
    for t in dom["tables"].as_array().unwrap() {
        assert!(t["fits"] == true || t["scrolls"] == true, "a table cut off at the right edge: {t}");
    }

    // A screenshot of the whole page, for the issue note.
    let height = dom["height"].as_f64().unwrap().min(12_000.0);
    let shot = cdp.send(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true, "clip": {"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1}}),
    );
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    std::fs::write(&path, &png).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!(img.width(), 1400);
    eprintln!("screenshot: {}", path.display());
    cdp.session = None;
    let _ = cdp.send("Browser.close", json!({}));
}
