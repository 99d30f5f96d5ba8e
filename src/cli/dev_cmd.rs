//! `inferbench results …` (run inside the load pod by the kube platform, through exec) and
//! `inferbench dev node` (the node emulator), `inferbench dev canned` (a server with canned answers),
//! `inferbench dev pauses` (how often this machine stops a busy thread).

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use clap::Subcommand;

use super::{CommandResult, Failure};
use crate::schema::handoff;

/// `inferbench results` commands.
#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Exit 0 when DIR is sealed (the load finished and wrote SHA256SUMS): the load pod's
    /// readiness probe.
    Check {
        /// The results folder.
        dir: PathBuf,
    },
    /// Write a tar of the sealed DIR to stdout; its sha256 and size go to stderr.
    Pack {
        /// The results folder.
        dir: PathBuf,
    },
    /// Tell the load engine holding DIR that its results were fetched: it exits.
    Release {
        /// The results folder.
        dir: PathBuf,
    },
    /// A load worker's start gate (`load --worker-gate DIR`): list what it has said, or give it
    /// an answer (`--open start-2 --answer UNIX_NS`).
    Gate {
        /// The gate folder.
        dir: PathBuf,
        /// The answer to write (start-N or ended-N).
        #[arg(long, requires = "answer")]
        open: Option<String>,
        /// What it holds (Unix ns, or "stop").
        #[arg(long)]
        answer: Option<String>,
    },
}

/// `inferbench dev` commands.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Play a Kubernetes node: register it, run the pods bound to it as local processes, serve
    /// their logs and exec, forward Service ClusterIPs (see scripts/local-cluster.sh).
    Node(crate::node::NodeArgs),
    /// Serve canned OpenAI answers at once (no engine): the cheapest server, to measure the load
    /// engine's own ceiling on this machine (scripts/bench-load).
    Canned {
        /// Port on 127.0.0.1 (0: any free one; the address is printed).
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// Spin a thread on each core this process may use and report the pauses (≥ 100 µs) the
    /// machine made in it: a virtual machine's host takes cores away unseen by the guest, and a
    /// pause of S at client CPU u leaves arrivals late for about S / (1 − u) (scripts/bench-lag).
    Pauses {
        /// How long to probe, in seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Write BYTES of random data as DIR/blob, seal DIR and hold it like `load --hold-results`:
    /// a stand-in load pod to test and measure the result download path.
    Fill {
        /// The folder.
        dir: PathBuf,
        /// How much.
        #[arg(long, default_value_t = 1 << 20)]
        bytes: u64,
        /// How long to hold, in seconds.
        #[arg(long, default_value_t = 600)]
        hold_timeout: u64,
    },
}

/// Runs `inferbench results …`.
pub fn results(c: &ResultsCommand) -> CommandResult {
    let r = match c {
        ResultsCommand::Check { dir } => {
            return Ok(if handoff::sealed(dir) { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_INPUT) });
        }
        ResultsCommand::Pack { dir } => {
            let stdout = std::io::stdout().lock();
            handoff::pack(dir, std::io::BufWriter::with_capacity(1 << 20, stdout)).map(|(digest, bytes)| {
                let _ = writeln!(std::io::stderr(), "sha256 {digest} bytes {bytes}");
            })
        }
        ResultsCommand::Release { dir } => handoff::release(dir),
        ResultsCommand::Gate { dir, open, answer } => match (open, answer) {
            (Some(name), Some(text)) => crate::load::gate::write_answer(dir, name, text),
            _ => crate::load::gate::listing(dir).map(|names| {
                let _ = writeln!(std::io::stdout(), "{}", names.join(" "));
            }),
        },
    };
    r.map_err(|e| Failure::new(format!("results: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `inferbench dev …`.
pub fn dev(c: DevCommand) -> CommandResult {
    match c {
        DevCommand::Fill { dir, bytes, hold_timeout } => {
            fill(&dir, bytes, hold_timeout).map_err(|e| Failure::new(format!("dev fill: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        DevCommand::Pauses { seconds } => {
            if !(seconds > 0.0 && seconds <= 3600.0) {
                return Err(Failure::new(format!("dev pauses: --seconds must be in (0, 3600], not {seconds}")));
            }
            let cores = crate::load::pauses::probe(seconds).map_err(|e| Failure::new(format!("dev pauses: {e}")))?;
            cores.iter().for_each(|c| println!("{c}"));
            Ok(ExitCode::SUCCESS)
        }
        DevCommand::Canned { port } => {
            let served = tokio::runtime::Builder::new_multi_thread().enable_all().build().and_then(|rt| {
                rt.block_on(crate::sim::canned::run(std::net::SocketAddr::from(([127, 0, 0, 1], port))))
            });
            // It serves until killed: ending at all is a failure.
            Err(match served {
                Err(e) => Failure::new(format!("dev canned: {e}")),
                Ok(()) => Failure::summary(""),
            })
        }
        DevCommand::Node(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::new(format!("dev node: {e}")))?;
            rt.block_on(crate::node::run(a)).map_err(|e| Failure::new(format!("dev node: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn fill(dir: &std::path::Path, bytes: u64, hold_timeout: u64) -> std::io::Result<()> {
    use rand::RngCore as _;
    std::fs::create_dir_all(dir)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("blob"))?);
    let mut rng = rand::rng();
    let mut buf = vec![0u8; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    drop(f);
    handoff::seal(dir)?;
    eprintln!("inferbench dev fill: {bytes} bytes sealed in {}", dir.display());
    handoff::hold(dir, std::time::Duration::from_secs(hold_timeout), &|| false);
    Ok(())
}
