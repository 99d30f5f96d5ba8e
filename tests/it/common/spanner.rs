//! A Cloud Spanner emulator for one test: found (or installed) by `scripts/spanner-emulator`,
//! started on a free port, killed when dropped. Its state lives in memory: each test's databases
//! are its own.

use std::{
    io::BufRead as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
};

/// The emulator binary, as the project's script finds it (CI runs the same script).
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| super::script::binary("spanner-emulator", "--find"))
}

/// A running emulator.
pub struct Emulator {
    child: Child,
    /// `127.0.0.1:PORT`, for SPANNER_EMULATOR_HOST.
    pub host: String,
}

impl Emulator {
    /// Starts one and waits until it says it serves (another port is tried if this one was taken).
    pub fn start() -> Emulator {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let host = format!("127.0.0.1:{port}");
            let mut child = Command::new(binary())
                .args(["--host_port", &host])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
            let mut line = String::new();
            let ready = loop {
                line.clear();
                match log.read_line(&mut line) {
                    Ok(0) | Err(_) => break false,
                    Ok(_) if line.contains("Server address:") => break true,
                    Ok(_) => {}
                }
            };
            if ready {
                std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
                return Emulator { child, host };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the Spanner emulator ({}) did not start", binary().display());
    }

    /// `spanner://` URL of database `name` (created on first use by inferbench).
    pub fn url(&self, name: &str) -> String {
        format!("spanner://projects/test-project/instances/inferbench/databases/{name}")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
