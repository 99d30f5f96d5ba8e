//! Secrets the snapshot's pods reference (the model server's Hugging Face token): a
//! `secretKeyRef` can name only a Secret of the pod's own namespace, and each benchmark runs in a
//! namespace of its own, so the platform copies each referenced Secret from namespace `default`
//! into the benchmark's namespace before anything that references it is applied — only the keys
//! referenced, labelled like every object of the run, so it goes with the namespace.
//!
//! A reference that is not `optional` (the catalog named `hf_token_secret`) must be satisfied:
//! a missing Secret or key fails the deploy before anything is created, saying how to create it.
//! An optional one (the implicit default `hf-token`/`token`) that is missing is a warning: the
//! server starts without the variable, which a public model does not need.
//!
//! Values are never formatted, logged or written: messages name Secrets and keys only.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

use super::super::{PlatformError, Snapshot};
use super::apply::api_error;

/// Where the platform copies Secrets from (the original tool's prerequisite puts `hf-token` there).
pub const SOURCE_NAMESPACE: &str = "default";

/// Annotation on a copy: where it came from.
pub const COPIED_FROM: &str = "inferbench.dev/copied-from";

/// One Secret the snapshot's pods reference by `secretKeyRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reference {
    /// The Secret's name.
    pub name: String,
    /// Every key referenced.
    pub keys: BTreeSet<String>,
    /// The keys some reference requires (not `optional: true`).
    pub required: BTreeSet<String>,
    /// Env variables that reference it, for messages (`HF_TOKEN`, …).
    pub vars: BTreeSet<String>,
}

/// The Secrets referenced by `secretKeyRef` in the pod templates of the snapshot's objects
/// (Deployments, Jobs), by name.
pub fn referenced(snap: &Snapshot) -> Vec<Reference> {
    let mut by_name: BTreeMap<String, Reference> = BTreeMap::new();
    for o in &snap.objects {
        let Ok(value) = serde_json::to_value(&o.value) else { continue };
        let Some(pod) = value.pointer("/spec/template/spec") else { continue };
        let containers = ["initContainers", "containers"].iter().filter_map(|k| pod.get(*k)?.as_array()).flatten();
        for c in containers {
            for var in c.get("env").and_then(|e| e.as_array()).into_iter().flatten() {
                let Some(r) = var.pointer("/valueFrom/secretKeyRef") else { continue };
                let (Some(name), Some(key)) =
                    (r.get("name").and_then(|v| v.as_str()), r.get("key").and_then(|v| v.as_str()))
                else {
                    continue;
                };
                let e = by_name
                    .entry(name.to_owned())
                    .or_insert_with(|| Reference { name: name.to_owned(), ..Reference::default() });
                e.keys.insert(key.to_owned());
                if r.get("optional").and_then(|v| v.as_bool()) != Some(true) {
                    e.required.insert(key.to_owned());
                }
                if let Some(v) = var.get("name").and_then(|v| v.as_str()) {
                    e.vars.insert(v.to_owned());
                }
            }
        }
    }
    by_name.into_values().collect()
}

/// What [`prepare`] found: the copies to create, and what is missing but optional.
#[derive(Default)]
pub struct Prepared {
    copies: Vec<Secret>,
    /// One line per optional Secret (or key) that is not there: said as a warning, and added to
    /// the reason when the model server then fails.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Prepared {
    // Never the data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.copies.iter().map(|s| s.metadata.name.clone().unwrap_or_default()).collect();
        f.debug_struct("Prepared").field("copies", &names).field("warnings", &self.warnings).finish()
    }
}

impl Prepared {
    /// Names of the Secrets to copy.
    pub fn names(&self) -> Vec<String> {
        self.copies.iter().filter_map(|s| s.metadata.name.clone()).collect()
    }
}

/// How to create the Secret `name` with `key` in the source namespace.
fn how_to_create(name: &str, key: &str) -> String {
    format!("kubectl create secret generic {name} -n {SOURCE_NAMESPACE} --from-literal={key}=hf_...")
}

