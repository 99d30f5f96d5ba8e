//! OpenAI `/v1/completions` and `/v1/chat/completions` as vLLM 0.32 serves them: its JSON shapes
//! (every field it sends, `null` ones included), its extensions (`min_tokens`, `ignore_eos`) and
//! its answers to bad requests ([`validate`](super::validate)), checked against a real vLLM by
//! `tests/it/sim_conformance.rs`.
//!
//! Streams: chat starts with a role-only chunk (`delta: {role: "assistant", content: ""}`), then one
//! chunk per engine step (one token without `--tokens-per-step`); the chunk with the last tokens
//! carries `finish_reason` (and `system_fingerprint` if no usage chunk follows); a usage chunk with
//! `choices: []` follows only when `stream_options.include_usage` is true (with
//! `continuous_usage_stats`, every chunk carries the usage so far); then `data: [DONE]`.
//!
//! Usage always has `prompt_tokens_details.cached_tokens` (vLLM has it with
//! `--enable-prompt-tokens-details`): the prefix-cache hits are what a benchmark asks of it.
//!
//! A prompt longer than `--max-model-len` is refused; `max_tokens` beyond the context left is cut
//! to it (the answer ends with `length`), as vLLM does.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{
    Collected, StreamFormat, collect, fault_header, json_response, request_id, sse_frame, to_json,
    validate::{self, CHAT_FIELDS, COMPLETION_FIELDS, Refusal, py_float, truthy, value_error, vllm_error},
};
use crate::{GenRequest, SimError, Simulator, engine::Usage, tokens};

/// `max_tokens` of a completion request that gives none (OpenAI's and vLLM's default).
pub const DEFAULT_COMPLETION_TOKENS: i64 = 16;

/// `system_fingerprint` of every answer (vLLM's is `vllm-VERSION-HASH`).
pub const SYSTEM_FINGERPRINT: &str = concat!("inferbench-sim-", env!("CARGO_PKG_VERSION"));

#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
    IdLists(Vec<Vec<u32>>),
}

/// `stream_options`, and how many keys it had (a non-empty object is "given" to vLLM).
#[derive(Default)]
struct StreamOptions {
    keys: usize,
    include_usage: bool,
    continuous_usage_stats: bool,
}

impl<'de> Deserialize<'de> for StreamOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StreamOptions;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StreamOptions, A::Error> {
                let mut o = StreamOptions::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    o.keys += 1;
                    match key.as_ref() {
                        "include_usage" => o.include_usage = map.next_value::<Option<bool>>()?.unwrap_or(false),
                        "continuous_usage_stats" => {
                            o.continuous_usage_stats = map.next_value::<Option<bool>>()?.unwrap_or(false);
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(o)
            }
        }
        d.deserialize_map(V)
    }
}

/// A field vLLM declares without `| None`: `null` fails serde, so the slow path answers with
/// pydantic's error.
struct NotNull<T>(Option<T>);

