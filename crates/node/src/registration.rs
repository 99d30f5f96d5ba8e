//! The Node object: created (or taken over, after a restart) with our labels, its status patched
//! Ready with capacity, addresses and the kubelet endpoint, and the not-ready taint removed — the
//! scheduler binds nothing to a node that still carries it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Node, NodeError};

/// Creates or updates the Node and marks it Ready.
pub async fn register(node: &Node, kubelet_port: u16) -> Result<(), NodeError> {
    let api: Api<NodeObject> = Api::all(node.client.clone());
    let name = &node.args.name;
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("inferbench.dev/node-emulator", "true"),
    ] {
        labels.insert(k.into(), json!(v));
    }
    for (k, v) in &node.args.labels {
        labels.insert(k.clone(), json!(v));
    }
    let object = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}});
    if api.get_opt(name).await?.is_none() {
        let obj: NodeObject = serde_json::from_value(object.clone()).expect("the Node object built above is a Node");
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"labels": labels}}))).await?;
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status(node, kubelet_port))).await?;
    // The taint admission adds at creation; a kubelet lifts it once Ready. A previous run's
    // `leave` made it unschedulable.
    // Only the node-state taints go; a user's own taints stay.
    let taints: Vec<_> = api
        .get(name)
        .await?
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.key.starts_with("node.kubernetes.io/"))
        .collect();
    let spec = json!({"spec": {"taints": taints, "unschedulable": null}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&spec)).await?;
    Ok(())
}

/// On exit: the node is marked NotReady and unschedulable, so nothing is bound to a node no
/// emulator plays (with the node lifecycle controller off, nobody else would notice).
pub async fn leave(node: &Node) {
    let api: Api<NodeObject> = Api::all(node.client.clone());
    let name = &node.args.name;
    let now = now();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletStopped",
        "message": "the inferbench node emulator stopped", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"unschedulable": true}}))).await;
    let _ = api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&status)).await;
}

/// Re-asserts the Ready condition now and then (harmless when nothing watches heartbeats; kept
/// so a cluster with the node lifecycle controller on does not evict our pods).
pub async fn heartbeat(node: std::sync::Arc<Node>) -> Result<(), NodeError> {
    let api: Api<NodeObject> = Api::all(node.client.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = now();
        let patch = json!({"status": {"conditions": [ready_condition(&now)]}});
        // Strategic merge: conditions merge by type (a merge patch would drop the others).
        if let Err(e) = api.patch_status(&node.args.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            eprintln!("node: heartbeat: {e}");
        }
    }
}

fn ready_condition(now: &str) -> serde_json::Value {
    json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "inferbench node emulator is posting ready status",
           "lastHeartbeatTime": now, "lastTransitionTime": now})
}

fn status(node: &Node, kubelet_port: u16) -> serde_json::Value {
    let a = &node.args;
    let resources = json!({
        "cpu": a.cpu, "memory": a.memory, "pods": "110", "ephemeral-storage": "1Ti", (a.gpu_resource.as_str()): a.gpus.to_string(),
    });
    let now = now();
    let fine = |t: &str, reason: &str| json!({"type": t, "status": "False", "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now});
    json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [ready_condition(&now), fine("MemoryPressure", "KubeletHasSufficientMemory"),
                       fine("DiskPressure", "KubeletHasNoDiskPressure"), fine("PIDPressure", "KubeletHasSufficientPID")],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": a.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {"machineID": "inferbench", "systemUUID": "inferbench", "bootID": "inferbench",
                     "kernelVersion": "", "osImage": "inferbench node emulator", "containerRuntimeVersion": "inferbench://local-processes",
                     "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64"},
    }})
}

/// RFC 3339, seconds.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
