//! Writes a run's results in the formats `inferbench-schema` owns ([`result_files`]): the
//! summary, and each measured request as a [`RequestRecord`], from the columns [`Records`] keeps.

use std::path::{Path, PathBuf};

use inferbench_schema::{
    Results,
    result_files::{self, FileError, REQUESTS, RequestRecord, SUMMARY, summary_json},
};

use super::{recorder::NONE_US, records::Records};

fn opt(us: u32) -> Option<u32> {
    (us != NONE_US).then_some(us)
}

/// Writes `summary.json` and `requests.jsonl.zst` into `dir` (created if needed). The per-request
/// file first, the summary last: a summary never sits beside stale records.
pub fn write(dir: &Path, results: &Results, stages: &[(String, Records)]) -> Result<Vec<PathBuf>, FileError> {
    std::fs::create_dir_all(dir).map_err(|e| FileError { path: dir.to_path_buf(), message: e.to_string() })?;
    let records = stages.iter().flat_map(|(stage, records)| {
        records.iter().map(move |r| RequestRecord {
            stage: stage.as_str().into(),
            intended_us: r.intended_us,
            sent_us: r.sent_us,
            first_byte_us: opt(r.first_byte_us),
            // An answer not streamed arrives whole: it has no token times (its end is end_us).
            first_token_us: opt(r.first_token_us).filter(|_| r.streamed),
            last_token_us: opt(r.last_token_us).filter(|_| r.streamed),
            end_us: r.end_us,
            input_tokens: r.input_tokens,
            dataset_input_tokens: (r.dataset_input_tokens > 0).then_some(r.dataset_input_tokens),
            output_tokens: r.output_tokens,
            cached_tokens: r.cached_tokens,
            chunks: r.chunks,
            model: r.model,
            status: r.status,
            error: r.error.map(|e| e.as_str().into()),
            token_source: r.token_source.as_str().into(),
            streamed: r.streamed,
            prompt_token_mismatch: r.prompt_mismatch,
            output_length_mismatch: r.length_mismatch,
        })
    });
    let requests = dir.join(REQUESTS);
    result_files::write_requests(&requests, records)?;
    let summary = dir.join(SUMMARY);
    result_files::atomic_write(&summary, summary_json(results).as_bytes())?;
    // The renames themselves survive a power loss only once the folder is synced.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileError { path: dir.to_path_buf(), message: e.to_string() })?;
    Ok(vec![summary, requests])
}

/// Runs blocking file work (writes, syncs, compression) without stalling the async workers that
/// send other requests: on a multi-threaded runtime the worker hands its tasks to the others first.
pub fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
