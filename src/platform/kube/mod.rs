//! The kube platform: a benchmark's snapshot run in its own namespace of a real cluster.
//!
//! deploy: claim the namespace (ours or absent; an earlier attempt of this run is deleted first)
//! → read the Secrets the pods reference (the Hugging Face token) from namespace `default`
//! ([`secrets`]; a required one missing fails here) → apply the Namespace → copy those Secrets
//! into it → server-side apply every other object but the load Job → watch the model server
//! Deployment until Available → resolve the target (the Service's ClusterIP — no cluster DNS needed — or the
//! Gateway's address) into the `inferbench-runtime` ConfigMap, so the snapshot stays as written.
//! run_load: apply the Job → watch its pod until the results are sealed (Ready) → download them
//! through the API (exec; [`fetch`]) → release the pod → the Job completes.
//! tear_down: delete the namespace (and our cluster-scoped objects), wait until it is gone.
//! Every phase has its own timeout; a failure or timeout says why with [`diagnose`], saved under
//! the benchmark's folder. A failed deploy tears down what it created (unless --skip-tear-down).

pub mod apply;
pub mod diagnose;
pub mod fetch;
pub mod secrets;
pub mod wait;
pub mod workers;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod, core::v1::Service};
use kube::{
    Api, Client,
    api::DynamicObject,
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;

use super::{Deployment, OnStage, Platform, PlatformError, Snapshot, Target};
use crate::{
    load::session::Outcome,
    schema::manifest::{self, RUNTIME_CONFIGMAP},
};

/// DCGM exporter pods, by default: NVIDIA's GPU operator's label.
pub const DCGM_SELECTOR: &str = "app=nvidia-dcgm-exporter";
/// DCGM exporter's port when its pod names none "metrics".
const DCGM_PORT: i32 = 9400;
use wait::WaitError;

/// Per-phase time limits.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Applying the manifests.
    pub apply: Duration,
    /// The model server becoming Available (image pulls and model loading included).
    pub ready: Duration,
    /// Added to the Job's own deadline (activeDeadlineSeconds) for the load to seal its results.
    pub load_margin: Duration,
    /// Downloading the results.
    pub fetch: Duration,
    /// The namespace being gone after deletion.
    pub delete: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            apply: Duration::from_secs(120),
            ready: Duration::from_secs(1800),
            load_margin: Duration::from_secs(120),
            fetch: Duration::from_secs(1800),
            delete: Duration::from_secs(600),
        }
    }
}

/// Settings of the kube platform.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// The run's id (namespaces must carry it).
    pub run_id: String,
    /// Leave namespaces in place (also after a failed deploy).
    pub skip_tear_down: bool,
    /// Time limits.
    pub timeouts: Timeouts,
}

/// The kube platform.
pub struct KubePlatform {
    client: Client,
    opts: KubeOptions,
}

/// The load Job's name (templates/30-load-engine.yaml).
const LOAD_JOB: &str = crate::schema::manifest::LOAD_ENGINE;
/// Load workers whose results are fetched at once (see `load_workers`).
const FETCHES_AT_ONCE: usize = 4;

/// Stage names already reported live.
type Reported = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

impl KubePlatform {
    /// A platform on `client`'s cluster.
    pub fn new(client: Client, opts: KubeOptions) -> KubePlatform {
        KubePlatform { client, opts }
    }

    /// Server-side dry run of every object of the snapshot: checks the manifests against the
    /// cluster's API (kinds served, CRDs installed, schemas). The API server checks a namespaced
    /// object's namespace even in a dry run, so the namespace itself is created for the check
    /// (after the same claim as a run) and deleted again, unless it was there already.
    pub async fn dry_run(&self, snap: &Snapshot) -> Result<usize, PlatformError> {
        let existed =
            matches!(apply::claim(&self.client, &snap.namespace, &self.opts.run_id).await?, apply::Claim::Leftover);
        apply::apply_all(&self.client, snap, |o| o.kind == "Namespace", false).await?;
        let r = async {
            let prepared = secrets::prepare(&self.client, snap).await?;
            for w in &prepared.warnings {
                eprintln!("warning: {}: {w}", snap.namespace);
            }
            secrets::create(&self.client, &snap.namespace, &prepared, true).await?;
            apply::apply_all(&self.client, snap, |_| true, true).await
        }
        .await;
        if !existed {
            apply::delete(&self.client, snap, self.opts.timeouts.delete).await?;
        }
        r
    }

