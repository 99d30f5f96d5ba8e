//! The run lifecycle, the same on every platform: for each benchmark of a run — skip it when its
//! `results/` exists (resume), deploy, run the load into a staging folder, tear down, verify,
//! publish `results/` atomically — recording each state in `run.json`. Up to `parallelism`
//! benchmarks run at once; one failing does not stop the others; a stop (Ctrl-C) ends the load,
//! tears down, discards the half-collected results and leaves the benchmark to be resumed.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::{
    load::runner::Stop,
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
    stop: Arc<Stop>,
    events: Events,
) -> Vec<Finished> {
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
            (i, ctx.run(job).await)
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
    stop: Arc<Stop>,
    events: Events,
    kept: Option<Arc<Mutex<Vec<Deployment>>>>,
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
            f.results = std::fs::read_to_string(dir.join(crate::load::output::SUMMARY))
                .ok()
                .and_then(|t| store::parse_summary(&t).ok());
            f.results_dir = Some(dir);
            self.record(&job, State::Done, None, None);
            (self.events)(Event::Finished(&f));
            return f;
        }
        if self.stop.stopped() {
            f.reason = Some("not started: the run was interrupted".into());
            return f;
        }
        let started = run_file::now();
        self.record(&job, State::Running, None, Some((&started, None)));
        let (state, reason) = match self.attempt(&job, &mut f).await {
            Ok(()) => (State::Done, None),
            Err(reason) => (State::Failed, Some(reason)),
        };
        f.state = state;
        f.reason = reason;
        f.seconds = began.elapsed().as_secs_f64();
        self.record(&job, state, f.reason.clone(), Some((&started, Some(f.seconds))));
        (self.events)(Event::Finished(&f));
        f
    }

    /// Deploy, load, tear down, verify, publish. Err is the reason it failed.
    async fn attempt(&self, job: &Job, f: &mut Finished) -> Result<(), String> {
        store::discard_stale(&job.dir).map_err(|e| e.to_string())?;
        let snap = Snapshot::read(&job.dir).map_err(|e| e.to_string())?;
        let per_request =
            snap.load_spec().map_err(|e| e.to_string())?.outputs.and_then(|o| o.per_request_records).unwrap_or(true);
        (self.events)(Event::Deploying(&job.name));
        let dep = self.platform.deploy(&snap, &self.stop).await.map_err(|e| e.to_string())?;
        (self.events)(Event::Ready(&job.name, &dep));
        let staging = store::staging(&job.dir).map_err(|e| e.to_string())?;
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
        let out = match loaded {
            _ if self.stop.stopped() => {
                store::discard(&staging);
                return Err(format!(
                    "{}: results discarded; resume with --run-id {}",
                    PlatformError::Interrupted,
                    self.run_id
                ));
            }
            Err(e) => {
                store::discard(&staging);
                return Err(e.to_string());
            }
            Ok(out) => out,
        };
        torn.map_err(|e| e.to_string())?;
        store::write_runtime(&staging, &runtime).map_err(|e| e.to_string())?;
        let (sent, ok) = out.sent_ok();
        if ok == 0 {
            let errors = error_counts(&out.results);
            let kept = store::keep_failed(&staging, &job.dir).map_err(|e| e.to_string())?;
            return Err(if sent == 0 {
                format!("no request was sent (results kept in {})", kept.display())
            } else {
                format!("every request failed ({errors}); results kept in {}", kept.display())
            });
        }
        let verified = match store::verify(&staging, per_request) {
            Ok(v) => v,
            Err(e) => {
                let kept = store::keep_failed(&staging, &job.dir).map_err(|e| e.to_string())?;
                return Err(format!("results did not verify: {e} (kept in {})", kept.display()));
            }
        };
        let dir = store::publish(&staging, &job.dir).map_err(|e| e.to_string())?;
        f.results = Some(verified.results);
        f.results_dir = Some(dir);
        Ok(())
    }

    fn record(&self, job: &Job, state: State, reason: Option<String>, timing: Option<(&str, Option<f64>)>) {
        let r = run_file::update(&self.run_dir, &self.run_id, |run| {
            if let Some(rec) = run.benchmarks.get_mut(&job.name) {
                rec.state = state;
                rec.reason = reason;
                rec.updated_at = run_file::now();
                if let Some((started, secs)) = timing {
                    rec.started_at = Some(started.to_owned());
                    rec.finished_at = secs.map(|_| run_file::now());
                    rec.seconds = secs;
                }
            }
        });
        if let Err(e) = r {
            eprintln!("warning: {e}");
        }
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
