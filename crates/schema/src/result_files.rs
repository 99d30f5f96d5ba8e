//! The results files of one benchmark, each format's writer beside its reader:
//!
//! - `summary.json`: proto3 JSON of `Results` (field names as in `proto/results.proto`, every field
//!   written, 64-bit integers as numbers);
//! - `requests.jsonl.zst`: one [`RequestRecord`] per measured request, zstd-compressed JSON lines;
//! - `server_metrics.json`: what was scraped from the server (its shape is the load engine's).
//!
//! Every file is written beside its final name and renamed into place ([`atomic_write`]), so a
//! crash never leaves half a file under the real name.

use std::{
    borrow::Cow,
    io::{self, BufRead as _, Write as _},
    path::{Path, PathBuf},
};

use prost_reflect::{DynamicMessage, ReflectMessage as _, SerializeOptions};
use serde::{Deserialize, Serialize};

use crate::Results;

/// File name of the summary.
pub const SUMMARY: &str = "summary.json";
/// File name of the per-request records.
pub const REQUESTS: &str = "requests.jsonl.zst";
/// File name of the scraped server metrics.
pub const SERVER_METRICS: &str = "server_metrics.json";

/// A file that could not be written or read, named.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl FileError {
    fn new(path: &Path, message: impl ToString) -> Self {
        Self { path: path.to_path_buf(), message: message.to_string() }
    }
}

/// A text that is not a `summary.json`.
#[derive(Debug, thiserror::Error)]
#[error("not a results summary: {0}")]
pub struct NotASummary(String);

/// The summary as pretty JSON text.
pub fn summary_json(results: &Results) -> String {
    let mut out = Vec::new();
    serialize(results, &mut serde_json::Serializer::pretty(&mut out));
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// The summary as JSON on one line (the same fields; [`parse_summary`] reads both).
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

/// Parses a `summary.json` (pretty or on one line) straight into [`Results`] (see
/// [`crate::proto_json`]); what it accepts is what proto3 JSON allows, as
/// [`parse_summary_generic`] does.
pub fn parse_summary(text: &str) -> Result<Results, NotASummary> {
    serde_json::from_str(text).map_err(|e| NotASummary(e.to_string()))
}

/// [`parse_summary`] through prost-reflect's generic proto3 JSON reader and a transcode: the
/// reference the typed reader is tested against (and 3× slower).
pub fn parse_summary_generic(text: &str) -> Result<Results, NotASummary> {
    let mut de = serde_json::Deserializer::from_str(text);
    let msg =
        DynamicMessage::deserialize(crate::message("Results"), &mut de).map_err(|e| NotASummary(e.to_string()))?;
    msg.transcode_to().map_err(|e| NotASummary(e.to_string()))
}

/// One request as `requests.jsonl.zst` holds it. Times are µs: `intended_us` and `sent_us` from
/// the start of the run, the others after `sent_us` (the definitions of `proto/results.proto`).
/// Fields that older files lack read as absent (or zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord<'a> {
    /// The stage it belongs to.
    #[serde(borrow)]
    pub stage: Cow<'a, str>,
    /// When the schedule meant it to start.
    #[serde(default)]
    pub intended_us: u64,
    /// When it was sent.
    #[serde(default)]
    pub sent_us: u64,
    /// First byte of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_us: Option<u32>,
    /// First token (streamed answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_us: Option<u32>,
    /// Last token (streamed answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_token_us: Option<u32>,
    /// The end of the answer.
    pub end_us: u32,
    /// Prompt tokens, as the server counted them where it said.
    #[serde(default)]
    pub input_tokens: u32,
    /// The prompt's tokens as the dataset counted them (absent: not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_input_tokens: Option<u32>,
    /// Output tokens.
    pub output_tokens: u32,
    /// Prompt tokens served from the server's prefix cache.
    #[serde(default)]
    pub cached_tokens: u32,
    /// Chunks of the streamed answer.
    #[serde(default)]
    pub chunks: u32,
    /// Index of the model asked (in the spec's `models`).
    #[serde(default)]
    pub model: u16,
    /// HTTP status (0: none).
    #[serde(default)]
    pub status: u16,
    /// Why it failed (absent: it did not).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'a, str>>,
    /// Where the token counts come from (`usage`, `tokenizer`, `chunks`).
    #[serde(default, borrow)]
    pub token_source: Cow<'a, str>,
    /// Streamed (else the answer came whole: no first-token time).
    #[serde(default)]
    pub streamed: bool,
    /// The server's prompt count disagreed with the tokenizer's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_token_mismatch: bool,
    /// The output length was not the one asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_length_mismatch: bool,
}

