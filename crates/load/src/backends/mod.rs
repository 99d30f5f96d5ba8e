//! What each server API looks like on the wire: the request path and body for a prompt, and what
//! one SSE event or one whole body says. One small file per API; [`for_api`] picks one.
//!
//! Backends only translate: timing, SSE framing and error classification live in
//! [`super::client`], so every API is measured the same way.

mod jetstream;
mod openai;
mod tgi;
mod triton;

use inferbench_schema::Api;

/// A chat message (multi-turn prompts carry the real history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// "system", "user", "assistant".
    pub role: String,
    /// Text.
    pub content: String,
}

/// The prompt of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Plain text (completion-style APIs; chat sends it as one user message). Shared with the
    /// dataset: a request holds a reference, not a copy (a copy was 1.5 KB per open stream).
    Text(std::sync::Arc<str>),
    /// A conversation (chat sends every message; completion-style APIs get the turns joined).
    Chat(Vec<Message>),
}

impl Prompt {
    /// The prompt as one text, for APIs that take no messages.
    pub fn flat(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Prompt::Text(t) => t.as_ref().into(),
            Prompt::Chat(m) => m.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n").into(),
        }
    }
}

/// One request as a backend renders it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Model name sent (APIs that route by model).
    pub model: &'a str,
    /// Prompt.
    pub prompt: &'a Prompt,
    /// Output tokens asked for.
    pub max_tokens: u32,
    /// The prompt's tokens as the dataset counted them (0: not known). Not sent: the client
    /// checks the server's count against it.
    pub prompt_tokens: u32,
    /// Ask for exactly `max_tokens` (`ignore_eos`, `min_tokens` where the API has them).
    pub ignore_eos: bool,
    /// Stream the answer.
    pub stream: bool,
    /// Keep the answer's text (a conversation's next turn needs it); the tokenizer's count keeps
    /// it anyway.
    pub keep_text: bool,
}

/// Token counts a server reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: Option<u32>,
    /// Output tokens.
    pub completion_tokens: Option<u32>,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: Option<u32>,
}

/// What one SSE event (or a whole body) carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Output text in it (may be empty: a role-only or usage-only chunk).
    pub text: String,
    /// Output tokens it carries when the API says (TGI: 1 per event; others: unknown).
    pub tokens: Option<u32>,
    /// Counts, when the server reports them.
    pub usage: Usage,
    /// The API's end marker (`[DONE]`, a final event with details, …).
    pub done: bool,
    /// Carries a finish reason (the last content of an OpenAI stream).
    pub finished: bool,
}

impl Parsed {
    /// Whether it carries output (text or a token the API counts, e.g. a TGI special token).
    pub fn is_content(&self) -> bool {
        !self.text.is_empty() || self.tokens.is_some_and(|t| t > 0)
    }
}

/// Why an event or body was not an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Not what the API sends (broken JSON, a missing field): the client cannot read it.
    Invalid(String),
    /// The server reported an error inside a successful (200) stream or body.
    Server(String),
}

impl From<String> for EventError {
    fn from(s: String) -> Self {
        EventError::Invalid(s)
    }
}

impl From<&str> for EventError {
    fn from(s: &str) -> Self {
        EventError::Invalid(s.to_owned())
    }
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::Invalid(s) | EventError::Server(s) => f.write_str(s),
        }
    }
}

/// An API.
pub trait Backend: Send + Sync + 'static {
    /// Name for messages.
    fn name(&self) -> &'static str;
    /// Path (with query) of a request.
    fn path(&self, r: &Request<'_>) -> String;
    /// JSON body of a request.
    fn body(&self, r: &Request<'_>) -> Vec<u8>;
    /// Whether the API can stream at all (JetStream's HTTP server cannot: requests go unstreamed).
    fn can_stream(&self) -> bool {
        true
    }
    /// Whether a stream ends only with an explicit end marker (a stream closing without it was cut).
    fn stream_has_end_marker(&self) -> bool;
    /// One SSE event's data.
    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError>;
    /// A whole non-streamed body.
    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError>;
}

/// The backend of an API.
pub fn for_api(api: Api) -> Box<dyn Backend> {
    match api {
        Api::OpenaiChatCompletions => Box::new(openai::Chat),
        Api::TgiGenerate => Box::new(tgi::Tgi),
        Api::TritonGenerate => Box::new(triton::Triton),
        Api::JetstreamGenerate => Box::new(jetstream::JetStream),
        Api::OpenaiCompletions | Api::Unspecified => Box::new(openai::Completions),
    }
}

/// Parses JSON, naming the API in the error.
fn json(api: &str, data: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(data).map_err(|e| {
        let shown = String::from_utf8_lossy(&data[..data.len().min(120)]).into_owned();
        format!("{api}: not JSON ({e}): {shown}")
    })
}

/// A u32 field of a JSON object.
fn u32_at(v: &serde_json::Value, pointer: &str) -> Option<u32> {
    v.pointer(pointer).and_then(serde_json::Value::as_u64).map(|n| n.min(u64::from(u32::MAX)) as u32)
}
