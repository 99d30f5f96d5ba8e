//! The real vLLM the tests hold inferbench to (`scripts/real-vllm`: vLLM's CPU build serving a
//! tiny random-weight Llama as `tiny-llama` with `--max-model-len 2048`), shared by the test
//! modules that need it, one at a time ([`turn`]).
//!
//! The server: `INFERBENCH_REAL_VLLM_URL` (scripts/test starts one while the tests build, and this
//! waits for its `/health`), else one started here with `scripts/real-vllm serve 18765` and left
//! running for the next test run (`scripts/real-vllm stop 18765` ends it). A machine where vLLM
//! cannot be installed or started fails the tests with the script's reason: never skipped.

use std::{
    io::{Read as _, Write as _},
    path::PathBuf,
    process::{Command, Output},
    sync::{Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The port a server started by the tests listens on.
pub const OWN_PORT: u16 = 18765;
/// The model name `scripts/real-vllm serve` gives.
pub const MODEL: &str = "tiny-llama";
/// `--max-model-len` of `scripts/real-vllm serve`.
pub const MAX_MODEL_LEN: usize = 2048;

/// One test at a time talks to the server (it is one process on a machine of 2 cores: two tests
/// at once would measure each other). Hold the guard for the whole test.
pub fn turn() -> MutexGuard<'static, ()> {
    static SERVER: Mutex<()> = Mutex::new(());
    SERVER.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The real vLLM: its URL (no trailing slash), the model folder (its `tokenizer.json`), and the
/// `vllm` binary.
pub struct Real {
    pub url: String,
    pub model_dir: PathBuf,
    pub vllm: PathBuf,
}

fn script(args: &[&str]) -> Output {
    Command::new("bash").arg(format!("{ROOT}/scripts/real-vllm")).args(args).output().unwrap()
}

/// Whether `GET /health` of `url` (http://HOST:PORT) answers 200.
pub fn healthy(url: &str) -> bool {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return false };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// The server, installed, started or waited for once per test binary (blocking: call it off an
/// async runtime's workers).
pub fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| {
        let install = script(&["install"]);
        assert!(
            install.status.success(),
            "scripts/real-vllm install failed, so the real-vLLM tests cannot run:\n{}",
            String::from_utf8_lossy(&install.stderr)
        );
        let printed = String::from_utf8_lossy(&install.stdout).into_owned();
        let mut lines = printed.lines();
        let vllm = PathBuf::from(lines.next().expect("the vllm binary's path"));
        let model_dir = PathBuf::from(lines.next().expect("the model folder"));
        let url = match std::env::var("INFERBENCH_REAL_VLLM_URL").ok().filter(|u| !u.is_empty()) {
            Some(url) => {
                let deadline = Instant::now() + Duration::from_secs(600);
                while !healthy(&url) {
                    assert!(
                        Instant::now() < deadline,
                        "the real vLLM at {url} (INFERBENCH_REAL_VLLM_URL) did not answer /health within 600 s; its log is under ~/.cache/inferbench/real-vllm-*/run/"
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                url.trim_end_matches('/').to_owned()
            }
            None => {
                let url = format!("http://127.0.0.1:{OWN_PORT}");
                if !healthy(&url) {
                    let serve = script(&["serve", &OWN_PORT.to_string()]);
                    assert!(
                        serve.status.success(),
                        "scripts/real-vllm serve {OWN_PORT} failed, so the real-vLLM tests cannot run:\n{}",
                        String::from_utf8_lossy(&serve.stderr)
                    );
                }
                url
            }
        };
        Real { url, model_dir, vllm }
    })
}
