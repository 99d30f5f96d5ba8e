//! The results history: runs land in `output/history.db` at their end; `history import`, `list`,
//! `trend`, `check` (the regression gate) and `sql` answer from it; bad input is one clear line
//! and writes nothing. The same commands against the Cloud Spanner emulator are in `spanner`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::common::{
    run::{BIN, Run, text},
    spanner::Emulator,
};

/// `inferbench ARGS` in `cwd`, without the variables a developer's shell may have set.
pub fn inferbench(args: &[&str], cwd: &Path) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(cwd);
    for v in ["INFERBENCH_RUN_ID", "run_id", "INFERBENCH_OUTPUT", "output_dir", "INFERBENCH_HISTORY"] {
        c.env_remove(v);
    }
    c.output().unwrap()
}

/// One simulated benchmark; `time_scale` slows its simulated hardware. Its latencies (tens of
/// ms and more) dwarf the host's jitter, so two runs of it agree within --min-change.
fn catalog(time_scale: f64) -> String {
    format!(
        r#"benchmarks {{
  name: "gate"
  config {{
    model_server {{
      accelerator: "nvidia-l4"
      replicas: 1
      simulator {{ model: "meta-llama/Llama-2-7b-hf" time_scale: {time_scale} seed: 1 }}
    }}
    load_balancer {{ k8s_service {{}} }}
    benchmark_tool {{ load {{
      dataset {{ synthetic {{ input {{ mean: 128 }} output {{ mean: 24 }} }} }}
      num_prompts: 60
      rates {{ request_rates: [10] }}
    }} }}
  }}
}}
"#
    )
}

