//! OpenAI `/v1/completions` and `/v1/chat/completions` (vLLM, SGLang, TGI's Messages API, the
//! simulator). Streams ask for `stream_options.include_usage` so the output token count is the
//! server's; `ignore_eos` and `min_tokens` pin the output length when asked (vLLM extensions that
//! other servers ignore).

use super::{Backend, EventError, Parsed, Prompt, Request, Usage, json, u32_at};

/// `/v1/completions`.
pub struct Completions;
/// `/v1/chat/completions`.
pub struct Chat;

fn common(r: &Request<'_>, body: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::json;
    body.insert("model".into(), json!(r.model));
    body.insert("max_tokens".into(), json!(r.max_tokens));
    body.insert("stream".into(), json!(r.stream));
    if r.stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if r.ignore_eos {
        body.insert("ignore_eos".into(), json!(true));
        body.insert("min_tokens".into(), json!(r.max_tokens));
    }
}

fn usage(v: &serde_json::Value) -> Usage {
    Usage {
        prompt_tokens: u32_at(v, "/usage/prompt_tokens"),
        completion_tokens: u32_at(v, "/usage/completion_tokens"),
        cached_tokens: u32_at(v, "/usage/prompt_tokens_details/cached_tokens"),
    }
}

fn parse(api: &str, data: &[u8], text_at: &str) -> Result<Parsed, EventError> {
    if data == b"[DONE]" {
        return Ok(Parsed { done: true, ..Parsed::default() });
    }
    let v = json(api, data)?;
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        return Err(EventError::Server(format!("{api}: error in stream: {e}")));
    }
    let choice = v.pointer("/choices/0");
    Ok(Parsed {
        text: choice.and_then(|c| c.pointer(text_at)).and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
        tokens: None,
        usage: usage(&v),
        done: false,
        finished: choice.and_then(|c| c.get("finish_reason")).is_some_and(|f| !f.is_null()),
    })
}

impl Backend for Completions {
    fn name(&self) -> &'static str {
        "openai-completions"
    }

    fn path(&self, _: &Request<'_>) -> String {
        "/v1/completions".into()
    }

    fn body(&self, r: &Request<'_>) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        body.insert("prompt".into(), serde_json::Value::String(r.prompt.flat().into_owned()));
        common(r, &mut body);
        serde_json::to_vec(&body).expect("JSON values serialize")
    }

    fn stream_has_end_marker(&self) -> bool {
        true
    }

    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError> {
        parse(self.name(), data, "/text")
    }

    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError> {
        let mut p = parse(self.name(), body, "/text")?;
        p.done = true;
        Ok(p)
    }
}

impl Backend for Chat {
    fn name(&self) -> &'static str {
        "openai-chat"
    }

    fn path(&self, _: &Request<'_>) -> String {
        "/v1/chat/completions".into()
    }

    fn body(&self, r: &Request<'_>) -> Vec<u8> {
        let messages: Vec<serde_json::Value> = match r.prompt {
            Prompt::Text(t) => vec![serde_json::json!({"role": "user", "content": t})],
            Prompt::Chat(m) => m.iter().map(|m| serde_json::json!({"role": m.role, "content": m.content})).collect(),
        };
        let mut body = serde_json::Map::new();
        body.insert("messages".into(), serde_json::Value::Array(messages));
        common(r, &mut body);
        serde_json::to_vec(&body).expect("JSON values serialize")
    }

    fn stream_has_end_marker(&self) -> bool {
        true
    }

    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError> {
        parse(self.name(), data, "/delta/content")
    }

    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError> {
        let mut p = parse(self.name(), body, "/message/content")?;
        p.done = true;
        Ok(p)
    }
}
