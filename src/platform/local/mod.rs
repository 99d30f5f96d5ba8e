//! The local platform: no cluster, no GPU. Each benchmark's model server is the simulator, started
//! in this process on a free 127.0.0.1 port — or the external URL the catalog names — and the load
//! engine runs in this process with the snapshot's `LoadSpec`.
//!
//! - A `simulator` server runs with its Deployment's own arguments (what its pod would run), one
//!   data-parallel engine set per replica (the Service's balancing across pods).
//! - `vllm`, `sglang`, `tgi`, `triton` and `jetstream` servers are *simulated*: the model ×
//!   accelerator's profile from the hardware table, its tensor parallelism and replicas, on real
//!   time (no `time_scale`). `runtime.json` says so; `--platform kube` runs the real server.
//! - With `--servers real` (or `local_server: REAL` in the catalog), a `vllm` server is the real
//!   `vllm serve` with its Deployment's own arguments, as a process: see [`real_server`].
//! - A gateway is not simulated: the load goes to the model server directly (`runtime.json` says so).
//!
//! Each simulator runs on a tokio runtime of its own, dropped with it: the load engine's tasks
//! never queue behind a simulated server's, and benchmarks run side by side (`--parallelism`)
//! do not share one server's threads.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

use async_trait::async_trait;
use serde_json::json;

pub mod real_server;
pub mod workers;

use super::{Deployment, OnStage, Platform, PlatformError, Snapshot, Target};
use crate::{
    load::{
        self,
        scrape::get,
        session::{Outcome, Session},
    },
    schema::LocalServer,
    sim::Server,
    sim::args::SimArgs,
};

/// How long a model server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The local platform.
pub struct LocalPlatform {
    hardware: Option<PathBuf>,
    ready_timeout: Duration,
    /// `--servers`: overrides each catalog's `local_server`.
    servers: Option<LocalServer>,
}

/// A running simulator and the runtime it runs on (the deployment's handle).
struct SimDeployment {
    server: Option<Server>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for SimDeployment {
    fn drop(&mut self) {
        drop(self.server.take());
        // Dropped from async code (tear-down): a runtime may not block there.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl LocalPlatform {
    /// A platform whose simulators read profiles from `hardware` (default: the built-in table).
    pub fn new(hardware: Option<PathBuf>) -> std::io::Result<LocalPlatform> {
        Ok(LocalPlatform { hardware, ready_timeout: READY_TIMEOUT, servers: None })
    }

    /// Changes how long a server may take to become ready.
    pub fn with_ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }

    /// Runs real servers, or simulates them, whatever the catalogs say (None: as they say).
    pub fn with_servers(mut self, servers: Option<LocalServer>) -> Self {
        self.servers = servers;
        self
    }

    /// Whether this snapshot's model server runs for real: `--servers`, else its catalog's
    /// `local_server`. A `simulator` server is always the simulator.
    fn runs_real(&self, snap: &Snapshot) -> bool {
        let ms = snap.benchmark.config.clone().unwrap_or_default().model_server.unwrap_or_default();
        let chosen = self.servers.unwrap_or(ms.local_server());
        chosen == LocalServer::Real && snap.server().is_some_and(|s| s.kind != "simulator")
    }

    /// Starts the real server of `snap` (see [`real_server`]).
    async fn deploy_real(
        &self,
        snap: &Snapshot,
        target: &Target,
        stop: &CancellationToken,
    ) -> Result<Deployment, PlatformError> {
        let server = snap
            .server()
            .ok_or_else(|| PlatformError::Snapshot(format!("{}: no model-server Deployment", snap.dir.display())))?;
        let diagnostics = snap.dir.join("diagnostics");
        let real = real_server::RealServer::start(&server, &diagnostics, self.ready_timeout, stop).await?;
        let mut runtime = json!({
            "platform": "local",
            "url": real.url,
            "model_server": format!("{}, real: its own server as a local process", server.kind),
            "server_command": real.command,
            "server_log": real.log,
        });
        if let Target::Gateway { .. } = target {
            runtime["load_balancer"] =
                json!("gateway not run on the local platform: the load goes to the model server directly");
        }
        Ok(Deployment { url: real.url.clone(), runtime, handle: Box::new(tokio::sync::Mutex::new(real)) })
    }

    /// The simulator's arguments for this snapshot, and how they were chosen.
    fn sim_args(&self, snap: &Snapshot) -> Result<(SimArgs, &'static str), PlatformError> {
        let server = snap
            .server()
            .ok_or_else(|| PlatformError::Snapshot(format!("{}: no model-server Deployment", snap.dir.display())))?;
        let ms = snap.benchmark.config.clone().unwrap_or_default().model_server.unwrap_or_default();
        let mut args = if server.kind == "simulator" {
            let argv = server.args.iter().skip_while(|a| *a == "sim");
            SimArgs::parse_args(argv).map_err(|e| {
                PlatformError::Snapshot(format!(
                    "{}/manifests: the model-server's arguments are not the simulator's: {}",
                    snap.dir.display(),
                    e.to_string().trim()
                ))
            })?
        } else {
            let model = ms.model().unwrap_or_default();
            let accel = ms.accelerator.clone().unwrap_or_default();
            // The profile named outright: a pair missing from the hardware table is an error, not
            // the default profile.
            let mut args = SimArgs {
                model: model.to_owned(),
                profile: Some(format!("{model}@{accel}")),
                tensor_parallelism: Some(ms.tensor_parallelism()),
                ..SimArgs::default()
            };
            if !snap.load.models.is_empty() {
                args.served_model_name = snap.load.models.iter().filter(|m| m.as_str() != model).cloned().collect();
                args.served_model_name.push(model.to_owned());
            }
            args
        };
        if args.hardware.is_none() {
            args.hardware.clone_from(&self.hardware);
        }
        args.data_parallel_size = args.data_parallel_size.max(1) * server.replicas.max(1);
        Ok((args, if server.kind == "simulator" { "simulator" } else { "simulated" }))
    }
}

/// Polls `url` until it answers `want` (0: any status), `timeout` passes, or `stop`.
async fn wait_ready(url: &str, want: u16, timeout: Duration, stop: &CancellationToken) -> Result<(), PlatformError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // After a slow attempt, wait a whole period again rather than firing the missed ticks at once.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Err(PlatformError::Interrupted),
            _ = tick.tick() => {}
        }
        let last = match get(url, Duration::from_secs(5)).await {
            Ok((status, _)) if status == want || want == 0 => return Ok(()),
            Ok((status, _)) => format!("answered {status}"),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(PlatformError::Deploy(format!("{url} was not ready after {} s ({last})", timeout.as_secs())));
        }
    }
}

