//! Pods bound to the node: a worker per pod, a task per container. The worker prepares volumes,
//! runs probes, reports status (only when it changed) and, once the pod is being deleted, stops its
//! processes and deletes it with grace 0 — what lets a namespace finish terminating.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;
use tokio::sync::{Notify, watch};

use super::{
    Node, NodeError,
    container::{self, Launch, Waiting},
    probes,
    registration::now,
};

/// A container's state as a kubelet reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: why.
    Waiting { reason: String, message: String },
    /// Running since.
    Running { started_at: String, pid: u32 },
    /// Ended.
    Terminated { exit_code: i32, reason: String, started_at: String, finished_at: String },
}

/// One container of a running pod.
#[derive(Debug, Clone)]
pub struct ContainerRun {
    /// Its name.
    pub name: String,
    /// Its image, as written.
    pub image: String,
    /// Restarts so far.
    pub restarts: u32,
    /// Now.
    pub state: State,
    /// The previous run's end, after a restart.
    pub last: Option<State>,
    /// Its startup probe passed (or it has none).
    pub started: bool,
    /// Its readiness probe passes (or it has none and it runs).
    pub ready: bool,
    /// Consecutive readiness probe outcomes of the same kind (thresholds).
    pub streak: (bool, u32),
    /// How it is launched (argv, env, mounts), once resolved; exec and probes use the mounts.
    pub launch: Option<Launch>,
}

/// A pod this node runs.
pub struct PodRun {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Its own loopback address.
    pub ip: Ipv4Addr,
    /// Its folder: volumes, logs.
    pub dir: PathBuf,
    /// Its labels (for Services' selectors).
    pub labels: BTreeMap<String, String>,
    /// The spec's containers (ports, probes).
    pub spec: Vec<Container>,
    /// The containers' states.
    pub containers: Mutex<Vec<ContainerRun>>,
    /// The grace period of the stop under way, when the deletion set one (else the spec's).
    stop_grace: Mutex<Option<Duration>>,
    changed: Notify,
}

impl PodRun {
    /// The log file of `container`'s current run (or the previous one).
    pub fn log_path(&self, container: &str, previous: bool) -> Option<PathBuf> {
        let cs = self.containers.lock().expect("containers");
        let c = cs.iter().find(|c| c.name == container)?;
        let n = if previous { c.restarts.checked_sub(1)? } else { c.restarts };
        Some(self.dir.join("logs").join(format!("{container}-{n}.log")))
    }

    /// Whether `container` runs now.
    pub fn running(&self, container: &str) -> bool {
        let cs = self.containers.lock().expect("containers");
        cs.iter().any(|c| c.name == container && matches!(c.state, State::Running { .. }))
    }

    /// Every container ready.
    pub fn ready(&self) -> bool {
        let cs = self.containers.lock().expect("containers");
        !cs.is_empty() && cs.iter().all(|c| c.ready)
    }

    /// Wakes the worker: a state changed.
    pub fn notify(&self) {
        self.changed.notify_one();
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut ContainerRun)) {
        f(&mut self.containers.lock().expect("containers")[i]);
        self.changed.notify_one();
    }
}

/// The pods running here.
pub struct Registry {
    pods: Mutex<HashMap<String, Arc<PodRun>>>,
    next_ip: Mutex<u32>,
    first_ip: u32,
    stops: Mutex<Vec<watch::Sender<bool>>>,
}

impl Registry {
    /// Empty; pod addresses from `first_ip` on.
    pub fn new(first_ip: Ipv4Addr) -> Registry {
        Registry {
            pods: Mutex::default(),
            next_ip: Mutex::new(u32::from(first_ip)),
            first_ip: u32::from(first_ip),
            stops: Mutex::default(),
        }
    }

    /// The pod `namespace/name`.
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<PodRun>> {
        self.pods.lock().expect("pods").values().find(|p| p.namespace == namespace && p.name == name).cloned()
    }

