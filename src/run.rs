//! `run`: the lifecycle of a run, the same on every platform: for each benchmark of a run — skip it when its
//! `results/` exists (resume), deploy, run the load into a staging folder, tear down, verify,
//! publish `results/` atomically — recording each state in `run.json`. Up to `parallelism`
//! benchmarks run at once; one failing does not stop the others; a stop (Ctrl-C) ends the load,
//! tears down, discards the half-collected results and leaves the benchmark to be resumed.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    load::output,
    platform::{Deployment, OnStage, Platform, PlatformError, Snapshot},
    results::store,
    schema::{Results, StageResult},
    snapshot::run_file::{self, State},
};

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Benchmarks at once (at least 1).
    pub parallelism: usize,
    /// Keep each deployment up until the whole run ends (the local platform cannot keep a server
    /// beyond its own process).
    pub skip_tear_down: bool,
}

/// A benchmark to run: its name and snapshot folder.
#[derive(Debug, Clone)]
pub struct Job {
    /// Benchmark name (the `run.json` key).
    pub name: String,
    /// Its snapshot folder.
    pub dir: PathBuf,
}

/// How a benchmark ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Benchmark name.
    pub name: String,
    /// Done, failed, pending (not started) or skipped.
    pub state: State,
    /// Why it failed, or that it was done before.
    pub reason: Option<String>,
    /// Seconds spent.
    pub seconds: f64,
    /// Its summary, when it ran (or was done before).
    pub results: Option<Results>,
    /// Where its results are.
    pub results_dir: Option<PathBuf>,
}

/// What the lifecycle reports as it goes (the CLI prints it).
pub enum Event<'a> {
    /// A benchmark is being deployed.
    Deploying(&'a str),
    /// Its server is ready.
    Ready(&'a str, &'a Deployment),
    /// One of its load stages ended (results already on disk).
    Stage(&'a str, &'a StageResult),
    /// It ended.
    Finished(&'a Finished),
}

/// Receives events; called from several tasks.
pub type Events = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// Runs `jobs` of the run in `run_dir` on `platform`. Returns one entry per job, in job order.
pub async fn run_all(
    platform: Arc<dyn Platform>,
    run_dir: PathBuf,
    run_id: String,
    jobs: Vec<Job>,
    opts: Options,
    stop: CancellationToken,
    events: Events,
) -> Vec<Finished> {
    use futures_util::FutureExt as _;
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.parallelism.max(1)));
    let kept: Arc<Mutex<Vec<Deployment>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let ctx = Ctx {
            platform: platform.clone(),
            run_dir: run_dir.clone(),
            run_id: run_id.clone(),
            stop: stop.clone(),
            events: events.clone(),
            kept: opts.skip_tear_down.then(|| kept.clone()),
        };
        // Permits are taken here, in job order, so benchmarks start in catalog order.
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        tasks.spawn(async move {
            let _permit = permit;
            // A bug in one benchmark's run (a panic) fails that benchmark, not the whole run.
            let f = match std::panic::AssertUnwindSafe(ctx.run(job.clone())).catch_unwind().await {
                Ok(f) => f,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    let reason = format!("internal error (a bug; please report it): {what}");
                    let _ = ctx.record(&job, State::Failed, Some(reason.clone()), None).await; // warned inside
                    Finished {
                        name: job.name,
                        state: State::Failed,
                        reason: Some(reason),
                        seconds: 0.0,
                        results: None,
                        results_dir: None,
                    }
                }
            };
            (i, f)
        });
    }
    let mut out: Vec<(usize, Finished)> = tasks.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    for d in std::mem::take(&mut *kept.lock().expect("kept deployments")) {
        drop(d); // kept until the run ended (--skip-tear-down on a platform that cannot outlive it)
    }
    out.into_iter().map(|(_, f)| f).collect()
}

struct Ctx {
    platform: Arc<dyn Platform>,
    run_dir: PathBuf,
    run_id: String,
    stop: CancellationToken,
    events: Events,
    kept: Option<Arc<Mutex<Vec<Deployment>>>>,
}

/// How an attempt ended, when it did not fail.
enum Success {
    /// Published as `results/`.
    Published(Box<Results>, PathBuf),
    /// Another process sharing the run id published it first.
    ByAnother(PathBuf),
}

