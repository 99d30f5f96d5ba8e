//! `workers: N` on this machine: N `inferbench load` processes, conducted by
//! [`crate::platform::workers`] through their start gates (folders on disk) and merged into one
//! result ([`merge`]) after every stage. `inferbench load --workers N` and the local platform both
//! run this; a pod of the kube platform is one such process.
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

use async_trait::async_trait;

use crate::{
    load::{
        gate::{self, Phase, Start},
        merge::{self, Worker},
    },
    platform::workers::{Fleet, State, conduct},
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
    child: Child,
    gate: PathBuf,
    dir: PathBuf,
    /// How it ended (None: still running).
    ended: Option<std::process::ExitStatus>,
}

/// The worker processes of one run.
struct Processes<'a> {
    spec: &'a LoadSpec,
    out: &'a Path,
    workers: Vec<Running>,
}

impl Processes<'_> {
    fn reports(&self) -> Vec<Worker> {
        self.workers
            .iter()
            .enumerate()
            .map(|(k, w)| Worker {
                index: k as u32,
                dir: w.dir.clone(),
                failure: w.ended.filter(|e| !e.success()).map(|e| format!("its process {e}")),
            })
            .collect()
    }

    fn merge(&self) -> Result<Results, String> {
        merge::merge(self.spec, &self.reports(), self.out).map_err(|e| format!("merging the workers' results: {e}"))
    }
}

#[async_trait]
impl Fleet for Processes<'_> {
    async fn look(&mut self, phase: Phase, stage: usize) -> Result<Vec<State>, String> {
        let mut states = vec![];
        for (k, w) in self.workers.iter_mut().enumerate() {
            if w.ended.is_none() {
                w.ended = w.child.try_wait().map_err(|e| format!("load worker {k}: {e}"))?;
            }
            states.push(if gate::listing(&w.gate).is_ok_and(|l| l.iter().any(|n| n == gate::OVER)) {
                State::Over
            } else if let Some(e) = w.ended {
                State::Ended(format!("its process {e}"))
            } else if gate::is_at(&w.gate, phase, stage) {
                State::Waiting
            } else {
                State::Busy
            });
        }
        Ok(states)
    }

    async fn answer(&mut self, k: u32, phase: Phase, stage: usize, answer: Start) -> Result<(), String> {
        let w = &self.workers[k as usize];
        gate::open(&w.gate, phase, stage, answer).map_err(|e| format!("{}: {e}", w.gate.display()))
    }

    async fn stop_all(&mut self) {
        for w in self.workers.iter().filter(|w| w.ended.is_none()) {
            terminate(&w.child);
        }
    }

    fn start_margin(&self) -> Duration {
        START_MARGIN
    }

    fn poll_between(&self) -> (Duration, Duration) {
        // A look reads a folder of this machine's: cheap enough to keep the stages' meetings quick.
        (POLL, POLL)
    }

    fn merge_so_far(&mut self) -> Option<Result<Results, String>> {
        Some(self.merge())
    }
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
    let mut fleet = Processes { spec, out, workers: vec![] };
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
        fleet.workers.push(Running { child, gate, dir, ended: None });
    }
    let conducted = conduct(&mut fleet, stop, on_stage).await?;
    // Every worker has said it is over or has ended: wait for the processes themselves.
    for w in &mut fleet.workers {
        if w.ended.is_none() {
            w.ended = Some(w.child.wait().await.map_err(|e| e.to_string())?);
        }
    }
    let results = fleet.merge()?;
    // A worker that exits badly after its last stage (its results written) took nothing away.
    let complete =
        !stop.is_cancelled() && conducted.failed.is_empty() && results.stages.iter().all(|s| s.partial.is_none());
    for w in &fleet.workers {
        let _ = std::fs::remove_dir_all(&w.gate);
    }
    Ok(Merged { results, complete })
}

/// Asks a worker to stop as Ctrl-C would (it writes what it measured).
fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}