    fn failure(&self, snap: &Snapshot, phase: &str, headline: String, diag: Option<String>) -> String {
        match diag {
            Some(text) => diagnose::save(&snap.dir, phase, &headline, &text),
            None => headline,
        }
    }

    async fn diagnose_wait(
        &self,
        snap: &Snapshot,
        phase: &str,
        what: &str,
        timeout: Duration,
        e: WaitError,
    ) -> PlatformError {
        self.diagnose_wait_noted(snap, phase, what, timeout, e, "").await
    }

    /// [`Self::diagnose_wait`] with `notes` (lines) after the headline.
    async fn diagnose_wait_noted(
        &self,
        snap: &Snapshot,
        phase: &str,
        what: &str,
        timeout: Duration,
        e: WaitError,
        notes: &str,
    ) -> PlatformError {
        let headline = match e {
            WaitError::Interrupted => return PlatformError::Interrupted,
            WaitError::Timeout => format!("{what}: not done after {} s{notes}", timeout.as_secs()),
            WaitError::Failed(why) => format!("{what}: {why}{notes}"),
            WaitError::Api(why) => format!("{what}: {why}{notes}"),
        };
        let diag = diagnose::collect(&self.client, &snap.namespace).await;
        let text = self.failure(snap, phase, headline, Some(diag));
        if phase == "load" { PlatformError::Load(text) } else { PlatformError::Deploy(text) }
    }

