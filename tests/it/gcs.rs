//! `inferbench upload` / `results::gcs` against a real GCS emulator (fake-gcs-server), which each
//! test starts on its own free port with its own in-memory buckets. The emulator is installed by
//! `scripts/gcs-emulator --install` (once per test process), so `cargo test` needs no set-up.
//!
//! The endpoint is passed to [`upload_run_to`] explicitly, or to the CLI child process through
//! STORAGE_EMULATOR_HOST: the environment of this process is shared by tests running in parallel.

use std::{
    collections::BTreeMap,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use inferbench::results::gcs::{UploadError, UploadReport, upload_run_to};

/// The fake-gcs-server binary, installed on first use by the project's script (as CI does).
fn emulator_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::common::script::binary("gcs-emulator", "--install"))
}

/// A running emulator; killed when dropped.
struct Emulator {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Emulator {
    /// Starts an emulator holding the (empty) `buckets`, and waits until it says it serves.
    fn start(buckets: &[&str]) -> Self {
        let bin = emulator_binary();
        let data = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir(data.path().join(b)).unwrap();
        }
        // A free port can be taken by someone else before the emulator binds it: then the emulator
        // exits, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(bin)
                .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string()])
                .args(["-backend", "memory", "-data"])
                .arg(data.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Ready when it logs "server started at …"; the log ends (it exited) when the port was
            // taken. The rest of its log is drained so it never blocks on a full pipe.
            let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
            let mut line = String::new();
            let ready = loop {
                line.clear();
                match std::io::BufRead::read_line(&mut log, &mut line) {
                    Ok(0) | Err(_) => break false,
                    Ok(_) if line.contains("server started at") => break true,
                    Ok(_) => {}
                }
            };
            if ready {
                std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
                return Self { child, port, _data: data };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("fake-gcs-server ({}) did not start", bin.display());
    }

    /// The `host:port` form of STORAGE_EMULATOR_HOST.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every object in `bucket` under `prefix`, name → bytes, read back over the JSON API.
    async fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let list: serde_json::Value = reqwest::get(format!("{}/storage/v1/b/{bucket}/o?prefix={prefix}", self.url()))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut objects = BTreeMap::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap().to_owned();
            let url = format!("{}/storage/v1/b/{bucket}/o/{}?alt=media", self.url(), name.replace('/', "%2F"));
            let body = reqwest::get(url).await.unwrap().error_for_status().unwrap().bytes().await.unwrap();
            objects.insert(name, body.to_vec());
        }
        objects
    }

    /// Whether the emulator has `bucket`.
    async fn has_bucket(&self, bucket: &str) -> bool {
        let r = reqwest::get(format!("{}/storage/v1/b/{bucket}", self.url())).await.unwrap();
        r.status().is_success()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (just released by the OS).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `n` bytes that do not compress and differ from offset to offset (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A run folder `{root}/{run_id}/` as a run leaves it, plus the in-progress state a run can leave
/// (a lock file, a staging folder, a hidden file in a benchmark folder). Returns the folder and
/// the files that must be uploaded (relative path → bytes).
fn make_run(root: &Path, run_id: &str) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let dir = root.join(run_id);
    let b = format!("bench-{run_id}");
    let files: BTreeMap<String, Vec<u8>> = [
        ("run.json".to_owned(), br#"{"run_id": "x"}"#.to_vec()),
        (format!("{b}/benchmark.pbtxt"), b"name: \"bench\"\n".to_vec()),
        (format!("{b}/manifests/00-namespace.yaml"), b"kind: Namespace\n".to_vec()),
        (format!("{b}/results/empty.json"), Vec::new()),
        (format!("{b}/results/requests.jsonl.zst"), noise(3 * 1024 * 1024 + 17, 7)),
    ]
    .into_iter()
    .collect();
    for (rel, bytes) in &files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::write(dir.join(".run.json.lock"), b"").unwrap();
    std::fs::create_dir_all(dir.join(".x.tmp/results")).unwrap();
    std::fs::write(dir.join(".x.tmp/results/summary.json"), b"{}").unwrap();
    std::fs::write(dir.join(format!("{b}/manifests/.00-namespace.yaml.swp")), b"x").unwrap();
    (dir, files)
}

/// Progress calls, recorded.
#[derive(Default)]
struct Progress(Mutex<Vec<(usize, usize, String, bool)>>);

impl Progress {
    fn record(&self) -> impl Fn(usize, usize, &str, bool) + Send + Sync + '_ {
        |done, total, rel, skipped| self.0.lock().unwrap().push((done, total, rel.to_owned(), skipped))
    }

    fn take(&self) -> Vec<(usize, usize, String, bool)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn total_bytes(files: &BTreeMap<String, Vec<u8>>) -> u64 {
    files.values().map(|b| b.len() as u64).sum()
}

#[tokio::test]
async fn uploads_every_visible_file_with_identical_bytes_and_no_hidden_ones() {
    let emu = Emulator::start(&["results"]);
    let root = tempfile::tempdir().unwrap();
    let (dir, files) = make_run(root.path(), "a1b2c3d4");
    let progress = Progress::default();

    let report = upload_run_to(Some(&emu.host()), &dir, "results", &progress.record()).await.unwrap();

    assert_eq!(report, UploadReport { uploaded: 5, skipped: 0, bytes_uploaded: total_bytes(&files) });
    let expected: BTreeMap<String, Vec<u8>> =
        files.iter().map(|(rel, b)| (format!("a1b2c3d4/{rel}"), b.clone())).collect();
    let stored = emu.objects("results", "").await;
    assert_eq!(stored.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "exactly the visible files");
    for (name, bytes) in &expected {
        assert!(
            stored[name] == *bytes,
            "{name}: stored bytes differ ({} vs {} bytes)",
            stored[name].len(),
            bytes.len()
        );
    }
    let mut calls = progress.take();
    assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "done counts in order");
    assert!(calls.iter().all(|c| c.1 == 5 && !c.3), "{calls:?}");
    calls.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(
        calls.iter().map(|c| c.2.as_str()).collect::<Vec<_>>(),
        files.keys().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_second_upload_skips_everything_and_a_changed_file_alone_is_sent_again() {
    let emu = Emulator::start(&["results"]);
    let root = tempfile::tempdir().unwrap();
    let (dir, files) = make_run(root.path(), "0000beef");
    let progress = Progress::default();
    upload_run_to(Some(&emu.host()), &dir, "results", &progress.record()).await.unwrap();
    progress.take();

    let again = upload_run_to(Some(&emu.url()), &dir, "gs://results/", &progress.record()).await.unwrap();
    assert_eq!(again, UploadReport { uploaded: 0, skipped: 5, bytes_uploaded: 0 });
    assert!(progress.take().iter().all(|c| c.3), "every file reported as skipped");

    // Same size, different bytes: only the checksum tells them apart.
    let rel = "bench-0000beef/manifests/00-namespace.yaml";
    let changed = b"kind: Namesp4ce\n".to_vec();
    assert_eq!(changed.len(), files[rel].len());
    std::fs::write(dir.join(rel), &changed).unwrap();

    let third = upload_run_to(Some(&emu.host()), &dir, "results", &progress.record()).await.unwrap();
    assert_eq!(third, UploadReport { uploaded: 1, skipped: 4, bytes_uploaded: changed.len() as u64 });
    let sent: Vec<String> = progress.take().into_iter().filter(|c| !c.3).map(|c| c.2).collect();
    assert_eq!(sent, [rel]);
    assert_eq!(emu.objects("results", "0000beef/").await[&format!("0000beef/{rel}")], changed);
}

/// The objects already there are listed page by page (1 000 a page): a run with more files than
/// one page is skipped whole the second time.
#[tokio::test]
async fn a_run_larger_than_one_listing_page_is_skipped_whole() {
    let emu = Emulator::start(&["results"]);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("b16b00b5");
    std::fs::create_dir_all(dir.join("bench/lpg")).unwrap();
    std::fs::write(dir.join("run.json"), b"{}").unwrap();
    for i in 0..1030 {
        std::fs::write(dir.join(format!("bench/lpg/rate-{i:04}.json")), i.to_string()).unwrap();
    }
    let first = upload_run_to(Some(&emu.host()), &dir, "results", &|_, _, _, _| {}).await.unwrap();
    assert_eq!((first.uploaded, first.skipped), (1031, 0));

    let second = upload_run_to(Some(&emu.host()), &dir, "results", &|_, _, _, _| {}).await.unwrap();
    assert_eq!(second, UploadReport { uploaded: 0, skipped: 1031, bytes_uploaded: 0 });
}

#[tokio::test]
async fn a_missing_bucket_is_named_and_nothing_is_uploaded() {
    let emu = Emulator::start(&["results"]);
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = make_run(root.path(), "deadbeef");
    let progress = Progress::default();

    let err = upload_run_to(Some(&emu.host()), &dir, "no-such-bucket", &progress.record()).await.unwrap_err();

    assert!(matches!(err, UploadError::BucketNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("\"no-such-bucket\" does not exist"), "{msg}");
    assert!(progress.take().is_empty());
    assert!(!emu.has_bucket("no-such-bucket").await, "an upload would have created it on the emulator");
    assert!(emu.objects("results", "").await.is_empty());
}

#[tokio::test]
async fn an_endpoint_nobody_listens_on_is_named_within_seconds() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = make_run(root.path(), "cafe0001");
    let host = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();

    let err = upload_run_to(Some(&host), &dir, "results", &|_, _, _, _| {}).await.unwrap_err();

    let took = started.elapsed();
    assert!(matches!(err, UploadError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("could not connect to the GCS endpoint http://{host}")), "{msg}");
    assert!(msg.contains("STORAGE_EMULATOR_HOST"), "{msg}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// An endpoint that never answers the connection (a listener whose accept queue is full drops
/// SYNs) is reported in bounded time, not after the OS's minutes-long connect timeout.
#[tokio::test]
async fn an_endpoint_that_never_answers_fails_in_bounded_time() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = make_run(root.path(), "cafe0002");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue (never accepted) until a connection attempt goes unanswered.
    let mut held = Vec::new();
    let filled = (0..16).any(|_| match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        Ok(s) => {
            held.push(s);
            false
        }
        Err(_) => true,
    });
    assert!(filled, "could not fill the accept queue of {addr}");
    let started = Instant::now();

    let err = upload_run_to(Some(&addr.to_string()), &dir, "results", &|_, _, _, _| {}).await.unwrap_err();

    let took = started.elapsed();
    let msg = err.to_string();
    assert!(msg.contains(&format!("could not connect to the GCS endpoint http://{addr} (no answer")), "{msg}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    drop(listener);
}

fn inferbench(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_inferbench"));
    cmd.args(args).env_remove("STORAGE_EMULATOR_HOST").env_remove("INFERBENCH_GCS_BUCKET").env_remove("gcs_bucket");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_cli_uploads_a_run_and_prints_the_totals() {
    let emu = Emulator::start(&["results"]);
    let root = tempfile::tempdir().unwrap();
    let (dir, files) = make_run(root.path(), "feed0001");
    let dir_s = dir.to_str().unwrap();

    let out = inferbench(&["upload", dir_s, "--gcs-bucket", "results"], &[("STORAGE_EMULATOR_HOST", &emu.url())]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some(
            format!(
                "uploaded 5 files ({} bytes), skipped 0 already there → gs://results/feed0001/",
                total_bytes(&files)
            )
            .as_str()
        ),
        "{stdout}"
    );
    assert!(stderr.contains("[5/5] "), "a progress line per file: {stderr}");

    // The bucket from the seed's variable, the emulator as host:port.
    let out = inferbench(&["upload", dir_s], &[("STORAGE_EMULATOR_HOST", &emu.host()), ("gcs_bucket", "results")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout.lines().last(),
        Some("uploaded 0 files (0 bytes), skipped 5 already there → gs://results/feed0001/")
    );
}

#[test]
fn the_cli_rejects_a_folder_that_is_not_a_run() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("notes.txt"), "x").unwrap();
    // Nothing listens there: the folder is rejected before any request.
    let host = format!("127.0.0.1:{}", free_port());
    let out = inferbench(
        &["upload", root.path().to_str().unwrap(), "--gcs-bucket", "results"],
        &[("STORAGE_EMULATOR_HOST", &host)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{} is not a run folder: it has no run.json", root.path().display())), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_a_bucket_uploads_its_results_and_a_resumed_run_skips_them() {
    let emu = Emulator::start(&["results"]);
    let root = tempfile::tempdir().unwrap();
    let catalog = root.path().join("c.pbtxt");
    std::fs::write(
        &catalog,
        r#"benchmarks {
  name: "up"
  config {
    model_server { accelerator: "nvidia-l4" simulator { model: "meta-llama/Llama-2-7b-hf" time_scale: 0.01 } }
    load_balancer { k8s_service {} }
    benchmark_tool { load { num_prompts: 5 rates { request_rates: [50] } dataset { synthetic { input { mean: 16 } output { mean: 4 } } } } }
  }
}
"#,
    )
    .unwrap();
    let out_dir = root.path().join("output");
    let (cat, out) = (catalog.to_str().unwrap().to_owned(), out_dir.to_str().unwrap().to_owned());
    let run = |extra: Vec<String>| {
        let (cat, out, host) = (cat.clone(), out.clone(), emu.host());
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["run".to_owned(), cat, "--output".into(), out, "--run-id".into(), "cafe0001".into()];
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            inferbench(&args, &[("STORAGE_EMULATOR_HOST", &host), ("gcs_bucket", "results")])
        })
    };
    let o = run(vec![]).await.unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("skipped 0 already there → gs://results/cafe0001/"), "{stdout}");
    let objects = emu.objects("results", "cafe0001/").await;
    let summary = "cafe0001/up-cafe0001/results/summary.json";
    assert_eq!(objects[summary], std::fs::read(out_dir.join("cafe0001/up-cafe0001/results/summary.json")).unwrap());
    assert!(
        objects.contains_key("cafe0001/run.json") && objects.contains_key("cafe0001/up-cafe0001/manifests/SHA256SUMS")
    );
    assert!(objects.keys().all(|k| !k.contains("/.")), "no hidden files: {:?}", objects.keys());

    // Resumed: the benchmark is done, and the upload only sends what changed (run.json).
    let o = run(vec![]).await.unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("[up] done before: results exist, skipped"), "{stdout}");
    let files = objects.len();
    assert!(
        stdout.contains("uploaded 1 files") && stdout.contains(&format!("skipped {} already there", files - 1)),
        "{stdout}"
    );

    // A bucket that does not exist is found out before any benchmark runs.
    let o = run(vec!["--gcs-bucket".into(), "no-such-bucket".into()]).await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-bucket") && stderr.contains("no benchmark was run"), "{stderr}");
    assert!(!stdout.contains("[up]"), "{stdout}");
}
