//! `inferbench load --workers N` against the simulator: N processes send together, request for
//! request, what one sends; their results merge exactly; a worker killed mid-stage leaves a
//! partial stage that says which and what was lost; bad input is refused before anything runs.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use clap::Parser;
use inferbench::{cli::sim_cmd::SimArgs, sim::Server};

use crate::common::results::{records, sent};

const BIN: &str = env!("CARGO_BIN_EXE_inferbench");
const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    sim: SimArgs,
}

async fn sim(args: &[&str]) -> Server {
    let argv = std::iter::once("sim").chain(args.iter().copied());
    let args = Flags::try_parse_from(argv).unwrap().sim;
    Server::bind(args.to_config().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn load(url: &str, out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["load", "--url", url, "--models", MODEL, "--output-dir", out.to_str().unwrap()]).args(args);
    c.env_remove("INFERBENCH_URL");
    c
}

async fn output(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// A histogram (µs, 3 digits: the engine's) of `field` over the records of `stage`.
fn histogram(
    recs: &[serde_json::Value],
    stage: &str,
    field: impl Fn(&serde_json::Value) -> Option<u64>,
) -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for r in recs.iter().filter(|r| r["stage"] == stage && r.get("error").is_none()) {
        if let Some(v) = field(r) {
            h.record(v.max(1)).unwrap();
        }
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_send_what_one_sends_and_their_merge_is_exact() {
    let s = sim(&["--time-scale", "0.02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (one, three) = (dir.path().join("one"), dir.path().join("three"));
    let args = ["--request-rate", "30,60", "--benchmark-time-seconds", "1.5", "--seed", "11"];
    let o = output(load(&s.url(), &one, &args)).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = output(load(&s.url(), &three, &[&args[..], &["--workers", "3"]].concat())).await;
    assert!(o.status.success(), "{}", text(&o));
    let shown = text(&o);
    assert!(shown.contains("start skew between workers") && shown.contains("client CPU   dropped"), "{shown}");

    // The same requests: the same prompts on the same intended times, stage by stage.
    let (a, b) = (sent(&one), sent(&three));
    assert!(a.len() > 100, "{}", a.len());
    assert_eq!(a, b, "3 workers sent, request for request, what one sent");

    // One summary, merged exactly: histograms equal the ones built from the merged records.
    let recs = records(&three);
    let sum = summary(&three);
    for stage in sum["stages"].as_array().unwrap() {
        let name = stage["name"].as_str().unwrap();
        let workers = stage["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 3, "{name}");
        let sent_by_workers: u64 = workers.iter().map(|w| w["sent"].as_u64().unwrap_or(0)).sum();
        assert_eq!(stage["counts"]["sent"].as_u64().unwrap(), sent_by_workers, "{name}");
        assert!(stage.get("partial").is_none(), "{name}");
        // The arrival process is tested once, on the whole schedule, as one process tests it.
        let checks = stage["verdict"]["checks"].as_array().unwrap();
        let arrivals: Vec<&serde_json::Value> = checks.iter().filter(|c| c["name"] == "arrivals").collect();
        assert_eq!(arrivals.len(), 1, "{name}: {checks:?}");
        assert_eq!(arrivals[0]["passed"], true, "{name}: {:?}", arrivals[0]);
        // The server's own counters (read once every worker's answers were in) hold every
        // merged request.
        assert_eq!(stage["server_agreement"]["agrees"], true, "{name}: {}", stage["server_agreement"]);
        for (field, hist) in [
            ("e2e_ms", histogram(&recs, name, |r| r["end_us"].as_u64())),
            ("ttft_ms", histogram(&recs, name, |r| r["first_token_us"].as_u64())),
            ("schedule_lag_ms", histogram(&recs, name, |r| Some(r["sent_us"].as_u64()? - r["intended_us"].as_u64()?))),
            ("output_tokens", histogram(&recs, name, |r| r["output_tokens"].as_u64())),
        ] {
            let d = &stage[field];
            // In the histogram's own unit (µs or tokens): summary.json writes ms.
            let scale = if field.ends_with("_ms") { 1e3 } else { 1.0 };
            assert_eq!(d["count"].as_u64().unwrap(), hist.len(), "{name} {field} count");
            for (p, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
                let got = (d[p].as_f64().unwrap() * scale).round() as u64;
                assert_eq!(got, hist.value_at_quantile(q), "{name} {field} {p}: exact, not an average of workers'");
            }
        }
    }
    // The merged run is recorded in the results history, a worker's part is not.
    assert!(dir.path().join("history.db").is_file() && !three.join("workers/history.db").exists());
    // Each worker's own results are kept beside the merge.
    for k in 0..3 {
        assert!(three.join(format!("workers/{k}/summary.json")).exists());
        assert!(three.join(format!("workers/{k}/shards.json")).exists());
    }
}

/// The pid of the worker process `k` of the run writing to `out` (its command line names its gate).
fn worker_pid(out: &Path, k: u32) -> Option<i32> {
    let gate = out.join(format!("workers/.gate-{k}"));
    let gate = gate.to_str().unwrap();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.contains(&gate.as_bytes()).then_some(pid)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stage_leaves_a_partial_stage_that_says_which_and_what_was_lost() {
    let s = sim(&["--time-scale", "0.02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("r");
    let child = load(&s.url(), &out, &["--request-rate", "40", "--benchmark-time-seconds", "6", "--workers", "3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The stage has started once the platform has given worker 1 its instant.
    let started = out.join("workers/.gate-1/start-1");
    let pid = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !started.exists() {
            assert!(std::time::Instant::now() < deadline, "the stage never started");
            std::thread::yield_now();
        }
        worker_pid(&out, 1).expect("worker 1 runs")
    })
    .await
    .unwrap();
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::KILL).unwrap();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(!o.status.success(), "a partial run is not a success: {}", text(&o));
    let out = dir.path().join("r");
    let stage = &summary(&out)["stages"][0];
    let partial = &stage["partial"];
    assert_eq!(partial["missing_workers"], serde_json::json!([1]), "{stage}");
    let unsent = partial["unsent_arrivals"].as_u64().unwrap();
    assert!((40..=120).contains(&unsent), "worker 1's third of ~240 arrivals: {unsent}");
    let reason = partial["reason"].as_str().unwrap();
    assert!(
        reason.contains("worker 1 (its process signal: 9 (SIGKILL))") && reason.contains(&format!("{unsent} arrivals")),
        "{reason}"
    );
    assert_eq!(stage["verdict"]["delivered"], false);
    assert_eq!(stage["workers"][1]["missing"], true);
    let others: u64 = [0, 2].iter().map(|k| stage["workers"][k]["sent"].as_u64().unwrap()).sum();
    assert_eq!(stage["counts"]["sent"].as_u64().unwrap(), others, "the figures are the other workers'");
    assert!(text(&o).contains(reason), "said on the terminal too: {}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_worker_counts_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let url = "http://127.0.0.1:9";
    let cases: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("workers 0: expected 1…1024 load workers", vec!["--request-rate", "1", "--workers", "0"]),
        ("workers 1025: expected 1…1024 load workers", vec!["--request-rate", "1", "--workers", "1025"]),
        ("concurrency.users 3 is fewer than workers 5", vec!["--users", "3", "--workers", "5"]),
    ]);
    for (said, args) in cases {
        let o = output(load(url, &out, &args)).await;
        assert!(!o.status.success() && text(&o).contains(said), "{args:?}: {}", text(&o));
        assert!(!out.exists(), "{args:?}: nothing written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_users_than_one_process_can_connect_are_refused_before_the_run_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut hard = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) }, 0);
    let users = (hard.rlim_max.min(1 << 20) + 1000).to_string();
    let o = output(load("http://127.0.0.1:9", &out, &["--users", &users, "--benchmark-time-seconds", "1"])).await;
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains(&format!("{users} users need up to {users} open connections")) && t.contains("--workers"),
        "{t}"
    );
    assert!(!out.exists(), "refused before anything ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peers_files_of_a_merged_run_are_written_from_the_merged_figures() {
    let s = sim(&["--time-scale", "0.02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, cwd) = (dir.path().join("out"), dir.path().join("cwd"));
    std::fs::create_dir(&cwd).unwrap();
    let spec = dir.path().join("load.pbtxt");
    std::fs::write(&spec, "outputs { vllm_bench_json: true inference_perf_json: true }\n").unwrap();
    let mut c =
        load(&s.url(), &out, &["--spec", spec.to_str().unwrap(), "--request-rate", "40", "--num-prompts", "30"]);
    c.args(["--workers", "3", "--save-json-results"]).current_dir(&cwd);
    let o = output(c).await;
    assert!(o.status.success(), "{}", text(&o));
    let json = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    let only = |d: PathBuf| -> PathBuf {
        let files = names(&d);
        assert_eq!(files.len(), 1, "{}: {files:?}", d.display());
        d.join(&files[0])
    };
    let counts = &summary(&out)["stages"][0]["counts"];
    let sent = counts["sent"].as_u64().unwrap();
    assert_eq!(sent, 30, "{counts}");
    let vllm = json(&only(out.join("vllm-bench")));
    assert_eq!((vllm["num_prompts"].as_u64(), vllm["completed"].as_u64()), (Some(sent), counts["succeeded"].as_u64()));
    // LPG's: one file for the model and one weighted over the models, in LPG's own place too.
    let lpg = names(&out.join("lpg"));
    assert_eq!(lpg.len(), 2, "{lpg:?}");
    assert_eq!(names(&cwd), lpg, "LPG's own place has the same files");
    for name in &lpg {
        let v = json(&out.join("lpg").join(name));
        assert_eq!(v["metrics"]["num_prompts_attempted"].as_u64(), Some(sent), "{name}: {v}");
        assert_eq!(json(&cwd.join(name)), v, "{name}");
    }
    let ip = json(&only(out.join("inference-perf")));
    assert!(ip.get("successes").is_some(), "{ip}");
    // A worker's share is not written as a peer's file.
    for k in 0..3 {
        for peer in ["lpg", "vllm-bench", "inference-perf"] {
            assert!(!out.join(format!("workers/{k}/{peer}")).exists(), "worker {k} wrote {peer}");
        }
    }
}