    /// Ready pods of `namespace` whose labels include `selector`.
    pub fn ready_matching(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Vec<Arc<PodRun>> {
        let pods = self.pods.lock().expect("pods");
        let mut v: Vec<_> = pods
            .values()
            .filter(|p| p.namespace == namespace && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .filter(|p| p.ready())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A fresh 127.0.x.y (never .0 or .255, never 127.0.0.1; wraps within 127.0.0.0/16).
    fn allocate_ip(&self) -> Ipv4Addr {
        let mut n = self.next_ip.lock().expect("ip");
        loop {
            let ip = *n;
            *n = if (ip & 0xffff) >= 0xfffe { self.first_ip } else { ip + 1 };
            let last = ip & 0xff;
            if last != 0 && last != 255 && ip != u32::from(Ipv4Addr::LOCALHOST) {
                return Ipv4Addr::from(ip);
            }
        }
    }

    /// Stops every pod's processes (the emulator is exiting).
    pub async fn stop_all(&self) {
        for s in self.stops.lock().expect("stops").iter() {
            let _ = s.send(true);
        }
        // Container tasks stop their processes within their grace period; give them a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.pods.lock().expect("pods").is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a worker learns of its pod: the latest object, and whether it is gone from the API.
type Latest = (Pod, bool);

/// Watches the pods bound to this node and runs a worker for each.
pub async fn run(node: Arc<Node>) -> Result<(), NodeError> {
    let api: Api<Pod> = Api::all(node.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node.args.name));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut workers: HashMap<String, watch::Sender<Latest>> = HashMap::new();
    // Pods seen in a re-list: those not in it were deleted while the watch was down.
    let mut listed: Option<std::collections::HashSet<String>> = None;
    while let Some(ev) = events.next().await {
        // Watch errors are recoverable (the watcher re-lists); the emulator keeps going.
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("node: watching pods: {e}");
                continue;
            }
        };
        match ev {
            watcher::Event::Init => listed = Some(Default::default()),
            watcher::Event::InitDone => {
                let seen = listed.take().unwrap_or_default();
                workers.retain(|uid, tx| {
                    if seen.contains(uid) {
                        return true;
                    }
                    let mut gone = tx.borrow().0.clone();
                    gone.metadata.deletion_timestamp = None;
                    tx.send_replace((gone, true));
                    false
                });
            }
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(seen) = listed.as_mut() {
                    seen.insert(uid.clone());
                }
                workers.retain(|_, tx| !tx.is_closed());
                if let Some(tx) = workers.get(&uid) {
                    tx.send_replace((pod, false));
                } else if startable(&pod) {
                    let (tx, rx) = watch::channel((pod, false));
                    workers.insert(uid, tx);
                    tokio::spawn(worker(node.clone(), rx));
                }
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.remove(&uid) {
                    tx.send_replace((pod, true));
                }
            }
        }
    }
    Ok(())
}

/// A pod to run: not ended (after an emulator restart, finished pods stay finished), or being
/// deleted (so it gets finalised).
fn startable(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    pod.metadata.deletion_timestamp.is_some() || !matches!(phase, "Succeeded" | "Failed")
}

async fn worker(node: Arc<Node>, mut rx: watch::Receiver<Latest>) {
    let pod = rx.borrow().0.clone();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(node.client.clone(), &ns);
    let spec = pod.spec.clone().unwrap_or_default();
    let ip = node.pods.allocate_ip();
    let run = Arc::new(PodRun {
        namespace: ns.clone(),
        name: name.clone(),
        uid: uid.clone(),
        ip,
        dir: node.state_dir.join("pods").join(&uid),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        spec: spec.containers.clone(),
        containers: Mutex::new(
            spec.containers
                .iter()
                .map(|c| ContainerRun {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    restarts: 0,
                    state: State::Waiting { reason: "ContainerCreating".into(), message: String::new() },
                    last: None,
                    started: false,
                    ready: false,
                    streak: (false, 0),
                    launch: None,
                })
                .collect(),
        ),
        stop_grace: Mutex::new(None),
        changed: Notify::new(),
    });
    node.pods.pods.lock().expect("pods").insert(uid.clone(), run.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    node.pods.stops.lock().expect("stops").push(stop_tx.clone());
    let started_at = now();
    let mut tasks = tokio::task::JoinSet::new();
    let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
    let ran_before = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|cs| {
        cs.iter().any(|c| c.state.as_ref().is_some_and(|st| st.running.is_some() || st.terminated.is_some()))
    });
    if ran_before && policy != "Always" {
        // Run by an emulator that is gone: running it again would repeat a Job's work (and find
        // its old files). A kubelet that lost its containers reports them so.
        for i in 0..spec.containers.len() {
            run.update(i, |c| {
                c.state = State::Terminated {
                    exit_code: 137,
                    reason: "ContainerStatusUnknown".into(),
                    started_at: started_at.clone(),
                    finished_at: now(),
                }
            });
        }
    } else if pod.metadata.deletion_timestamp.is_none() {
        let volumes = loop {
            match volumes(&node, &pod, &run).await {
                Ok(v) => break Some(v),
                Err(w) => {
                    for i in 0..spec.containers.len() {
                        run.update(i, |c| {
                            c.state = State::Waiting { reason: w.reason.into(), message: w.message.clone() }
                        });
                    }
                    publish(&api, &run, &pod, &started_at, &mut None).await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = rx.changed() => {}
                    }
                    if rx.borrow().0.metadata.deletion_timestamp.is_some() || rx.borrow().1 {
                        break None;
                    }
                }
            }
        };
        if let Some(volumes) = volumes {
            let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
            for (i, c) in spec.containers.iter().enumerate() {
                let ctx = ContainerCtx {
                    node: node.clone(),
                    pod: pod.clone(),
                    run: run.clone(),
                    index: i,
                    spec: c.clone(),
                    volumes: volumes.clone(),
                    policy: policy.clone(),
                    grace: Duration::from_secs(grace.clamp(0, 30) as u64),
                };
                tasks.spawn(ctx.run(stop_rx.clone()));
            }
        }
    }
    // Publish status on change, probe, and watch for deletion.
    let mut last = None;
    let mut probe = tokio::time::interval(Duration::from_millis(200));
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (deleting, gone) = {
            let l = rx.borrow();
            (l.0.metadata.deletion_timestamp.is_some(), l.1)
        };
        let stopping = *stop_tx.borrow();
        if deleting || gone || stopping {
            // As a kubelet: the deletion's grace period (a forced deletion's 0 becomes the
            // 2-second minimum), never more than the spec's.
            if let Some(g) = rx.borrow().0.metadata.deletion_grace_period_seconds {
                let spec = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
                let g = g.clamp(MIN_GRACE_SECONDS, spec.clamp(MIN_GRACE_SECONDS, 30));
                *run.stop_grace.lock().expect("grace") = Some(Duration::from_secs(g as u64));
            }
            let _ = stop_tx.send(true);
            while tasks.join_next().await.is_some() {}
            if deleting && !gone {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..DeleteParams::default()
                };
                if let Err(e) = api.delete(&name, &dp).await
                    && !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
                {
                    eprintln!("node: delete pod {ns}/{name}: {e}");
                }
            }
            break;
        }
        publish(&api, &run, &pod, &started_at, &mut last).await;
        let mut stop_seen = stop_tx.subscribe();
        tokio::select! {
            _ = run.changed.notified() => {}
            _ = probe.tick() => probes::probe_all(&run).await,
            r = rx.changed() => if r.is_err() { let _ = stop_tx.send(true); },
            _ = stop_seen.changed() => {}
        }
        // Once every running container is ready, probe at the spec's period (≤ 5 s).
        if run.ready() && probe.period() < Duration::from_secs(1) {
            let period = probes::period(&run.spec);
            probe = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        }
    }
    node.pods.pods.lock().expect("pods").remove(&uid);
    node.pods.stops.lock().expect("stops").retain(|s| !s.same_channel(&stop_tx));
    let _ = std::fs::remove_dir_all(&run.dir);
}

