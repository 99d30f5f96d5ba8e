//! `workers: N` on this machine: N `inferbench load` processes, each sending its share of the
//! load ([`crate::load::runner::Share`]), started stage by stage on one instant through their
//! [`gate`]s, merged into one result ([`merge`]). `inferbench load --workers N` and the local
//! platform both run this; a pod of the kube platform is one such process.
//!
//! Folders, under the output folder: `workers/load.pbtxt` (the spec every worker runs),
//! `workers/{k}/` (worker k's own results and shards, kept: the raw material of the merge),
//! `workers/{k}.log` (its output), `workers/.gate-{k}/` (its start gate, removed at the end).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use prost_reflect::ReflectMessage as _;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::{
    load::{
        gate::{self, Phase, Start},
        merge::{self, Worker},
    },
    schema::{LoadSpec, Results, StageResult},
};

/// How long after the last worker is ready the stage starts: the time to hand every worker its
/// instant and for each to wake on it (a process on a busy 2-core host wakes within a few ms).
const START_MARGIN: Duration = Duration::from_millis(100);

/// How often the gates and the processes are looked at while waiting for them.
const POLL: Duration = Duration::from_millis(2);

/// The `inferbench` binary the workers run: this one, or `INFERBENCH_BIN` when this process is
/// not `inferbench` (a test harness).
pub fn binary() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("INFERBENCH_BIN") {
        return Ok(b.into());
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    if me.file_stem().is_some_and(|s| s == "inferbench") {
        Ok(me)
    } else {
        Err(format!(
            "{} is not inferbench: set INFERBENCH_BIN to the inferbench binary to run load workers",
            me.display()
        ))
    }
}

/// What the workers left, merged.
pub struct Merged {
    /// The merged results (also written as `out/summary.json`).
    pub results: Results,
    /// Every worker ended well and every stage is whole.
    pub complete: bool,
}

struct Running {
    index: u32,
    child: Child,
    gate: PathBuf,
    dir: PathBuf,
    /// How it ended (None: still running).
    ended: Option<std::process::ExitStatus>,
}

/// Runs `spec` (its `workers` > 1, `url` set) as that many local processes writing to `out`;
/// `on_stage` is called with each stage once every worker has finished it and the merge is on
/// disk.
pub async fn run(
    spec: &LoadSpec,
    out: &Path,
    stop: &CancellationToken,
    on_stage: &mut (dyn FnMut(&StageResult) + Send),
) -> Result<Merged, String> {
    let n = spec.workers.unwrap_or(1).max(1);
    let bin = binary()?;
    let root = out.join("workers");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let spec_file = root.join("load.pbtxt");
    let text = crate::schema::text::print::to_text(&spec.transcode_to_dynamic());
    crate::schema::result_files::atomic_write(&spec_file, text.as_bytes()).map_err(|e| e.to_string())?;
    let mut workers = vec![];
    for k in 0..n {
        let (dir, gate) = (root.join(k.to_string()), root.join(format!(".gate-{k}")));
        // A resumed run starts its workers afresh: an earlier attempt's gate would start them at once.
        for d in [&dir, &gate] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            }
        }
        std::fs::create_dir_all(&gate).map_err(|e| format!("{}: {e}", gate.display()))?;
        let log_path = root.join(format!("{k}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("load").arg("--spec").arg(&spec_file).arg("--output-dir").arg(&dir);
        cmd.arg("--worker-index").arg(k.to_string()).arg("--worker-gate").arg(&gate);
        if let Some(p) = spec.metrics_port.filter(|p| *p > 0) {
            // One port each: they share the machine's addresses.
            cmd.arg("--metrics-port").arg((p + k).to_string());
        }
        cmd.env_remove("INFERBENCH_URL").stdin(Stdio::null());
        cmd.stdout(log.try_clone().map_err(|e| e.to_string())?).stderr(log);
        // Not in our process group: a Ctrl-C reaches us, and we stop them (SIGTERM) ourselves.
        cmd.process_group(0).kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| format!("cannot start load worker {k} ({}): {e}", bin.display()))?;
        workers.push(Running { index: k, child, gate, dir, ended: None });
    }
    let reports: Vec<Worker> =
        workers.iter().map(|w| Worker { index: w.index, dir: w.dir.clone(), failure: None }).collect();
    let mut merged_stages = 0;
    let mut stage = 1;
    let mut stopping = false;
    loop {
        let ready = meet(&mut workers, Phase::Start, stage, stop, &mut stopping).await?;
        // Stages every worker has finished (or will never finish) since the last merge: merged,
        // on disk, then reported.
        let results = if stage > 1 { merge_now(spec, &workers, &reports, out)? } else { Results::default() };
        for s in results.stages.iter().skip(merged_stages) {
            on_stage(s);
        }
        merged_stages = results.stages.len();
        if ready.is_empty() {
            let complete = !stop.is_cancelled()
                && workers.iter().all(|w| w.ended.is_some_and(|e| e.success()))
                && results.stages.iter().all(|s| s.partial.is_none());
            for w in &workers {
                let _ = std::fs::remove_dir_all(&w.gate);
            }
            return Ok(Merged { results, complete });
        }
        let answer =
            if stop.is_cancelled() { Start::Stop } else { Start::At(gate::now_ns() + START_MARGIN.as_nanos() as i128) };
        open(&workers, &ready, Phase::Start, stage, answer)?;
        if answer != Start::Stop {
            let done = meet(&mut workers, Phase::End, stage, stop, &mut stopping).await?;
            open(&workers, &done, Phase::End, stage, Start::At(gate::now_ns()))?;
        }
        stage += 1;
    }
}

/// Waits until every worker still running has reached `phase` of `stage` (or ended); returns
/// those that have. On a stop, asks every worker still running to stop (once).
async fn meet(
    workers: &mut [Running],
    phase: Phase,
    stage: usize,
    stop: &CancellationToken,
    stopping: &mut bool,
) -> Result<Vec<u32>, String> {
    loop {
        for w in workers.iter_mut() {
            if w.ended.is_none() {
                w.ended = w.child.try_wait().map_err(|e| format!("load worker {}: {e}", w.index))?;
            }
        }
        let waiting = workers.iter().any(|w| w.ended.is_none() && !gate::is_at(&w.gate, phase, stage));
        if !waiting {
            return Ok(workers.iter().filter(|w| w.ended.is_none()).map(|w| w.index).collect());
        }
        if stop.is_cancelled() && !*stopping {
            *stopping = true;
            for w in workers.iter().filter(|w| w.ended.is_none()) {
                terminate(&w.child);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Gives the workers `at` their answer at `phase` of `stage`.
fn open(workers: &[Running], at: &[u32], phase: Phase, stage: usize, answer: Start) -> Result<(), String> {
    for w in workers.iter().filter(|w| at.contains(&w.index)) {
        gate::open(&w.gate, phase, stage, answer).map_err(|e| format!("{}: {e}", w.gate.display()))?;
    }
    Ok(())
}

/// Merges what the workers have written so far, naming how each that ended badly ended.
fn merge_now(spec: &LoadSpec, workers: &[Running], reports: &[Worker], out: &Path) -> Result<Results, String> {
    let reports: Vec<Worker> = reports
        .iter()
        .zip(workers)
        .map(|(r, w)| Worker {
            failure: w.ended.filter(|e| !e.success()).map(|e| format!("its process {e}")),
            ..r.clone()
        })
        .collect();
    merge::merge(spec, &reports, out).map_err(|e| format!("merging the workers' results: {e}"))
}

/// Asks a worker to stop as Ctrl-C would (it writes what it measured).
fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}
