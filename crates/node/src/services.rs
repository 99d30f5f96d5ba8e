//! A loopback service proxy: each Service's ClusterIP (the local cluster hands them out of
//! 127.1.0.0/16, which binds with no set-up) listens on its ports and forwards every connection to
//! a ready pod behind it, round-robin. Pods are read from this node's registry, not from
//! Endpoints (which reject loopback addresses).

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures_util::StreamExt as _;
use k8s_openapi::{api::core::v1::Service, apimachinery::pkg::util::intstr::IntOrString};
use kube::{
    Api,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::task::JoinHandle;

use super::{Node, NodeError};

/// Watches Services and keeps a forwarder per (ClusterIP, port).
pub async fn run(node: Arc<Node>) -> Result<(), NodeError> {
    let api: Api<Service> = Api::all(node.client.clone());
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut live: HashMap<String, (String, Vec<JoinHandle<()>>)> = HashMap::new();
    while let Some(ev) = events.next().await {
        // Watch errors are recoverable (the watcher re-lists); the emulator keeps going.
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("node: watching services: {e}");
                continue;
            }
        };
        match ev {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                let key = format!(
                    "{}/{}",
                    s.metadata.namespace.as_deref().unwrap_or(""),
                    s.metadata.name.as_deref().unwrap_or("")
                );
                let fingerprint = serde_json::to_string(&s.spec).unwrap_or_default();
                if live.get(&key).is_some_and(|(f, _)| *f == fingerprint) {
                    continue;
                }
                if let Some((_, old)) = live.remove(&key) {
                    stop(old).await;
                }
                live.insert(key, (fingerprint, forwarders(&node, &s).await));
            }
            watcher::Event::Delete(s) => {
                let key = format!(
                    "{}/{}",
                    s.metadata.namespace.as_deref().unwrap_or(""),
                    s.metadata.name.as_deref().unwrap_or("")
                );
                if let Some((_, old)) = live.remove(&key) {
                    stop(old).await;
                }
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
    Ok(())
}

/// Stops forwarders and waits until their listeners are closed (so the address can be bound again).
async fn stop(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
}

async fn forwarders(node: &Arc<Node>, s: &Service) -> Vec<JoinHandle<()>> {
    let Some(spec) = &s.spec else { return vec![] };
    let Some(ip) = spec.cluster_ip.as_deref().and_then(|i| i.parse::<IpAddr>().ok()) else { return vec![] };
    // Only loopback ClusterIPs: never bind another range.
    if !ip.is_loopback() {
        return vec![];
    }
    let Some(selector) = spec.selector.clone().filter(|s| !s.is_empty()) else { return vec![] };
    let ns = s.metadata.namespace.clone().unwrap_or_default();
    let mut tasks = vec![];
    for p in spec.ports.iter().flatten() {
        if p.protocol.as_deref().is_some_and(|pr| pr != "TCP") {
            continue;
        }
        let Ok(port) = u16::try_from(p.port) else { continue };
        let listener = match tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "node: service {ns}/{}: cannot listen on {ip}:{port}: {e}",
                    s.metadata.name.as_deref().unwrap_or("")
                );
                continue;
            }
        };
        let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
        let ctx = Arc::new(Forward {
            node: node.clone(),
            ns: ns.clone(),
            selector: selector.clone(),
            target,
            next: AtomicUsize::new(0),
        });
        tasks.push(tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                let ctx = ctx.clone();
                tokio::spawn(async move { ctx.forward(conn).await });
            }
        }));
    }
    tasks
}

struct Forward {
    node: Arc<Node>,
    ns: String,
    selector: BTreeMap<String, String>,
    target: IntOrString,
    next: AtomicUsize,
}

impl Forward {
    async fn forward(&self, mut conn: tokio::net::TcpStream) {
        let pods = self.node.pods.ready_matching(&self.ns, &self.selector);
        if pods.is_empty() {
            return; // no ready endpoint: the connection is closed, as kube-proxy rejects it
        }
        let pod = &pods[self.next.fetch_add(1, Ordering::Relaxed) % pods.len()];
        let port = match &self.target {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => pod
                .spec
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| cp.name.as_deref() == Some(name))
                .and_then(|cp| u16::try_from(cp.container_port).ok()),
        };
        let Some(port) = port else { return };
        let Ok(mut upstream) = tokio::net::TcpStream::connect((pod.ip, port)).await else { return };
        let _ = upstream.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    }
}
