//! `inferbench upload RUN_DIR --gcs-bucket B`: copies a run folder to `gs://B/RUN_ID/`, skipping
//! what is already there (see [`crate::results::gcs`]); running it again resumes an interrupted
//! upload.

use std::{path::PathBuf, process::ExitCode};
use tokio_util::sync::CancellationToken;

use clap::Args;

use crate::results::gcs;

/// Arguments of `inferbench upload`.
#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// The run folder to upload (output/RUN_ID/, the folder holding run.json).
    pub run_dir: PathBuf,
    /// The bucket (its name, or gs://NAME). Objects are written under RUN_ID/. Credentials are
    /// Google's Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, or `gcloud auth
    /// application-default login`); with STORAGE_EMULATOR_HOST=HOST:PORT set, that emulator is used
    /// instead, without credentials (seed: gcs_bucket=...).
    #[arg(long, env = "INFERBENCH_GCS_BUCKET", value_name = "BUCKET")]
    pub gcs_bucket: String,
}

/// Runs `inferbench upload`: a line per file on stderr, the totals on stdout.
pub fn upload(args: &UploadArgs) -> super::CommandResult {
    // Only the top message: upload errors already carry their cause, and the chain would repeat it.
    let line = run(args).map_err(super::Failure::new)?;
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn run(args: &UploadArgs) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("could not start the async runtime: {e}"))?;
    upload_with(&rt, &args.run_dir, &args.gcs_bucket, &CancellationToken::new())
}

/// Uploads `run_dir` to `bucket` on `rt`, a line per file on stderr; returns the totals line.
/// `inferbench run --gcs-bucket` calls this once its benchmarks are done. A `stop` (Ctrl-C) ends
/// it early with an error; what was uploaded stays, and a later upload skips it.
pub(crate) fn upload_with(
    rt: &tokio::runtime::Runtime,
    run_dir: &std::path::Path,
    bucket: &str,
    stop: &CancellationToken,
) -> anyhow::Result<String> {
    let args = UploadArgs { run_dir: run_dir.to_path_buf(), gcs_bucket: bucket.to_owned() };
    let progress = |done: usize, total: usize, rel: &str, skipped: bool| {
        let what = if skipped { "already there" } else { "uploaded" };
        eprintln!("[{done}/{total}] {rel}: {what}");
    };
    let report = rt.block_on(async {
        tokio::select! {
            r = gcs::upload_run(&args.run_dir, &args.gcs_bucket, &progress) => r.map_err(anyhow::Error::from),
            () = stop.cancelled() => Err(anyhow::anyhow!("interrupted")),
        }
    })?;
    let run_id = gcs::run_id_of(&args.run_dir)?;
    let bucket = args.gcs_bucket.trim().trim_start_matches("gs://").trim_end_matches('/');
    Ok(format!(
        "uploaded {} files ({} bytes), skipped {} already there → gs://{bucket}/{run_id}/",
        report.uploaded, report.bytes_uploaded, report.skipped
    ))
}
