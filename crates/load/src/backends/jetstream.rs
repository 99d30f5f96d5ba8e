//! JetStream's HTTP server: `POST /generate` `{prompt, max_tokens}` → `{"response": text}`, as the
//! latency-profile-generator's `jetstream` backend sends it. Not streamed.

use super::{Backend, EventError, Parsed, Request, json};

/// JetStream.
pub struct JetStream;

impl Backend for JetStream {
    fn name(&self) -> &'static str {
        "jetstream"
    }

    fn path(&self, _: &Request<'_>) -> String {
        "/generate".into()
    }

    fn body(&self, r: &Request<'_>) -> Vec<u8> {
        let mut v = serde_json::json!({"prompt": r.prompt.flat(), "max_tokens": r.max_tokens});
        if r.ignore_eos {
            v["ignore_eos"] = true.into();
        }
        serde_json::to_vec(&v).expect("JSON values serialize")
    }

    fn can_stream(&self) -> bool {
        false
    }

    fn stream_has_end_marker(&self) -> bool {
        false
    }

    fn parse_event(&self, data: &[u8]) -> Result<Parsed, EventError> {
        self.parse_body(data)
    }

    fn parse_body(&self, body: &[u8]) -> Result<Parsed, EventError> {
        let v = json(self.name(), body)?;
        let text = v.get("response").and_then(|t| t.as_str()).ok_or("jetstream: no response in the answer")?;
        Ok(Parsed { text: text.to_owned(), done: true, finished: true, ..Parsed::default() })
    }
}