/// The run ids under `out`, oldest first (by run.json's creation).
fn run_ids(out: &Path) -> Vec<String> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("run.json").is_file())
        .map(|p| {
            let j: serde_json::Value = serde_json::from_slice(&std::fs::read(p.join("run.json")).unwrap()).unwrap();
            (j["created_at"].as_str().unwrap().to_owned(), p.file_name().unwrap().to_str().unwrap().to_owned())
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

/// `history sql QUERY --csv` on the history at `db`: its output.
pub fn sql(db: &str, query: &str, cwd: &Path) -> String {
    let o = inferbench(&["history", "sql", query, "--csv", "--history", db], cwd);
    assert!(o.status.success(), "{query}: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn a_run_lands_in_the_history_a_rerun_passes_the_gate_and_a_slower_server_fails_it() {
    let r = Run::new(&catalog(0.5));
    let first = r.run(&[]);
    assert!(first.status.success(), "{}", text(&first));
    let db = r.out().join("history.db");
    assert!(db.is_file(), "recorded by itself");
    assert!(text(&first).contains("(1 benchmark(s), 1 stage(s)) recorded in the history"), "{}", text(&first));
    let second = r.run(&[]);
    assert!(second.status.success(), "{}", text(&second));
    let ids = run_ids(&r.out());
    assert_eq!(ids.len(), 2);

    // The second against the first (`latest`): nothing worse; exit 0.
    let o = inferbench(&["history", "check", &ids[1], "--output", r.out().to_str().unwrap()], r.dir());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("compared with run {}", ids[0])) && t.contains("1 stage(s) in both"), "{t}");
    assert!(t.contains("check: nothing got worse beyond noise"), "{t}");
    // A baseline whose client fell short is named: its figures are not those of the load.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let marked = conn
        .execute(
            "UPDATE stages SET load_delivered = 0, load_reasons = 'schedule lag p99 40.0 ms > 10 ms' WHERE run_id = ?1",
            [&ids[0]],
        )
        .unwrap();
    assert_eq!(marked, 1);
    drop(conn);
    let o = inferbench(&["history", "check", &ids[1], "--output", r.out().to_str().unwrap()], r.dir());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "a warning, not a failure: {t}");
    assert!(
        t.contains(&format!("check: warning: run {} ", ids[0]))
            && t.contains("the client did not deliver the configured load (schedule lag p99 40.0 ms > 10 ms)"),
        "{t}"
    );

    // The simulated hardware three times slower: worse, exit 3, naming the stage and figures.
    std::fs::write(r.dir().join("t.pbtxt"), catalog(1.5)).unwrap();
    let slow = r.run(&[]);
    assert!(slow.status.success(), "{}", text(&slow));
    let ids = run_ids(&r.out());
    let o = inferbench(
        &["history", "check", &ids[2], "--baseline", &ids[1], "--output", r.out().to_str().unwrap()],
        r.dir(),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    for figure in ["gate rate-10 TPOT p50", "gate rate-10 e2e p50"] {
        assert!(t.contains(figure), "{figure} named as worse:\n{t}");
    }
    assert!(t.contains("WORSE"), "{t}");

    // The trend of e2e p50 over the three runs: the slow one last and highest.
    let o = inferbench(
        &["history", "trend", "gate", "--metric", "e2e_p50", "--output", r.out().to_str().unwrap()],
        r.dir(),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let rows: Vec<&str> = t.lines().filter(|l| l.contains("rate-10")).collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert!(rows[2].contains(&ids[2]), "oldest first:\n{t}");
    let e2e = |id: &str| -> f64 {
        let v = sql(
            db.to_str().unwrap(),
            &format!("SELECT p50 FROM distributions WHERE run_id = '{id}' AND metric = 'e2e_ms'"),
            r.dir(),
        );
        v.lines().nth(1).unwrap().parse().unwrap()
    };
    let summary = |id: &str| -> f64 {
        let p = r.out().join(id).join(format!("gate-{id}/results/summary.json"));
        let j: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        j["stages"][0]["e2e_ms"]["p50"].as_f64().unwrap()
    };
    for id in &ids {
        assert_eq!(e2e(id), summary(id), "the history holds summary.json's number for {id}");
    }
    assert!(e2e(&ids[2]) > 2.0 * e2e(&ids[1]));

    // Filters: a config field, and the server kind.
    let list = |args: &[&str]| {
        let o = inferbench(&[&["history", "list", "--output", r.out().to_str().unwrap()], args].concat(), r.dir());
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let t = list(&["--where", "model_server.simulator.time_scale=1.5"]);
    assert!(t.contains(&ids[2]) && !t.contains(&ids[0]) && t.contains("1 benchmark run(s)"), "{t}");
    assert!(list(&["--server", "simulator", "--name", "^ga"]).contains("3 benchmark run(s)"));
    assert!(list(&["--server", "vllm"]).contains("0 benchmark run(s)"));

    // The report of the slow run has a history section with the three runs.
    let o = inferbench(&["report", r.out().join(&ids[2]).to_str().unwrap()], r.dir());
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(r.out().join(&ids[2]).join("report/index.html")).unwrap();
    assert!(html.contains("<h2 id=\"history\">History</h2>") && html.contains("id=\"plot-history-gate\""));
    for id in &ids {
        assert!(html.contains(id.as_str()), "run {id} listed in the history plot's caption");
    }

    // The same gate on Spanner (the emulator), the runs imported from their folders.
    let e = Emulator::start();
    let url = e.url("gate");
    let o = on_spanner(&e, &["history", "import", r.out().to_str().unwrap(), "--history", &url], r.dir());
    assert!(o.status.success() && text(&o).contains("3 run(s), 3 stage(s)"), "{}", text(&o));
    let o = on_spanner(&e, &["history", "check", &ids[1], "--history", &url], r.dir());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = on_spanner(&e, &["history", "check", &ids[2], "--history", &url], r.dir());
    assert_eq!(o.status.code(), Some(3), "latest before the slow run is the second: {}", text(&o));
    assert!(text(&o).contains(&format!("compared with run {}", ids[1])), "{}", text(&o));
}

/// A copy of `src` under `dst` (files only, as run folders are).
fn copy_tree(src: &Path, dst: &Path) {
    for e in walkdir::WalkDir::new(src).into_iter().map(Result::unwrap) {
        let to = dst.join(e.path().strip_prefix(src).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Every table and its key.
const DUMP: [(&str, &str); 8] = [
    ("runs", "run_id"),
    ("benchmarks", "run_id, benchmark"),
    ("config_fields", "run_id, benchmark, path"),
    ("stages", "run_id, benchmark, stage"),
    ("stage_errors", "run_id, benchmark, stage, kind"),
    ("distributions", "run_id, benchmark, stage, metric"),
    ("server_metrics", "run_id, benchmark, stage, name"),
    ("figures", "run_id, benchmark, stage, metric"),
];

/// Every table's rows, in key order: the whole history as text.
pub fn dump(db: &str, cwd: &Path) -> String {
    let mut out = String::new();
    for (table, key) in DUMP {
        out.push_str(&sql(db, &format!("SELECT * FROM {table} ORDER BY {key}"), cwd));
    }
    out
}

/// The report tests' runs (fast, slow and an LPG copy) in a fresh folder.
fn imported_runs(name: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let r = crate::report::runs();
    let root = r.root.join("history").join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (fast, slow) = (root.join("fast0001"), root.join("slow0001"));
    copy_tree(&r.fast, &fast);
    copy_tree(&r.slow, &slow);
    // The original tool's layout: no run.json, LPG files only.
    let old = root.join("abcd0001");
    let lpg = old.join("one-abcd0001/results/json");
    std::fs::create_dir_all(&lpg).unwrap();
    std::fs::copy(fast.join("one-fast0001/benchmark.pbtxt"), old.join("one-abcd0001/benchmark.pbtxt")).unwrap();
    for e in std::fs::read_dir(fast.join("one-fast0001/results/lpg")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, lpg.join(p.file_name().unwrap())).unwrap();
    }
    (root, fast, slow, old)
}

#[test]
fn import_is_idempotent_concurrent_safe_and_refuses_bad_input_whole() {
    let (root, fast, slow, old) = imported_runs("import");
    let db = root.join("h.db");
    let dbs = db.to_str().unwrap();
    let o = inferbench(&["history", "import", fast.to_str().unwrap(), old.to_str().unwrap(), "--history", dbs], &root);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("imported run fast0001 (6 benchmark(s), 6 stage(s))"), "{t}");
    assert!(t.contains("imported run abcd0001 (1 benchmark(s), 2 stage(s))"), "{t}");
    let before = dump(dbs, &root);
    assert!(before.contains("fast0001,one,meta-llama/Llama-2-7b-hf") || before.contains("fast0001,one,"), "{before}");
    let o = inferbench(&["history", "import", fast.to_str().unwrap(), "--history", dbs], &root);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(dump(dbs, &root), before, "importing the same run again changes nothing");

    // What the history holds is what the run folder holds.
    let kinds = sql(dbs, "SELECT run_id, kind, tool_version FROM runs ORDER BY run_id", &root);
    assert!(kinds.contains("abcd0001,lpg,latency-profile-generator") && kinds.contains("fast0001,run,"), "{kinds}");
    let states = sql(
        dbs,
        "SELECT benchmark, state, server_kind, replicas FROM benchmarks WHERE run_id = 'fast0001' ORDER BY benchmark",
        &root,
    );
    for row in ["down,failed,external,", "errors,failed,external,", "later,skipped,simulator,1", "two,done,simulator,2"]
    {
        assert!(states.contains(row), "{row} in\n{states}");
    }
    let errors =
        sql(dbs, "SELECT kind, count FROM stage_errors WHERE run_id = 'fast0001' AND benchmark = 'errors'", &root);
    assert!(errors.contains("http_5xx,5"), "{errors}");
    let figures = sql(
        dbs,
        "SELECT COUNT(*) FROM figures WHERE run_id = 'abcd0001' AND unassessable = 'no per-request records'",
        &root,
    );
    assert_ne!(figures.lines().nth(1), Some("0"), "LPG latencies carry no interval: {figures}");
    let field = sql(
        dbs,
        "SELECT value FROM config_fields WHERE run_id = 'fast0001' AND benchmark = 'two' AND path = 'model_server.replicas'",
        &root,
    );
    assert_eq!(field.lines().nth(1), Some("2"));

    // Two imports at once into one file: both land, whole.
    let spawn = |dir: &Path| {
        Command::new(BIN)
            .args(["history", "import", dir.to_str().unwrap(), "--history", dbs])
            .current_dir(&root)
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn(&slow));
        let b = s.spawn(|| spawn(&fast));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success() && b.status.success(), "{}\n{}", text(&a), text(&b));
    let runs = sql(
        dbs,
        "SELECT run_id, (SELECT COUNT(*) FROM stages s WHERE s.run_id = r.run_id) FROM runs r ORDER BY run_id",
        &root,
    );
    assert_eq!(runs.lines().skip(1).collect::<Vec<_>>(), ["abcd0001,2", "fast0001,6", "slow0001,4"], "{runs}");

    // Bad input: one line each, nothing written.
    let before = dump(dbs, &root);
    let not_a_run = root.join("empty");
    std::fs::create_dir_all(&not_a_run).unwrap();
    let o = inferbench(
        &["history", "import", slow.to_str().unwrap(), not_a_run.to_str().unwrap(), "--history", dbs],
        &root,
    );
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.starts_with(&format!("error: {}: not a run folder", not_a_run.display())) && t.lines().count() == 1,
        "{t}"
    );
    assert_eq!(dump(dbs, &root), before, "a bad folder stops the import before anything is written");
    let o = inferbench(&["history", "sql", "DELETE FROM runs", "--history", dbs], &root);
    assert_eq!(o.status.code(), Some(1), "read-only: {}", text(&o));
    assert!(text(&o).contains("readonly") || text(&o).contains("read-only"), "{}", text(&o));
    assert_eq!(dump(dbs, &root), before);
    let o = inferbench(&["history", "trend", "one", "--metric", "ttft_p98", "--history", dbs], &root);
    assert!(text(&o).contains("unknown metric `ttft_p98`"), "{}", text(&o));
    let corrupt = root.join("corrupt.db");
    std::fs::write(&corrupt, vec![7u8; 8192]).unwrap();
    let o = inferbench(&["history", "list", "--history", corrupt.to_str().unwrap()], &root);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.contains(&format!("history {}: not an SQLite database", corrupt.display())) && t.lines().count() == 1,
        "{t}"
    );
    let o = inferbench(&["history", "list", "--history", "spaner://projects/p/instances/i/databases/d"], &root);
    assert!(text(&o).contains("unknown kind of store `spaner://`"), "{}", text(&o));
    let o = inferbench(&["history", "list", "--history", "spanner://projects/p/databases/d"], &root);
    assert!(text(&o).contains("not a Spanner database URL"), "{}", text(&o));
    let o = inferbench(&["history", "list", "--history", root.join("nothing.db").to_str().unwrap()], &root);
    assert!(text(&o).contains("no history here yet"), "{}", text(&o));
    assert!(!root.join("nothing.db").exists(), "reading does not create it");

    // A database of schema 1 (before the load verdict) is migrated when opened: the new columns
    // are added, the rows kept.
    let older = root.join("older.db");
    std::fs::copy(&db, &older).unwrap();
    let conn = rusqlite::Connection::open(&older).unwrap();
    for column in ["users_ran", "load_delivered", "load_reasons"] {
        conn.execute(&format!("ALTER TABLE stages DROP COLUMN {column}"), []).unwrap();
    }
    conn.execute("UPDATE schema_info SET version = 1", []).unwrap();
    drop(conn);
    let o = inferbench(
        &[
            "history",
            "sql",
            "SELECT COUNT(*), COUNT(load_delivered) FROM stages",
            "--csv",
            "--history",
            older.to_str().unwrap(),
        ],
        &root,
    );
    assert!(o.status.success(), "{}", text(&o));
    let counts = String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap_or_default().to_owned();
    let (stages, judged) = counts.split_once(',').unwrap_or_else(|| panic!("{}", text(&o)));
    assert!(stages.parse::<u64>().unwrap() > 0 && judged == "0", "the rows kept, the new column empty: {counts}");
    let conn = rusqlite::Connection::open(&older).unwrap();
    let v: i64 = conn.query_row("SELECT version FROM schema_info", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 2, "migrated");
    drop(conn);

    // A database of a newer schema is refused, naming both versions.
    let newer = root.join("newer.db");
    std::fs::copy(&db, &newer).unwrap();
    let _ = std::fs::remove_file(root.join("h.db-wal"));
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.execute("UPDATE schema_info SET version = 99", []).unwrap();
    drop(conn);
    let o = inferbench(&["history", "list", "--history", newer.to_str().unwrap()], &root);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        t.contains("written by a newer inferbench (history schema 99; this inferbench reads and writes schema 2)"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_alone_load_lands_beside_its_output_folder_or_in_spanner() {
    let sim = inferbench::sim::Server::bind(
        inferbench::cli::sim_cmd::SimArgs::parse_args(["--zero-latency"]).unwrap().to_config().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let url = sim.url();
    let emulator = Emulator::start();
    let spanner = emulator.url("loads");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let load = move |out: &str, extra: Vec<String>| {
        let mut c = Command::new(BIN);
        c.args([
            "load",
            "--url",
            &url,
            "--api",
            "openai-completions",
            "--models",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--num-prompts",
            "20",
        ])
        .args(["--request-rate", "50", "--output-dir", out])
        .args(extra)
        .current_dir(&dir)
        .env_remove("INFERBENCH_HISTORY");
        c
    };
    let (a, b) = {
        let (host, spanner) = (emulator.host.clone(), spanner.clone());
        let (la, lb) = (load("load-a", vec![]), load("load-b", vec!["--history".into(), spanner]));
        tokio::task::spawn_blocking(move || {
            let mut la = la;
            let mut lb = lb;
            (la.output().unwrap(), lb.env("SPANNER_EMULATOR_HOST", host).output().unwrap())
        })
        .await
        .unwrap()
    };
    assert!(a.status.success() && b.status.success(), "{}\n{}", text(&a), text(&b));
    let db = d.path().join("history.db");
    assert!(text(&a).contains("recorded in the history") && db.is_file(), "{}", text(&a));
    assert!(text(&b).contains(&format!("recorded in the history {spanner}")), "{}", text(&b));
    let query = "SELECT r.kind, b.benchmark, s.sent FROM runs r JOIN benchmarks b ON b.run_id = r.run_id JOIN stages s ON s.run_id = r.run_id";
    let rows = sql(db.to_str().unwrap(), query, d.path());
    assert_eq!(rows.lines().nth(1), Some("load,load,20"), "{rows}");
    let o = Command::new(BIN)
        .args(["history", "sql", query, "--csv", "--history", &spanner])
        .env("SPANNER_EMULATOR_HOST", &emulator.host)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().nth(1), Some("load,load,20"), "{}", text(&o));
    let fields = sql(
        db.to_str().unwrap(),
        "SELECT value FROM config_fields WHERE path = 'benchmark_tool.load.num_prompts'",
        d.path(),
    );
    assert_eq!(fields.lines().nth(1), Some("20"), "{fields}");
}

/// `inferbench ARGS` against the emulator's `db`.
fn on_spanner(e: &Emulator, args: &[&str], cwd: &Path) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(cwd).env("SPANNER_EMULATOR_HOST", &e.host);
    for v in ["INFERBENCH_OUTPUT", "output_dir", "INFERBENCH_HISTORY"] {
        c.env_remove(v);
    }
    c.output().unwrap()
}

#[test]
fn spanner_holds_the_same_rows_and_answers_the_same() {
    let (root, fast, slow, old) = imported_runs("spanner");
    let e = Emulator::start();
    let url = e.url("history");
    let file = root.join("h.db");
    let folders = [fast.to_str().unwrap(), slow.to_str().unwrap(), old.to_str().unwrap()];
    for history in [url.as_str(), file.to_str().unwrap()] {
        let o = on_spanner(&e, &[&["history", "import"], &folders[..], &["--history", history]].concat(), &root);
        assert!(o.status.success(), "{history}: {}", text(&o));
    }
    let spanner_dump = |e: &Emulator| {
        let mut out = String::new();
        for (table, key) in DUMP {
            let o = on_spanner(
                e,
                &["history", "sql", &format!("SELECT * FROM {table} ORDER BY {key}"), "--csv", "--history", &url],
                &root,
            );
            assert!(o.status.success(), "{table}: {}", text(&o));
            out.push_str(&String::from_utf8(o.stdout).unwrap());
        }
        out
    };
    let in_spanner = spanner_dump(&e);
    let in_sqlite = dump(file.to_str().unwrap(), &root);
    let differ = in_spanner.lines().zip(in_sqlite.lines()).find(|(a, b)| a != b);
    assert_eq!(differ, None, "one schema, one code path: the same rows in both stores (Spanner, SQLite)");
    assert_eq!(in_spanner, in_sqlite);
    let o = on_spanner(&e, &["history", "import", fast.to_str().unwrap(), "--history", &url], &root);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(spanner_dump(&e), in_spanner, "importing again changes nothing");

    // The questions answer the same from both.
    for args in [
        vec!["history", "check", "slow0001", "--baseline", "fast0001"],
        vec!["history", "check", "fast0001", "--baseline", "fast0001"],
        vec!["history", "list", "--where", "model_server.replicas=2"],
        vec!["history", "trend", "one", "--metric", "e2e_p50"],
    ] {
        let s = on_spanner(&e, &[&args[..], &["--history", &url]].concat(), &root);
        let f = on_spanner(&e, &[&args[..], &["--history", file.to_str().unwrap()]].concat(), &root);
        assert_eq!((s.status.code(), text(&s)), (f.status.code(), text(&f)), "{args:?}");
        let expected = if args[1] == "check" && args[2] == "slow0001" { 3 } else { 0 };
        assert_eq!(s.status.code(), Some(expected), "{args:?}: {}", text(&s));
    }
    let o = on_spanner(&e, &["history", "check", "slow0001", "--baseline", "fast0001", "--history", &url], &root);
    assert!(text(&o).contains("one rate-40 e2e p50"), "{}", text(&o));

    // Read-only SQL; bad input is one line.
    let o = on_spanner(&e, &["history", "sql", "DELETE FROM runs WHERE TRUE", "--history", &url], &root);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("DML statements may not be performed in single-use transactions"), "{}", text(&o));
    let o = on_spanner(&e, &["history", "sql", "SELEC 1", "--history", &url], &root);
    assert!(text(&o).starts_with(&format!("error: history {url}: Syntax error")), "{}", text(&o));
    let mut c = Command::new(BIN);
    let started = std::time::Instant::now();
    let o =
        c.args(["history", "list", "--history", &url]).env("SPANNER_EMULATOR_HOST", "127.0.0.1:1").output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("cannot reach the Spanner emulator at SPANNER_EMULATOR_HOST=127.0.0.1:1") && t.lines().count() == 1,
        "{t}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "an unreachable store is said within seconds");

    // A database a newer inferbench migrated is refused, naming both versions.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = gcloud_spanner::client::ClientConfig {
            environment: gcloud_gax::conn::Environment::Emulator(e.host.clone()),
            ..Default::default()
        };
        let db = url.trim_start_matches("spanner://");
        let client = gcloud_spanner::client::Client::new(db, config).await.unwrap();
        let m = gcloud_spanner::mutation::update("schema_info", &["id", "version"], &[&1i64, &99i64]);
        client.apply(vec![m]).await.unwrap();
        client.close().await;
    });
    let o = on_spanner(&e, &["history", "list", "--history", &url], &root);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .contains("written by a newer inferbench (history schema 99; this inferbench reads and writes schema 2)"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_readme_shows_the_schema_as_it_is() {
    let o = inferbench(&["history", "schema"], Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(o.status.success());
    let schema = String::from_utf8(o.stdout).unwrap();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```\n{schema}```")),
        "README's \"Results history\" shows `inferbench history schema` as it prints now:\n{schema}"
    );
}