impl<T> Default for NotNull<T> {
    fn default() -> Self {
        NotNull(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NotNull<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<T>::deserialize(d)? {
            Some(v) => Ok(NotNull(Some(v))),
            None => Err(serde::de::Error::custom("null where vLLM takes none")),
        }
    }
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
    #[serde(default)]
    min_tokens: NotNull<i64>,
    #[serde(default)]
    ignore_eos: NotNull<bool>,
    /// Nullable in chat, not in completions: a chat `"n": null` takes the slow path, which drops it.
    #[serde(default)]
    n: NotNull<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    min_p: Option<f64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    repetition_penalty: Option<f64>,
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

/// The usage of a whole (not streamed) answer: every field of vLLM's `UsageInfo`.
fn usage_value(u: &Usage) -> Value {
    serde_json::json!({
        "prompt_tokens": u.prompt_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "completion_tokens": u.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": u.cached_tokens, "created_cache_tokens": null, "multimodal_tokens": null,
        },
        "completion_tokens_details": null,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Completion,
    Chat,
}

impl Common {
    /// Reads a request as vLLM does: serde at once for a well-formed body, else (and for the
    /// errors pydantic would name) the slow path of [`validate`], which answers as vLLM would or
    /// coerces what pydantic accepts.
    fn parse(headers: &HeaderMap, body: &Bytes, kind: Kind) -> Result<Common, Refusal> {
        let content_type = headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
        validate::check_content_type(content_type)?;
        if let Ok(c) = serde_json::from_slice::<Common>(body)
            && (kind == Kind::Completion || c.messages.is_some())
        {
            c.before_validation(kind)?;
            return Ok(c);
        }
        let mut map = validate::parse_body(content_type, body)?;
        // vLLM's `mode="before"` model validators run before pydantic checks the fields.
        if kind == Kind::Completion {
            let empty = match map.get("prompt") {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            };
            if empty {
                return Err(prompt_missing().into());
            }
        }
        if truthy(map.get("stream_options")) && !truthy(map.get("stream")) {
            return Err(stream_options_without_stream().into());
        }
        let fields = if kind == Kind::Chat { CHAT_FIELDS } else { COMPLETION_FIELDS };
        let errors = validate::check_fields(&mut map, fields);
        if !errors.is_empty() {
            return Err(validate::pydantic_error(&errors).into());
        }
        serde_json::from_value(Value::Object(map)).map_err(|e| {
            // A shape pydantic would name in its own words (a message without `role`, …).
            validate::pydantic_text(&format!("the simulator cannot read this request: {e}")).into()
        })
    }

    /// vLLM's checks before pydantic's, on a request serde read.
    fn before_validation(&self, kind: Kind) -> Result<(), SimError> {
        if kind == Kind::Completion {
            let empty = match &self.prompt {
                None => true,
                Some(Prompt::Text(t)) => t.is_empty(),
                Some(_) => false,
            };
            if empty {
                return Err(prompt_missing());
            }
        }
        if self.stream_options.as_ref().is_some_and(|o| o.keys > 0) && self.stream != Some(true) {
            return Err(stream_options_without_stream());
        }
        Ok(())
    }

    /// vLLM's `SamplingParams` checks, in its order, up to `max_tokens` (which needs the prompt).
    fn check_sampling(&self) -> Result<(), SimError> {
        if let Some(n) = self.n.0 {
            if n < 1 {
                return Err(value_error(format!("n must be at least 1, got {n}.")));
            }
            if n > 1 {
                return Err(SimError::bad_request(
                    format!("n must be 1 (the simulator generates one choice), got {n}"),
                    Some("n"),
                ));
            }
        }
        for (name, v) in [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)] {
            if let Some(v) = v
                && !(-2.0..=2.0).contains(&v)
            {
                return Err(value_error(format!("{name} must be in [-2, 2], got {}.", py_float(v))));
            }
        }
        if let Some(r) = self.repetition_penalty {
            if !r.is_finite() {
                return Err(value_error(format!("repetition_penalty must be a finite number, got {}.", py_float(r))));
            }
            if r <= 0.0 {
                return Err(value_error(format!("repetition_penalty must be greater than zero, got {}.", py_float(r))));
            }
        }
        if let Some(t) = self.temperature {
            let v = py_float(t);
            let msg = if !t.is_finite() {
                format!("temperature must be a finite number, got {v}.")
            } else if t < 0.0 {
                format!("temperature must be non-negative, got {v}.")
            } else if t > 2.0 {
                format!("temperature must be in [0, 2], got {v}.")
            } else {
                String::new()
            };
            if !msg.is_empty() {
                return Err(vllm_error(&msg, Some("temperature"), Some(&v)));
            }
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            let v = py_float(p);
            return Err(vllm_error(&format!("top_p must be in (0, 1], got {v}."), Some("top_p"), Some(&v)));
        }
        if let Some(k) = self.top_k
            && k < -1
        {
            return Err(value_error(format!("top_k must be 0 (disable), or at least 1, got {k}.")));
        }
        if let Some(p) = self.min_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err(value_error(format!("min_p must be in [0, 1], got {}.", py_float(p))));
        }
        Ok(())
    }

    /// The request for the engine: `max_tokens` cut to the context left and checked, then
    /// `min_tokens`, as vLLM does.
    fn request(&self, model: String, prompt: Vec<u32>, kind: Kind, max_model_len: u32) -> Result<GenRequest, SimError> {
        let left = i64::from(max_model_len) - prompt.len() as i64;
        let asked = match kind {
            Kind::Chat => self.max_completion_tokens.or(self.max_tokens),
            Kind::Completion => Some(self.max_tokens.unwrap_or(DEFAULT_COMPLETION_TOKENS)),
        };
        let max_tokens = asked.map_or(left, |m| m.min(left));
        if max_tokens < 1 {
            let v = max_tokens.to_string();
            return Err(vllm_error(
                &format!("max_tokens must be at least 1, got {max_tokens}."),
                Some("max_tokens"),
                Some(&v),
            ));
        }
        let min_tokens = self.min_tokens.0.unwrap_or(0);
        if min_tokens < 0 {
            return Err(value_error(format!("min_tokens must be greater than or equal to 0, got {min_tokens}.")));
        }
        if min_tokens > max_tokens {
            return Err(value_error(format!(
                "min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}."
            )));
        }
        Ok(GenRequest {
            model: Some(model),
            prompt,
            max_tokens: Some(max_tokens),
            min_tokens: min_tokens as u32,
            ignore_eos: self.ignore_eos.0.unwrap_or(false),
        })
    }

    fn include_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }

    fn continuous_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage && o.continuous_usage_stats)
    }
}

