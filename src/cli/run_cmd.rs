//! `inferbench run`: snapshots (as `generate`), then each benchmark through the lifecycle on the
//! chosen platform, progress as it goes, a summary table at the end.
//!
//! Exit code: 0 when every benchmark is done; otherwise the number of benchmarks that failed (at
//! most 100); 130 when interrupted (Ctrl-C / SIGTERM: the load stops, deployments are torn down,
//! half-collected results discarded; `--run-id` resumes). A second Ctrl-C exits at once — every
//! file is written atomically, so nothing is corrupted either way.

use std::{io::Write as _, process::ExitCode, sync::Arc};
use tokio_util::sync::CancellationToken;

use super::{
    CommandResult, Failure, RunArgs, generate_cmd,
    load_cmd::stage_line,
    progress::{Row, summary_table},
};
use super::{EXIT_INTERRUPTED, Signals};
use crate::schema::LocalServer;
use crate::{
    platform::{
        Platform,
        kube::{KubeOptions, KubePlatform, Timeouts},
        local::LocalPlatform,
    },
    run::{self, Event, Finished, Job, Options},
    snapshot::run_file::State,
};

/// Runs `inferbench run` (not `--dry-run`): snapshots, the platform, the lifecycle of every
/// benchmark ([`run::run_all`]), then the upload; this prints what happens and decides the exit code.
pub fn run(a: &RunArgs) -> CommandResult {
    if !(a.ready_timeout.is_finite() && (0.0..=86_400.0).contains(&a.ready_timeout)) {
        return Err(Failure::new(format!("--ready-timeout must be within 0..=86400 seconds, got {}", a.ready_timeout)));
    }
    let (plan, reports) = generate_cmd::snapshots(&a.generate, "run")?;
    let snapshot_failures = reports.iter().filter(|r| r.outcome.is_err()).count();
    let jobs: Vec<Job> = reports
        .iter()
        .filter(|r| r.outcome.is_ok())
        .map(|r| Job { name: r.name.clone(), dir: r.dir.clone() })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Failure::new)?;
    if a.kube.server_dry_run && a.platform != "kube" {
        return Err(Failure::new("--server-dry-run needs --platform kube"));
    }
    let ready = std::time::Duration::from_secs_f64(a.ready_timeout);
    let platform: Arc<dyn Platform> = if a.platform == "kube" {
        let kube = rt.block_on(kube_platform(a, &plan.run_id, ready)).map_err(|e| {
            Failure::new(format!("--platform kube: {e:#}\n  no benchmark was run (the snapshots are written)"))
        })?;
        if a.kube.server_dry_run {
            return Ok(server_dry_run(&rt, &kube, &jobs));
        }
        kube
    } else {
        local_platform(a, ready)?
    };
    let bucket = a.gcs_bucket.as_deref().filter(|b| !b.is_empty());
    if let Some(b) = bucket {
        rt.block_on(crate::results::gcs::check_bucket(b)).map_err(|e| {
            Failure::new(format!("--gcs-bucket {b}: {e}\n  no benchmark was run (the snapshots are written)"))
        })?;
    }
    let parallelism = a.parallelism.max(1) as usize;
    say(&format!(
        "running {} benchmark(s) on the {} platform, {} at a time{}",
        jobs.len(),
        platform.name(),
        parallelism,
        if a.skip_tear_down { "; deployments kept until the run ends (--skip-tear-down)" } else { "" }
    ));
    let stop = stop_on_signals(&rt)?;
    let opts = Options { parallelism, skip_tear_down: a.skip_tear_down };
    let events: run::Events = Arc::new(print_event);
    let finished = rt.block_on(run::run_all(
        platform,
        plan.run_dir.clone(),
        plan.run_id.clone(),
        jobs,
        opts,
        stop.clone(),
        events,
    ));
    print_summary(&finished);
    let failed = finished.iter().filter(|f| f.state == State::Failed).count() + snapshot_failures;
    say(&format!(
        "run {}: {} done, {} failed{} — {}/ (run.json has each benchmark's state)",
        plan.run_id,
        finished.iter().filter(|f| f.state == State::Done).count(),
        failed,
        match finished.iter().filter(|f| f.state == State::Pending).count() {
            0 => String::new(),
            n => format!(", {n} not started"),
        },
        plan.run_dir.display()
    ));
    // Failed benchmarks are history too (their state and reason); a run where nothing ran is not.
    if finished.iter().any(|f| f.state != State::Pending) {
        super::history_cmd::record_after(&a.history, &a.generate.output, &plan.run_dir, "inferbench run");
    }
    if stop.is_cancelled() {
        say(&format!("interrupted: resume with --run-id {} (done benchmarks are skipped)", plan.run_id));
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    match bucket {
        Some(bucket) => upload_after(&rt, &plan.run_dir, bucket, &stop, failed),
        None => Ok(exit_code(failed)),
    }
}

