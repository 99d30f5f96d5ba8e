//! Downloading a load pod's results through the API server (exec over WebSocket; see
//! [`crate::schema::handoff`] for the pod's side): the tar is streamed to a file while hashed,
//! its digest and size checked against what the pod computed, unpacked into the staging folder,
//! each file checked against the pod's `SHA256SUMS`; then the pod is released.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::AttachParams};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::schema::handoff;

/// What was downloaded.
pub struct Fetched {
    /// Files, verified.
    pub files: usize,
    /// Bytes of the tar stream.
    pub bytes: u64,
}

/// The container name of the load engine (templates/30-load-engine.yaml).
pub const CONTAINER: &str = crate::schema::manifest::LOAD_ENGINE;

fn params() -> AttachParams {
    let mut ap = AttachParams::default().container(CONTAINER).stdin(false).stdout(true).stderr(true);
    // kube's default pipe between the WebSocket and us is 1 KiB: a wake-up per KiB.
    ap.max_stdout_buf_size = Some(1 << 20);
    ap.max_stderr_buf_size = Some(64 << 10);
    ap
}

/// Runs `cmd` in the load pod, returning (stdout bytes written to `sink`, stderr text, exit status message).
async fn exec_to(
    api: &Api<Pod>,
    pod: &str,
    cmd: &[&str],
    mut sink: impl tokio::io::AsyncWrite + Unpin,
) -> Result<(String, u64, String), String> {
    let mut p =
        api.exec(pod, cmd.iter().copied(), &params()).await.map_err(|e| format!("exec {cmd:?} in {pod}: {e}"))?;
    let mut stdout = p.stdout().ok_or("exec: no stdout")?;
    let mut stderr = p.stderr().ok_or("exec: no stderr")?;
    let status = p.take_status().ok_or("exec: no status channel")?;
    let err_text = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let copy = async {
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let k = stdout.read(&mut buf).await.map_err(|e| format!("reading the stream: {e}"))?;
            if k == 0 {
                break;
            }
            hash.update(&buf[..k]);
            sink.write_all(&buf[..k]).await.map_err(|e| format!("writing the download: {e}"))?;
            n += k as u64;
        }
        sink.flush().await.map_err(|e| format!("writing the download: {e}"))?;
        Ok::<_, String>((hex::encode(hash.finalize()), n))
    };
    // If writing fails, stop at once: nobody would read stdout any more, the stream would stall
    // and stderr never end.
    let (digest, bytes) = match copy.await {
        Ok(c) => c,
        Err(e) => {
            p.abort();
            err_text.abort();
            return Err(e);
        }
    };
    let err_text = err_text.await.unwrap_or_default();
    let status = status.await;
    p.join().await.map_err(|e| format!("exec {cmd:?}: {e}"))?;
    match status {
        Some(s) if s.status.as_deref() == Some("Success") => Ok((digest, bytes, err_text)),
        Some(s) => Err(format!(
            "{cmd:?} in {pod} failed: {}{}",
            s.message.unwrap_or_default(),
            if err_text.trim().is_empty() { String::new() } else { format!(": {}", err_text.trim()) }
        )),
        None => Err(format!("{cmd:?} in {pod}: the stream ended without a status")),
    }
}

/// Runs `cmd` in the load container of `pod`; its standard output.
pub async fn exec_output(api: &Api<Pod>, pod: &str, cmd: &[&str]) -> Result<String, String> {
    let mut out = Vec::new();
    exec_to(api, pod, cmd, &mut out).await?;
    String::from_utf8(out).map_err(|e| format!("{cmd:?} in {pod}: not text: {e}"))
}

/// Results that could not be downloaded from the load pod, or the engine not released.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Downloads the sealed results of `pod` (folder `dir` inside it) into `staging`.
pub async fn fetch(api: &Api<Pod>, pod: &str, dir: &str, staging: &Path) -> Result<Fetched, FetchError> {
    download(api, pod, dir, staging).await.map_err(FetchError)
}

async fn download(api: &Api<Pod>, pod: &str, dir: &str, staging: &Path) -> Result<Fetched, String> {
    // Beside the staging folder, named after it: never among the results, and removed with it
    // as stale if this process dies mid-download.
    let mut name = staging.file_name().unwrap_or_default().to_os_string();
    name.push(".download.tar");
    let tar_path = staging.with_file_name(name);
    let file = tokio::fs::File::create(&tar_path).await.map_err(|e| format!("{}: {e}", tar_path.display()))?;
    let sink = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let (digest, bytes, err_text) = exec_to(api, pod, &["inferbench", "results", "pack", dir], sink).await?;
    // The pod's own account of what it sent: `sha256 HEX bytes N`.
    let claimed = err_text.lines().rev().find_map(|l| {
        let mut w = l.split_whitespace();
        match (w.next(), w.next(), w.next(), w.next()) {
            (Some("sha256"), Some(d), Some("bytes"), Some(n)) => Some((d.to_owned(), n.parse::<u64>().ok()?)),
            _ => None,
        }
    });
    match claimed {
        Some((d, n)) if d == digest && n == bytes => {}
        Some((d, n)) => {
            return Err(format!(
                "the download is corrupt: received {bytes} bytes with sha256 {digest}, the pod sent {n} bytes with sha256 {d}"
            ));
        }
        None => return Err(format!("the pod did not report the archive's checksum (stderr: {})", err_text.trim())),
    }
    let staging_owned = staging.to_path_buf();
    let files = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&tar_path).map_err(|e| e.to_string())?;
        let r = handoff::unpack_verified(std::io::BufReader::with_capacity(1 << 20, f), &staging_owned);
        let _ = std::fs::remove_file(&tar_path);
        r.map_err(|e| format!("the downloaded results do not verify: {e}"))
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(Fetched { files, bytes })
}

/// Lets the holding engine exit (its Job completes).
pub async fn release(api: &Api<Pod>, pod: &str, dir: &str) -> Result<(), FetchError> {
    release_engine(api, pod, dir).await.map_err(FetchError)
}

async fn release_engine(api: &Api<Pod>, pod: &str, dir: &str) -> Result<(), String> {
    exec_to(api, pod, &["inferbench", "results", "release", dir], tokio::io::sink()).await.map(|_| ())
}