fn prompt_missing() -> SimError {
    vllm_error("Either prompt or prompt_embeds must be provided and non-empty.", Some("prompt"), None)
}

fn stream_options_without_stream() -> SimError {
    vllm_error("Stream options can only be defined when `stream=True`.", Some("stream_options"), None)
}

/// vLLM's refusal of a prompt longer than the context (a text prompt is tokenized up to one token
/// past it, hence "at least").
fn check_prompt_len(len: usize, max_model_len: u32) -> Result<(), SimError> {
    let limit = max_model_len as usize;
    if len <= limit {
        return Ok(());
    }
    let qualifier = if len == limit + 1 { "at least " } else { "" };
    let v = len.to_string();
    Err(vllm_error(
        &format!(
            "This model's maximum context length is {limit} tokens. However, your prompt contains {qualifier}{len} input tokens, which exceeds this limit even without any output tokens. Please reduce the length of the input prompt."
        ),
        Some("input_tokens"),
        Some(&v),
    ))
}

/// A text prompt's tokens, up to one past the context (as vLLM's tokenizer call truncates).
fn encode_text(text: &str, max_model_len: u32) -> Vec<u32> {
    let mut ids = tokens::encode(text);
    ids.truncate(max_model_len as usize + 1);
    ids
}

/// `POST /v1/completions`.
pub async fn completions(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = match Common::parse(&headers, &body, Kind::Completion) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let model = match sim.check_model(req.model.as_deref()) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let limit = sim.cfg.max_model_len;
    let none = || value_error("You must pass at least one prompt").into_response();
    let prompt = match req.prompt.take() {
        None => return prompt_missing().into_response(),
        Some(Prompt::Text(t)) => encode_text(&t, limit),
        Some(Prompt::Ids(ids)) if ids.is_empty() => return none(),
        Some(Prompt::Ids(ids)) => ids,
        Some(Prompt::Texts(v)) if v.is_empty() => return none(),
        Some(Prompt::IdLists(v)) if v.is_empty() => return none(),
        Some(Prompt::Texts(mut v)) if v.len() == 1 => encode_text(&v.remove(0), limit),
        Some(Prompt::IdLists(mut v)) if v.len() == 1 => v.remove(0),
        Some(Prompt::Texts(_) | Prompt::IdLists(_)) => {
            return SimError::bad_request(
                "batched prompts are not supported: send one prompt per request",
                Some("prompt"),
            )
            .into_response();
        }
    };
    respond(&sim, &headers, &req, model, prompt, Kind::Completion).await
}

/// `POST /v1/chat/completions`.
pub async fn chat(State(sim): State<Arc<Simulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = match Common::parse(&headers, &body, Kind::Chat) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let model = match sim.check_model(req.model.as_deref()) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let messages = req.messages.take().unwrap_or_default();
    if messages.is_empty() {
        return value_error("Cannot apply chat template to an empty conversation. Provide at least one message.")
            .into_response();
    }
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
    let mut prompt = tokens::chat_prompt(messages.iter().zip(&texts).map(|(m, t)| (m.role.as_str(), t.as_str())));
    prompt.truncate(sim.cfg.max_model_len as usize + 1);
    respond(&sim, &headers, &req, model, prompt, Kind::Chat).await
}