impl Ctx {
    async fn run(&self, job: Job) -> Finished {
        let began = Instant::now();
        let mut f = Finished {
            name: job.name.clone(),
            state: State::Pending,
            reason: None,
            seconds: 0.0,
            results: None,
            results_dir: None,
        };
        if store::is_done(&job.dir) {
            let dir = job.dir.join(store::RESULTS);
            f.state = State::Done;
            f.reason = Some("done before: results exist, skipped".into());
            f.results = std::fs::read_to_string(dir.join(crate::schema::result_files::SUMMARY))
                .ok()
                .and_then(|t| crate::schema::result_files::parse_summary(&t).ok());
            f.results_dir = Some(dir);
            let _ = self.record(&job, State::Done, None, None).await; // warned inside
            (self.events)(Event::Finished(&f));
            return f;
        }
        if self.stop.is_cancelled() {
            f.reason = Some("not started: the run was interrupted".into());
            return f;
        }
        let started = crate::schema::clock::now();
        if let Err(why) = self.claim(&job, &started).await {
            f.state = State::Skipped;
            f.reason = Some(why);
            (self.events)(Event::Finished(&f));
            return f;
        }
        let (state, reason) = match self.attempt(&job).await {
            Ok(Success::Published(results, dir)) => {
                f.results = Some(*results);
                f.results_dir = Some(dir);
                (State::Done, None)
            }
            Ok(Success::ByAnother(dir)) => {
                f.results_dir = Some(dir);
                (State::Done, Some("finished by another process sharing the run id".to_owned()))
            }
            Err(reason) => (State::Failed, Some(reason)),
        };
        f.state = state;
        f.reason = reason;
        f.seconds = began.elapsed().as_secs_f64();
        if let Err(e) = self.record(&job, state, f.reason.clone(), Some((&started, Some(f.seconds)))).await {
            // The results are safe, but run.json would say `running`: that is a failure to report.
            f.state = State::Failed;
            f.reason = Some(format!("run.json could not be updated ({e}); results: {:?}", f.results_dir));
        }
        (self.events)(Event::Finished(&f));
        f
    }

    /// Marks the benchmark `running` by this process, unless another live process has it.
    async fn claim(&self, job: &Job, started: &str) -> Result<(), String> {
        let (run_dir, run_id, name, started) =
            (self.run_dir.clone(), self.run_id.clone(), job.name.clone(), started.to_owned());
        let me = std::process::id();
        let claimed = output::off_runtime(|| {
            run_file::update(&run_dir, &run_id, |run| {
                let Some(rec) = run.benchmarks.get_mut(&name) else { return Ok(()) };
                if rec.state == State::Running && !rec.is_stale_running() && rec.owner != Some(me) {
                    return Err(format!(
                        "running in another process (pid {}) sharing the run id: left to it",
                        rec.owner.unwrap_or_default()
                    ));
                }
                rec.state = State::Running;
                rec.reason = None;
                rec.owner = Some(me);
                rec.started_at = Some(started);
                rec.finished_at = None;
                rec.seconds = None;
                rec.updated_at = crate::schema::clock::now();
                Ok(())
            })
        });
        claimed.map_err(|e| e.to_string())?
    }

    fn interrupted(&self) -> String {
        format!("interrupted: results discarded; resume with --run-id {}", self.run_id)
    }

