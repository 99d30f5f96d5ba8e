//! Result files in the shapes of the tools users already parse, derived from our own
//! [`StageResult`] (never measured separately, so they cannot disagree with `summary.json`):
//! - [`lpg`]: latency-profile-generator's `save_json_results` file, as the original benchmark
//!   tool's notebook reads it (`results/lpg/`, or LPG's own place with `--save-json-results`);
//! - [`vllm_bench`]: `vllm bench serve --save-result`'s flat object (`results/vllm-bench/`);
//! - [`inference_perf`]: inference-perf's `stage_{i}_lifecycle_metrics.json` (`results/inference-perf/`).
//!
//! Units follow each tool (LPG: ms for latency, seconds for TTFT/ITL/TPOT, plus its later `_ms`
//! keys; vLLM: ms; inference-perf: seconds). `docs`-level differences — e.g. vLLM's ITL is per
//! chunk, LPG's TPOT is our NTPOT — are mapped here, in one place.

pub mod inference_perf;
pub mod lpg;
pub mod vllm_bench;

use std::path::Path;

use inferbench_schema::{
    Api, LoadSpec, Results, RunInfo, StageResult,
    result_files::{self, FileError},
};

/// The peers' files of stage `i` of `results`, as `spec.outputs` asks: under `dir` (`lpg/`,
/// `vllm-bench/`, `inference-perf/`), and LPG's also in `lpg_also_in` (`--save-json-results`:
/// LPG's own place). Written by a run after each stage, and by the merge of workers for each
/// merged stage (a worker writes none: its figures are a share).
pub fn write(
    spec: &LoadSpec,
    dir: Option<&Path>,
    lpg_also_in: Option<&Path>,
    results: &Results,
    i: usize,
) -> Result<(), FileError> {
    let outputs = spec.outputs.clone().unwrap_or_default();
    let (Some(run), Some(stage)) = (results.run.as_ref(), results.stages.get(i)) else { return Ok(()) };
    let cx = Context {
        run,
        api: spec.api(),
        tokenizer: spec
            .tokenizer
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| run.models.first().cloned().unwrap_or_default()),
        file_prefix: outputs
            .file_prefix
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "benchmark-catalog".into()),
        streaming: spec.streaming.unwrap_or(true),
        ended: time::OffsetDateTime::now_utc(),
    };
    let put = |dir: &Path, name: &str, v: &serde_json::Value| -> Result<(), FileError> {
        std::fs::create_dir_all(dir).map_err(|e| FileError { path: dir.to_path_buf(), message: e.to_string() })?;
        result_files::write_json(dir, name, v).map(drop)
    };
    if outputs.lpg_json.unwrap_or(false) {
        for (name, v) in lpg::files(&cx, stage) {
            if let Some(d) = dir {
                put(&d.join("lpg"), &name, &v)?;
            }
            if let Some(d) = lpg_also_in {
                put(d, &name, &v)?;
            }
        }
    }
    if let Some(d) = dir {
        if outputs.vllm_bench_json.unwrap_or(false) {
            let (name, v) = vllm_bench::file(&cx, stage);
            put(&d.join("vllm-bench"), &name, &v)?;
        }
        if outputs.inference_perf_json.unwrap_or(false) {
            let (name, v) = inference_perf::file(&cx, i, stage);
            put(&d.join("inference-perf"), &name, &v)?;
        }
    }
    Ok(())
}

/// What the writers need besides a stage's result.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The run.
    pub run: &'a RunInfo,
    /// The API spoken.
    pub api: Api,
    /// Tokenizer name or path (LPG's `tokenizer_id`), else the first model.
    pub tokenizer: String,
    /// LPG's `--file-prefix`.
    pub file_prefix: String,
    /// Responses were streamed (TTFT/ITL/TPOT exist).
    pub streaming: bool,
    /// When the stage ended (file names and `date` fields).
    pub ended: time::OffsetDateTime,
}

impl Context<'_> {
    /// LPG's and vLLM's `backend` name of the API.
    pub fn backend(&self) -> &'static str {
        match self.api {
            Api::TgiGenerate => "tgi",
            Api::TritonGenerate => "tensorrt_llm_triton",
            Api::JetstreamGenerate => "jetstream",
            Api::OpenaiChatCompletions => "openai-chat",
            Api::OpenaiCompletions | Api::Unspecified => "vllm",
        }
    }

    /// The first model (or "model").
    pub fn model(&self) -> &str {
        self.run.models.first().map_or("model", String::as_str)
    }

    /// `YYYYmmdd-HHMMSS` of the stage's end.
    pub fn date(&self) -> String {
        let d = self.ended;
        format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        )
    }
}

/// The stage's requested rate as LPG and vLLM print it in file names: "4.0", "inf", or the
/// achieved rate of a closed loop.
pub fn rate_label(s: &StageResult) -> String {
    let o = s.offered.clone().unwrap_or_default();
    if o.requested_rate.is_infinite() {
        "inf".into()
    } else if o.users > 0 {
        format!("{:.2}", o.achieved_rate.unwrap_or(0.0))
    } else {
        format!("{:?}", o.requested_rate)
    }
}

/// Output and input token totals of the stage (rates × window: exact sums).
pub fn totals(s: &StageResult) -> (f64, f64) {
    let t = s.throughput.unwrap_or_default();
    (
        (t.input_tokens_per_second * s.duration_seconds).round(),
        (t.output_tokens_per_second * s.duration_seconds).round(),
    )
}

/// A model id as LPG puts it in a file name ('/' → '-').
pub fn file_safe(model: &str) -> String {
    model.replace('/', "-")
}