    async fn deploy_inner(
        &self,
        snap: &Snapshot,
        stop: &CancellationToken,
        t0: Instant,
    ) -> Result<Deployment, PlatformError> {
        let ns = &snap.namespace;
        let apply = async {
            // Secrets first, read before anything is created: a required one missing fails at once.
            let prepared = secrets::prepare(&self.client, snap).await?;
            for w in &prepared.warnings {
                eprintln!("warning: {ns}: {w}");
            }
            apply::apply_all(&self.client, snap, |o| o.kind == "Namespace", false).await?;
            secrets::create(&self.client, ns, &prepared, false).await?;
            apply::apply_all(
                &self.client,
                snap,
                |o| o.kind != "Namespace" && !(o.kind == "Job" && manifest::is_load_job(&o.name)),
                false,
            )
            .await?;
            Ok::<_, PlatformError>(prepared.warnings)
        };
        let warnings;
        tokio::select! {
            r = tokio::time::timeout(self.opts.timeouts.apply, apply) => match r {
                Ok(r) => { warnings = r?; }
                Err(_) => {
                    let t = self.opts.timeouts.apply;
                    return Err(self.diagnose_wait(snap, "deploy", "applying the manifests", t, WaitError::Timeout).await);
                }
            },
            () = stop.cancelled() => return Err(PlatformError::Interrupted),
        }
        let applied_s = t0.elapsed().as_secs_f64();
        // Every Deployment: the model server, and the endpoint picker of a gateway benchmark.
        let t = self.opts.timeouts.ready;
        for d in snap.objects.iter().filter(|o| o.kind == "Deployment") {
            if let Err(e) = wait::deployment_available(&self.client, ns, &d.name, t, stop).await {
                let (what, notes) = if d.name == "model-server" {
                    // A missing optional token is the likely cause of a gated model's failure.
                    (
                        "the model server did not become ready".to_owned(),
                        warnings.iter().map(|w| format!("\nnote: {w}")).collect(),
                    )
                } else {
                    (format!("Deployment {} did not become ready", d.name), String::new())
                };
                return Err(self.diagnose_wait_noted(snap, "deploy", &what, t, e, &notes).await);
            }
        }
        let url = self.target_url(snap, stop).await?;
        let ready_s = t0.elapsed().as_secs_f64();
        let labels = snap
            .objects
            .iter()
            .find(|o| o.kind == "Namespace")
            .and_then(|o| o.value.get("metadata")?.get("labels").cloned())
            .unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let server_pods = pods
            .list(&kube::api::ListParams::default().labels("app=model-server"))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let nodes: Vec<String> =
            server_pods.iter().filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone())).collect();
        let servers: Vec<_> = server_pods
            .into_iter()
            .map(|p| {
                json!({"pod": p.metadata.name, "node": p.spec.and_then(|s| s.node_name),
                       "ip": p.status.and_then(|s| s.pod_ip)})
            })
            .collect();
        let accelerators = self.accelerator_exporters(snap, &nodes).await;
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RUNTIME_CONFIGMAP, "namespace": ns, "labels": serde_json::to_value(&labels).unwrap_or_default()},
            "data": {"url": url, "accelerator_urls": accelerators.join(",")}});
        apply::apply(&self.client, ns, &cm, false).await?;
        let runtime = json!({
            "platform": "kube", "namespace": ns, "url": url, "model_server_pods": servers,
            "accelerator_urls": accelerators,
            "seconds": {"apply": applied_s, "ready": ready_s},
        });
        // Nothing to keep alive here: the namespace is the deployment.
        Ok(Deployment { url, runtime, handle: Box::new(()) })
    }

    /// The `/metrics` URLs of the DCGM exporters (pods matching the load spec's
    /// `server_metrics.accelerator_selector`, in any namespace) on `nodes`, the model server's:
    /// scraped by the load engine beside the server. A cluster without them, or credentials that
    /// cannot list pods cluster-wide, give none (a warning in the latter case).
    async fn accelerator_exporters(&self, snap: &Snapshot, nodes: &[String]) -> Vec<String> {
        let selector = snap
            .load
            .server_metrics
            .as_ref()
            .and_then(|m| m.accelerator_selector.clone())
            .unwrap_or_else(|| DCGM_SELECTOR.to_owned());
        if selector.is_empty() || nodes.is_empty() {
            return vec![];
        }
        let all: Api<Pod> = Api::all(self.client.clone());
        let found = match all.list(&kube::api::ListParams::default().labels(&selector)).await {
            Ok(l) => l.items,
            Err(e) => {
                eprintln!("warning: {}: no accelerator metrics: listing pods {selector}: {e}", snap.namespace);
                return vec![];
            }
        };
        let mut urls: Vec<String> = found
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| nodes.contains(n)))
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.clone()?;
                let port = p
                    .spec
                    .as_ref()?
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|port| port.name.as_deref() == Some("metrics"))
                    .map_or(DCGM_PORT, |port| port.container_port);
                Some(format!("http://{ip}:{port}/metrics"))
            })
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }

    /// The load engine's target: the Service's ClusterIP, the Gateway's address, or the URL.
    async fn target_url(&self, snap: &Snapshot, stop: &CancellationToken) -> Result<String, PlatformError> {
        let ns = &snap.namespace;
        match snap.target()? {
            Target::External { url } => Ok(url),
            Target::Service { name, port } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
                let svc = api.get(&name).await.map_err(|e| apply::api_error("reading service", &name, e))?;
                let ip = svc.spec.and_then(|s| s.cluster_ip).filter(|ip| !ip.is_empty() && ip != "None");
                let ip = ip.ok_or_else(|| PlatformError::Deploy(format!("service {name} has no ClusterIP")))?;
                Ok(format!("http://{}:{port}", if ip.contains(':') { format!("[{ip}]") } else { ip }))
            }
            Target::Gateway { name, port } => {
                let (ar, _) = apply::resource(&self.client, "gateway.networking.k8s.io/v1", "Gateway").await?;
                let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
                let t = self.opts.timeouts.ready;
                let mut events = std::pin::pin!(
                    watcher(api, watcher::Config::default().fields(&format!("metadata.name={name}")))
                        .default_backoff()
                        .applied_objects()
                );
                let addr = async {
                    while let Some(g) = events.next().await {
                        let Ok(g) = g else { continue }; // recoverable: the watcher re-lists
                        if let Some(a) = g.data.pointer("/status/addresses/0/value").and_then(|v| v.as_str()) {
                            return Ok(a.to_owned());
                        }
                    }
                    Err(WaitError::Api("the watch ended".into()))
                };
                match wait::bounded(addr, t, stop).await {
                    Ok(a) => Ok(format!("http://{a}:{port}")),
                    Err(e) => Err(self
                        .diagnose_wait(snap, "deploy", &format!("gateway {name} got no address (is a Gateway controller such as Envoy Gateway installed?)"), t, e)
                        .await),
                }
            }
        }
    }

    /// Follows the load pod's log and reports each stage as it ends (progress only; the results
    /// themselves arrive by the download), noting which it reported.
    fn follow_stages(
        &self,
        ns: &str,
        name: String,
        on_stage: OnStage,
        reported: Reported,
    ) -> tokio::task::JoinHandle<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        tokio::spawn(async move {
            // The log exists once the container started: wait for that by watching the pod.
            let mut events = std::pin::pin!(
                watcher(pods.clone(), watcher::Config::default().labels("app=load-engine"))
                    .default_backoff()
                    .applied_objects()
            );
            let pod = loop {
                match events.next().await {
                    Some(Ok(p)) => {
                        let started = p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|cs| {
                            cs.iter().any(|c| {
                                c.state.as_ref().is_some_and(|st| st.running.is_some() || st.terminated.is_some())
                            })
                        });
                        if started {
                            break p.metadata.name.unwrap_or_default();
                        }
                    }
                    Some(Err(_)) => continue,
                    None => return,
                }
            };
            let lp =
                kube::api::LogParams { follow: true, container: Some(fetch::CONTAINER.into()), ..Default::default() };
            let Ok(stream) = pods.log_stream(&pod, &lp).await else { return };
            let mut lines = futures_util::AsyncBufReadExt::lines(stream);
            while let Some(Ok(line)) = lines.next().await {
                if let Some(stage) = crate::schema::handoff::parse_stage_log_line(&line) {
                    on_stage(&name, &stage);
                    reported.lock().expect("reported").insert(stage.name);
                }
            }
        })
    }

    async fn load_inner(
        &self,
        snap: &Snapshot,
        out: &Path,
        stop: &CancellationToken,
        on_stage: OnStage,
    ) -> Result<Outcome, PlatformError> {
        let reported = Reported::default();
        if snap.load.workers.unwrap_or(1) > 1 {
            // Stages are merged once every worker's results are fetched: reported then, below.
            let outcome = self.load_workers(snap, out, stop).await?;
            for s in &outcome.results.stages {
                on_stage(&snap.name, s);
            }
            return Ok(outcome);
        }
        let follower = self.follow_stages(&snap.namespace, snap.name.clone(), on_stage.clone(), reported.clone());
        let r = self.load_and_fetch(snap, out, stop).await;
        follower.abort();
        let outcome = r?;
        // Stages the log did not show (it is progress only) are reported now, from the results.
        let seen = reported.lock().expect("reported").clone();
        for s in outcome.results.stages.iter().filter(|s| !seen.contains(&s.name)) {
            on_stage(&snap.name, s);
        }
        Ok(outcome)
    }

    async fn load_and_fetch(
        &self,
        snap: &Snapshot,
        out: &Path,
        stop: &CancellationToken,
    ) -> Result<Outcome, PlatformError> {
        let ns = &snap.namespace;
        let t0 = Instant::now();
        let job = snap.objects.iter().find(|o| o.kind == "Job" && o.name == LOAD_JOB).ok_or_else(|| {
            PlatformError::Snapshot(format!("{}: no Job {LOAD_JOB} in manifests/", snap.dir.display()))
        })?;
        let value = serde_json::to_value(&job.value).map_err(|e| PlatformError::Snapshot(e.to_string()))?;
        let deadline = value.pointer("/spec/activeDeadlineSeconds").and_then(|v| v.as_u64()).unwrap_or(3600);
        let results_dir = results_dir(&value);
        apply::apply(&self.client, ns, &value, false).await.map_err(|e| PlatformError::Load(e.to_string()))?;
        let t = Duration::from_secs(deadline) + self.opts.timeouts.load_margin;
        let pod = match wait::load_sealed(&self.client, ns, t, stop).await {
            Ok(wait::LoadPod::Sealed(p)) => p,
            Err(e) => return Err(self.diagnose_wait(snap, "load", "the load engine", t, e).await),
        };
        let load_s = t0.elapsed().as_secs_f64();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let tf = self.opts.timeouts.fetch;
        let fetched = wait::bounded(
            async { fetch::fetch(&pods, &pod, &results_dir, out).await.map_err(|e| WaitError::Failed(e.0)) },
            tf,
            stop,
        )
        .await;
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => return Err(self.diagnose_wait(snap, "load", "downloading the results", tf, e).await),
        };
        let fetch_s = t0.elapsed().as_secs_f64() - load_s;
        let released = wait::bounded(
            async { fetch::release(&pods, &pod, &results_dir).await.map_err(|e| WaitError::Failed(e.0)) },
            Duration::from_secs(60),
            stop,
        )
        .await;
        if let Err(e) = released {
            eprintln!("warning: {ns}: releasing the load pod: {e:?} (the namespace's deletion stops it anyway)");
        }
        let done = self.job_finished(ns, stop).await;
        let timings = json!({"load_until_sealed": load_s, "fetch": fetch_s, "fetched_bytes": fetched.bytes,
                             "fetched_files": fetched.files, "job": done});
        let _ = std::fs::write(out.join("kube.json"), serde_json::to_vec_pretty(&timings).unwrap_or_default());
        let summary = out.join(crate::schema::result_files::SUMMARY);
        let text = std::fs::read_to_string(&summary)
            .map_err(|e| PlatformError::Load(format!("{}: {e}", summary.display())))?;
        let results = crate::schema::result_files::parse_summary(&text)
            .map_err(|e| PlatformError::Load(format!("{}: {e}", summary.display())))?;
        let recorded = results.stages.iter().filter_map(|s| s.counts.as_ref()).map(|c| c.sent).sum();
        Ok(Outcome { results, recorded, complete: true, slowest_scrape_seconds: None, metrics: None })
    }

    /// `LoadSpec.workers` > 1: applies every worker's Job, conducts their stages through their
    /// gates ([`workers`]), fetches each one's sealed results into `out/workers/{k}/` and merges
    /// them into `out` (see [`crate::load::merge`]).
    async fn load_workers(
        &self,
        snap: &Snapshot,
        out: &Path,
        stop: &CancellationToken,
    ) -> Result<Outcome, PlatformError> {
        let ns = &snap.namespace;
        let t0 = Instant::now();
        let n = snap.load.workers.unwrap_or(1);
        let jobs: Vec<&crate::snapshot::read::Object> =
            snap.objects.iter().filter(|o| o.kind == "Job" && manifest::is_load_job(&o.name)).collect();
        if jobs.len() != n as usize {
            return Err(PlatformError::Snapshot(format!(
                "{}: the load spec asks for {n} workers, manifests/ holds {} load Jobs",
                snap.dir.display(),
                jobs.len()
            )));
        }
        let mut deadline = 3600;
        let mut results_dir = String::new();
        for job in jobs {
            let value = serde_json::to_value(&job.value).map_err(|e| PlatformError::Snapshot(e.to_string()))?;
            deadline = value.pointer("/spec/activeDeadlineSeconds").and_then(|v| v.as_u64()).unwrap_or(deadline);
            results_dir = self::results_dir(&value);
            apply::apply(&self.client, ns, &value, false).await.map_err(|e| PlatformError::Load(e.to_string()))?;
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut fleet = workers::Pods::new(pods.clone(), n);
        let t = Duration::from_secs(deadline) + self.opts.timeouts.load_margin;
        let conducted = wait::bounded(
            async { crate::platform::workers::conduct(&mut fleet, stop, &mut |_| {}).await.map_err(WaitError::Failed) },
            t,
            stop,
        )
        .await;
        let conducted = match conducted {
            Ok(c) => c,
            Err(e) => return Err(self.diagnose_wait(snap, "load", "the load workers", t, e).await),
        };
        let load_s = t0.elapsed().as_secs_f64();
        // Fetched a few at a time: each is an exec streaming a tar through the API server, and
        // one at a time, 64 workers' records would take minutes.
        let fetches = (0..n).map(|k| {
            let dir = out.join("workers").join(k.to_string());
            let failure = conducted.failed.iter().find(|f| f.0 == k).map(|f| f.1.clone());
            let pod = fleet.pod(k).map(str::to_owned).unwrap_or_default();
            let results_dir = &results_dir;
            async move {
                if failure.is_some() {
                    return (k, dir, failure, Ok(0));
                }
                let fetched = self.fetch_worker(ns, &pod, k, results_dir, &dir, stop).await;
                (k, dir, None, fetched)
            }
        });
        let fetched: Vec<_> = futures_util::stream::iter(fetches).buffered(FETCHES_AT_ONCE).collect().await;
        let mut reports = vec![];
        let mut fetched_bytes = 0;
        for (k, dir, mut failure, got) in fetched {
            match got {
                Ok(bytes) => fetched_bytes += bytes,
                Err(PlatformError::Interrupted) => return Err(PlatformError::Interrupted),
                Err(e) => failure = Some(format!("its results could not be fetched: {e}")),
            }
            reports.push(crate::load::merge::Worker { index: k, dir, failure });
        }
        let results = crate::load::merge::merge(&snap.load, &reports, out)
            .map_err(|e| PlatformError::Load(format!("merging the workers' results: {e}")))?;
        let failed: Vec<String> =
            reports.iter().filter_map(|w| Some(format!("worker {}: {}", w.index, w.failure.as_ref()?))).collect();
        let timings = json!({"load_until_over": load_s, "fetch": t0.elapsed().as_secs_f64() - load_s,
                             "fetched_bytes": fetched_bytes, "workers": n, "failed_workers": failed});
        let _ = std::fs::write(out.join("kube.json"), serde_json::to_vec_pretty(&timings).unwrap_or_default());
        let recorded = results.stages.iter().filter_map(|s| s.counts.as_ref()).map(|c| c.sent).sum();
        let complete = failed.is_empty() && results.stages.iter().all(|s| s.partial.is_none());
        Ok(Outcome { results, recorded, complete, slowest_scrape_seconds: None, metrics: None })
    }

    /// Worker `k`'s sealed results into `dir`, then releases its pod; the bytes downloaded.
    async fn fetch_worker(
        &self,
        ns: &str,
        pod: &str,
        k: u32,
        results_dir: &str,
        dir: &Path,
        stop: &CancellationToken,
    ) -> Result<u64, PlatformError> {
        // The very pod that said it was over (not a replacement the Job may have started), sealed
        // moments after: a minute is plenty.
        let labels = format!("app={},{}={k}", manifest::LOAD_ENGINE, manifest::LOAD_WORKER);
        let tf = self.opts.timeouts.fetch;
        let sealing = Duration::from_secs(60);
        let pod = match wait::load_sealed_where(&self.client, ns, &labels, Some(pod), sealing, stop).await {
            Ok(wait::LoadPod::Sealed(p)) => p,
            Err(WaitError::Interrupted) => return Err(PlatformError::Interrupted),
            Err(e) => return Err(PlatformError::Load(format!("{e:?}"))),
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        std::fs::create_dir_all(dir).map_err(|e| PlatformError::Load(format!("{}: {e}", dir.display())))?;
        let fetched = wait::bounded(
            async { fetch::fetch(&pods, &pod, results_dir, dir).await.map_err(|e| WaitError::Failed(e.0)) },
            tf,
            stop,
        )
        .await
        .map_err(|e| match e {
            WaitError::Interrupted => PlatformError::Interrupted,
            e => PlatformError::Load(format!("{e:?}")),
        })?;
        if let Err(e) = fetch::release(&pods, &pod, results_dir).await {
            eprintln!("warning: {ns}: releasing load worker {k}'s pod: {e} (the namespace's deletion stops it anyway)");
        }
        Ok(fetched.bytes)
    }

    /// Waits (briefly) for the Job to complete after the release; says how it ended.
    async fn job_finished(&self, ns: &str, stop: &CancellationToken) -> String {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let cond = |j: Option<&Job>| -> bool {
            j.and_then(|j| j.status.as_ref()).is_some_and(|s| s.succeeded.unwrap_or(0) > 0 || s.failed.unwrap_or(0) > 0)
        };
        let r = wait::bounded(
            async {
                kube::runtime::wait::await_condition(api.clone(), LOAD_JOB, cond)
                    .await
                    .map_err(|e| WaitError::Api(e.to_string()))
            },
            Duration::from_secs(60),
            stop,
        )
        .await;
        match r {
            Ok(Some(j)) if j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0 => "complete".into(),
            Ok(Some(_)) => "failed (the load engine exited non-zero after its results were fetched)".into(),
            Ok(None) => "deleted before it completed".into(),
            Err(WaitError::Timeout) => "still running 60 s after the release".into(),
            Err(WaitError::Interrupted) => "not waited for (interrupted)".into(),
            Err(e) => format!("unknown ({e:?})"),
        }
    }
}

/// A client from the kubeconfig (KUBECONFIG, ~/.kube/config, `context`) or the in-cluster config.
pub async fn client(context: Option<&str>) -> Result<Client, PlatformError> {
    install_crypto();
    let config = match context {
        Some(ctx) => {
            let opts = kube::config::KubeConfigOptions { context: Some(ctx.to_owned()), ..Default::default() };
            kube::Config::from_kubeconfig(&opts)
                .await
                .map_err(|e| PlatformError::Cluster(format!("kubeconfig context {ctx}: {e}")))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            PlatformError::Cluster(format!("no Kubernetes configuration (set KUBECONFIG or --context): {e}"))
        })?,
    };
    Client::try_from(config).map_err(|e| PlatformError::Cluster(format!("Kubernetes client: {e}")))
}

