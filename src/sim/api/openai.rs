//! OpenAI `/v1/completions` and `/v1/chat/completions`, with vLLM's shapes and extensions
//! (`min_tokens`, `ignore_eos`, `usage.prompt_tokens_details.cached_tokens`).
//!
//! Streams: chat starts with a role-only chunk (`delta: {role: "assistant", content: ""}`), then one
//! chunk per engine step; the chunk with the last tokens carries `finish_reason`; a usage chunk with
//! `choices: []` follows only when `stream_options.include_usage` is true; then `data: [DONE]`.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{
    Collected, StreamFormat, collect, fault_header, json_response, parse_json, request_id, sse_frame, to_json,
};
use crate::sim::{GenRequest, SimError, Simulator, engine::Usage, tokens};

/// `max_tokens` of a completion request that gives none (OpenAI's and vLLM's default).
pub const DEFAULT_COMPLETION_TOKENS: i64 = 16;

#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
    IdLists(Vec<Vec<u32>>),
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Both endpoints' fields in one struct (no `flatten`: it buffers every field and costs
/// microseconds per request).
#[derive(Deserialize)]
struct Common {
    prompt: Option<Prompt>,
    messages: Option<Vec<Message>>,
    model: Option<String>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    min_tokens: Option<u32>,
    ignore_eos: Option<bool>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
}

#[derive(Serialize)]
struct UsageJson {
    prompt_tokens: u32,
    total_tokens: u32,
    completion_tokens: u32,
    prompt_tokens_details: CachedJson,
}

#[derive(Serialize)]
struct CachedJson {
    cached_tokens: u32,
}

impl From<&Usage> for UsageJson {
    fn from(u: &Usage) -> Self {
        UsageJson {
            prompt_tokens: u.prompt_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            completion_tokens: u.completion_tokens,
            prompt_tokens_details: CachedJson { cached_tokens: u.cached_tokens },
        }
    }
}

impl Common {
    fn check(&self) -> Result<(), SimError> {
        if let Some(n) = self.n
            && n != 1
        {
            return Err(SimError::bad_request(
                format!("n must be 1 (the simulator generates one choice), got {n}"),
                Some("n"),
            ));
        }
        Ok(())
    }

    /// vLLM's defaults: chat prefers `max_completion_tokens` and runs to the context limit;
    /// completions default to 16 tokens, as OpenAI's API.
    fn request(&self, prompt: Vec<u32>, kind: Kind) -> GenRequest {
        let max_tokens = match kind {
            Kind::Chat => self.max_completion_tokens.or(self.max_tokens),
            Kind::Completion => Some(self.max_tokens.unwrap_or(DEFAULT_COMPLETION_TOKENS)),
        };
        GenRequest {
            model: self.model.clone(),
            prompt,
            max_tokens,
            min_tokens: self.min_tokens.unwrap_or(0),
            ignore_eos: self.ignore_eos.unwrap_or(false),
        }
    }

    fn include_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }
}

/// `POST /v1/completions`.
pub async fn completions(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req: Common = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let prompt = match req.prompt.take() {
        None => return SimError::bad_request("missing field `prompt`", Some("prompt")).into_response(),
        Some(Prompt::Text(t)) => tokens::encode(&t),
        Some(Prompt::Ids(ids)) => ids,
        Some(Prompt::Texts(mut v)) if v.len() == 1 => tokens::encode(&v.remove(0)),
        Some(Prompt::IdLists(mut v)) if v.len() == 1 => v.remove(0),
        Some(Prompt::Texts(_) | Prompt::IdLists(_)) => {
            return SimError::bad_request(
                "batched prompts are not supported: send one prompt per request",
                Some("prompt"),
            )
            .into_response();
        }
    };
    respond(&sim, &headers, &req, prompt, Kind::Completion).await
}

/// `POST /v1/chat/completions`.
pub async fn chat(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req: Common = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let messages = match req.messages.take() {
        None => return SimError::bad_request("missing field `messages`", Some("messages")).into_response(),
        Some(m) if m.is_empty() => {
            return SimError::bad_request("messages must not be empty", Some("messages")).into_response();
        }
        Some(m) => m,
    };
    let mut texts = Vec::with_capacity(messages.len());
    for m in &messages {
        let text = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut s = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => s.push_str(t),
                        (kind, _) => {
                            return SimError::bad_request(
                                format!("unsupported content part type \"{kind}\" (the simulator takes text)"),
                                Some("messages"),
                            )
                            .into_response();
                        }
                    }
                }
                s
            }
        };
        texts.push(text);
    }
    let prompt = tokens::chat_prompt(messages.iter().zip(&texts).map(|(m, t)| (m.role.as_str(), t.as_str())));
    respond(&sim, &headers, &req, prompt, Kind::Chat).await
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Completion,
    Chat,
}

async fn respond(sim: &Simulator, headers: &HeaderMap, common: &Common, prompt: Vec<u32>, kind: Kind) -> Response {
    if let Err(e) = common.check() {
        return e.into_response();
    }
    let started = match sim.generate(common.request(prompt, kind), fault_header(headers)) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let id = match kind {
        Kind::Completion => format!("cmpl-{}", request_id(headers, started.number)),
        Kind::Chat => format!("chatcmpl-{}", request_id(headers, started.number)),
    };
    let meta = Meta { id, created: sim.created, model: started.model.clone() };
    if common.stream.unwrap_or(false) {
        return super::stream_response(started, OpenAiStream { meta, kind, include_usage: common.include_usage() });
    }
    let Collected { text, usage } = match collect(started).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let finish = usage.finish.as_str();
    let body = match kind {
        Kind::Completion => to_json(&serde_json::json!({
            "id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish, "stop_reason": null}],
            "usage": UsageJson::from(&usage),
        })),
        Kind::Chat => to_json(&serde_json::json!({
            "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": null, "finish_reason": finish, "stop_reason": null,
            }],
            "usage": UsageJson::from(&usage),
        })),
    };
    json_response(200, body)
}

struct Meta {
    id: String,
    created: u64,
    model: String,
}

struct OpenAiStream {
    meta: Meta,
    kind: Kind,
    include_usage: bool,
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageJson>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
    stop_reason: Option<()>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

impl OpenAiStream {
    fn object(&self) -> &'static str {
        match self.kind {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        }
    }

    fn chunk<C: Serialize>(&self, choices: C, usage: Option<UsageJson>, out: &mut Vec<u8>) {
        let m = &self.meta;
        let c = Chunk { id: &m.id, object: self.object(), created: m.created, model: &m.model, choices, usage };
        sse_frame(out, &c, true);
    }
}

impl StreamFormat for OpenAiStream {
    fn head(&mut self, out: &mut Vec<u8>) {
        if self.kind == Kind::Chat {
            let delta = Delta { role: Some("assistant"), content: "" };
            self.chunk([ChatChoice { index: 0, delta, logprobs: None, finish_reason: None }], None, out);
        }
    }

    fn tokens(&mut self, text: &str, _n: u32, done: Option<&Usage>, out: &mut Vec<u8>) {
        let finish_reason = done.map(|u| u.finish.as_str());
        match self.kind {
            Kind::Completion => {
                self.chunk([TextChoice { index: 0, text, logprobs: None, finish_reason, stop_reason: None }], None, out)
            }
            Kind::Chat => self.chunk(
                [ChatChoice { index: 0, delta: Delta { role: None, content: text }, logprobs: None, finish_reason }],
                None,
                out,
            ),
        }
        if let Some(u) = done {
            if self.include_usage {
                self.chunk([(); 0], Some(UsageJson::from(u)), out);
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }
}