#[async_trait]
impl Platform for LocalPlatform {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn deploy(&self, snap: &Snapshot, stop: &CancellationToken) -> Result<Deployment, PlatformError> {
        let target = snap.target()?;
        if let Target::External { url } = &target {
            if !url.starts_with("http://") {
                return Err(PlatformError::Deploy(format!(
                    "external server {url}: only http:// targets are supported by the load engine"
                )));
            }
            // Someone else's server, perhaps still starting: any HTTP answer means it is up (it
            // may have no /health).
            wait_ready(url, 0, self.ready_timeout, stop).await.map_err(|e| match e {
                PlatformError::Deploy(m) => PlatformError::Deploy(format!("external server cannot be reached: {m}")),
                other => other,
            })?;
            return Ok(Deployment {
                url: url.clone(),
                runtime: json!({"platform": "local", "url": url, "model_server": "external"}),
                handle: Box::new(()),
            });
        }
        if self.runs_real(snap) {
            return self.deploy_real(snap, &target, stop).await;
        }
        let (args, how) = self.sim_args(snap)?;
        let cfg = args.to_config().map_err(|e| PlatformError::Deploy(format!("simulator: {e:#}")))?;
        let describe =
            format!("profile {}, {} engine(s), time scale {}", cfg.profile.name, cfg.data_parallel, args.time_scale);
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            // Named so that the client's CPU figure leaves the simulator's threads out.
            .thread_name(format!("{}{}", load::host::SERVER_THREADS, snap.name))
            .enable_all()
            .build()
            .map_err(|e| PlatformError::Deploy(format!("simulator runtime: {e}")))?;
        let server = runtime.spawn(Server::bind(cfg, addr));
        let mut handle = SimDeployment { server: None, runtime: Some(runtime) };
        handle.server = Some(
            server
                .await
                .map_err(|e| PlatformError::Deploy(e.to_string()))?
                .map_err(|e| PlatformError::Deploy(format!("simulator: {e:#}")))?,
        );
        let url = handle.server.as_ref().map(Server::url).unwrap_or_default();
        wait_ready(&format!("{url}/health"), 200, self.ready_timeout, stop).await?;
        let kind = snap.server().map(|s| s.kind).unwrap_or_default();
        let mut runtime = json!({
            "platform": "local",
            "url": url,
            "model_server": if how == "simulator" { "simulator".to_owned() } else { format!("{kind}, simulated by inferbench sim (--platform kube runs the real server)") },
            "simulator": describe,
        });
        if let Target::Gateway { .. } = target {
            runtime["load_balancer"] =
                json!("gateway not simulated on the local platform: the load goes to the model server directly");
        }
        Ok(Deployment { url, runtime, handle: Box::new(handle) })
    }

    async fn run_load(
        &self,
        snap: &Snapshot,
        dep: &Deployment,
        out: &Path,
        stop: &CancellationToken,
        on_stage: OnStage,
    ) -> Result<Outcome, PlatformError> {
        let mut spec = snap.load.clone();
        spec.url = Some(dep.url.clone());
        let name = snap.name.clone();
        if spec.workers.unwrap_or(1) > 1 {
            let merged =
                workers::run(&spec, out, stop, &mut |s| on_stage(&name, s)).await.map_err(PlatformError::Load)?;
            let recorded = merged.results.stages.iter().filter_map(|s| s.counts.as_ref()).map(|c| c.sent).sum();
            return Ok(Outcome {
                results: merged.results,
                recorded,
                complete: merged.complete && !stop.is_cancelled(),
                slowest_scrape_seconds: None,
                metrics: None,
            });
        }
        let session = {
            let stop = stop.clone();
            tokio::task::spawn_blocking(move || Session::prepare(spec, &stop))
                .await
                .map_err(|e| PlatformError::Load(e.to_string()))??
        };
        Ok(session.run(Some(out), stop, &mut |s| on_stage(&name, s)).await?)
    }

    async fn tear_down(&self, _snap: &Snapshot, dep: Deployment) -> Result<(), PlatformError> {
        // A real server's process group is asked to end, then killed; dropping a simulator stops
        // it (its listener and engine tasks are aborted).
        if let Some(real) = dep.handle.downcast_ref::<tokio::sync::Mutex<real_server::RealServer>>() {
            real.lock().await.stop().await;
        }
        drop(dep.handle);
        Ok(())
    }
}