    /// Deploy, load, tear down, verify, publish. Err is the reason it failed.
    async fn attempt(&self, job: &Job) -> Result<Success, String> {
        let dir = job.dir.clone();
        let (snap, staging) = output::off_runtime(|| -> Result<_, String> {
            store::discard_stale(&dir).map_err(|e| e.to_string())?;
            let snap = Snapshot::read(&dir).map_err(|e| e.to_string())?;
            Ok((snap, store::staging(&dir).map_err(|e| e.to_string())?))
        })?;
        let per_request = snap.load.outputs.as_ref().and_then(|o| o.per_request_records).unwrap_or(true);
        (self.events)(Event::Deploying(&job.name));
        let dep = match self.platform.deploy(&snap, &self.stop).await {
            Ok(d) => d,
            Err(e) => {
                store::discard(&staging);
                return Err(if self.stop.is_cancelled() { self.interrupted() } else { e.to_string() });
            }
        };
        (self.events)(Event::Ready(&job.name, &dep));
        let events = self.events.clone();
        let on_stage: OnStage = Arc::new(move |name, s| events(Event::Stage(name, s)));
        let loaded = self.platform.run_load(&snap, &dep, &staging, &self.stop, on_stage).await;
        let runtime = dep.runtime.clone();
        let torn = match &self.kept {
            Some(kept) => {
                kept.lock().expect("kept deployments").push(dep);
                Ok(())
            }
            None => self.platform.tear_down(&snap, dep).await,
        };
        let torn_note = torn.as_ref().err().map(|e| format!("; {e}")).unwrap_or_default();
        let out = match loaded {
            Ok(out) if out.complete => out,
            // A load worker died: what the others measured is kept, as a failed attempt's files.
            Ok(out) if !self.stop.is_cancelled() && out.results.stages.iter().any(|s| s.partial.is_some()) => out,
            Ok(_) => {
                store::discard(&staging);
                return Err(format!("{}{torn_note}", self.interrupted()));
            }
            Err(_) if self.stop.is_cancelled() => {
                store::discard(&staging);
                return Err(format!("{}{torn_note}", self.interrupted()));
            }
            Err(e) => {
                store::discard(&staging);
                return Err(format!("{e}{torn_note}"));
            }
        };
        let dir = job.dir.clone();
        output::off_runtime(move || publish(&staging, &dir, &runtime, per_request, &out, torn.err()))
    }

    async fn record(
        &self,
        job: &Job,
        state: State,
        reason: Option<String>,
        timing: Option<(&str, Option<f64>)>,
    ) -> Result<(), run_file::RunFileError> {
        let timing = timing.map(|(s, secs)| (s.to_owned(), secs));
        let r = output::off_runtime(|| {
            run_file::update(&self.run_dir, &self.run_id, |run| {
                if let Some(rec) = run.benchmarks.get_mut(&job.name) {
                    rec.state = state;
                    rec.reason = reason;
                    rec.owner = None;
                    rec.updated_at = crate::schema::clock::now();
                    if let Some((started, secs)) = timing {
                        rec.started_at = Some(started);
                        rec.finished_at = secs.map(|_| crate::schema::clock::now());
                        rec.seconds = secs;
                    }
                }
            })
        });
        if let Err(e) = &r {
            eprintln!("warning: {e}");
        }
        r
    }
}

/// Verifies the staging folder and publishes it as `results/` (blocking file work). A failed
/// tear-down does not lose good results: they are published and the failure is the reason.
fn publish(
    staging: &Path,
    dir: &Path,
    runtime: &serde_json::Value,
    per_request: bool,
    out: &crate::load::session::Outcome,
    torn: Option<PlatformError>,
) -> Result<Success, String> {
    let keep = |why: String| -> String {
        match store::keep_failed(staging, dir) {
            Ok(kept) => format!("{why} (its files are in {})", kept.display()),
            Err(e) => {
                store::discard(staging);
                format!("{why} (and its files could not be kept: {e})")
            }
        }
    };
    if let Err(e) = store::write_runtime(staging, runtime) {
        store::discard(staging);
        return Err(e.to_string());
    }
    let (sent, ok) = out.sent_ok();
    if ok == 0 {
        return Err(keep(if sent == 0 {
            "no request was sent".to_owned()
        } else {
            format!("every request failed ({})", error_counts(&out.results))
        }));
    }
    if let Some(p) = out.results.stages.iter().find_map(|s| s.partial.as_ref()) {
        return Err(keep(format!("a load worker did not finish: {}", p.reason)));
    }
    let verified = match store::verify(staging, per_request) {
        Ok(v) => v,
        Err(e) => return Err(keep(format!("results did not verify: {e}"))),
    };
    if store::is_done(dir) {
        store::discard(staging);
        return Ok(Success::ByAnother(dir.join(store::RESULTS)));
    }
    let published = store::publish(staging, dir).map_err(|e| {
        store::discard(staging);
        e.to_string()
    })?;
    match torn {
        Some(e) => Err(format!("results published in {}, but {e}", published.display())),
        None => Ok(Success::Published(Box::new(verified.results), published)),
    }
}

/// "http_5xx 3, connect 2".
fn error_counts(r: &Results) -> String {
    let mut all = std::collections::BTreeMap::<&str, u64>::new();
    for c in r.stages.iter().filter_map(|s| s.counts.as_ref()) {
        for (k, v) in &c.errors {
            *all.entry(k).or_default() += v;
        }
    }
    all.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