async fn respond(
    sim: &Simulator,
    headers: &HeaderMap,
    common: &Common,
    model: String,
    prompt: Vec<u32>,
    kind: Kind,
) -> Response {
    let limit = sim.cfg.max_model_len;
    let checked = check_prompt_len(prompt.len(), limit)
        .and_then(|()| common.check_sampling())
        .and_then(|()| common.request(model, prompt, kind, limit))
        .and_then(|req| sim.generate(req, fault_header(headers)));
    let started = match checked {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let id = match kind {
        Kind::Completion => format!("cmpl-{}", request_id(headers, started.number)),
        Kind::Chat => format!("chatcmpl-{}", request_id(headers, started.number)),
    };
    let meta = Meta { id, created: sim.created, model: started.model.clone() };
    if common.stream.unwrap_or(false) {
        let prompt_tokens = started.prompt_tokens;
        let fmt = OpenAiStream {
            meta,
            kind,
            include_usage: common.include_usage(),
            continuous_usage: common.continuous_usage(),
            prompt_tokens,
            sent: 0,
        };
        let mut r = super::stream_response(started, fmt);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
        return r;
    }
    let Collected { text, usage } = match collect(started).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let finish = usage.finish.as_str();
    let body = match kind {
        Kind::Completion => to_json(&serde_json::json!({
            "id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model,
            "choices": [{
                "index": 0, "text": text, "logprobs": null, "finish_reason": finish, "stop_reason": null,
                "token_ids": null, "prompt_logprobs": null, "prompt_token_ids": null, "routed_experts": null,
            }],
            "service_tier": null, "system_fingerprint": SYSTEM_FINGERPRINT, "usage": usage_value(&usage),
            "kv_transfer_params": null, "ec_transfer_params": null, "metrics": null,
        })),
        Kind::Chat => to_json(&serde_json::json!({
            "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant", "content": text, "refusal": null, "annotations": null, "audio": null,
                    "function_call": null, "reasoning": null,
                },
                "logprobs": null, "finish_reason": finish, "stop_reason": null, "token_ids": null,
                "routed_experts": null,
            }],
            "service_tier": null, "system_fingerprint": SYSTEM_FINGERPRINT, "usage": usage_value(&usage),
            "prompt_logprobs": null, "prompt_token_ids": null, "prompt_text": null,
            "kv_transfer_params": null, "ec_transfer_params": null, "metrics": null,
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
    continuous_usage: bool,
    prompt_tokens: u32,
    /// Tokens sent so far (the continuous usage).
    sent: u32,
}

/// `null`, serialized only when set (`Some(None)`): the fields vLLM puts on some chunks only.
type NullOn = Option<Option<()>>;

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<StreamUsage>,
    /// Chat's first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_token_ids: NullOn,
    /// Chat's first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_text: NullOn,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'static str>,
}

/// A stream's usage: the final chunk's, or the running count (`continuous_usage_stats`).
#[derive(Serialize)]
#[serde(untagged)]
enum StreamUsage {
    Final(UsageJson),
    Running {
        prompt_tokens: u32,
        total_tokens: u32,
        completion_tokens: u32,
        /// Chat's running usage has it (`null`); completions' has not.
        #[serde(skip_serializing_if = "Option::is_none")]
        completion_tokens_details: NullOn,
    },
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
    stop_reason: Option<()>,
    prompt_token_ids: Option<()>,
    token_ids: Option<()>,
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
    /// On the last chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: NullOn,
    /// Not on the role chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_ids: NullOn,
}

impl OpenAiStream {
    fn object(&self) -> &'static str {
        match self.kind {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        }
    }

    fn running_usage(&self) -> Option<StreamUsage> {
        self.continuous_usage.then(|| StreamUsage::Running {
            prompt_tokens: self.prompt_tokens,
            total_tokens: self.prompt_tokens + self.sent,
            completion_tokens: self.sent,
            completion_tokens_details: (self.kind == Kind::Chat).then_some(None),
        })
    }

    fn chunk<C: Serialize>(&self, choices: C, usage: Option<StreamUsage>, last: bool, out: &mut Vec<u8>) {
        let m = &self.meta;
        let c = Chunk {
            id: &m.id,
            object: self.object(),
            created: m.created,
            model: &m.model,
            choices,
            usage,
            prompt_token_ids: None,
            prompt_text: None,
            system_fingerprint: last.then_some(SYSTEM_FINGERPRINT),
        };
        sse_frame(out, &c, true);
    }
}

impl StreamFormat for OpenAiStream {
    fn head(&mut self, out: &mut Vec<u8>) {
        if self.kind == Kind::Chat {
            let delta = Delta { role: Some("assistant"), content: "" };
            let choice =
                ChatChoice { index: 0, delta, logprobs: None, finish_reason: None, stop_reason: None, token_ids: None };
            let m = &self.meta;
            let c = Chunk {
                id: &m.id,
                object: self.object(),
                created: m.created,
                model: &m.model,
                choices: [choice],
                usage: self.running_usage(),
                prompt_token_ids: Some(None),
                prompt_text: Some(None),
                system_fingerprint: None,
            };
            sse_frame(out, &c, true);
        }
    }

    fn tokens(&mut self, text: &str, n: u32, done: Option<&Usage>, out: &mut Vec<u8>) {
        self.sent += n;
        let finish_reason = done.map(|u| u.finish.as_str());
        // The fingerprint goes on the last chunk: the usage chunk when there is one.
        let last = done.is_some() && !self.include_usage;
        let usage = self.running_usage();
        match self.kind {
            Kind::Completion => {
                let choice = TextChoice {
                    index: 0,
                    text,
                    logprobs: None,
                    finish_reason,
                    stop_reason: None,
                    prompt_token_ids: None,
                    token_ids: None,
                };
                self.chunk([choice], usage, last, out);
            }
            Kind::Chat => {
                let choice = ChatChoice {
                    index: 0,
                    delta: Delta { role: None, content: text },
                    logprobs: None,
                    finish_reason,
                    stop_reason: done.map(|_| None),
                    token_ids: Some(None),
                };
                self.chunk([choice], usage, last, out);
            }
        }
        if let Some(u) = done {
            if self.include_usage {
                self.chunk([(); 0], Some(StreamUsage::Final(UsageJson::from(u))), true, out);
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }
}
