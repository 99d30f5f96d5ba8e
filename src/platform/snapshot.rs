//! A benchmark as a platform sees it: read back from its snapshot folder (`benchmark.pbtxt` and
//! `manifests/*.yaml`), never from the catalog — the snapshot is what runs, so a run resumed next
//! week deploys exactly what was written, even if the catalog changed since.

use std::path::{Path, PathBuf};

use serde::Deserialize as _;

use super::PlatformError;
use crate::{
    schema::{
        self, Benchmark, LoadSpec, manifest,
        text::{SourceFile, parse},
    },
    snapshot::BENCHMARK_PBTXT,
};

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
    /// The resolved benchmark.
    pub benchmark: Benchmark,
    /// Every object, in file order.
    pub objects: Vec<Object>,
}

impl Snapshot {
    /// Reads the snapshot in `dir`.
    pub fn read(dir: &Path) -> Result<Snapshot, PlatformError> {
        let bad = |file: &Path, m: String| PlatformError::Snapshot(format!("{}: {m}", file.display()));
        let pbtxt = dir.join(BENCHMARK_PBTXT);
        let file = SourceFile::read(&pbtxt).map_err(|d| PlatformError::Snapshot(d.to_string()))?;
        let msg =
            parse::parse(&file, schema::message("Benchmark")).map_err(|d| PlatformError::Snapshot(d.to_string()))?;
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
        Ok(Snapshot { name: benchmark.name().to_owned(), namespace, dir: dir.to_path_buf(), benchmark, objects })
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Object> {
        self.objects.iter().find(|o| o.kind == kind && o.name == name)
    }

    /// The load engine's spec: the `load-spec` ConfigMap's `load.pbtxt`, parsed. Errors name the
    /// manifest, the ConfigMap and the line in `load.pbtxt`.
    pub fn load_spec(&self) -> Result<LoadSpec, PlatformError> {
        let cm = self.find("ConfigMap", manifest::LOAD_SPEC_CONFIGMAP).ok_or_else(|| {
            PlatformError::Snapshot(format!("{}: no ConfigMap load-spec in manifests/", self.dir.display()))
        })?;
        let text =
            cm.value.get("data").and_then(|d| d.get("load.pbtxt")).and_then(|t| t.as_str()).ok_or_else(|| {
                PlatformError::Snapshot(format!(
                    "{}/manifests/{}: ConfigMap load-spec has no load.pbtxt",
                    self.dir.display(),
                    cm.file
                ))
            })?;
        let path = self.dir.join("manifests").join(format!("{} (ConfigMap load-spec, load.pbtxt)", cm.file));
        let file = SourceFile::new(path, text.to_owned());
        let msg =
            parse::parse(&file, schema::message("LoadSpec")).map_err(|d| PlatformError::Snapshot(d.to_string()))?;
        msg.transcode_to().map_err(|e| PlatformError::Snapshot(format!("{}: {e}", file.path.display())))
    }

    /// The model server Deployment, when there is one (none for an external server).
    pub fn server(&self) -> Option<ServerDeployment> {
        let d = self.find("Deployment", manifest::MODEL_SERVER)?;
        let spec = d.value.get("spec")?;
        let container = spec.get("template")?.get("spec")?.get("containers")?.get(0)?;
        let strings = |v: Option<&serde_yaml_ng::Value>| -> Vec<String> {
            v.and_then(|v| v.as_sequence())
                .map(|s| s.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        Some(ServerDeployment {
            kind: d.annotation(manifest::MODEL_SERVER_KIND).unwrap_or_default().to_owned(),
            replicas: spec.get("replicas").and_then(|r| r.as_u64()).unwrap_or(1) as u32,
            args: strings(container.get("args")),
            env: container
                .get("env")
                .and_then(|e| e.as_sequence())
                .into_iter()
                .flatten()
                .filter_map(|v| Some((v.get("name")?.as_str()?.to_owned(), v.get("value")?.as_str()?.to_owned())))
                .collect(),
        })
    }

    /// Where the load goes, from the load Job's annotations.
    pub fn target(&self) -> Result<Target, PlatformError> {
        let job = self.find("Job", manifest::LOAD_ENGINE).ok_or_else(|| {
            PlatformError::Snapshot(format!("{}: no Job load-engine in manifests/", self.dir.display()))
        })?;
        let name = job.annotation(manifest::TARGET_NAME).unwrap_or_default().to_owned();
        let port = job.annotation(manifest::TARGET_PORT).and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(match job.annotation(manifest::TARGET_KIND) {
            Some("external") => Target::External { url: name },
            Some("gateway") => Target::Gateway { name, port },
            _ => Target::Service { name, port },
        })
    }
}
