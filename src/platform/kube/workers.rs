//! The kube platform's load workers (`LoadSpec.workers` > 1): one Job per worker
//! (templates/30-load-engine.yaml), each pod labelled with its index and holding its start gate in
//! an emptyDir at `/gate`. They are conducted like the local processes
//! ([`crate::platform::workers`]), through the API server: the gate is listed and answered by exec
//! (`inferbench results gate /gate …`), so the pods need no API access of their own (no service
//! account token, no RBAC) and nothing but the handshake passes through the API server — never a
//! request. A pod that fails, is deleted or evicted is a worker that ended; the merge marks its
//! stages partial. Each worker's sealed results are then fetched as a single load pod's are, into
//! `workers/{k}/`, and merged.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::ListParams};

use super::fetch;
use crate::{
    load::gate::{self, Phase, Start},
    platform::workers::{Fleet, State},
    schema::{Results, manifest},
};

/// The load workers' pods of one namespace.
pub struct Pods {
    api: Api<Pod>,
    /// Workers in all.
    n: u32,
    /// Each worker's pod, once seen.
    seen: Vec<Option<String>>,
    /// Each worker's final state, once known (over, or ended).
    last: Vec<Option<State>>,
}

impl Pods {
    /// The `n` workers' pods in `api`'s namespace.
    pub fn new(api: Api<Pod>, n: u32) -> Pods {
        Pods { api, n, seen: vec![None; n as usize], last: vec![None; n as usize] }
    }

    /// Worker `k`'s pod name, once seen.
    pub fn pod(&self, k: u32) -> Option<&str> {
        self.seen.get(k as usize)?.as_deref()
    }

    async fn gate(&self, pod: &str, extra: &[&str]) -> Result<String, String> {
        let mut cmd = vec!["inferbench", "results", "gate", manifest::LOAD_GATE_DIR];
        cmd.extend_from_slice(extra);
        fetch::exec_output(&self.api, pod, &cmd).await
    }
}

/// The worker index a load pod's label gives.
fn worker_of(p: &Pod) -> Option<u32> {
    p.metadata.labels.as_ref()?.get(manifest::LOAD_WORKER)?.parse().ok()
}

/// How a worker's pod ended, if it has (before its worker said it was over).
fn ended(p: &Pod) -> Option<String> {
    let name = p.metadata.name.clone().unwrap_or_default();
    if p.metadata.deletion_timestamp.is_some() {
        return Some(format!("its pod {name} is being deleted"));
    }
    let st = p.status.clone().unwrap_or_default();
    if let Some(t) = st.container_statuses.iter().flatten().find_map(|c| c.state.as_ref()?.terminated.clone()) {
        let why = t.reason.map(|r| format!(", {r}")).unwrap_or_default();
        return Some(format!("its pod {name} exited with code {}{why}", t.exit_code));
    }
    match st.phase.as_deref() {
        Some("Failed") => Some(format!(
            "its pod {name} failed: {}",
            st.reason.or(st.message).unwrap_or_else(|| "no reason given".into())
        )),
        Some("Succeeded") => Some(format!("its pod {name} ended before its last stage")),
        _ => None,
    }
}

fn running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())))
}

#[async_trait]
impl Fleet for Pods {
    async fn look(&mut self, phase: Phase, stage: usize) -> Result<Vec<State>, String> {
        let list = self
            .api
            .list(&ListParams::default().labels(&format!("app={}", manifest::LOAD_ENGINE)))
            .await
            .map_err(|e| format!("listing the load pods: {e}"))?;
        let by_worker: HashMap<u32, Pod> = list.items.into_iter().filter_map(|p| Some((worker_of(&p)?, p))).collect();
        // First what the pods' status says; then the gates of the running ones, listed at once
        // (each an exec through the API server: tens of ms, and there may be dozens of workers).
        let mut states: Vec<Option<State>> = vec![];
        let mut to_list: Vec<(usize, String)> = vec![];
        for k in 0..self.n {
            let i = k as usize;
            if let Some(s) = &self.last[i] {
                states.push(Some(s.clone()));
                continue;
            }
            let state = match by_worker.get(&k) {
                None => match &self.seen[i] {
                    Some(name) => Some(State::Ended(format!("its pod {name} was deleted"))),
                    None => Some(State::Busy), // not created yet
                },
                Some(p) if self.seen[i].as_ref().is_some_and(|s| Some(s) != p.metadata.name.as_ref()) => {
                    // The Job replaced a pod that was deleted or evicted (a deleted pod is not a
                    // failure to its controller). The new one would send its share from the
                    // start, out of step: it is told to stop, and the worker counts as ended.
                    let new = p.metadata.name.clone().unwrap_or_default();
                    let _ = self.gate(&new, &["--open", gate::STOP, "--answer", "stop"]).await;
                    let old = self.seen[i].clone().unwrap_or_default();
                    Some(State::Ended(format!("its pod {old} was deleted (the Job's replacement {new} was stopped)")))
                }
                Some(p) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    self.seen[i] = Some(name.clone());
                    if let Some(how) = ended(p) {
                        Some(State::Ended(how))
                    } else if !running(p) {
                        Some(State::Busy)
                    } else {
                        to_list.push((i, name));
                        None
                    }
                }
            };
            states.push(state);
        }
        let said_now = gate::said_name(phase, stage);
        let listings = futures_util::future::join_all(to_list.iter().map(|(_, pod)| self.gate(pod, &[]))).await;
        for ((i, _), listing) in to_list.into_iter().zip(listings) {
            states[i] = Some(match listing {
                Ok(listing) => {
                    let said: Vec<&str> = listing.split_whitespace().collect();
                    if said.contains(&gate::OVER) {
                        State::Over
                    } else if said.contains(&said_now.as_str()) {
                        State::Waiting
                    } else {
                        State::Busy
                    }
                }
                // Starting, or ending (the next look sees which).
                Err(_) => State::Busy,
            });
        }
        let states: Vec<State> = states.into_iter().map(|s| s.expect("every worker looked at")).collect();
        for (i, state) in states.iter().enumerate() {
            if matches!(state, State::Over | State::Ended(_)) {
                self.last[i] = Some(state.clone());
            }
        }
        Ok(states)
    }

    async fn answer(&mut self, k: u32, phase: Phase, stage: usize, answer: Start) -> Result<(), String> {
        let pod = self.pod(k).ok_or_else(|| format!("load worker {k} has no pod"))?.to_owned();
        let name = gate::answer_name(phase, stage);
        self.gate(&pod, &["--open", &name, "--answer", &answer.to_text()]).await.map(drop)
    }

    async fn stop_all(&mut self) {
        for k in 0..self.n {
            if self.last[k as usize].is_none()
                && let Some(pod) = self.pod(k).map(str::to_owned)
            {
                let _ = self.gate(&pod, &["--open", gate::STOP, "--answer", "stop"]).await;
            }
        }
    }

    fn start_margin(&self) -> Duration {
        // Each answer is an exec through the API server (tens of ms): all of them well before it.
        Duration::from_millis(500 + 150 * u64::from(self.n))
    }

    fn poll_between(&self) -> (Duration, Duration) {
        // A look is a pod listing and an exec per running worker through the API server: at most
        // ~25 execs a second however many workers (64 workers: every 2.6 s, 3: every second).
        let longest =
            Duration::from_millis(40 * u64::from(self.n)).clamp(Duration::from_secs(1), Duration::from_secs(5));
        (Duration::from_millis(100), longest)
    }

    fn merge_so_far(&mut self) -> Option<Result<Results, String>> {
        None // the results are in the pods until fetched at the end
    }
}