/// Reads every referenced Secret from namespace `default` (nothing is created yet): a required
/// one missing fails here, before the benchmark's namespace exists.
pub async fn prepare(client: &Client, snap: &Snapshot) -> Result<Prepared, PlatformError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), SOURCE_NAMESPACE);
    let labels: BTreeMap<String, String> = snap
        .objects
        .iter()
        .find(|o| o.kind == "Namespace")
        .and_then(|o| serde_json::to_value(o.value.get("metadata")?.get("labels")?).ok())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut out = Prepared::default();
    for r in referenced(snap) {
        let name = &r.name;
        let vars = r.vars.iter().cloned().collect::<Vec<_>>().join(" and ");
        let source = match api.get_opt(name).await {
            Ok(s) => s,
            Err(e) => {
                let why = match api_error("reading secret", &format!("{SOURCE_NAMESPACE}/{name}"), e) {
                    PlatformError::Deploy(m) => m,
                    other => other.to_string(),
                };
                // deploy/rbac.yaml's Role grants `get` on hf-token only.
                let other = if name == "hf-token" {
                    String::new()
                } else {
                    format!("; add {name} to the resourceNames of the Role inferbench-hf-token there")
                };
                if r.required.is_empty() {
                    out.warnings.push(format!("{why}{other}: the model server starts without {vars}"));
                    continue;
                }
                return Err(PlatformError::Deploy(format!(
                    "the model server needs Secret {name} from namespace {SOURCE_NAMESPACE} (copied into {}), and it cannot be read: {why}{other}",
                    snap.namespace
                )));
            }
        };
        let Some(source) = source else {
            let key = r.required.iter().chain(&r.keys).next().cloned().unwrap_or_default();
            let how = how_to_create(name, &key);
            if r.required.is_empty() {
                out.warnings.push(format!(
                    "no Secret {name} in namespace {SOURCE_NAMESPACE}: the model server starts without {vars}, so a gated model (Llama, Gemma, …) cannot be downloaded; to give it a Hugging Face token: {how}"
                ));
                continue;
            }
            return Err(PlatformError::Deploy(format!(
                "the model server needs Secret {name} (key {key}) in namespace {SOURCE_NAMESPACE}, which inferbench copies into the benchmark's namespace {}, and there is no such Secret: create it with `{how}` (a Hugging Face token that may read the model), or leave hf_token_secret out of the catalog to run without a token",
                snap.namespace
            )));
        };
        let data = source.data.clone().unwrap_or_default();
        let mut copied: BTreeMap<String, ByteString> = BTreeMap::new();
        for key in &r.keys {
            match data.get(key) {
                Some(v) => {
                    copied.insert(key.clone(), v.clone());
                }
                None => {
                    let has: Vec<&str> = data.keys().map(String::as_str).collect();
                    let has = if has.is_empty() { "none".to_owned() } else { has.join(", ") };
                    let add = format!(
                        "kubectl create secret generic {name} -n {SOURCE_NAMESPACE} --from-literal={key}=hf_... --dry-run=client -o yaml | kubectl apply -f -"
                    );
                    if !r.required.contains(key) {
                        out.warnings.push(format!(
                            "Secret {SOURCE_NAMESPACE}/{name} has no key {key} (its keys: {has}): the model server starts without {vars}; to add it: {add}"
                        ));
                        continue;
                    }
                    return Err(PlatformError::Deploy(format!(
                        "the model server needs key {key} of Secret {name} in namespace {SOURCE_NAMESPACE} (copied into {}), and the Secret has no such key (its keys: {has}): set it with `{add}`",
                        snap.namespace
                    )));
                }
            }
        }
        if copied.is_empty() {
            continue;
        }
        out.copies.push(Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(snap.namespace.clone()),
                labels: Some(labels.clone()),
                annotations: Some(BTreeMap::from([(COPIED_FROM.to_owned(), format!("{SOURCE_NAMESPACE}/{name}"))])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(copied),
            ..Secret::default()
        });
    }
    Ok(out)
}

/// Creates the copies in the benchmark's namespace (which must exist). `create` only (the one
/// verb deploy/rbac.yaml grants on Secrets): the namespace is fresh, so an existing copy (409) can
/// only be this attempt's own.
pub async fn create(client: &Client, ns: &str, prepared: &Prepared, dry_run: bool) -> Result<(), PlatformError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pp = PostParams { dry_run, field_manager: Some(super::apply::FIELD_MANAGER.into()) };
    for s in &prepared.copies {
        let name = s.metadata.name.clone().unwrap_or_default();
        match api.create(&pp, s).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                return Err(match api_error("creating secret", &format!("{ns}/{name}"), e) {
                    PlatformError::Deploy(m) => {
                        PlatformError::Deploy(format!("{m} (the copy of {SOURCE_NAMESPACE}/{name})"))
                    }
                    other => other,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(yaml: &str) -> Snapshot {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        Snapshot {
            name: "b".into(),
            namespace: "b-1".into(),
            dir: "/nonexistent".into(),
            benchmark: Default::default(),
            load: Default::default(),
            objects: vec![crate::snapshot::read::Object { file: "x.yaml".into(), kind, name: "d".into(), value }],
        }
    }

    #[test]
    fn references_are_grouped_by_secret_with_required_keys() {
        let s = snap(
            r#"
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: c
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: HF_TOKEN
              valueFrom: {secretKeyRef: {name: hf-token, key: token, optional: true}}
            - name: HUGGING_FACE_HUB_TOKEN
              valueFrom: {secretKeyRef: {name: hf-token, key: token, optional: true}}
            - name: OTHER
              valueFrom: {secretKeyRef: {name: other, key: k}}
            - name: PLAIN
              value: x
"#,
        );
        let r = referenced(&s);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "hf-token");
        assert_eq!(r[0].keys, BTreeSet::from(["token".to_owned()]));
        assert!(r[0].required.is_empty());
        assert_eq!(r[0].vars, BTreeSet::from(["HF_TOKEN".to_owned(), "HUGGING_FACE_HUB_TOKEN".to_owned()]));
        assert_eq!(r[1].name, "other");
        assert_eq!(r[1].required, BTreeSet::from(["k".to_owned()]));
    }
}