/// Writes `requests.jsonl.zst` at `path`, atomically.
pub fn write_requests<'a>(path: &Path, records: impl IntoIterator<Item = RequestRecord<'a>>) -> Result<(), FileError> {
    let err = |e: io::Error| FileError::new(path, e);
    let mut enc = zstd::Encoder::new(Vec::new(), 3).map_err(err)?;
    for r in records {
        serde_json::to_writer(&mut enc, &r).map_err(|e| FileError::new(path, e))?;
        enc.write_all(b"\n").map_err(err)?;
    }
    atomic_write(path, &enc.finish().map_err(err)?)
}

/// Reads `requests.jsonl.zst` at `path`, handing each record to `each`; returns how many there were.
pub fn read_requests(path: &Path, mut each: impl FnMut(RequestRecord<'_>)) -> Result<u64, FileError> {
    let mut n = 0;
    for line in lines(path)? {
        let line = line.map_err(|e| FileError::new(path, e))?;
        n += 1;
        let r = serde_json::from_str(&line)
            .map_err(|e| FileError::new(path, format!("record {n}: not a request record: {e}")))?;
        each(r);
    }
    Ok(n)
}

/// Counts the records of `requests.jsonl.zst` at `path` without parsing them.
pub fn count_requests(path: &Path) -> Result<u64, FileError> {
    let mut n = 0;
    for line in lines(path)? {
        line.map_err(|e| FileError::new(path, e))?;
        n += 1;
    }
    Ok(n)
}

fn lines(
    path: &Path,
) -> Result<io::Lines<io::BufReader<zstd::Decoder<'static, io::BufReader<std::fs::File>>>>, FileError> {
    let file = std::fs::File::open(path).map_err(|e| FileError::new(path, e))?;
    let decoder = zstd::Decoder::new(file).map_err(|e| FileError::new(path, e))?;
    Ok(io::BufReader::new(decoder).lines())
}

/// Writes `value` as pretty JSON to `dir/name`, atomically.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<PathBuf, FileError> {
    let path = dir.join(name);
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| FileError::new(&path, e))?;
    text.push(b'\n');
    atomic_write(&path, &text)?;
    Ok(path)
}

