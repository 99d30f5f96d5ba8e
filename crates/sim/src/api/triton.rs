//! Triton Inference Server's generate extension as TensorRT-LLM (and Triton's vLLM backend) serve
//! it: `POST /v2/models/{model}/generate` → `{model_name, model_version, text_output, …}`, and
//! `…/generate_stream` → SSE `data: {…, "text_output": "<new text>"}` per step.
//!
//! `{model}` may be a served name or the usual TensorRT-LLM model names (`ensemble`,
//! `tensorrt_llm_bls`, `tensorrt_llm`, `vllm_model`). Errors are `{"error": "…"}`.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use serde::{Deserialize, Serialize};

use super::{StreamFormat, collect, fault_header, json_response, parse_json, sse_frame, to_json};
use crate::{GenRequest, SimError, Simulator, Started, engine::Usage, tokens};

/// Model names a Triton model repository commonly exposes for an LLM.
pub const TRITON_MODEL_NAMES: &[&str] = &["ensemble", "tensorrt_llm_bls", "tensorrt_llm", "vllm_model"];

#[derive(Deserialize)]
struct Request {
    text_input: Option<String>,
    max_tokens: Option<i64>,
    min_length: Option<u32>,
    #[serde(default)]
    ignore_eos: bool,
    #[serde(default)]
    stream: bool,
}

fn triton_error(e: &SimError) -> Response {
    json_response(e.status, to_json(&serde_json::json!({"error": e.message})))
}

fn start(sim: &Simulator, model: &str, headers: &HeaderMap, body: &Bytes) -> Result<(Started, bool), SimError> {
    if !TRITON_MODEL_NAMES.contains(&model) && !sim.serves(model) {
        return Err(SimError::bad_request(format!("Request for unknown model: '{model}' is not found"), None));
    }
    let req: Request = parse_json(body)?;
    let text = req
        .text_input
        .ok_or_else(|| SimError::bad_request("missing input 'text_input' in the request", Some("text_input")))?;
    let request = GenRequest {
        model: None,
        prompt: tokens::encode(&text),
        max_tokens: req.max_tokens,
        min_tokens: req.min_length.unwrap_or(0),
        ignore_eos: req.ignore_eos,
    };
    let started = sim.generate(request, fault_header(headers))?;
    Ok((started, req.stream))
}

#[derive(Serialize)]
struct Output<'a> {
    model_name: &'a str,
    model_version: &'static str,
    sequence_end: bool,
    sequence_id: u32,
    sequence_start: bool,
    text_output: &'a str,
}

/// `POST /v2/models/{model}/generate`.
pub async fn generate(
    State(sim): State<Arc<Simulator>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (started, stream) = match start(&sim, &model, &headers, &body) {
        Ok(s) => s,
        Err(e) => return triton_error(&e),
    };
    if stream {
        return super::stream_response(started, TritonStream { model });
    }
    match collect(started).await {
        Ok(c) => json_response(200, to_json(&output(&model, &c.text))),
        Err(r) => r,
    }
}

/// `POST /v2/models/{model}/generate_stream`.
pub async fn generate_stream(
    State(sim): State<Arc<Simulator>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match start(&sim, &model, &headers, &body) {
        Ok((started, _)) => super::stream_response(started, TritonStream { model }),
        Err(e) => triton_error(&e),
    }
}

fn output<'a>(model: &'a str, text: &'a str) -> Output<'a> {
    Output {
        model_name: model,
        model_version: "1",
        sequence_end: false,
        sequence_id: 0,
        sequence_start: false,
        text_output: text,
    }
}

struct TritonStream {
    model: String,
}

impl StreamFormat for TritonStream {
    fn tokens(&mut self, text: &str, _n: u32, _done: Option<&Usage>, out: &mut Vec<u8>) {
        sse_frame(out, &output(&self.model, text), true);
    }
}
