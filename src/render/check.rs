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
use serde::Deserialize;

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
const CLUSTER_SCOPED: &[&str] = &["Namespace", "GatewayClass", "ClusterRole", "ClusterRoleBinding"];

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
        .map(|i| format!("{} {:>4} | {}", if i + 1 == line { ">" } else { " " }, i + 1, lines[i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes a document as its Kubernetes type; k8s-openapi ignores unknown fields, so the decoded
/// object is encoded again and any field of the input it lost is reported (a misspelled field).
fn typed<T: DeserializeOwned + serde::Serialize>(v: serde_yaml_ng::Value) -> Result<(), String> {
    let input = serde_json::to_value(&v).map_err(|e| e.to_string())?;
    let obj = T::deserialize(v).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
    match lost_field(&input, &back, "") {
        Some(path) => Err(format!("unknown field {path} (misspelled?)")),
        None => Ok(()),
    }
}

/// The path of the first field of `input` that `back` does not have.
fn lost_field(input: &serde_json::Value, back: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, va)| {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            match b.get(k) {
                None if !va.is_null() => Some(p),
                None => None,
                Some(vb) => lost_field(va, vb, &p),
            }
        }),
        (Value::Array(a), Value::Array(b)) => {
            a.iter().zip(b).enumerate().find_map(|(i, (va, vb))| lost_field(va, vb, &format!("{path}[{i}]")))
        }
        _ => None,
    }
}

/// What every object must have, read without copying the rest of the document.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
}

#[derive(Default, Deserialize)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
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
        let head = Head::deserialize(&value).map_err(|e| fail("?", e.to_string()))?;
        let (Some(api_version), Some(kind)) = (head.api_version, head.kind) else {
            return Err(fail("?", "missing apiVersion or kind".into()));
        };
        let name = head.metadata.name.unwrap_or_default();
        let what = format!("{kind}/{name}");
        if name.is_empty() {
            return Err(fail(&what, "missing metadata.name".into()));
        }
        let cluster_scoped = CLUSTER_SCOPED.contains(&kind.as_str());
        match (&head.metadata.namespace, cluster_scoped) {
            (Some(ns), false) if ns == namespace => {}
            (None, true) => {}
            (Some(ns), true) => {
                return Err(fail(&what, format!("a cluster-scoped {kind} has no namespace, got \"{ns}\"")));
            }
            (ns, false) => {
                return Err(fail(&what, format!("must be in the benchmark's namespace \"{namespace}\", got {ns:?}")));
            }
        }
        for (k, v) in labels {
            if head.metadata.labels.get(k) != Some(v) {
                return Err(fail(&what, format!("missing label {k}={v}: the platform only manages labelled objects")));
            }
        }
        let typed_check = match (api_version.as_str(), kind.as_str()) {
            ("v1", "Namespace") => typed::<Namespace>(value),
            ("v1", "Service") => typed::<Service>(value),
            ("v1", "ConfigMap") => typed::<ConfigMap>(value),
            ("v1", "ServiceAccount") => typed::<ServiceAccount>(value),
            ("apps/v1", "Deployment") => typed::<Deployment>(value),
            ("batch/v1", "Job") => typed::<Job>(value),
            ("rbac.authorization.k8s.io/v1", "Role") => typed::<Role>(value),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<RoleBinding>(value),
            _ => Ok(()), // custom resources: structure checked above, schema by the API server
        };
        typed_check.map_err(|m| fail(&what, m))?;
        out.push(ObjectRef { api_version, kind, name, namespace: head.metadata.namespace });
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
        assert_eq!(objs.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>(), ["ConfigMap", "Namespace"]);
    }

    #[test]
    fn bad_yaml_names_template_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n";
        let e = check("t.yaml", text, "ns", &labels()).unwrap_err().to_string();
        assert!(e.starts_with("template t.yaml rendered invalid YAML at line 5"), "{e}");
        assert!(e.contains(">    4 |   name: [a"), "{e}");
    }

    #[test]
    fn wrong_types_namespaces_and_labels_are_caught() {
        let dep = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns\n{L}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: ns\n{L}spec:\n  replicas: two\n"
        );
        let e = check("t.yaml", &dep, "ns", &labels()).unwrap_err().to_string();
        assert!(e.starts_with("template t.yaml, document 2 starting at line 9 of its output (Deployment/d): "), "{e}");
        let other_ns = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\n{L}");
        assert!(
            check("t.yaml", &other_ns, "ns", &labels())
                .unwrap_err()
                .to_string()
                .contains("must be in the benchmark's namespace \"ns\"")
        );
        let unlabelled = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns\n";
        assert!(check("t.yaml", unlabelled, "ns", &labels()).unwrap_err().to_string().contains("missing label"));
        let nameless = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: ns\n{L}");
        assert!(check("t.yaml", &nameless, "ns", &labels()).unwrap_err().to_string().contains("missing metadata.name"));
    }
}