/// Writes `bytes` to a hidden file beside `path`, syncs it and renames it to `path`: readers see
/// the old file or the whole new one, never half of it.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FileError::new(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of field `Results` has, at awkward values.
    fn rich() -> Results {
        use crate::{Counts, Distribution, Goodput, Offered, RunInfo, ServerSeries, StageResult, Throughput};
        let d = Distribution {
            count: 5,
            mean: 1.25,
            min: 0.5,
            p50: 1.0,
            p99: 4.0,
            max: 1e300,
            p0_1: f64::NAN,
            ..Default::default()
        };
        Results {
            run: Some(RunInfo {
                tool_version: "0.1.0".into(),
                url: "http://127.0.0.1:1".into(),
                api: "OPENAI_COMPLETIONS".into(),
                models: vec!["a".into(), "b/c".into()],
                started_at: "2026-12-07T06:00:00Z".into(),
                load_spec: "rates {\n  request_rates: [1.0]\n}\n\"quoted\" ünïcode".into(),
                metadata: [("run_id".to_owned(), "abcd0001".to_owned())].into(),
            }),
            stages: vec![
                StageResult {
                    name: "rate-inf".into(),
                    offered: Some(Offered {
                        requested_rate: f64::INFINITY,
                        users: u32::MAX,
                        process: "poisson".into(),
                        achieved_rate: Some(0.0),
                        delayed_by_concurrency_cap: u64::MAX,
                        late: 1,
                        client_cpu_seconds: -0.0,
                        host_steal_seconds: f64::NEG_INFINITY,
                        ..Default::default()
                    }),
                    duration_seconds: 1.5,
                    counts: Some(Counts {
                        sent: 10,
                        failed: 3,
                        errors: [("http_5xx".to_owned(), 3)].into(),
                        token_count_source: [("usage".to_owned(), 7)].into(),
                        ..Default::default()
                    }),
                    throughput: Some(Throughput { requests_per_second: 6.5, ..Default::default() }),
                    ttft_ms: Some(d),
                    e2e_ms: Some(Distribution::default()),
                    goodput: Some(Goodput { fraction: 1.0 / 3.0, ..Default::default() }),
                    cached_prompt_tokens: 12,
                    server_metrics: [(
                        "c".to_owned(),
                        ServerSeries { kind: "counter".into(), total: Some(0.0), ..Default::default() },
                    )]
                    .into(),
                    ..Default::default()
                },
                StageResult::default(),
            ],
        }
    }

    /// Both readers agree on `text`: the same message (compared encoded, where NaN equals NaN;
    /// maps of several entries, whose encoding follows a hash order, compared as values).
    fn same(text: &str) {
        use prost::Message as _;
        match (parse_summary(text), parse_summary_generic(text)) {
            (Ok(a), Ok(b)) => assert!(a == b || a.encode_to_vec() == b.encode_to_vec(), "{text}:\n{a:?}\n{b:?}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("the readers disagree on {text}:\n typed: {a:?}\n generic: {b:?}"),
        }
    }

    #[test]
    fn the_typed_summary_reader_reads_what_the_generic_one_reads() {
        use prost::Message as _;
        let r = rich();
        for text in [summary_json(&r), summary_json_line(&r), summary_json(&Results::default())] {
            same(&text);
        }
        assert_eq!(parse_summary(&summary_json(&r)).unwrap().encode_to_vec(), r.encode_to_vec(), "written, read back");
        for text in [
            r#"{}"#,
            r#"{"run": null, "stages": null}"#,
            r#"{"stages": [{"counts": {"sent": "12", "errors": {"x": "3"}}, "offered": {"requested_rate": "Infinity", "achieved_rate": null}}]}"#,
            r#"{"stages": [{"durationSeconds": 2, "offered": {"requestedRate": "NaN", "achievedRate": "-Infinity"}}]}"#,
            r#"{"stages": [{"offered": {"requested_rate": "2.5", "users": 3.0}}]}"#,
            r#"{"stages": [{"name": null, "ttft_ms": null, "server_metrics": {"m": {"total": null}}}]}"#,
            r#"{"stages": [{"counts": {"errors": {"a": 1, "b": 2, "c": 3}}, "server_metrics": {"x": {"mean": 1}, "y": {"kind": "gauge"}}}]}"#,
            r#"{"bogus": 1}"#,
            r#"{"stages": [{"counts": {"sent": -1}}]}"#,
            r#"{"stages": [{"counts": {"sent": 1.5}}]}"#,
            r#"{"stages": [{"offered": {"users": 4294967296}}]}"#,
            r#"{"stages": [{"offered": {"requested_rate": "fast"}}]}"#,
            r#"{"stages": {"name": "x"}}"#,
            r#"{"stages": [{"name": 3}]}"#,
            r#"[1, 2]"#,
            r#"{"stages": [{"name": "cut"#,
        ] {
            same(text);
        }
        assert!(parse_summary(r#"{"bogus": 1}"#).is_err(), "unknown fields are refused, as before");
        let r = parse_summary(r#"{"stages": [{"durationSeconds": 2, "counts": {"sent": "12"}, "offered": {"requested_rate": "Infinity"}}]}"#).unwrap();
        let s = &r.stages[0];
        assert_eq!((s.duration_seconds, s.counts.as_ref().unwrap().sent), (2.0, 12));
        assert_eq!(s.offered.as_ref().unwrap().requested_rate, f64::INFINITY);
    }

    #[test]
    fn a_record_written_reads_back_the_same_and_absent_fields_stay_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REQUESTS);
        let full = RequestRecord {
            stage: "rate-4".into(),
            intended_us: 1,
            sent_us: 2,
            first_byte_us: Some(3),
            first_token_us: Some(4),
            last_token_us: Some(5),
            end_us: 6,
            input_tokens: 7,
            dataset_input_tokens: Some(8),
            output_tokens: 9,
            cached_tokens: 10,
            chunks: 11,
            model: 1,
            status: 200,
            error: None,
            token_source: "usage".into(),
            streamed: true,
            prompt_token_mismatch: true,
            output_length_mismatch: false,
        };
        let failed = RequestRecord {
            first_byte_us: None,
            first_token_us: None,
            last_token_us: None,
            dataset_input_tokens: None,
            error: Some("timeout".into()),
            streamed: false,
            prompt_token_mismatch: false,
            ..full.clone()
        };
        write_requests(&path, [full.clone(), failed.clone()]).unwrap();
        let mut back = vec![];
        assert_eq!(read_requests(&path, |r| back.push(format!("{r:?}"))).unwrap(), 2);
        assert_eq!(back, [format!("{full:?}"), format!("{failed:?}")]);
        assert_eq!(count_requests(&path).unwrap(), 2);
        let text = String::from_utf8(zstd::decode_all(std::fs::File::open(&path).unwrap()).unwrap()).unwrap();
        let second = text.lines().nth(1).unwrap();
        assert!(!second.contains("first_token_us") && !second.contains("mismatch"), "{second}");
    }

    #[test]
    fn a_summary_reads_back_and_anything_else_is_named() {
        let r = Results {
            stages: vec![crate::StageResult { name: "s".into(), ..Default::default() }],
            ..Default::default()
        };
        assert_eq!(parse_summary(&summary_json(&r)).unwrap(), r);
        assert_eq!(parse_summary(&summary_json_line(&r)).unwrap(), r);
        assert!(parse_summary("{\"stages\": 3}").unwrap_err().to_string().starts_with("not a results summary"));
    }
}
