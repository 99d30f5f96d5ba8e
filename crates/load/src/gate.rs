//! The start gate of workers sharing a load: before each stage a worker says it is ready and
//! waits for the instant to start on; the platform gives one instant to all of them once every
//! worker still alive is ready (dataset and tokenizer loaded, connections warmed, the previous
//! stage drained). So the workers' schedules count from the same instant, as one process's would,
//! and nothing but this handshake passes between them: no coordinator on the request path.
//!
//! After the stage, each worker says it is done and waits until all are ([`Phase::End`]): the
//! server's counters are read at the end of the stage only once every worker's last answer is
//! in, so they hold all the merged requests.
//!
//! It is files in a folder the worker and the platform both see: `ready-{n}` written by the
//! worker, `start-{n}` (Unix nanoseconds, or `stop`) by the platform; `done-{n}` and `ended-{n}`
//! the same way at the stage's end. On the local platform the
//! folder is on disk; in a load pod the platform writes `start-{n}` through the API server's exec.
//! A file is written whole (a hidden temporary renamed over it) and read when it is there.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

use inferbench_schema::result_files::atomic_write;

/// How often a waiting worker looks for its start instant.
const POLL: Duration = Duration::from_millis(1);

/// The start gate, as a worker sees it.
#[derive(Debug, Clone)]
pub struct Gate {
    dir: PathBuf,
}

/// What the platform answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Start on this instant (Unix ns).
    At(i128),
    /// Do not start: the run is over (stopped).
    Stop,
}

/// Unix nanoseconds now.
pub fn now_ns() -> i128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

/// `at` (Unix ns) on tokio's clock.
pub fn instant_of(at: i128) -> tokio::time::Instant {
    let (now, wall) = (tokio::time::Instant::now(), now_ns());
    if at >= wall {
        now + Duration::from_nanos((at - wall) as u64)
    } else {
        now.checked_sub(Duration::from_nanos((wall - at) as u64)).unwrap_or(now)
    }
}

/// The two meetings of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before it: ready, then the instant to start on.
    Start,
    /// After it: done, then the word that every worker is.
    End,
}

impl Phase {
    fn said(self) -> &'static str {
        match self {
            Phase::Start => "ready",
            Phase::End => "done",
        }
    }

    fn answered(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "ended",
        }
    }
}

/// The file a worker writes at `phase` of `stage`.
pub fn said_name(phase: Phase, stage: usize) -> String {
    format!("{}-{stage}", phase.said())
}

/// The file the platform answers it with.
pub fn answer_name(phase: Phase, stage: usize) -> String {
    format!("{}-{stage}", phase.answered())
}

/// The file a worker writes once it has run every stage and written its results.
pub const OVER: &str = "over";

/// The file the platform writes to stop a worker as Ctrl-C would (where it cannot signal it: in a
/// pod, through exec).
pub const STOP: &str = "stop";

fn said_file(dir: &Path, phase: Phase, stage: usize) -> PathBuf {
    dir.join(said_name(phase, stage))
}

fn answer_file(dir: &Path, phase: Phase, stage: usize) -> PathBuf {
    dir.join(answer_name(phase, stage))
}

impl Start {
    /// As the answer file holds it.
    pub fn to_text(self) -> String {
        match self {
            Start::At(ns) => ns.to_string(),
            Start::Stop => "stop".into(),
        }
    }
}

