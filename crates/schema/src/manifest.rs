//! The contract between the templates (`templates/*.yaml`, rendered into a snapshot) and the
//! platforms that apply and read them: object names, labels and annotations. The templates write
//! these literally; `render`'s golden tests and the platforms' tests hold both sides to them.

/// Label every object carries; the platform only touches objects with it (value: "inferbench").
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label holding the run id.
pub const RUN_ID_LABEL: &str = "inferbench/run-id";
/// Label holding the benchmark name.
pub const BENCHMARK_LABEL: &str = "inferbench/benchmark";

/// The ConfigMap holding the load engine's `LoadSpec` (text format), the one that runs.
pub const LOAD_SPEC_CONFIGMAP: &str = "load-spec";
/// The model server's Deployment.
pub const MODEL_SERVER: &str = "model-server";
/// The load engine's Job, and its container.
pub const LOAD_ENGINE: &str = "load-engine";
/// Label of a load worker's pod (`LoadSpec.workers` > 1): its index. Worker k's Job is
/// `load-engine` for k = 0, `load-engine-{k}` after.
pub const LOAD_WORKER: &str = "inferbench.dev/load-worker";
/// Where a load worker's start gate is mounted in its pod.
pub const LOAD_GATE_DIR: &str = "/gate";

/// Whether a Job of the snapshot is a load worker's (`load-engine` or `load-engine-{k}`).
pub fn is_load_job(name: &str) -> bool {
    name == LOAD_ENGINE || name.strip_prefix("load-engine-").is_some_and(|k| k.parse::<u32>().is_ok())
}

/// The ConfigMap the platform creates at run time with the load engine's target URL.
pub const RUNTIME_CONFIGMAP: &str = "inferbench-runtime";

/// Annotation of the model-server Deployment: the server kind (`vllm`, `simulator`, …).
pub const MODEL_SERVER_KIND: &str = "inferbench.dev/model-server-kind";
/// Annotations of the load-engine Job: what it targets (`service`, `gateway`, `external`), the
/// object's name and port.
pub const TARGET_KIND: &str = "inferbench.dev/target-kind";
/// See [`TARGET_KIND`].
pub const TARGET_NAME: &str = "inferbench.dev/target-name";
/// See [`TARGET_KIND`].
pub const TARGET_PORT: &str = "inferbench.dev/target-port";
