//! Putting a snapshot into a cluster and taking it out again: the namespace claim (never touch a
//! namespace without our labels or with another run's), server-side apply of each object (field
//! manager `inferbench`; kinds resolved by discovery, so CRDs like InferencePool work and a
//! missing CRD is named), and deletion of the namespace and our cluster-scoped objects, waiting
//! until they are gone.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PropagationPolicy},
    discovery::{self, ApiResource, Scope},
    runtime::wait::{await_condition, conditions},
};

use super::super::{PlatformError, Snapshot};
use crate::schema::manifest::{MANAGED_BY, RUN_ID_LABEL};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "inferbench";

/// Whose a namespace is.
pub enum Claim {
    /// Not there: ours to create.
    Free,
    /// Ours, left by an earlier attempt of this run (a crash, a Ctrl-C with --skip-tear-down).
    Leftover,
}

/// Checks the namespace against our labels; refuses anything not ours.
pub async fn claim(client: &Client, ns: &str, run_id: &str) -> Result<Claim, PlatformError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(existing) = api.get_opt(ns).await.map_err(|e| api_error("reading namespace", ns, e))? else {
        return Ok(Claim::Free);
    };
    let labels = existing.metadata.labels.unwrap_or_default();
    if labels.get(MANAGED_BY).map(String::as_str) != Some("inferbench") {
        return Err(PlatformError::Deploy(format!(
            "namespace {ns} exists and is not managed by inferbench (no label {MANAGED_BY}=inferbench): refusing to touch it; delete it or pick another --run-id"
        )));
    }
    match labels.get(RUN_ID_LABEL) {
        Some(id) if id == run_id => Ok(Claim::Leftover),
        other => Err(PlatformError::Deploy(format!(
            "namespace {ns} belongs to another inferbench run ({RUN_ID_LABEL}={}): refusing to touch it",
            other.map_or("missing", String::as_str)
        ))),
    }
}

/// The API resource of a manifest's apiVersion/kind (discovery; a missing CRD is said plainly).
pub async fn resource(client: &Client, api_version: &str, kind: &str) -> Result<(ApiResource, bool), PlatformError> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    match discovery::pinned_kind(client, &gvk).await {
        Ok((ar, caps)) => Ok((ar, caps.scope == Scope::Namespaced)),
        Err(e) => Err(PlatformError::Deploy(format!(
            "the cluster does not serve {kind} ({api_version}): {e}; {}",
            if group.contains("x-k8s.io") || group.contains("envoyproxy") || group.starts_with("gateway.") {
                "install the Gateway API / Inference Extension / Envoy Gateway CRDs this benchmark's load balancer needs"
            } else {
                "check the manifest's apiVersion against the cluster's version"
            }
        ))),
    }
}

/// Server-side applies one object (as written in the snapshot) into `ns`.
pub async fn apply(client: &Client, ns: &str, obj: &serde_json::Value, dry_run: bool) -> Result<(), PlatformError> {
    let api_version = obj.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    let kind = obj.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
    let name = obj.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or_default();
    let (ar, namespaced) = resource(client, api_version, kind).await?;
    let api: Api<DynamicObject> =
        if namespaced { Api::namespaced_with(client.clone(), ns, &ar) } else { Api::all_with(client.clone(), &ar) };
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.dry_run = dry_run;
    api.patch(name, &pp, &Patch::Apply(obj)).await.map_err(|e| api_error(&format!("applying {kind}"), name, e))?;
    Ok(())
}

/// Applies every object of the snapshot for which `want` says yes, in file order (the
/// Namespace first).
pub async fn apply_all(
    client: &Client,
    snap: &Snapshot,
    want: impl Fn(&crate::snapshot::read::Object) -> bool,
    dry_run: bool,
) -> Result<usize, PlatformError> {
    let mut n = 0;
    for o in snap.objects.iter().filter(|o| want(o)) {
        let value = serde_json::to_value(&o.value)
            .map_err(|e| PlatformError::Snapshot(format!("{}: {}/{}: {e}", o.file, o.kind, o.name)))?;
        apply(client, &snap.namespace, &value, dry_run).await.map_err(|e| match e {
            PlatformError::Deploy(m) => PlatformError::Deploy(format!("manifests/{}: {m}", o.file)),
            other => other,
        })?;
        n += 1;
    }
    Ok(n)
}

/// Deletes the namespace (and the cluster-scoped objects of the snapshot) and waits until the
/// namespace is gone, at most `timeout`.
pub async fn delete(client: &Client, snap: &Snapshot, timeout: Duration) -> Result<(), PlatformError> {
    let ns = &snap.namespace;
    // Cluster-scoped objects (a GatewayClass per benchmark): only those carrying our run label.
    for o in snap.objects.iter().filter(|o| o.kind != "Namespace") {
        let api_version = o.value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
        let Ok((ar, false)) = resource(client, api_version, &o.kind).await else { continue };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        if let Ok(Some(obj)) = api.get_opt(&o.name).await
            && obj.metadata.labels.as_ref().and_then(|l| l.get(RUN_ID_LABEL)) == snap_run_id(snap).as_ref()
        {
            let _ = api.delete(&o.name, &DeleteParams::default()).await;
        }
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Foreground), ..DeleteParams::default() };
    let (uid, terminating) = match api.get_opt(ns).await.map_err(|e| api_error("reading namespace", ns, e))? {
        None => return Ok(()),
        Some(n) => (n.metadata.uid.unwrap_or_default(), n.metadata.deletion_timestamp.is_some()),
    };
    // Already terminating (an earlier tear-down ran out of time): deleting again is a 409; wait.
    if !terminating {
        match api.delete(ns, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(PlatformError::TearDown(format!("deleting namespace {ns}: {e}"))),
        }
    }
    match tokio::time::timeout(timeout, await_condition(api, ns, conditions::is_deleted(&uid))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(PlatformError::TearDown(format!("waiting for namespace {ns} to go: {e}"))),
        Err(_) => Err(PlatformError::TearDown(format!(
            "namespace {ns} still terminating after {} s (pods not finalised? `kubectl get all -n {ns}`)",
            timeout.as_secs()
        ))),
    }
}

/// The run id the snapshot's objects carry.
fn snap_run_id(snap: &Snapshot) -> Option<String> {
    snap.objects
        .iter()
        .find(|o| o.kind == "Namespace")?
        .value
        .get("metadata")?
        .get("labels")?
        .get(RUN_ID_LABEL)?
        .as_str()
        .map(str::to_owned)
}

/// Our namespaces of `run_id` (for tests and clean-up tools).
pub async fn namespaces_of_run(client: &Client, run_id: &str) -> Result<Vec<String>, PlatformError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{MANAGED_BY}=inferbench,{RUN_ID_LABEL}={run_id}"));
    let list = api.list(&lp).await.map_err(|e| api_error("listing namespaces", run_id, e))?;
    Ok(list.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// An API error as a deploy error naming what was done.
pub fn api_error(what: &str, name: &str, e: kube::Error) -> PlatformError {
    // Only RBAC's own refusals ("… is forbidden: User "x" cannot create resource …"); admission
    // refusals are 403s too (quota, a terminating namespace, policies).
    let hint = match &e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains(" cannot ") => {
            " (the permissions inferbench needs are in deploy/rbac.yaml)".to_owned()
        }
        _ => String::new(),
    };
    PlatformError::Deploy(format!("{what} {name}: {e}{hint}"))
}
