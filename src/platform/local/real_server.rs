//! A real model server on the local platform (`inferbench run --servers real`, or
//! `local_server: REAL` in a catalog): the server's own program with its Deployment's own
//! arguments, run as a process of this machine instead of simulated. On a workstation with a GPU
//! that is a real benchmark with no cluster; on a CPU-only machine it is vLLM's CPU build.
//!
//! Only vLLM is built: its Deployment runs `python3 -m vllm.entrypoints.openai.api_server ARGS`,
//! and here `vllm serve ARGS` (the same server) runs, the binary from `INFERBENCH_VLLM` or
//! `PATH`, listening on a free 127.0.0.1 port instead of the pod's `0.0.0.0:8000`. The process
//! gets this process's environment plus the container's literal `env` values (a Secret's value,
//! such as the Hugging Face token, is the cluster's: locally it comes from the environment). Its
//! output goes to `diagnostics/model-server.log` beside the snapshot (never into the snapshot).
//! vLLM starts worker processes of its own: the server runs in a process group of its own, and
//! tear-down ends the whole group.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio_util::sync::CancellationToken;

use super::{PlatformError, wait_ready};
use crate::snapshot::read::ServerDeployment;

/// The environment variable naming the `vllm` binary (else `vllm` on `PATH`).
pub const VLLM_ENV: &str = "INFERBENCH_VLLM";

/// How long the server's process group gets to end after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A running real server (the deployment's handle): ended when dropped.
pub struct RealServer {
    child: Option<tokio::process::Child>,
    /// Its base URL.
    pub url: String,
    /// The command line run.
    pub command: Vec<String>,
    /// Where its output goes.
    pub log: PathBuf,
}

impl RealServer {
    /// Starts the real server of `server` (a snapshot's model-server Deployment) and waits until
    /// its `/health` answers 200, it exits (an error with its log's last lines), `timeout`
    /// passes, or `stop`.
    pub async fn start(
        server: &ServerDeployment,
        diagnostics: &Path,
        timeout: Duration,
        stop: &CancellationToken,
    ) -> Result<RealServer, PlatformError> {
        if server.kind != "vllm" {
            return Err(PlatformError::Deploy(format!(
                "a real {} server on the local platform is not built (only vllm is); run it with --servers simulated, --platform kube, or as an external server",
                if server.kind.is_empty() { "unknown" } else { &server.kind }
            )));
        }
        let program = std::env::var(VLLM_ENV).ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "vllm".into());
        let port = free_port().map_err(|e| PlatformError::Deploy(format!("no free port for the server: {e}")))?;
        let mut command = vec![program.clone(), "serve".to_owned()];
        command.extend(local_args(&server.args, port));
        std::fs::create_dir_all(diagnostics)
            .map_err(|e| PlatformError::Deploy(format!("{}: {e}", diagnostics.display())))?;
        let log = diagnostics.join("model-server.log");
        let out = std::fs::File::create(&log).map_err(|e| PlatformError::Deploy(format!("{}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| PlatformError::Deploy(format!("{}: {e}", log.display())))?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&command[1..])
            .envs(server.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            PlatformError::Deploy(format!(
                "cannot start `{program}` ({e}): install vLLM, or set {VLLM_ENV} to its `vllm` binary (scripts/real-vllm install prints one for this machine's CPU)"
            ))
        })?;
        let url = format!("http://127.0.0.1:{port}");
        let mut real = RealServer { child: Some(child), url, command, log };
        let health = format!("{}/health", real.url);
        let exited = async {
            let code = real.child.as_mut().expect("running").wait().await;
            code.map_or_else(|e| e.to_string(), |c| c.to_string())
        };
        let ready = tokio::select! {
            r = wait_ready(&health, 200, timeout, stop) => r,
            code = exited => Err(PlatformError::Deploy(format!("the server exited ({code}) before it was ready"))),
        };
        match ready {
            Ok(()) => Ok(real),
            Err(PlatformError::Deploy(why)) => {
                let tail = last_lines(&real.log, 15);
                real.stop().await;
                Err(PlatformError::Deploy(format!(
                    "real vllm (`{}`): {why}; last lines of {}:\n{tail}",
                    real.command.join(" "),
                    real.log.display()
                )))
            }
            Err(other) => {
                real.stop().await;
                Err(other)
            }
        }
    }

    /// Ends the server's process group: SIGTERM, then SIGKILL after [`STOP_GRACE`].
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            let group = rustix::process::Pid::from_raw(pid as i32).expect("a pid is positive");
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            // Workers may outlive the leader for a moment: the group gets the last word.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = child.wait().await;
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(tokio::process::Child::id) {
            let group = rustix::process::Pid::from_raw(pid as i32).expect("a pid is positive");
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

/// The Deployment's arguments with the listening address made local: `--host 127.0.0.1 --port
/// PORT` in place of the pod's. A model given as `--model M` stays (vLLM accepts it beside the
/// positional form).
fn local_args(args: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 4);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--host" | "--port" => {
                it.next();
            }
            _ if a.starts_with("--host=") || a.starts_with("--port=") => {}
            _ => out.push(a.clone()),
        }
    }
    out.extend(["--host".into(), "127.0.0.1".into(), "--port".into(), port.to_string()]);
    out
}

/// A port free on 127.0.0.1 now (the server binds it a moment later).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `n` lines of a file ("" if unreadable).
fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pods_address_becomes_a_local_one_and_the_rest_is_kept() {
        let args: Vec<String> =
            ["--host", "0.0.0.0", "--port", "8000", "--model", "m", "--port=9", "--max-model-len", "2048"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        assert_eq!(
            local_args(&args, 4321),
            ["--model", "m", "--max-model-len", "2048", "--host", "127.0.0.1", "--port", "4321"]
        );
    }
}
