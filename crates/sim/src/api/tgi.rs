//! Hugging Face TGI's native API: `POST /generate` (one JSON object) and `POST /generate_stream`
//! (SSE, one `data:` event per token, the last carrying `generated_text` and `details`).
//!
//! TGI ignores `model`; errors are `{"error", "error_type"}` with 422 for validation and 429
//! `overloaded` for a full queue. A `/generate` body with `prompt` instead of `inputs` is
//! JetStream's (both servers use that path).

use std::sync::Arc;

use axum::{body::Bytes, extract::State, http::HeaderMap, response::Response};
use serde::{Deserialize, Serialize};

use super::{StreamFormat, collect, fault_header, json_response, parse_json, sse_frame, to_json};
use crate::{
    GenRequest, SimError, Simulator,
    engine::{Finish, Usage},
    tokens,
};

/// TGI's default `max_new_tokens` when a request gives none.
pub const DEFAULT_MAX_NEW_TOKENS: i64 = 100;

#[derive(Deserialize)]
struct Request {
    inputs: Option<String>,
    prompt: Option<serde_json::Value>,
    #[serde(default)]
    parameters: Parameters,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize, Default)]
struct Parameters {
    max_new_tokens: Option<i64>,
    #[serde(default)]
    details: bool,
    #[serde(default)]
    ignore_eos_token: bool,
}

/// The TGI error body.
fn tgi_error(e: &SimError) -> Response {
    let (status, error_type) = match e.status {
        400 | 422 => (422, "validation"),
        429 => (429, "overloaded"),
        404 => (422, "validation"),
        s => (s, "generation"),
    };
    let msg = if e.status == 429 { "Model is overloaded".to_owned() } else { e.message.clone() };
    json_response(status, to_json(&serde_json::json!({"error": msg, "error_type": error_type})))
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Length => "length",
        Finish::Stop => "eos_token",
    }
}

/// A started request, whether `details` were asked, whether `stream` was.
fn start(sim: &Simulator, headers: &HeaderMap, req: Request) -> Result<(crate::Started, bool, bool), SimError> {
    let inputs = req.inputs.ok_or_else(|| SimError::bad_request("missing field `inputs`", None))?;
    let request = GenRequest {
        model: None,
        prompt: tokens::encode(&inputs),
        max_tokens: Some(req.parameters.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS)),
        min_tokens: 0,
        ignore_eos: req.parameters.ignore_eos_token,
    };
    let started = sim.generate(request, fault_header(headers))?;
    Ok((started, req.parameters.details, req.stream))
}

/// `POST /generate`: TGI, or JetStream when the body has `prompt` and no `inputs`.
pub async fn generate_or_jetstream(state: State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let req: Request = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return tgi_error(&e),
    };
    if req.inputs.is_none() && req.prompt.is_some() {
        return super::jetstream::generate(state, headers, body).await;
    }
    let sim = state.0;
    let (started, details, stream) = match start(&sim, &headers, req) {
        Ok(s) => s,
        Err(e) => return tgi_error(&e),
    };
    let prompt_tokens = started.prompt_tokens;
    if stream {
        return super::stream_response(started, TgiStream { text: String::new(), index: 0, prompt_tokens });
    }
    let c = match collect(started).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut out = serde_json::json!({"generated_text": c.text});
    if details {
        out["details"] = serde_json::json!({
            "finish_reason": finish_reason(c.usage.finish),
            "generated_tokens": c.usage.completion_tokens,
            "seed": null,
            "prefill": [],
            "tokens": [],
        });
    }
    json_response(200, to_json(&out))
}

/// `POST /generate_stream`.
pub async fn generate_stream(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let req: Request = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return tgi_error(&e),
    };
    match start(&sim, &headers, req) {
        Ok((started, _, _)) => {
            let prompt_tokens = started.prompt_tokens;
            super::stream_response(started, TgiStream { text: String::new(), index: 0, prompt_tokens })
        }
        Err(e) => tgi_error(&e),
    }
}

struct TgiStream {
    /// Text so far (the last event carries all of it).
    text: String,
    index: u32,
    prompt_tokens: u32,
}

#[derive(Serialize)]
struct Token<'a> {
    id: u32,
    text: &'a str,
    logprob: f32,
    special: bool,
}

#[derive(Serialize)]
struct Event<'a> {
    index: u32,
    token: Token<'a>,
    generated_text: Option<&'a str>,
    details: Option<serde_json::Value>,
    top_tokens: Option<()>,
}

impl StreamFormat for TgiStream {
    fn tokens(&mut self, text: &str, _n: u32, done: Option<&Usage>, out: &mut Vec<u8>) {
        // One event per token: every output word is one token and starts with a space.
        let starts: Vec<usize> = text.match_indices(' ').map(|(i, _)| i).collect();
        let eos = done.is_some_and(|u| u.finish == Finish::Stop);
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(text.len());
            let w = &text[start..end];
            self.text.push_str(w);
            let last = k + 1 == starts.len() && !eos;
            self.event(
                Token { id: tokens::piece_id(w), text: w, logprob: -0.1, special: false },
                done.filter(|_| last),
                out,
            );
        }
        if eos {
            // TGI streams the EOS token as a special token; generated_text leaves it out.
            self.event(Token { id: 2, text: "</s>", logprob: -0.1, special: true }, done, out);
        }
    }
}

impl TgiStream {
    fn event(&mut self, token: Token<'_>, done: Option<&Usage>, out: &mut Vec<u8>) {
        self.index += 1;
        let ev = Event {
            index: self.index,
            token,
            generated_text: done.map(|_| self.text.as_str()),
            details: done.map(|u| {
                serde_json::json!({
                    "finish_reason": finish_reason(u.finish),
                    "generated_tokens": u.completion_tokens,
                    "seed": null,
                    "input_length": self.prompt_tokens,
                })
            }),
            top_tokens: None,
        };
        sse_frame(out, &ev, false);
    }
}
