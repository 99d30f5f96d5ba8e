//! The binary and the seed's scripts, as a user runs them.

use std::{
    path::Path,
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_inferbench");

fn inferbench(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in [
        "run_id",
        "dry_run",
        "gcs_bucket",
        "skip_tear_down",
        "benchmark_name_regex",
        "regex",
        "benchmarks",
        "output_dir",
    ] {
        c.env_remove(var);
    }
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn script(name: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)).env("INFERBENCH_BIN", BIN);
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn dirs(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn validate_accepts_the_shipped_catalogs_and_rejects_a_bad_one_with_its_place() {
    let o = inferbench(&["catalog", "validate"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("ok: 16 benchmarks (0 abstract) in 2 files"), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pbtxt");
    std::fs::write(&bad, "benchmarks {\n  name: \"x\"\n  config { model_server { replicas: \"2\" } }\n}\n").unwrap();
    let o = inferbench(&["catalog", "validate", bad.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: {}:3:37: not a valid Benchmarks text-format message: expected an integer, but found '\"2\"'\n1 error\n",
            bad.display()
        )
    );
}

#[test]
fn show_prints_a_benchmark_as_written_or_resolved() {
    let args = ["catalog", "show", "new-benchmark", "tests/fixtures/seed-example.pbtxt"];
    let o = inferbench(&args, &[]);
    assert!(o.status.success());
    let written = text(&o);
    assert!(written.starts_with("# tests/fixtures/seed-example.pbtxt:37:1\nname: \"new-benchmark\""), "{written}");
    assert!(!written.contains("vllm"));
    let o = inferbench(&[&args[..], &["--resolved"]].concat(), &[]);
    let resolved = text(&o);
    assert!(resolved.contains("replicas: 2") && resolved.contains("model: \"meta-llama/Llama-2-7b-hf\""), "{resolved}");
    let o = inferbench(&["catalog", "show", "nope", "tests/fixtures/seed-example.pbtxt"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("known: base-benchmark, new-benchmark"));
}

#[test]
fn the_seed_generate_script_works_unchanged_with_its_variables() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap();
    let env = [
        ("benchmarks", "benchmarks"),
        ("benchmark_name_regex", ".*h100.*"),
        ("run_id", "abc12345"),
        ("output_dir", out_s),
    ];
    let o = script("generate_manifests.bash", &env);
    assert!(o.status.success(), "{}", text(&o));
    let got = dirs(&out.path().join("abc12345"));
    assert!(!got.is_empty());
    assert!(got.iter().all(|d| d.contains("h100") && d.ends_with("-abc12345")), "{got:?}");
    assert!(got.contains(&"llama2-7b-h100-r8-epp-abc12345".to_owned()));
    assert!(!got.iter().any(|d| d.contains("a100") || d.contains("l4")));
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("abc12345/run.json")).unwrap()).unwrap();
    assert_eq!(run["run_id"], "abc12345");
    assert_eq!(run["benchmarks"]["llama2-7b-h100"]["state"], "pending");
    let states = |run: &serde_json::Value, state: &str| {
        run["benchmarks"].as_object().unwrap().values().filter(|b| b["state"] == state).count()
    };
    assert_eq!(states(&run, "pending"), got.len());
    assert!(states(&run, "skipped") > 0, "the others are recorded as left out");
    assert_eq!(states(&run, "pending") + states(&run, "skipped"), run["benchmarks"].as_object().unwrap().len());

    // Resume: the same run id reuses and verifies every snapshot.
    let o = script("generate_manifests.bash", &env);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("exists, verified, reused").count(), got.len(), "{}", text(&o));
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("abc12345/run.json")).unwrap()).unwrap();
    assert_eq!(run["invocations"].as_array().unwrap().len(), 2);
}

