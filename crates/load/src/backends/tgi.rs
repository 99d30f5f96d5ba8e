//! TGI's native `/generate` and `/generate_stream`: one SSE event per token (`token.text`, with
//! `special` tokens such as EOS carrying no output text), the last with `generated_text` and
//! `details.generated_tokens`. TGI has no `ignore_eos`; `max_new_tokens` bounds the output.

use super::{Backend, EventError, Parsed, Request, Usage, json, u32_at};

/// TGI.
pub struct Tgi;

impl Backend for Tgi {
    fn name(&self) -> &'static str {
        "tgi"
    }

    fn path(&self, r: &Request<'_>) -> String {
        if r.stream { "/generate_stream".into() } else { "/generate".into() }
    }

    fn body(&self, r: &Request<'_>) -> Vec<u8> {
        let v = serde_json::json!({
            "inputs": r.prompt.flat(),
            "parameters": {"max_new_tokens": r.max_tokens, "details": true},
        });
        serde_json::to_vec(&v).expect("JSON values serialize")
    }

    fn stream_has_end_marker(&self) -> bool {
        true
    }

    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError> {
        let v = json(self.name(), data)?;
        if let Some(e) = v.get("error") {
            return Err(EventError::Server(format!("tgi: error in stream: {e}")));
        }
        let special = v.pointer("/token/special").and_then(|s| s.as_bool()).unwrap_or(false);
        let text = if special { "" } else { v.pointer("/token/text").and_then(|t| t.as_str()).unwrap_or_default() };
        let done = v.get("generated_text").is_some_and(|g| !g.is_null());
        Ok(Parsed {
            text: text.to_owned(),
            tokens: Some(1),
            usage: Usage {
                completion_tokens: u32_at(&v, "/details/generated_tokens"),
                prompt_tokens: u32_at(&v, "/details/input_length"),
                cached_tokens: None,
            },
            done,
            finished: done,
        })
    }

    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError> {
        let v = json(self.name(), body)?;
        let v = if let Some(first) = v.as_array().and_then(|a| a.first()) { first.clone() } else { v };
        let text = v.get("generated_text").and_then(|t| t.as_str()).ok_or("tgi: no generated_text in the answer")?;
        Ok(Parsed {
            text: text.to_owned(),
            tokens: None,
            usage: Usage { completion_tokens: u32_at(&v, "/details/generated_tokens"), ..Usage::default() },
            done: true,
            finished: true,
        })
    }
}
