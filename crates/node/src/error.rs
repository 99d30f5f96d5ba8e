//! What stops the node emulator. A pod's own trouble is not here: it is reported on the pod, as
//! a kubelet does (container states, events), and the emulator keeps going.

use std::path::PathBuf;

/// Why the node emulator could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No Kubernetes configuration to reach the API server with.
    #[error("{0}")]
    Config(String),
    /// The API server refused or failed a call (registering the Node, watching pods).
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The kubelet endpoint's TLS set-up.
    #[error("kubelet TLS: {0}")]
    Tls(String),
    /// A local file or socket.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file, folder or address.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

impl NodeError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NodeError {
        let path = path.into();
        move |source| NodeError::Io { path, source }
    }
}

/// There is no `vllm` program to run vLLM images with (`--real-vllm`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoVllm(pub String);
