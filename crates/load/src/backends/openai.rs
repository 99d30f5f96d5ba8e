//! OpenAI `/v1/completions` and `/v1/chat/completions` (vLLM, SGLang, TGI's Messages API, the
//! simulator). Streams ask for `stream_options.include_usage` so the output token count is the
//! server's; `ignore_eos` and `min_tokens` pin the output length when asked (vLLM extensions that
//! other servers ignore).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Backend, EventError, Parsed, Prompt, Request, Usage};

/// `/v1/completions`.
pub struct Completions;
/// `/v1/chat/completions`.
pub struct Chat;

/// A request body, serialised straight from borrowed fields (no intermediate JSON tree: the
/// client builds one per request, at up to tens of thousands a second).
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<MessageOut<'a>>>,
    max_tokens: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignore_eos: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_tokens: Option<u32>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

fn body<'a>(r: &'a Request<'_>, prompt: Option<&'a str>, messages: Option<Vec<MessageOut<'a>>>) -> Vec<u8> {
    let b = Body {
        model: r.model,
        prompt,
        messages,
        max_tokens: r.max_tokens,
        stream: r.stream,
        stream_options: r.stream.then_some(StreamOptions { include_usage: true }),
        ignore_eos: r.ignore_eos,
        min_tokens: r.ignore_eos.then_some(r.max_tokens),
    };
    serde_json::to_vec(&b).expect("a request body serializes")
}

/// A chunk (streamed) or a whole answer, read into borrowed fields: no JSON tree, no copies of
/// text without escapes. Every field optional: servers differ in what they send.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Content<'a>>,
    #[serde(default, borrow)]
    message: Option<Content<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u32>,
}

fn parse(api: &str, data: &[u8]) -> Result<Parsed, EventError> {
    if data == b"[DONE]" {
        return Ok(Parsed { done: true, ..Parsed::default() });
    }
    let a: Answer<'_> = serde_json::from_slice(data).map_err(|e| {
        let shown = String::from_utf8_lossy(&data[..data.len().min(200)]).into_owned();
        EventError::Invalid(format!("{api}: not the API's JSON ({e}): {shown}"))
    })?;
    if let Some(e) = a.error.filter(|e| !e.is_null()) {
        return Err(EventError::Server(format!("{api}: error in stream: {e}")));
    }
    let choice = a.choices.into_iter().next();
    let (text, finished) = match choice {
        Some(c) => {
            let text = c.text.or(c.delta.and_then(|d| d.content)).or(c.message.and_then(|m| m.content));
            (text.map(Cow::into_owned).unwrap_or_default(), c.finish_reason.is_some())
        }
        None => (String::new(), false),
    };
    let u = a.usage;
    Ok(Parsed {
        text,
        tokens: None,
        usage: Usage {
            prompt_tokens: u.as_ref().and_then(|u| u.prompt_tokens),
            completion_tokens: u.as_ref().and_then(|u| u.completion_tokens),
            cached_tokens: u.and_then(|u| u.prompt_tokens_details).and_then(|d| d.cached_tokens),
        },
        done: false,
        finished,
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
        body(r, Some(&r.prompt.flat()), None)
    }

    fn stream_has_end_marker(&self) -> bool {
        true
    }

    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError> {
        parse(self.name(), data)
    }

    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError> {
        let mut p = parse(self.name(), body)?;
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
        let messages = match r.prompt {
            Prompt::Text(t) => vec![MessageOut { role: "user", content: t }],
            Prompt::Chat(m) => m.iter().map(|m| MessageOut { role: &m.role, content: &m.content }).collect(),
        };
        body(r, None, Some(messages))
    }

    fn stream_has_end_marker(&self) -> bool {
        true
    }

    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError> {
        parse(self.name(), data)
    }

    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError> {
        let mut p = parse(self.name(), body)?;
        p.done = true;
        Ok(p)
    }
}