/// The exit code of a run with `failed` benchmarks: their number, at most 100.
fn exit_code(failed: usize) -> ExitCode {
    ExitCode::from(u8::try_from(failed.min(100)).expect("at most 100"))
}

/// The local platform, with `--ready-timeout` and `--servers`.
fn local_platform(a: &RunArgs, ready: std::time::Duration) -> Result<Arc<dyn Platform>, Failure> {
    let p = LocalPlatform::new(a.generate.selection.hardware.clone())
        .map_err(|e| Failure::new(format!("cannot start the local platform: {e}")))?;
    Ok(Arc::new(p.with_ready_timeout(ready).with_servers(match a.servers.as_deref() {
        Some("real") => Some(LocalServer::Real),
        Some(_) => Some(LocalServer::Simulated),
        None => None,
    })))
}

/// A stop asked by the first Ctrl-C / SIGTERM (the load ends, deployments are torn down); the
/// second exits at once. The signal streams are made before anything runs, so a second Ctrl-C is
/// never lost between the first one's handling and a new listener.
fn stop_on_signals(rt: &tokio::runtime::Runtime) -> Result<CancellationToken, Failure> {
    let stop = CancellationToken::new();
    let _guard = rt.enter();
    let mut signals = Signals::new().map_err(|e| Failure::new(format!("cannot listen for Ctrl-C / SIGTERM: {e}")))?;
    let token = stop.clone();
    rt.spawn(async move {
        signals.next().await;
        // Stop first, then say so, and never panic on a closed stderr (eprintln! would).
        token.cancel();
        let _ = writeln!(
            std::io::stderr(),
            "inferbench run: stopping: ending the load, tearing down (Ctrl-C again exits at once)"
        );
        signals.next().await;
        let _ = writeln!(std::io::stderr(), "inferbench run: exiting now; resume with --run-id");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    Ok(stop)
}

/// `--gcs-bucket`: the run folder uploaded once its benchmarks are done (`failed` of them
/// failed). A failed upload is one more failure (the exit code counts it); an interrupted one
/// exits 130 and says how to resume.
fn upload_after(
    rt: &tokio::runtime::Runtime,
    run_dir: &std::path::Path,
    bucket: &str,
    stop: &CancellationToken,
    failed: usize,
) -> CommandResult {
    match super::upload_cmd::upload_with(rt, run_dir, bucket, stop) {
        Ok(line) => {
            say(&line);
            Ok(exit_code(failed))
        }
        Err(_) if stop.is_cancelled() => {
            say(&format!(
                "upload interrupted: resume it with inferbench upload {} --gcs-bucket {bucket}",
                run_dir.display()
            ));
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Err(e) => Err(Failure {
            code: u8::try_from((failed + 1).min(100)).expect("at most 100"),
            ..Failure::new(format!(
                "upload to GCS failed: {e}\n  the results are in {}/; retry with: inferbench upload {} --gcs-bucket {bucket}",
                run_dir.display(),
                run_dir.display()
            ))
        }),
    }
}

/// The kube platform on the configured cluster (checked reachable before anything runs).
async fn kube_platform(a: &RunArgs, run_id: &str, ready: std::time::Duration) -> anyhow::Result<Arc<KubePlatform>> {
    use std::time::Duration;
    let client = crate::platform::kube::client(a.kube.context.as_deref()).await?;
    let v = client.apiserver_version().await.map_err(|e| anyhow::anyhow!("the cluster cannot be reached: {e}"))?;
    say(&format!("cluster: Kubernetes {}.{} ({})", v.major, v.minor, v.git_version));
    let timeouts = Timeouts {
        apply: Duration::from_secs(a.kube.apply_timeout),
        ready,
        load_margin: Duration::from_secs(a.kube.load_timeout_margin),
        fetch: Duration::from_secs(a.kube.fetch_timeout),
        delete: Duration::from_secs(a.kube.delete_timeout),
    };
    let opts = KubeOptions { run_id: run_id.to_owned(), skip_tear_down: a.skip_tear_down, timeouts };
    Ok(Arc::new(KubePlatform::new(client, opts)))
}

/// `--server-dry-run`: every snapshot's objects applied with dryRun=All; nothing is created.
fn server_dry_run(rt: &tokio::runtime::Runtime, kube: &KubePlatform, jobs: &[Job]) -> ExitCode {
    let mut failed = 0u8;
    for job in jobs {
        let r = crate::platform::Snapshot::read(&job.dir).map_err(|e| e.to_string());
        match r.and_then(|snap| rt.block_on(kube.dry_run(&snap)).map_err(|e| e.to_string())) {
            Ok(n) => say(&format!("[{}] {n} objects accepted by the API server (dry run)", job.name)),
            Err(e) => {
                failed = failed.saturating_add(1);
                say(&format!("[{}] FAILED: {e}", job.name));
            }
        }
    }
    ExitCode::from(failed.min(100))
}

/// A line on stdout; a closed stdout (`| head`) never kills a run.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn print_event(e: Event<'_>) {
    match e {
        Event::Deploying(name) => say(&format!("[{name}] deploying")),
        Event::Ready(name, d) => {
            let what = d.runtime.get("simulator").or_else(|| d.runtime.get("model_server"));
            say(&format!(
                "[{name}] ready at {}{}",
                d.url,
                what.and_then(|w| w.as_str()).map(|w| format!(" ({w})")).unwrap_or_default()
            ));
        }
        Event::Stage(name, s) => say(&format!("[{name}] {}", stage_line(s))),
        Event::Finished(f) => say(&format!(
            "[{}] {}",
            f.name,
            match (f.state, &f.reason, &f.results_dir) {
                (State::Done, Some(r), _) => r.clone(),
                (State::Done, None, Some(dir)) => format!("done in {:.1} s → {}/", f.seconds, dir.display()),
                (_, Some(r), _) => format!("{}: {r}", state_name(f.state)),
                _ => state_name(f.state).to_owned(),
            }
        )),
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Pending => "pending",
        State::Running => "running",
        State::Done => "done",
        State::Failed => "FAILED",
        State::Skipped => "skipped",
    }
}

/// One row per benchmark stage: what was offered and what came back.
fn print_summary(finished: &[Finished]) {
    let mut rows = vec![];
    for f in finished {
        let stages = f.results.as_ref().map(|r| r.stages.as_slice()).unwrap_or_default();
        if stages.is_empty() {
            let why = f.reason.clone().unwrap_or_default();
            rows.push(Row {
                benchmark: &f.name,
                stage: Err(format!("{}: {}", state_name(f.state), shorten(&why, 60))),
            });
        }
        rows.extend(stages.iter().map(|s| Row { benchmark: &f.name, stage: Ok(s) }));
    }
    say(&summary_table(&rows));
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}
