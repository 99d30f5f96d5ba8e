//! The node emulator (`inferbench dev node`): plays one Kubernetes node against a real API server,
//! so the whole catalog runs on a laptop with no container runtime (issue 7, and the kube tests).
//!
//! What a kubelet does, for the pods the real scheduler binds to this node:
//! - registers a Ready `Node` with GPU capacity and removes the not-ready taint ([`registration`]);
//! - runs each pod's containers as **local processes** ([`container`]): our image → this binary
//!   with the container's args; known model-server images (vLLM, SGLang, TGI) → `inferbench sim`
//!   with their flags mapped, or, with `--real-vllm MODEL_DIR`, vLLM images → a real `vllm serve`
//!   of that folder with the container's flags; anything else → an `ErrImagePull`-like waiting
//!   state. A container is a process group: all of it is stopped when the pod goes;
//! - gives each pod its own `127.0.x.y`, mounts volumes as folders (emptyDir, ConfigMap, Secret)
//!   by rewriting mount paths in the argv, resolves env (`value`, `fieldRef`, ConfigMap/Secret
//!   keys read from the pod's own namespace, `$(VAR)`; the host's own HF_TOKEN is never passed
//!   on), probes readiness/startup probes, and reports container states, restarts,
//!   exit codes and phases back ([`pods`], [`probes`]);
//! - serves container logs and exec to the API server, over HTTPS, as a kubelet does
//!   ([`kubelet`]): `kubectl logs` and inferbench's result download (exec of `inferbench results …` over
//!   WebSocket; no SPDY, so not `kubectl exec`) work;
//! - finalises deleted pods (stops their processes, deletes them with grace 0): without that a
//!   namespace never finishes deleting;
//! - forwards Service ClusterIPs (the local cluster's range is 127.1.0.0/16) to the ready pods
//!   behind them ([`services`]), reading pods directly (Endpoints reject loopback addresses).
//!
//! A leaf of the workspace that needs none of the others: it runs whatever pods hold, with its own
//! kube client ([`client`]). Errors that stop it are a [`NodeError`].
//!
//! Deviations, on purpose: probes run every 200 ms until a container is first ready (a kubelet
//! waits whole periods; the emulator keeps test cycles short); liveness probes and resource
//! limits are not enforced; no DNS (the platform gives the load engine the ClusterIP).

pub mod client;
pub mod container;
mod error;
pub mod kubelet;
pub mod pods;
pub mod probes;
pub mod registration;
pub mod services;

use std::{path::PathBuf, sync::Arc};

pub use error::{NoVllm, NodeError};

/// `inferbench dev node` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The Node's name.
    #[arg(long, default_value = "inferbench-node")]
    pub name: String,
    /// kubeconfig context (default: the current one; KUBECONFIG is honoured).
    #[arg(long)]
    pub context: Option<String>,
    /// GPUs the node offers.
    #[arg(long, default_value_t = 8)]
    pub gpus: u32,
    /// The extended resource GPUs are offered as.
    #[arg(long, default_value = "nvidia.com/gpu")]
    pub gpu_resource: String,
    /// CPU capacity.
    #[arg(long, default_value = "64")]
    pub cpu: String,
    /// Memory capacity.
    #[arg(long, default_value = "512Gi")]
    pub memory: String,
    /// Extra node labels, KEY=VALUE (e.g. cloud.google.com/gke-accelerator=nvidia-l4).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Folder for pod folders (volumes, logs). Default: .cache/node/NAME.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Image names (repository, without registry or tag) run as this binary.
    #[arg(long = "inferbench-image", default_value = "inferbench")]
    pub inferbench_images: Vec<String>,
    /// The program our image runs (default: this binary).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The first pod address: pods get consecutive 127.0.x.y addresses from here.
    #[arg(long, default_value = "127.0.1.1")]
    pub first_pod_ip: std::net::Ipv4Addr,
    /// Run vLLM images as a real `vllm serve MODEL_DIR` (a local model folder, served under the
    /// model name the pod asks for) instead of simulating them. The program is $INFERBENCH_VLLM,
    /// else `vllm` on PATH (`scripts/real-vllm install` prints both paths).
    // Boxed: `inferbench dev`'s command enum holds these arguments inline (clippy: large_enum_variant).
    #[arg(long, value_name = "MODEL_DIR", value_parser = parse_dir)]
    pub real_vllm: Option<Box<PathBuf>>,
}

fn parse_dir(s: &str) -> Result<Box<PathBuf>, String> {
    if s.is_empty() { Err("a folder is required".into()) } else { Ok(Box::new(PathBuf::from(s))) }
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s}: expected KEY=VALUE"))
}

/// What every part of the emulator shares.
pub struct Node {
    /// Its API client.
    pub client: kube::Client,
    /// The arguments.
    pub args: NodeArgs,
    /// Pod folders live here.
    pub state_dir: PathBuf,
    /// The program our image runs.
    pub binary: PathBuf,
    /// The running pods.
    pub pods: pods::Registry,
}

/// Runs the emulator until Ctrl-C / SIGTERM; then stops every pod's processes.
pub async fn run(args: NodeArgs) -> Result<(), NodeError> {
    let client = client::kube_client(args.context.as_deref()).await?;
    let state_dir = args.state_dir.clone().unwrap_or_else(|| PathBuf::from(".cache/node").join(&args.name));
    std::fs::create_dir_all(&state_dir).map_err(NodeError::io(&state_dir))?;
    let state_dir = state_dir.canonicalize().map_err(NodeError::io(&state_dir))?;
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(NodeError::io("this program's path"))?,
    };
    if let Some(dir) = args.real_vllm.as_deref() {
        // Checked again at each pod's start (a program installed later is picked up then).
        match (container::vllm_program(), dir.join("config.json").is_file()) {
            (Ok(vllm), true) => eprintln!("node: vLLM images run {} serve {}", vllm.display(), dir.display()),
            (Err(why), _) => eprintln!("node: warning: --real-vllm: {why}; vLLM pods wait until there is one"),
            (_, false) => eprintln!(
                "node: warning: --real-vllm {}: no model folder there (no config.json); vLLM pods wait until there is one",
                dir.display()
            ),
        }
    }
    let node = Arc::new(Node { client, pods: pods::Registry::new(args.first_pod_ip), args, state_dir, binary });
    let server = kubelet::Server::start(node.clone()).await?;
    registration::register(&node, server.port()).await?;
    eprintln!(
        "node {} ready: kubelet endpoint https://127.0.0.1:{}, {} × {}, pods under {}",
        node.args.name,
        server.port(),
        node.args.gpus,
        node.args.gpu_resource,
        node.state_dir.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(NodeError::io("SIGTERM handler"))?;
    let result = tokio::select! {
        r = pods::run(node.clone()) => r,
        r = services::run(node.clone()) => r,
        r = registration::heartbeat(node.clone()) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    registration::leave(&node).await;
    node.pods.stop_all().await;
    result
}
