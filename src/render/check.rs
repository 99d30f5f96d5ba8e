//! Parses rendered manifests back into Kubernetes objects: catches template mistakes (bad YAML,
//! wrong types, missing names, a wrong namespace) when the snapshot is generated.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{ConfigMap, Namespace, Service, ServiceAccount},
        rbac::v1::{Role, RoleBinding},
    },
    serde::de::DeserializeOwned,
};
use kube::core::DynamicObject;
use serde::Deserialize as _;

use super::RenderError;

/// Identity of a rendered object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (`None` for cluster-scoped objects).
    pub namespace: Option<String>,
}

/// Kinds we render that are cluster-scoped.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "GatewayClass",
    "ClusterRole",
    "ClusterRoleBinding",
];

/// Line numbers (1-based) where each YAML document of `text` starts.
fn doc_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    let mut seen_content = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            if seen_content {
                starts.push(i + 2);
            } else {
                starts[0] = i + 2;
            }
            seen_content = true;
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            seen_content = true;
        }
    }
    starts
}

fn snippet(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    // An error at the end of input points past the last line: show that line.
    let line = line.min(lines.len());
    let lo = line.saturating_sub(3);
    let hi = (line + 2).min(lines.len());
    (lo..hi)
        .map(|i| {
            format!(
                "{} {:>4} | {}",
                if i + 1 == line { ">" } else { " " },
                i + 1,
                lines[i]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn typed<T: DeserializeOwned>(v: &serde_yaml_ng::Value) -> Result<(), String> {
    serde_yaml_ng::from_value::<T>(v.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks every document of one rendered template.
pub fn check(
    template: &str,
    text: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<ObjectRef>, RenderError> {
    let starts = doc_starts(text);
    let mut out = vec![];
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| {
            let (line, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            RenderError::Yaml {
                template: template.into(),
                line,
                col,
                message: e.to_string(),
                snippet: snippet(text, line),
            }
        })?;
        if value.is_null() {
            continue;
        }
        let line = starts.get(i).copied().unwrap_or(0);
        let fail = |what: &str, message: String| RenderError::Object {
            template: template.into(),
            doc: i + 1,
            line,
            what: what.into(),
            message,
        };
        let obj: DynamicObject =
            serde_yaml_ng::from_value(value.clone()).map_err(|e| fail("?", e.to_string()))?;
        let Some(types) = &obj.types else {
            return Err(fail("?", "missing apiVersion and kind".into()));
        };
        let name = obj.metadata.name.clone().unwrap_or_default();
        let what = format!("{}/{}", types.kind, name);
        if name.is_empty() {
            return Err(fail(&what, "missing metadata.name".into()));
        }
        let cluster_scoped = CLUSTER_SCOPED.contains(&types.kind.as_str());
        match (&obj.metadata.namespace, cluster_scoped) {
            (Some(ns), false) if ns == namespace => {}
            (None, true) => {}
            (Some(ns), true) => {
                return Err(fail(
                    &what,
                    format!(
                        "a cluster-scoped {} has no namespace, got \"{ns}\"",
                        types.kind
                    ),
                ));
            }
            (ns, false) => {
                return Err(fail(
                    &what,
                    format!("must be in the benchmark's namespace \"{namespace}\", got {ns:?}"),
                ));
            }
        }
        let obj_labels = obj.metadata.labels.clone().unwrap_or_default();
        for (k, v) in labels {
            if obj_labels.get(k) != Some(v) {
                return Err(fail(
                    &what,
                    format!("missing label {k}={v}: the platform only manages labelled objects"),
                ));
            }
        }
        let typed_check = match (types.api_version.as_str(), types.kind.as_str()) {
            ("v1", "Namespace") => typed::<Namespace>(&value),
            ("v1", "Service") => typed::<Service>(&value),
            ("v1", "ConfigMap") => typed::<ConfigMap>(&value),
            ("v1", "ServiceAccount") => typed::<ServiceAccount>(&value),
            ("apps/v1", "Deployment") => typed::<Deployment>(&value),
            ("batch/v1", "Job") => typed::<Job>(&value),
            ("rbac.authorization.k8s.io/v1", "Role") => typed::<Role>(&value),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<RoleBinding>(&value),
            _ => Ok(()), // custom resources: structure checked above, schema by the API server
        };
        typed_check.map_err(|m| fail(&what, m))?;
        out.push(ObjectRef {
            api_version: types.api_version.clone(),
            kind: types.kind.clone(),
            name,
            namespace: obj.metadata.namespace.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("app.kubernetes.io/managed-by".into(), "inferbench".into())])
    }

    const L: &str = "  labels:\n    app.kubernetes.io/managed-by: inferbench\n";

    #[test]
    fn valid_documents_pass_and_are_listed() {
        let text = format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns\n{L}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns\n{L}"
        );
        let objs = check("t.yaml", &text, "ns", &labels()).unwrap();
        assert_eq!(
            objs.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>(),
            ["ConfigMap", "Namespace"]
        );
    }

    #[test]
    fn bad_yaml_names_template_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n";
        let e = check("t.yaml", text, "ns", &labels())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("template t.yaml rendered invalid YAML at line 5"),
            "{e}"
        );
        assert!(e.contains(">    4 |   name: [a"), "{e}");
    }

    #[test]
    fn wrong_types_namespaces_and_labels_are_caught() {
        let dep = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns\n{L}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: ns\n{L}spec:\n  replicas: two\n"
        );
        let e = check("t.yaml", &dep, "ns", &labels())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "template t.yaml, document 2 starting at line 9 of its output (Deployment/d): "
            ),
            "{e}"
        );
        let other_ns = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\n{L}"
        );
        assert!(
            check("t.yaml", &other_ns, "ns", &labels())
                .unwrap_err()
                .to_string()
                .contains("must be in the benchmark's namespace \"ns\"")
        );
        let unlabelled = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns\n";
        assert!(
            check("t.yaml", unlabelled, "ns", &labels())
                .unwrap_err()
                .to_string()
                .contains("missing label")
        );
        let nameless = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: ns\n{L}");
        assert!(
            check("t.yaml", &nameless, "ns", &labels())
                .unwrap_err()
                .to_string()
                .contains("missing metadata.name")
        );
    }
}
