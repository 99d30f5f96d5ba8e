//! Startup and readiness probes, as a kubelet runs them: `httpGet` (2xx/3xx), `tcpSocket`
//! (connects), `exec` (exit 0, the command mapped like the container's). A container without a
//! readiness probe is ready once it runs (and its startup probe, if any, passed).

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::{Container, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    container::{expand, rewrite_path},
    pods::{PodRun, State},
};

/// How often to probe a ready pod: the shortest readiness period of its containers, at most 5 s.
pub fn period(spec: &[Container]) -> Duration {
    let s = spec.iter().filter_map(|c| c.readiness_probe.as_ref()?.period_seconds).min().unwrap_or(10).clamp(1, 5);
    Duration::from_secs(s as u64)
}

/// Probes every running container once and records the outcome.
pub async fn probe_all(run: &PodRun) {
    let snapshot = run.containers.lock().expect("containers").clone();
    for (i, c) in snapshot.iter().enumerate() {
        let State::Running { .. } = c.state else { continue };
        let spec = &run.spec[i];
        let mut started = c.started;
        if !started {
            started = match &spec.startup_probe {
                Some(p) => check(run, spec, c.launch.as_ref(), p).await,
                None => true,
            };
        }
        let passed = started
            && match &spec.readiness_probe {
                Some(p) => check(run, spec, c.launch.as_ref(), p).await,
                None => true,
            };
        // A kubelet flips readiness only after failureThreshold failures in a row (default 3)
        // or successThreshold successes (default 1): one slow /health under load must not take
        // the only backend out of its Service.
        let (fail_n, ok_n) = spec.readiness_probe.as_ref().map_or((1, 1), |p| {
            (p.failure_threshold.unwrap_or(3).max(1) as u32, p.success_threshold.unwrap_or(1).max(1) as u32)
        });
        let mut cs = run.containers.lock().expect("containers");
        let Some(cur) = cs.get_mut(i).filter(|c| matches!(c.state, State::Running { .. })) else { continue };
        cur.streak = if cur.streak.0 == passed { (passed, cur.streak.1.saturating_add(1)) } else { (passed, 1) };
        let ready = if !started {
            false
        } else if passed {
            cur.ready || cur.streak.1 >= ok_n
        } else {
            cur.ready && cur.streak.1 < fail_n
        };
        if cur.started != started || cur.ready != ready {
            cur.started = started;
            cur.ready = ready;
            drop(cs);
            run.notify();
        }
    }
}

fn port(spec: &Container, p: &IntOrString) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => spec
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name))
            .and_then(|cp| u16::try_from(cp.container_port).ok()),
    }
}

async fn check(run: &PodRun, spec: &Container, launch: Option<&super::container::Launch>, p: &Probe) -> bool {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).clamp(1, 60) as u64);
    if let Some(h) = &p.http_get {
        let Some(port) = port(spec, &h.port) else { return false };
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("http://{}:{port}{path}", run.ip);
        return crate::client::get_status(&url, timeout).await.is_some_and(|s| (200..400).contains(&s));
    }
    if let Some(t) = &p.tcp_socket {
        let Some(port) = port(spec, &t.port) else { return false };
        let addr = std::net::SocketAddr::from((run.ip, port));
        return matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)));
    }
    if let Some(e) = &p.exec {
        let Some(l) = launch else { return false };
        let argv: Vec<String> =
            e.command.iter().flatten().map(|a| rewrite_path(&expand(a, &l.env), &l.mounts)).collect();
        let Some(argv) = super::kubelet::map_exec(argv, l) else { return false };
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(&l.env)
            .current_dir(&run.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status();
        return matches!(tokio::time::timeout(timeout, child).await, Ok(Ok(s)) if s.success());
    }
    false
}
