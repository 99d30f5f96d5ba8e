//! When a phase fails or times out: why, on one screen — pods and their unmet conditions
//! (scheduling: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu"), container states
//! (image pull errors, crash loops with their exit codes), the last log lines of containers that
//! ended or restarted, and the namespace's warning events. Saved whole under the benchmark's
//! folder (`diagnostics/{phase}.txt`), since the screen shows only the start.

use std::{fmt::Write as _, path::Path};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::{
    Api,
    api::{ListParams, LogParams},
};

/// Lines of log per container.
const LOG_LINES: i64 = 15;

/// Collects what explains the namespace's state. Never fails: what cannot be read is said.
pub async fn collect(client: &kube::Client, ns: &str) -> String {
    let mut out = String::new();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match pods.list(&ListParams::default()).await {
        Err(e) => {
            let _ = writeln!(out, "pods: cannot list: {e}");
        }
        Ok(list) if list.items.is_empty() => {
            let _ = writeln!(out, "no pods in {ns}");
        }
        Ok(list) => {
            for pod in &list.items {
                describe_pod(&pods, pod, &mut out).await;
            }
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    match events.list(&ListParams::default()).await {
        Err(e) => {
            let _ = writeln!(out, "events: cannot list: {e}");
        }
        Ok(list) => {
            // The local cluster's loopback pod addresses are refused by Endpoints (its service
            // proxy reads pods instead): those warnings explain nothing.
            let noise =
                |e: &Event| e.message.as_deref().is_some_and(|m| m.contains("may not be in the loopback range"));
            let mut warnings: Vec<&Event> =
                list.items.iter().filter(|e| e.type_.as_deref() == Some("Warning") && !noise(e)).collect();
            warnings.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
            if !warnings.is_empty() {
                let _ = writeln!(out, "warning events:");
            }
            for e in warnings.iter().rev().take(15).rev() {
                let obj = &e.involved_object;
                let _ = writeln!(
                    out,
                    "  {} {}/{}: {}{}",
                    e.reason.as_deref().unwrap_or(""),
                    obj.kind.as_deref().unwrap_or(""),
                    obj.name.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("").trim(),
                    e.count.filter(|c| *c > 1).map(|c| format!(" (×{c})")).unwrap_or_default()
                );
            }
        }
    }
    out
}

async fn describe_pod(api: &Api<Pod>, pod: &Pod, out: &mut String) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "not scheduled".into());
    let _ = writeln!(out, "pod {name}: {} (node: {node})", status.phase.as_deref().unwrap_or("Unknown"));
    for c in status.conditions.iter().flatten().filter(|c| c.status != "True") {
        let why = [c.reason.as_deref(), c.message.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ");
        if !why.is_empty() {
            let _ = writeln!(out, "  {} false: {why}", c.type_);
        }
    }
    for cs in status.container_statuses.iter().flatten() {
        let state = cs.state.clone().unwrap_or_default();
        let now = if let Some(w) = &state.waiting {
            format!("waiting: {} {}", w.reason.as_deref().unwrap_or(""), w.message.as_deref().unwrap_or(""))
                .trim_end()
                .to_owned()
        } else if let Some(t) = &state.terminated {
            format!("terminated: exit code {} ({})", t.exit_code, t.reason.as_deref().unwrap_or(""))
        } else if state.running.is_some() {
            format!("running, {}", if cs.ready { "ready" } else { "not ready" })
        } else {
            "unknown".into()
        };
        let last = cs
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .map(|t| format!("; last exit code {} ({})", t.exit_code, t.reason.as_deref().unwrap_or("")))
            .unwrap_or_default();
        let _ = writeln!(out, "  container {}: {now}; restarts {}{last}", cs.name, cs.restart_count);
        let ended = state.terminated.is_some() || cs.restart_count > 0;
        let stuck = state.running.is_some() && !cs.ready;
        if ended || stuck {
            let previous = state.waiting.is_some() && cs.restart_count > 0;
            let lp = LogParams {
                container: Some(cs.name.clone()),
                tail_lines: Some(LOG_LINES),
                previous,
                ..LogParams::default()
            };
            match api.logs(&name, &lp).await {
                Ok(text) if !text.trim().is_empty() => {
                    let _ = writeln!(out, "  last log lines{}:", if previous { " (previous run)" } else { "" });
                    for line in text.lines() {
                        let _ = writeln!(out, "    | {line}");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = writeln!(out, "  logs: {e}");
                }
            }
        }
    }
}

/// Writes the diagnostics to `{bench_dir}/diagnostics/{phase}.txt` (atomically) and returns the
/// error text: the headline, the first lines, where the rest is.
pub fn save(bench_dir: &Path, phase: &str, headline: &str, text: &str) -> String {
    let dir = bench_dir.join("diagnostics");
    let file = dir.join(format!("{phase}.txt"));
    let body = format!("{headline}\n\n{text}");
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| {
            let tmp = dir.join(format!(".{phase}.txt.tmp-{}", std::process::id()));
            std::fs::write(&tmp, &body)?;
            std::fs::rename(&tmp, &file)
        })
        .map(|()| format!("\n  (all of it: {})", file.display()))
        .unwrap_or_else(|e| format!("\n  (could not save {}: {e})", file.display()));
    let lines: Vec<&str> = text.lines().collect();
    let shown = lines.iter().take(30).map(|l| format!("\n  {l}")).collect::<String>();
    let more = if lines.len() > 30 { format!("\n  … {} more lines", lines.len() - 30) } else { String::new() };
    format!("{headline}{shown}{more}{saved}")
}
