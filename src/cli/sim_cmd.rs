//! `inferbench sim`: flags ([`SimArgs`]) → `SimConfig`, then serve until Ctrl-C / SIGTERM.

use std::{process::ExitCode, time::Duration};

use crate::sim::Server;
pub use crate::sim::args::{DEFAULT_ACCELERATOR, DEFAULT_MODEL, SimArgs};

/// Runs `inferbench sim`.
pub fn sim(args: &SimArgs) -> super::CommandResult {
    run(args)?;
    Ok(ExitCode::SUCCESS)
}

fn run(args: &SimArgs) -> anyhow::Result<()> {
    let cfg = args.to_config()?;
    let addr = args.addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let describe = format!(
            "{} (profile {}, {} engine(s), max-num-seqs {}, KV cache {} tokens, max-model-len {}, {})",
            cfg.served_models.join(", "),
            cfg.profile.name,
            cfg.data_parallel,
            cfg.engine.max_num_seqs,
            u64::from(cfg.engine.kv_blocks) * u64::from(cfg.engine.block_size),
            cfg.max_model_len,
            if cfg.engine.step.is_zero() {
                "no latency".to_owned()
            } else {
                format!("time scale {}", if args.zero_latency { 0.0 } else { args.time_scale })
            },
        );
        let server = Server::bind_sharing(cfg, addr, args.reuse_port).await?;
        // One line a script can wait for and parse.
        println!("inferbench sim: serving {describe} on {}", server.url());
        tokio::select! {
            r = server.wait() => r,
            () = shutdown_signal() => {
                eprintln!("inferbench sim: stopping");
                Ok(())
            }
        }
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Ctrl-C or SIGTERM (how Kubernetes stops a pod).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
