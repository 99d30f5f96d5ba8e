//! Result files: `summary.json` (proto3 JSON of `Results`, field names as in `proto/results.proto`,
//! every field written, 64-bit integers as numbers) and `requests.jsonl.zst` (one JSON object per
//! measured request). Each file is written beside its final name and renamed into place, so a crash
//! never leaves half a file under the real name.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use prost_reflect::{ReflectMessage as _, SerializeOptions};
use serde::Serialize;

use super::{recorder::NONE_US, records::Records};
use crate::schema::Results;

/// The summary as JSON text.
pub fn summary_json(results: &Results) -> String {
    let mut out = Vec::new();
    serialize(results, &mut serde_json::Serializer::pretty(&mut out));
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// The summary as JSON on one line (the same fields: [`crate::results::store::parse_summary`] reads it).
pub fn summary_json_line(results: &Results) -> String {
    let mut out = Vec::new();
    serialize(results, &mut serde_json::Serializer::new(&mut out));
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn serialize<F: serde_json::ser::Formatter>(results: &Results, ser: &mut serde_json::Serializer<&mut Vec<u8>, F>) {
    let opts =
        SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false).skip_default_fields(false);
    results.transcode_to_dynamic().serialize_with_options(ser, &opts).expect("results serialize");
}

#[derive(Serialize)]
struct RecordJson<'a> {
    stage: &'a str,
    intended_us: u64,
    sent_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_byte_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_token_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_token_us: Option<u32>,
    end_us: u32,
    input_tokens: u32,
    /// The prompt's tokens as the dataset counted them (absent: not known).
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset_input_tokens: Option<u32>,
    output_tokens: u32,
    cached_tokens: u32,
    chunks: u32,
    model: u16,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    token_source: &'static str,
    /// Streamed (else the answer came whole: no first-token time).
    streamed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    prompt_token_mismatch: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    output_length_mismatch: bool,
}

fn opt(us: u32) -> Option<u32> {
    (us != NONE_US).then_some(us)
}

/// Writes `summary.json` and `requests.jsonl.zst` into `dir` (created if needed).
pub fn write(dir: &Path, results: &Results, stages: &[(String, Records)]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The per-request file first, the summary last: a summary never sits beside stale records.
    let mut enc = zstd::Encoder::new(Vec::new(), 3).map_err(|e| e.to_string())?;
    for (stage, records) in stages {
        for r in records {
            let j = RecordJson {
                stage,
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
                error: r.error.map(|e| e.as_str()),
                token_source: r.token_source.as_str(),
                streamed: r.streamed,
                prompt_token_mismatch: r.prompt_mismatch,
                output_length_mismatch: r.length_mismatch,
            };
            serde_json::to_writer(&mut enc, &j).map_err(|e| e.to_string())?;
            enc.write_all(b"\n").map_err(|e| e.to_string())?;
        }
    }
    let requests = dir.join(REQUESTS);
    atomic_write(&requests, &enc.finish().map_err(|e| e.to_string())?)?;
    let summary = dir.join(SUMMARY);
    atomic_write(&summary, summary_json(results).as_bytes())?;
    // The renames themselves survive a power loss only once the folder is synced.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", dir.display()))?;
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

/// File name of the scraped server metrics.
pub const SERVER_METRICS: &str = "server_metrics.json";
/// File name of the summary.
pub const SUMMARY: &str = "summary.json";
/// File name of the per-request records.
pub const REQUESTS: &str = "requests.jsonl.zst";

/// Writes `value` as pretty JSON to `dir/name`, atomically.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<PathBuf, String> {
    let path = dir.join(name);
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| format!("{}: {e}", path.display()))?;
    text.push(b'\n');
    atomic_write(&path, &text)?;
    Ok(path)
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}