/// The pod's volumes as folders: emptyDir empty, ConfigMap and Secret keys as files.
async fn volumes(node: &Node, pod: &Pod, run: &PodRun) -> Result<BTreeMap<String, PathBuf>, Waiting> {
    let ns = run.namespace.as_str();
    let io = |e: std::io::Error| Waiting { reason: "CreateContainerError", message: e.to_string() };
    let mut out = BTreeMap::new();
    std::fs::create_dir_all(run.dir.join("logs")).map_err(io)?;
    for v in pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default() {
        let dir = run.dir.join("volumes").join(&v.name);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut files: Vec<(String, Vec<u8>)> = vec![];
        if let Some(cm) = &v.config_map {
            let api: Api<ConfigMap> = Api::namespaced(node.client.clone(), ns);
            match api.get_opt(&cm.name).await.map_err(|e| missing(&v.name, e.to_string()))? {
                Some(c) => {
                    files.extend(c.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
                    files.extend(c.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                }
                None if cm.optional == Some(true) => {}
                None => return Err(missing(&v.name, format!("configmap {:?} not found", cm.name))),
            }
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let api: Api<Secret> = Api::namespaced(node.client.clone(), ns);
            match api.get_opt(&name).await.map_err(|e| missing(&v.name, e.to_string()))? {
                Some(sec) => files.extend(sec.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0))),
                None if s.optional == Some(true) => {}
                None => return Err(missing(&v.name, format!("secret {name:?} not found"))),
            }
        }
        for (k, data) in files {
            if k.contains('/') || k.starts_with('.') {
                continue;
            }
            std::fs::write(dir.join(k), data).map_err(io)?;
        }
        out.insert(v.name.clone(), dir);
    }
    Ok(out)
}