/// The names of the files in the gate `dir` (what its worker has said, what it was answered).
pub fn listing(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Writes the answer `name` (one of [`answer_name`]) holding `text` into the gate `dir`: what
/// `inferbench results gate DIR --open NAME --answer TEXT` does in a load pod.
pub fn write_answer(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let ok = name == STOP
        || name.split_once('-').is_some_and(|(p, n)| ["start", "ended"].contains(&p) && n.parse::<usize>().is_ok());
    if !ok {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{name:?} is not a gate answer")));
    }
    atomic_write(&dir.join(name), text.as_bytes()).map_err(|e| std::io::Error::other(e.to_string()))
}

impl Gate {
    /// The gate in `dir` (created if needed).
    pub fn new(dir: &Path) -> std::io::Result<Gate> {
        std::fs::create_dir_all(dir)?;
        Ok(Gate { dir: dir.to_path_buf() })
    }

    /// Says stage `stage` (1-based) is ready and waits for its start; a stop (Ctrl-C) while
    /// waiting is [`Start::Stop`].
    pub async fn ready(&self, stage: usize, stop: &CancellationToken) -> std::io::Result<Start> {
        self.meet(Phase::Start, stage, stop).await
    }

    /// Says stage `stage` is done here and waits until it is done everywhere (or a stop).
    pub async fn done(&self, stage: usize, stop: &CancellationToken) -> std::io::Result<()> {
        self.meet(Phase::End, stage, stop).await.map(drop)
    }

    /// Cancels `stop` once the platform writes [`STOP`] into the gate (looked for every 50 ms).
    pub async fn watch_stop(self, stop: CancellationToken) {
        let path = self.dir.join(STOP);
        loop {
            if path.exists() {
                stop.cancel();
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Says this worker has run every stage and written its results.
    pub fn over(&self) -> std::io::Result<()> {
        atomic_write(&self.dir.join(OVER), now_ns().to_string().as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    async fn meet(&self, phase: Phase, stage: usize, stop: &CancellationToken) -> std::io::Result<Start> {
        atomic_write(&said_file(&self.dir, phase, stage), now_ns().to_string().as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let path = answer_file(&self.dir, phase, stage);
        loop {
            if let Some(s) = read_start(&path)? {
                return Ok(s);
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = stop.cancelled() => return Ok(Start::Stop),
            }
        }
    }
}

fn read_start(path: &Path) -> std::io::Result<Option<Start>> {
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim() == "stop" => Ok(Some(Start::Stop)),
        Ok(t) => t.trim().parse().map(|ns| Some(Start::At(ns))).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not a start instant: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the worker whose gate is `dir` has reached `phase` of stage `stage`.
pub fn is_at(dir: &Path, phase: Phase, stage: usize) -> bool {
    said_file(dir, phase, stage).exists()
}

/// Gives the worker whose gate is `dir` its answer at `phase` of stage `stage`.
pub fn open(dir: &Path, phase: Phase, stage: usize, start: Start) -> std::io::Result<()> {
    write_answer(dir, &answer_name(phase, stage), &start.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_waits_at_the_gate_until_the_platform_gives_its_instant() {
        let dir = tempfile::tempdir().unwrap();
        let gate = Gate::new(dir.path()).unwrap();
        let stop = CancellationToken::new();
        let waiting = tokio::spawn({
            let (gate, stop) = (gate.clone(), stop.clone());
            async move { gate.ready(2, &stop).await.unwrap() }
        });
        while !is_at(dir.path(), Phase::Start, 2) {
            tokio::task::yield_now().await;
        }
        assert!(!is_at(dir.path(), Phase::Start, 1) && !is_at(dir.path(), Phase::End, 2));
        open(dir.path(), Phase::Start, 2, Start::At(1234)).unwrap();
        assert_eq!(waiting.await.unwrap(), Start::At(1234));
        let done = tokio::spawn({
            let (gate, stop) = (gate.clone(), stop.clone());
            async move { gate.done(2, &stop).await.unwrap() }
        });
        while !is_at(dir.path(), Phase::End, 2) {
            tokio::task::yield_now().await;
        }
        open(dir.path(), Phase::End, 2, Start::At(0)).unwrap();
        done.await.unwrap();
        open(dir.path(), Phase::Start, 3, Start::Stop).unwrap();
        assert_eq!(gate.ready(3, &stop).await.unwrap(), Start::Stop);
        stop.cancel();
        assert_eq!(gate.ready(4, &stop).await.unwrap(), Start::Stop, "Ctrl-C while waiting");
    }
}
