//! A snapshot read back: the other side of [`write_all`](super::write_all). A platform sees a
//! benchmark only through this, never through the catalog — the snapshot is what runs, so a run
//! resumed next week deploys exactly what was written, even if the catalog changed since.
//!
//! **Which load spec runs.** A snapshot holds two: `benchmark.pbtxt` has the resolved catalog
//! entry as written (no defaults, no generated rates: the record of what was asked), and the
//! `load-spec` ConfigMap's `load.pbtxt` has the effective spec (`plan` filled in the defaults, the
//! LPG mapping and the rates from the hardware table). The ConfigMap's is the one that runs, on
//! every platform: the load pod mounts it, and [`Snapshot::read`] parses it, once, into
//! [`Snapshot::load`] for the local platform and the lifecycle.

use std::path::{Path, PathBuf};

use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::ConfigMap};
use serde::Deserialize as _;

use super::BENCHMARK_PBTXT;
use crate::schema::{
    self, Benchmark, LoadSpec, manifest,
    text::{SourceFile, parse},
};

/// A snapshot that cannot be read, or does not hold what a run needs (the message names the
/// file and, for the load spec, the line).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// One Kubernetes object of the snapshot.
#[derive(Debug, Clone)]
pub struct Object {
    /// The manifest file it is in.
    pub file: String,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.name`.
    pub name: String,
    /// The whole object.
    pub value: serde_yaml_ng::Value,
}

impl Object {
    /// `metadata.annotations[key]`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value.get("metadata")?.get("annotations")?.get(key)?.as_str()
    }
}

/// Where the load engine sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Service in front of the model server pods.
    Service {
        /// Its name.
        name: String,
        /// Its port.
        port: u16,
    },
    /// An inference gateway.
    Gateway {
        /// Its name.
        name: String,
        /// Its port.
        port: u16,
    },
    /// A server outside the cluster.
    External {
        /// Its base URL.
        url: String,
    },
}

/// The model server Deployment's essentials.
#[derive(Debug, Clone)]
pub struct ServerDeployment {
    /// "vllm", "sglang", "tgi", "triton", "jetstream", "simulator".
    pub kind: String,
    /// Pods.
    pub replicas: u32,
    /// The container's `args`.
    pub args: Vec<String>,
    /// The container's environment variables that have a literal `value` (those from Secrets or
    /// fields are the cluster's to fill in).
    pub env: Vec<(String, String)>,
}

/// A benchmark's snapshot, read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Benchmark name.
    pub name: String,
    /// Folder (and namespace) name: `{name}-{run_id}`.
    pub namespace: String,
    /// The folder.
    pub dir: PathBuf,
    /// The resolved benchmark (`benchmark.pbtxt`: what was asked).
    pub benchmark: Benchmark,
    /// The load spec that runs (the `load-spec` ConfigMap's; see the module's docs).
    pub load: LoadSpec,
    /// Every object, in file order.
    pub objects: Vec<Object>,
}

impl Snapshot {
    /// Reads the snapshot in `dir`.
    pub fn read(dir: &Path) -> Result<Snapshot, ReadError> {
        let bad = |file: &Path, m: String| ReadError(format!("{}: {m}", file.display()));
        let pbtxt = dir.join(BENCHMARK_PBTXT);
        let file = SourceFile::read(&pbtxt).map_err(|d| ReadError(d.to_string()))?;
        let msg = parse::parse(&file, schema::message("Benchmark")).map_err(|d| ReadError(d.to_string()))?;
        let benchmark: Benchmark = msg.transcode_to().map_err(|e| bad(&pbtxt, e.to_string()))?;
        let mdir = dir.join("manifests");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&mdir)
            .map_err(|e| bad(&mdir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut objects = vec![];
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e.to_string()))?;
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| bad(&path, e.to_string()))?;
                if value.is_null() {
                    continue;
                }
                let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                let name = value.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str());
                objects.push(Object {
                    file: path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    kind: field("kind"),
                    name: name.unwrap_or_default().to_owned(),
                    value,
                });
            }
        }
        let namespace = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let load = load_spec(dir, &objects)?;
        Ok(Snapshot { name: benchmark.name().to_owned(), namespace, dir: dir.to_path_buf(), benchmark, load, objects })
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Object> {
        self.objects.iter().find(|o| o.kind == kind && o.name == name)
    }

    /// The model server Deployment, when there is one (none for an external server).
    pub fn server(&self) -> Option<ServerDeployment> {
        let o = self.find("Deployment", manifest::MODEL_SERVER)?;
        let d: Deployment = typed(o)?;
        let spec = d.spec;
        let container = spec.template.spec?.containers.into_iter().next()?;
        Some(ServerDeployment {
            kind: o.annotation(manifest::MODEL_SERVER_KIND).unwrap_or_default().to_owned(),
            replicas: spec.replicas.and_then(|r| u32::try_from(r).ok()).unwrap_or(1),
            args: container.args.unwrap_or_default(),
            env: container.env.into_iter().flatten().filter_map(|v| Some((v.name, v.value?))).collect(),
        })
    }

    /// Where the load goes, from the load Job's annotations.
    pub fn target(&self) -> Result<Target, ReadError> {
        let o = self
            .find("Job", manifest::LOAD_ENGINE)
            .ok_or_else(|| ReadError(format!("{}: no Job load-engine in manifests/", self.dir.display())))?;
        let job: Job = typed(o).ok_or_else(|| {
            ReadError(format!("{}/manifests/{}: Job load-engine is not a Job", self.dir.display(), o.file))
        })?;
        let annotations = job.metadata.annotations.unwrap_or_default();
        let annotation = |k: &str| annotations.get(k).map(String::as_str);
        let name = annotation(manifest::TARGET_NAME).unwrap_or_default().to_owned();
        let port = annotation(manifest::TARGET_PORT).and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(match annotation(manifest::TARGET_KIND) {
            Some("external") => Target::External { url: name },
            Some("gateway") => Target::Gateway { name, port },
            _ => Target::Service { name, port },
        })
    }
}

/// `o` as the k8s-openapi type it claims to be (render's check parsed every manifest so before
/// the snapshot was written; `None` only for a snapshot edited since).
fn typed<T: serde::de::DeserializeOwned>(o: &Object) -> Option<T> {
    serde_yaml_ng::from_value(o.value.clone()).ok()
}

/// The effective load spec: the `load-spec` ConfigMap's `load.pbtxt`, parsed. Errors name the
/// manifest, the ConfigMap and the line in `load.pbtxt`.
fn load_spec(dir: &Path, objects: &[Object]) -> Result<LoadSpec, ReadError> {
    let name = manifest::LOAD_SPEC_CONFIGMAP;
    let o = objects
        .iter()
        .find(|o| o.kind == "ConfigMap" && o.name == name)
        .ok_or_else(|| ReadError(format!("{}: no ConfigMap {name} in manifests/", dir.display())))?;
    let at = format!("{}/manifests/{}", dir.display(), o.file);
    let cm: ConfigMap = typed(o).ok_or_else(|| ReadError(format!("{at}: ConfigMap {name} is not a ConfigMap")))?;
    let text = cm
        .data
        .and_then(|mut d| d.remove("load.pbtxt"))
        .ok_or_else(|| ReadError(format!("{at}: ConfigMap {name} has no load.pbtxt")))?;
    let file = SourceFile::new(format!("{at} (ConfigMap {name}, load.pbtxt)").into(), text);
    let msg = parse::parse(&file, schema::message("LoadSpec")).map_err(|d| ReadError(d.to_string()))?;
    msg.transcode_to().map_err(|e| ReadError(format!("{}: {e}", file.path.display())))
}
