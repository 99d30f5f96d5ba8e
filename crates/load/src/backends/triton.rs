//! Triton's generate extension as TensorRT-LLM serves it (`/v2/models/{model}/generate[_stream]`,
//! `text_input` → `text_output`). Streams have no end marker: the stream's end is the answer's.
//! The model in the path is the spec's model name (TensorRT-LLM repositories call it `ensemble`).

use super::{Backend, EventError, Parsed, Request, json};

/// Triton / TensorRT-LLM.
pub struct Triton;

impl Backend for Triton {
    fn name(&self) -> &'static str {
        "triton"
    }

    fn path(&self, r: &Request<'_>) -> String {
        let model: String = url::form_urlencoded::byte_serialize(r.model.as_bytes()).collect();
        if r.stream { format!("/v2/models/{model}/generate_stream") } else { format!("/v2/models/{model}/generate") }
    }

    fn body(&self, r: &Request<'_>) -> Vec<u8> {
        let mut v = serde_json::json!({
            "text_input": r.prompt.flat(), "max_tokens": r.max_tokens, "stream": r.stream,
            "bad_words": "", "stop_words": "",
        });
        if r.ignore_eos {
            v["ignore_eos"] = true.into();
            v["min_length"] = r.max_tokens.into();
        }
        serde_json::to_vec(&v).expect("JSON values serialize")
    }

    fn stream_has_end_marker(&self) -> bool {
        false
    }

    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError> {
        let v = json(self.name(), data)?;
        if let Some(e) = v.get("error") {
            return Err(EventError::Server(format!("triton: error in stream: {e}")));
        }
        let text = v.get("text_output").and_then(|t| t.as_str()).ok_or("triton: no text_output in the event")?;
        Ok(Parsed { text: text.to_owned(), ..Parsed::default() })
    }

    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError> {
        let mut p = self.parse_event(body)?;
        p.done = true;
        Ok(p)
    }
}
