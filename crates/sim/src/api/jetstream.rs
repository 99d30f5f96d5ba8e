//! JetStream's HTTP server: `POST /v1/generate` (and `POST /generate`, where the
//! latency-profile-generator's `jetstream` backend sends it) with `{prompt, max_tokens}` →
//! `{"response": "<text>"}`. JetStream generates until EOS or `max_tokens`; a body may carry
//! `ignore_eos: true` to get exactly `max_tokens`.

use std::sync::Arc;

use axum::{body::Bytes, extract::State, http::HeaderMap, response::Response};
use serde::Deserialize;

use super::{collect, fault_header, json_response, parse_json, to_json};
use crate::{GenRequest, SimError, Simulator, tokens};

#[derive(Deserialize)]
struct Request {
    prompt: Option<String>,
    text_content: Option<TextContent>,
    max_tokens: Option<i64>,
    #[serde(default)]
    ignore_eos: bool,
}

#[derive(Deserialize)]
struct TextContent {
    text: String,
}

fn jetstream_error(e: &SimError) -> Response {
    json_response(e.status, to_json(&serde_json::json!({"error": e.message})))
}

/// `POST /v1/generate` (and JetStream-shaped `POST /generate`).
pub async fn generate(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let req: Request = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return jetstream_error(&e),
    };
    let Some(text) = req.prompt.or(req.text_content.map(|t| t.text)) else {
        return jetstream_error(&SimError::bad_request("missing field `prompt`", Some("prompt")));
    };
    let request = GenRequest {
        model: None,
        prompt: tokens::encode(&text),
        max_tokens: req.max_tokens,
        min_tokens: 0,
        ignore_eos: req.ignore_eos,
    };
    let started = match sim.generate(request, fault_header(&headers)) {
        Ok(s) => s,
        Err(e) => return jetstream_error(&e),
    };
    match collect(started).await {
        Ok(c) => json_response(200, to_json(&serde_json::json!({"response": c.text}))),
        Err(r) => r,
    }
}