fn missing(volume: &str, message: String) -> Waiting {
    Waiting { reason: "CreateContainerConfigError", message: format!("volume {volume:?}: {message}") }
}

/// A kubelet's least grace period: a pod deleted with 0 (forced) still gets SIGTERM and 2 s.
const MIN_GRACE_SECONDS: i64 = 2;

/// How long a killed container's processes may take to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// One container's life: launch, run, restart per policy, stop when asked.
struct ContainerCtx {
    node: Arc<Node>,
    pod: Pod,
    run: Arc<PodRun>,
    index: usize,
    spec: Container,
    volumes: BTreeMap<String, PathBuf>,
    policy: String,
    grace: Duration,
}

impl ContainerCtx {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let launch = loop {
                let programs = container::Programs {
                    ours: &self.node.args.inferbench_images,
                    binary: &self.node.binary,
                    real_vllm: self.node.args.real_vllm.as_deref().map(PathBuf::as_path),
                };
                match container::launch(
                    &self.node.client,
                    &self.pod,
                    &self.spec,
                    &self.volumes,
                    programs,
                    self.run.ip,
                    &self.node.args.name,
                )
                .await
                {
                    Ok(l) => break l,
                    Err(w) => {
                        self.run.update(self.index, |c| {
                            c.state = State::Waiting { reason: w.reason.into(), message: w.message.clone() }
                        });
                        let wait = if w.reason == "ErrImagePull" { 10 } else { 2 };
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                            _ = stopped(&mut stop) => return,
                        }
                    }
                }
            };
            let restarts = self.run.containers.lock().expect("containers")[self.index].restarts;
            let log = self.run.dir.join("logs").join(format!("{}-{restarts}.log", self.spec.name));
            let started_at = now();
            let (exit_code, reason) = match container::spawn(&launch, &self.run.dir, &log) {
                Err(e) => {
                    let _ = std::fs::write(
                        &log,
                        format!("inferbench node emulator: cannot start {:?}: {e}\n", launch.argv[0]),
                    );
                    (128, "StartError".to_owned())
                }
                Ok(mut child) => {
                    let pid = child.id().unwrap_or_default();
                    self.run.update(self.index, |c| {
                        c.state = State::Running { started_at: started_at.clone(), pid };
                        c.launch = Some(launch.clone());
                        c.started = self.spec.startup_probe.is_none();
                        c.streak = (false, 0);
                    });
                    // The container is its process group (a vLLM's engine and workers are children
                    // of its server): when the main process ends, whatever it left goes too, as
                    // a runtime ends the container's cgroup.
                    tokio::select! {
                        st = child.wait() => {
                            container::kill_group(pid, KILL_WAIT).await;
                            let code = st.ok().and_then(|s| s.code().or_else(|| std::os::unix::process::ExitStatusExt::signal(&s).map(|n| 128 + n))).unwrap_or(1);
                            (code, if code == 0 { "Completed".to_owned() } else { "Error".to_owned() })
                        }
                        _ = stopped(&mut stop) => {
                            let grace = self.run.stop_grace.lock().expect("grace").unwrap_or(self.grace);
                            container::signal_group(pid, libc::SIGTERM);
                            let _ = tokio::time::timeout(grace, child.wait()).await;
                            container::kill_group(pid, KILL_WAIT).await;
                            let _ = child.wait().await;
                            self.run.update(self.index, |c| {
                                c.ready = false;
                                c.state = State::Terminated { exit_code: 143, reason: "Error".into(), started_at, finished_at: now() };
                            });
                            return;
                        }
                    }
                }
            };
            let ended = State::Terminated { exit_code, reason, started_at, finished_at: now() };
            let restart = match self.policy.as_str() {
                "Never" => false,
                "OnFailure" => exit_code != 0,
                _ => true,
            };
            if !restart {
                self.run.update(self.index, |c| {
                    c.ready = false;
                    c.state = ended;
                });
                return;
            }
            self.run.update(self.index, |c| {
                c.ready = false;
                c.started = false;
                c.restarts += 1;
                c.last = Some(ended);
                c.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!("back-off {}s restarting failed container={}", backoff.as_secs(), c.name),
                };
            });
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Patches the pod's status when it differs from what was last sent.
async fn publish(api: &Api<Pod>, run: &PodRun, pod: &Pod, started_at: &str, last: &mut Option<serde_json::Value>) {
    let status = status(run, pod, started_at);
    if last.as_ref() == Some(&status) {
        return;
    }
    match api.patch_status(&run.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await {
        Ok(_) => *last = Some(status),
        Err(kube::Error::Api(e)) if e.code == 404 => *last = Some(status),
        Err(e) => eprintln!("node: status of {}/{}: {e}", run.namespace, run.name),
    }
}

fn state_json(s: &State) -> serde_json::Value {
    match s {
        State::Waiting { reason, message } => json!({"waiting": {"reason": reason, "message": message}}),
        State::Running { started_at, .. } => json!({"running": {"startedAt": started_at}}),
        State::Terminated { exit_code, reason, started_at, finished_at } => json!({"terminated": {
            "exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at,
            "containerID": "inferbench://local"}}),
    }
}

/// The pod status a kubelet would post.
fn status(run: &PodRun, pod: &Pod, started_at: &str) -> serde_json::Value {
    let cs = run.containers.lock().expect("containers").clone();
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
    let terminated: Vec<i32> = cs
        .iter()
        .filter_map(|c| if let State::Terminated { exit_code, .. } = c.state { Some(exit_code) } else { None })
        .collect();
    let any_running = cs.iter().any(|c| matches!(c.state, State::Running { .. }));
    let phase = if !cs.is_empty() && terminated.len() == cs.len() && policy != "Always" {
        if terminated.iter().all(|c| *c == 0) { "Succeeded" } else { "Failed" }
    } else if any_running || cs.iter().any(|c| c.restarts > 0) {
        "Running"
    } else {
        "Pending"
    };
    let ready = !cs.is_empty() && cs.iter().all(|c| c.ready);
    let t = |b: bool| if b { "True" } else { "False" };
    let conditions = json!([
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": t(ready)},
        {"type": "Ready", "status": t(ready)},
    ]);
    let statuses: Vec<_> = cs
        .iter()
        .map(|c| {
            let mut s = json!({
                "name": c.name, "image": c.image, "imageID": format!("inferbench://{}", c.image),
                "ready": c.ready, "started": matches!(c.state, State::Running { .. }) && c.started,
                "restartCount": c.restarts, "state": state_json(&c.state),
            });
            if matches!(c.state, State::Running { .. } | State::Terminated { .. }) {
                s["containerID"] = json!(format!("inferbench://{}/{}", run.uid, c.name));
            }
            if let Some(l) = &c.last {
                s["lastState"] = state_json(l);
            }
            s
        })
        .collect();
    let ip = run.ip.to_string();
    json!({
        "phase": phase, "conditions": conditions, "hostIP": "127.0.0.1", "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": started_at, "containerStatuses": statuses, "qosClass": "BestEffort",
    })
}
