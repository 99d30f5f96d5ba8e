//! Platforms: where a benchmark's snapshot runs. A platform deploys the model server, runs the
//! load engine with the snapshot's `LoadSpec` into a folder it is given, and tears down; the run
//! lifecycle ([`crate::run`]) around it — states, resume, verification, parallelism — is the
//! same for every platform. `local` runs the simulator and the load engine in this process;
//! `kube` applies the manifests to a cluster and runs the load engine as a Job there.

pub mod kube;
pub mod local;
pub mod workers;

use std::{path::Path, sync::Arc};
use tokio_util::sync::CancellationToken;

use async_trait::async_trait;

pub use crate::snapshot::{Snapshot, Target};

use crate::{load::session::Outcome, schema::StageResult};

impl From<crate::snapshot::ReadError> for PlatformError {
    fn from(e: crate::snapshot::ReadError) -> Self {
        PlatformError::Snapshot(e.0)
    }
}

/// Why a step failed; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The snapshot cannot be read or does not describe something this platform runs.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The cluster cannot be reached (no configuration, a bad kubeconfig).
    #[error("cluster: {0}")]
    Cluster(String),
    /// The model server did not come up.
    #[error("deploy: {0}")]
    Deploy(String),
    /// The load did not run to the end (the load pod failed, its results did not arrive).
    #[error("load: {0}")]
    Load(String),
    /// The load engine, run in this process, could not start or keep its results.
    #[error("load: {0}")]
    Engine(#[from] crate::load::LoadError),
    /// Tearing down failed.
    #[error("tear down: {0}")]
    TearDown(String),
    /// A stop (Ctrl-C) was asked.
    #[error("interrupted")]
    Interrupted,
}

/// A deployed benchmark: what the load engine targets and what to record about it.
pub struct Deployment {
    /// Base URL the load engine sends to.
    pub url: String,
    /// Facts known only at run time, recorded as `results/runtime.json`.
    pub runtime: serde_json::Value,
    /// What the platform must keep alive until tear-down.
    pub handle: Box<dyn std::any::Any + Send + Sync>,
}

/// Called after each load stage: (benchmark, stage result).
pub type OnStage = Arc<dyn Fn(&str, &StageResult) + Send + Sync>;

/// A place benchmarks run.
#[async_trait]
pub trait Platform: Send + Sync {
    /// "local" or "kube".
    fn name(&self) -> &'static str;

    /// Brings the model server up and waits until it is ready (or `stop`).
    async fn deploy(&self, snap: &Snapshot, stop: &CancellationToken) -> Result<Deployment, PlatformError>;

    /// Runs the load engine against `dep` with the snapshot's load spec, writing its result files
    /// into `out` (an empty staging folder; the lifecycle verifies and publishes it).
    async fn run_load(
        &self,
        snap: &Snapshot,
        dep: &Deployment,
        out: &Path,
        stop: &CancellationToken,
        on_stage: OnStage,
    ) -> Result<Outcome, PlatformError>;

    /// Removes what `deploy` created.
    async fn tear_down(&self, snap: &Snapshot, dep: Deployment) -> Result<(), PlatformError>;
}
