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

use inferbench_schema::{Api, RunInfo, StageResult};

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
