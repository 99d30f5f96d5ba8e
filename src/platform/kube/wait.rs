//! Waiting on the cluster by watching, never polling: the model server Deployment until it is
//! Available, the load pod until its results are sealed (Ready) or it ends. A crash loop or a
//! pod that ends early fails the wait at once instead of running out the clock.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use futures_util::StreamExt as _;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};

/// How a wait ended badly.
#[derive(Debug)]
pub enum WaitError {
    /// The time ran out.
    Timeout,
    /// A fatal state: what it is.
    Failed(String),
    /// Ctrl-C.
    Interrupted,
    /// The API.
    Api(String),
}

/// Restarts after which a crash-looping container fails the wait.
const CRASH_LOOP_RESTARTS: i32 = 3;

fn available(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let cond = st
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True"));
    // Available alone is true with 0 of N ready when maxUnavailable allows it: ask for every replica.
    cond && st.ready_replicas.unwrap_or(0) >= want && st.updated_replicas.unwrap_or(0) >= want
}

/// Waiting reasons no retry cures: the image reference is malformed or may not be pulled, or the
/// container's configuration names something missing (the platform creates what it references
/// before the pods need it).
const HOPELESS: &[&str] =
    &["InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"];

/// A container waiting for a reason no retry cures, said with the kubelet's message.
fn hopeless(p: &Pod) -> Option<String> {
    let name = p.metadata.name.clone().unwrap_or_default();
    p.status.as_ref()?.container_statuses.iter().flatten().find_map(|cs| {
        let w = cs.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        HOPELESS.contains(&reason).then(|| {
            format!(
                "container {} of pod {name} cannot start: {reason}: {}",
                cs.name,
                w.message.as_deref().unwrap_or("")
            )
        })
    })
}

/// A pod's fatal state: a container crash-looping or unable to start, or ended when it should run.
fn pod_fatal(p: &Pod) -> Option<String> {
    let name = p.metadata.name.clone().unwrap_or_default();
    let st = p.status.as_ref()?;
    if st.phase.as_deref() == Some("Failed") {
        return Some(format!("pod {name} failed"));
    }
    if let Some(why) = hopeless(p) {
        return Some(why);
    }
    for cs in st.container_statuses.iter().flatten() {
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        if cs.restart_count >= CRASH_LOOP_RESTARTS
            && waiting.is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
        {
            let code = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()).map(|t| t.exit_code);
            return Some(format!(
                "container {} of pod {name} is crash-looping ({} restarts, last exit code {})",
                cs.name,
                cs.restart_count,
                code.map_or("?".to_owned(), |c| c.to_string())
            ));
        }
    }
    None
}

/// Waits until the Deployment `name` is Available with every replica ready.
pub async fn deployment_available(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), WaitError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dep_events = watcher(deployments, watcher::Config::default().fields(&format!("metadata.name={name}")))
        .default_backoff()
        .applied_objects()
        .map(|r| r.map(Change::Deployment));
    // Our Deployments' pods carry `app: {name}` (templates/10-model-server.yaml).
    let pod_events = watcher(pods, watcher::Config::default().labels(&format!("app={name}")))
        .default_backoff()
        .applied_objects()
        .map(|r| r.map(Change::Pod));
    let mut events = std::pin::pin!(futures_util::stream::select(dep_events, pod_events));
    let wait = async {
        while let Some(ev) = events.next().await {
            // A watch error (a reset connection, a 410 after falling behind) is recoverable:
            // the watcher re-lists by itself; the phase's timeout bounds the wait.
            let Ok(ev) = ev else { continue };
            match ev {
                Change::Deployment(d) if available(&d) => return Ok(()),
                Change::Pod(p) => {
                    if let Some(why) = pod_fatal(&p) {
                        return Err(WaitError::Failed(why));
                    }
                }
                Change::Deployment(_) => {}
            }
        }
        Err(WaitError::Api("the watch ended".into()))
    };
    bounded(wait, timeout, stop).await
}

enum Change {
    Deployment(Deployment),
    Pod(Pod),
}

/// What the load pod came to.
pub enum LoadPod {
    /// Its results are sealed (Ready): fetch them from this pod.
    Sealed(String),
}

/// Waits until a pod labelled `app=load-engine` is Ready (results sealed), or fails when it
/// ends without becoming Ready.
pub async fn load_sealed(
    client: &Client,
    ns: &str,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<LoadPod, WaitError> {
    load_sealed_where(client, ns, "app=load-engine", None, timeout, stop).await
}

/// [`load_sealed`] of the load pod matching `labels` (one worker's), and named `name` if given.
pub async fn load_sealed_where(
    client: &Client,
    ns: &str,
    labels: &str,
    name: Option<&str>,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<LoadPod, WaitError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut config = watcher::Config::default().labels(labels);
    if let Some(n) = name {
        config = config.fields(&format!("metadata.name={n}"));
    }
    let mut events = std::pin::pin!(watcher(pods, config).default_backoff().applied_objects());
    let wait = async {
        while let Some(p) = events.next().await {
            let Ok(p) = p else { continue }; // recoverable (see deployment_available)
            let name = p.metadata.name.clone().unwrap_or_default();
            let st = p.status.clone().unwrap_or_default();
            let ready = st.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return Ok(LoadPod::Sealed(name));
            }
            if let Some(why) = hopeless(&p) {
                return Err(WaitError::Failed(format!("the load engine: {why}")));
            }
            if st.phase.as_deref() == Some("Failed") && st.container_statuses.as_ref().is_none_or(|c| c.is_empty()) {
                let why = st.reason.clone().or(st.message.clone()).unwrap_or_default();
                return Err(WaitError::Failed(format!("the load engine's pod {name} failed before it ran: {why}")));
            }
            if let Some(code) = st
                .container_statuses
                .iter()
                .flatten()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
            {
                return Err(WaitError::Failed(format!(
                    "the load engine (pod {name}) exited with code {code} before its results were ready"
                )));
            }
        }
        Err(WaitError::Api("the watch ended".into()))
    };
    bounded(wait, timeout, stop).await
}

/// `fut`, unless `timeout` passes or `stop` comes first.
pub async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, WaitError>>,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<T, WaitError> {
    tokio::select! {
        r = tokio::time::timeout(timeout, fut) => r.unwrap_or(Err(WaitError::Timeout)),
        () = stop.cancelled() => Err(WaitError::Interrupted),
    }
}