/// A client for the kubeconfig file `path` (its current context).
pub async fn client_for(path: &Path) -> Result<Client, PlatformError> {
    install_crypto();
    let cluster = |e: &dyn std::fmt::Display| PlatformError::Cluster(format!("{}: {e}", path.display()));
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| cluster(&e))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| cluster(&e))?;
    Client::try_from(config).map_err(|e| cluster(&e))
}

/// Picks rustls' ring provider for the process: two providers are linked in (ring for kube,
/// aws-lc-rs for the GCS client), so rustls cannot choose by itself.
pub fn install_crypto() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
}

/// The results folder inside the load pod: the Job's `--output-dir` (default /results).
fn results_dir(job: &serde_json::Value) -> String {
    let args: Vec<&str> = job
        .pointer("/spec/template/spec/containers/0/args")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    args.iter()
        .position(|a| *a == "--output-dir")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| "/results".to_owned(), |s| (*s).to_owned())
}

#[async_trait]
impl Platform for KubePlatform {
    fn name(&self) -> &'static str {
        "kube"
    }

    async fn deploy(&self, snap: &Snapshot, stop: &CancellationToken) -> Result<Deployment, PlatformError> {
        let t0 = Instant::now();
        if let apply::Claim::Leftover = apply::claim(&self.client, &snap.namespace, &self.opts.run_id).await? {
            // An earlier attempt of this run (killed, or kept by --skip-tear-down): start clean.
            eprintln!("{}: deleting the namespace left by an earlier attempt of this run", snap.namespace);
            apply::delete(&self.client, snap, self.opts.timeouts.delete).await?;
        }
        let r = self.deploy_inner(snap, stop, t0).await;
        if r.is_err() && !self.opts.skip_tear_down {
            // What this attempt created goes, even when the deploy failed or was interrupted.
            if let Err(e) = apply::delete(&self.client, snap, self.opts.timeouts.delete).await {
                eprintln!("warning: {}: {e}", snap.namespace);
            }
        }
        r
    }

    async fn run_load(
        &self,
        snap: &Snapshot,
        dep: &Deployment,
        out: &Path,
        stop: &CancellationToken,
        on_stage: OnStage,
    ) -> Result<Outcome, PlatformError> {
        let _ = dep;
        self.load_inner(snap, out, stop, on_stage).await
    }

    async fn tear_down(&self, snap: &Snapshot, _dep: Deployment) -> Result<(), PlatformError> {
        if self.opts.skip_tear_down {
            return Ok(());
        }
        let t0 = Instant::now();
        apply::delete(&self.client, snap, self.opts.timeouts.delete).await?;
        eprintln!("{}: namespace deleted and gone in {:.1} s", snap.namespace, t0.elapsed().as_secs_f64());
        Ok(())
    }
}