#[test]
fn an_unanchored_name_regex_gets_a_hint() {
    let out = tempfile::tempdir().unwrap();
    let o = inferbench(
        &[
            "generate",
            "--benchmarks",
            "benchmarks",
            "--benchmark-name-regex",
            "h100",
            "--output",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(
            "no benchmark selected (the regex must match the whole name: for names containing 'h100', use '.*h100.*')"
        ),
        "{}",
        text(&o)
    );
}

#[test]
fn the_run_script_dry_runs_then_runs_with_the_seed_variables() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap();
    let o = script(
        "run_benchmarks_file.bash",
        &[("benchmarks", "quickstart"), ("dry_run", "true"), ("run_id", "dry00001"), ("output_dir", out_s)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        dirs(&out.path().join("dry00001")),
        ["quickstart-sim-chat-dry00001", "quickstart-sim-dry00001", "quickstart-sim-r2-dry00001"]
    );
    assert!(!out.path().join("dry00001/quickstart-sim-dry00001/results").exists());

    // The same run for real, one benchmark of it, on the local platform.
    let o = script(
        "run_benchmarks_file.bash",
        &[
            ("benchmarks", "quickstart"),
            ("dry_run", "false"),
            ("run_id", "dry00001"),
            ("benchmark_name_regex", "quickstart-sim-chat"),
            ("skip_tear_down", "true"),
            ("output_dir", out_s),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("deployments kept until the run ends"), "{}", text(&o));
    assert!(out.path().join("dry00001/quickstart-sim-chat-dry00001/results/summary.json").is_file());
    assert!(!out.path().join("dry00001/quickstart-sim-dry00001/results").exists(), "not selected");

    // The kube platform with no cluster configured: said before anything runs.
    let no_cluster = [("KUBECONFIG", "/nonexistent/kubeconfig")];
    let o = inferbench(&["run", "--benchmarks", "quickstart", "--platform", "kube", "--output", out_s], &no_cluster);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no Kubernetes configuration") && text(&o).contains("no benchmark was run"),
        "{}",
        text(&o)
    );
    // The report of this partial run, by its id under --output: one benchmark done, two skipped.
    let o = inferbench(&["report", "dry00001", "--output", out_s], &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for cell in ["quickstart-sim-chat", "users-16", "done", "quickstart-sim-r2", "skipped"] {
        assert!(t.contains(cell), "{cell:?} in:\n{t}");
    }
    assert!(out.path().join("dry00001/report/index.html").is_file());
}

#[test]
fn a_tampered_snapshot_fails_the_next_generate_naming_the_file() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap();
    let args = ["generate", "tests/fixtures/seed-example.pbtxt", "--run-id", "tamp0001", "--output", out_s];
    assert!(inferbench(&args, &[]).status.success());
    let f = out.path().join("tamp0001/new-benchmark-tamp0001/manifests/10-model-server.yaml");
    let mut s = std::fs::read_to_string(&f).unwrap();
    s = s.replace("replicas: 2", "replicas: 3");
    std::fs::write(&f, s).unwrap();
    let o = inferbench(&args, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!(
            "error: new-benchmark: snapshot was modified: {} does not match its checksum",
            f.display()
        )),
        "{}",
        text(&o)
    );
    let o = inferbench(&[&args[..], &["--overwrite-snapshot"]].concat(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(&f).unwrap().contains("replicas: 2"));
}

#[test]
fn a_generate_killed_mid_write_leaves_only_whole_snapshots_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("many.pbtxt");
    let mut catalog = String::new();
    for i in 0..150 {
        catalog += &format!(
            "benchmarks {{ name: \"b{i}\" config {{ model_server {{ accelerator: \"nvidia-l4\" simulator {{ model: \"meta-llama/Llama-2-7b-hf\" }} }} benchmark_tool {{ load {{ rates {{ request_rates: [1] }} }} }} }} }}\n"
        );
    }
    std::fs::write(&cat, catalog).unwrap();
    let out = dir.path().join("out");
    let args = ["generate", cat.to_str().unwrap(), "--run-id", "kill0001", "--output", out.to_str().unwrap()];
    let mut child = Command::new(BIN).args(args).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Wait until it is writing (a temporary snapshot folder exists), then kill it hard.
    let run_dir = out.join("kill0001");
    let writing = || {
        std::fs::read_dir(&run_dir)
            .map(|rd| rd.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().contains(".tmp.")))
            .unwrap_or(false)
    };
    while !writing() {
        assert!(child.try_wait().unwrap().is_none(), "generate finished before it could be interrupted");
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // It was interrupted: staged folders are left, or not every snapshot is in place.
    let left = dirs(&run_dir);
    assert!(left.iter().any(|d| d.contains(".tmp.")) || left.len() < 150, "the kill came too late: {}", left.len());
    // Whatever is in place is whole.
    for d in left.iter().filter(|d| !d.starts_with('.')) {
        inferbench::snapshot::verify(&run_dir.join(d)).unwrap_or_else(|e| panic!("{d}: {e}"));
    }
    // Resuming completes the run and cleans the debris.
    let o = inferbench(&args, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let all = dirs(&run_dir);
    assert_eq!(all.len(), 150, "{:?}", all.iter().filter(|d| d.starts_with('.')).collect::<Vec<_>>());
    for d in &all {
        inferbench::snapshot::verify(&run_dir.join(d)).unwrap();
    }
}

#[test]
fn validate_reports_a_broken_chain_and_other_benchmarks_errors_together() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mine.pbtxt");
    std::fs::write(
        &f,
        "benchmarks { name: \"a\" base_benchmark_name: \"missing\" }\nbenchmarks { name: \"b\" config { model_server { accelerator: \"nvidia-l4\" vllm { model: \"m\" } } benchmark_tool { lpg { request_rates: \"1,x\" } } } }\n",
    )
    .unwrap();
    let o = inferbench(&["catalog", "validate", f.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(
            ":1:24: benchmarks[0].base_benchmark_name (benchmark \"a\"): base benchmark \"missing\" is not defined"
        ),
        "{e}"
    );
    assert!(e.contains(":2:118: benchmarks[1].config.benchmark_tool.lpg.request_rates (benchmark \"b\"): expected comma-separated rates"), "{e}");
    assert!(e.ends_with("2 errors\n"), "{e}");
}

#[test]
fn dev_pauses_reports_each_core_and_rejects_a_bad_duration() {
    let o = inferbench(&["dev", "pauses", "--seconds", "0.05"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    // The cores this test may run on (the child inherits them).
    let allowed = rustix::thread::sched_getaffinity(None).unwrap();
    assert_eq!(lines.len(), allowed.count() as usize, "a line per core: {out}");
    for l in lines {
        let core: usize = l.strip_prefix("core ").and_then(|r| r.split(':').next()?.parse().ok()).unwrap();
        assert!(allowed.is_set(core) && l.contains(" in 0.1 s, "), "{l}");
    }
    let bad = inferbench(&["dev", "pauses", "--seconds", "0"], &[]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("--seconds must be in (0, 3600], not 0"), "{}", text(&bad));
}
