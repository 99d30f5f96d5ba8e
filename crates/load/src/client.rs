//! Sends one request and measures it: the HTTP client (HTTP/1.1, TCP_NODELAY, keep-alive
//! connections each driven by the request that holds it: `pool` and `http1`), SSE parsing as
//! bytes arrive, each content chunk timestamped on arrival, errors classified, the output token count
//! taken from the server's usage when it gives one.

use crate::LoadError;
use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{
    backends::{Backend, EventError, Request, Usage, for_api},
    http1,
    pool::{Conn, Pool},
    recorder::{ErrorKind, NONE_US, Outcome, RequestRecord, TokenSource},
    sse::SseParser,
    tokenize::Tokenizer,
};
use inferbench_schema::Api;

/// An unreadable event is the client's parse failure; an error event is the server's.
fn classify(e: EventError) -> (ErrorKind, String) {
    match e {
        EventError::Invalid(m) => (ErrorKind::Parse, m),
        EventError::Server(m) => (ErrorKind::ServerError, m),
    }
}

/// Largest error body read (the rest is dropped).
const MAX_ERROR_BODY: usize = 64 << 10;

/// A client for one target.
pub struct Client {
    pool: Pool,
    /// Its path, put before each API path (`/v1/completions` …); empty at the root.
    prefix: String,
    /// `Host` header value.
    host: String,
    backend: Box<dyn Backend>,
    timeout: Duration,
    tokenizer: Option<Arc<Tokenizer>>,
    /// Tokens the tokenizer adds to a prompt (a BOS), as a server using it does.
    added_special_tokens: u32,
    /// The API takes a text prompt whole (not chat messages): the server's prompt count can be
    /// checked against the tokenizer's.
    text_prompt: bool,
}

/// A measured request.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// Its measurements.
    pub outcome: Outcome,
    /// The output text (multi-turn prompts send it back as history).
    pub text: String,
    /// What went wrong, in words (for the log; the record has the kind).
    pub error: Option<String>,
}

/// When a request was meant to go and what it waited for.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Start of the stage (offsets are taken from it).
    pub stage_start: Instant,
    /// Intended send time.
    pub intended: Instant,
    /// It waited for a concurrency slot.
    pub waited_for_slot: bool,
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8000`) speaking `api`.
    pub fn new(base_url: &str, api: Api, timeout: Duration) -> Result<Client, LoadError> {
        Self::for_target(base_url, api, timeout).map_err(LoadError::Target)
    }

    fn for_target(base_url: &str, api: Api, timeout: Duration) -> Result<Client, String> {
        let u = url::Url::parse(base_url).map_err(|e| format!("\"{base_url}\" is not a URL: {e}"))?;
        if u.scheme() != "http" {
            return Err(format!("\"{base_url}\": only http:// targets are supported (got {}://)", u.scheme()));
        }
        let host = u.host_str().ok_or_else(|| format!("\"{base_url}\" names no host"))?;
        let port = u.port_or_known_default().unwrap_or(80);
        let host_header = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Client {
            pool: Pool::new(format!("{host}:{port}")),
            prefix: u.path().trim_end_matches('/').to_owned(),
            host: host_header,
            backend: for_api(api),
            timeout,
            tokenizer: None,
            added_special_tokens: 0,
            text_prompt: api != Api::OpenaiChatCompletions,
        })
    }

    /// The API's name.
    pub fn api_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Sends `req` now and measures it (never fails: failures are in the record).
    pub async fn send(&self, req: &Request<'_>, request_id: &str, timing: Timing) -> Sent {
        let req = &Request { stream: req.stream && self.backend.can_stream(), ..*req };
        let sent = Instant::now();
        let mut m = Measure::new(req, sent);
        m.keep_text |= self.tokenizer.is_some();
        // Boxed: the exchange's future (HTTP request, connection, body) is most of a request's
        // state, and unboxed it was copied whole at each level it was moved through (the spawn
        // among them): 5-7 % of the client's CPU in memmove at 20 000 req/s.
        let exchange = Box::pin(self.exchange(req, request_id, &mut m));
        let result = tokio::time::timeout(self.timeout, exchange).await;
        let end = Instant::now();
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err((kind, msg))) => Some((kind, msg)),
            Err(_) => Some((ErrorKind::Timeout, format!("no complete answer within {:?}", self.timeout))),
        };
        // The tokenizer's count of the answer, when the server gives none (re-tokenizing decoded
        // text does not give back the model's tokens: never a check of the server's count).
        // Counted off the async workers (after `end` was taken): tokenizing a long answer there
        // would delay the arrival stamps of other requests' chunks.
        let counted = match (&self.tokenizer, m.text.is_empty(), m.usage.completion_tokens) {
            (Some(t), false, None) => {
                let (t, text) = (t.clone(), m.text.clone());
                tokio::task::spawn_blocking(move || t.count(&text)).await.ok()
            }
            _ => None,
        };
        // The server's prompt count against the tokenizer's (see `Counts` in results.proto).
        let expected_prompt = (self.tokenizer.is_some()
            && self.text_prompt
            && req.prompt_tokens > 0
            && matches!(req.prompt, super::backends::Prompt::Text(_)))
        .then_some(req.prompt_tokens + self.added_special_tokens);
        m.finish(timing, end, error, counted, expected_prompt)
    }

    /// Opens up to `n` keep-alive connections ahead of the load (`n` concurrent `GET /health`;
    /// whatever the server answers, the connection stays idle unless it says `Connection: close`).
    /// At high rates a stage that starts with none opens one per early arrival, all at once:
    /// measured at 20 000 req/s, the first ~150 ms of a stage were sent up to 65 ms late while
    /// hundreds of handshakes went on. A request on each, not only a handshake: connections
    /// merely opened left the first ~10 ms of a stage at 20 000 req/s 60-200 requests > 1 ms late
    /// (both ends' first use of a connection), against 0-40 with a request. Gives up quietly
    /// (the load opens what it needs) after the request timeout or 10 s, whichever is shorter.
    pub async fn warm(&self, n: usize) {
        let path = format!("{}/health", self.prefix);
        let req = http1::request("GET", &path, &[("host", &self.host)], None);
        let one = || async {
            let (mut conn, _) = self.pool.send(&req).await.ok()?;
            while !conn.read_body(|_, _| ()).await.ok()? {}
            self.pool.put(conn);
            Some(())
        };
        let all = futures_util::future::join_all((0..n).map(|_| one()));
        let _ = tokio::time::timeout(self.timeout.min(Duration::from_secs(10)), all).await;
    }

    /// Makes new connections from `sources` in turn (see `LoadSpec.source_addresses`).
    pub fn with_source_addresses(mut self, sources: Vec<std::net::IpAddr>) -> Self {
        self.pool = self.pool.with_sources(sources);
        self
    }

    /// Counts output tokens with `tokenizer` too (see [`Client::send`]).
    pub fn with_tokenizer(mut self, tokenizer: Arc<Tokenizer>) -> Self {
        self.added_special_tokens = tokenizer.added_special_tokens();
        self.tokenizer = Some(tokenizer);
        self
    }

    async fn exchange(&self, req: &Request<'_>, id: &str, m: &mut Measure) -> Result<(), (ErrorKind, String)> {
        let path = format!("{}{}", self.prefix, self.backend.path(req));
        let accept = if req.stream { "text/event-stream" } else { "application/json" };
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", "application/json"),
            ("accept", accept),
            ("x-request-id", id),
        ];
        let http_req = http1::request("POST", &path, &headers, Some(&self.backend.body(req)));
        let sent = self.pool.send(&http_req).await;
        // The request's bytes are not kept while the answer streams.
        drop(http_req);
        let (mut conn, head) = sent.map_err(|e| (ErrorKind::Connect, format!("{path}: {e}")))?;
        m.first_byte = Some(conn.answer_at());
        m.status = head.status;
        let read = self.read(req, &mut conn, m).await;
        // Read to its end, the answer leaves the connection ready for another; else (a parse
        // error mid-stream) it is closed.
        if m.body_ended {
            self.pool.put(conn);
        }
        read
    }

    /// Reads and parses an answer's body (`m.status` is its status).
    async fn read(&self, req: &Request<'_>, conn: &mut Conn, m: &mut Measure) -> Result<(), (ErrorKind, String)> {
        if !(200..300).contains(&m.status) {
            let mut text = Vec::new();
            let mut keep = |d: &[u8], _| {
                let room = MAX_ERROR_BODY - text.len().min(MAX_ERROR_BODY);
                text.extend_from_slice(&d[..d.len().min(room)]);
            };
            while let Ok(ended) = conn.read_body(&mut keep).await {
                if ended {
                    m.body_ended = true;
                    break;
                }
            }
            let shown = String::from_utf8_lossy(&text[..text.len().min(300)]).into_owned();
            return Err((ErrorKind::from_status(m.status), format!("HTTP {}: {shown}", m.status)));
        }
        if req.stream {
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            loop {
                // Each piece carries the time its read completed, taken before anything is parsed.
                let mut unreadable = None;
                let ended = conn
                    .read_body(|data, at| {
                        if let Err(e) = parser.push(data, at, &mut events) {
                            unreadable.get_or_insert(e);
                        }
                    })
                    .await
                    .map_err(|e| (ErrorKind::StreamCut, format!("the stream broke: {e}")))?;
                if let Some(e) = unreadable {
                    return Err((ErrorKind::Parse, e.to_string()));
                }
                for ev in events.drain(..).filter(|e| !e.data.is_empty()) {
                    let p = self.backend.parse_event(&ev.data).map_err(classify)?;
                    m.add(&p, ev.at);
                }
                if ended {
                    m.body_ended = true;
                    break;
                }
            }
            if parser.finish() || (self.backend.stream_has_end_marker() && !m.done) {
                return Err((ErrorKind::StreamCut, "the stream ended before its end marker".into()));
            }
        } else {
            let mut bytes = Vec::new();
            let mut at = Instant::now();
            let mut keep = |d: &[u8], read_at| {
                bytes.extend_from_slice(d);
                at = read_at;
            };
            while !conn
                .read_body(&mut keep)
                .await
                .map_err(|e| (ErrorKind::StreamCut, format!("the body broke: {e}")))?
            {}
            m.body_ended = true;
            let p = self.backend.parse_body(&bytes).map_err(classify)?;
            m.add(&p, at);
        }
        Ok(())
    }
}

/// What is known of a request while it runs.
struct Measure {
    sent: Instant,
    first_byte: Option<Instant>,
    status: u16,
    /// Content chunks: arrival (µs after `sent`), tokens the API counted (0: unknown), text bytes.
    /// 12 bytes each, grown as they come: a stream holds what it has received, not its
    /// `max_tokens` in advance (at 24 bytes × 4 096, 98 KB per open stream).
    chunks: Vec<(u32, u32, u32)>,
    /// The answer's text, when something needs it: the tokenizer's count, a conversation's next
    /// turn, a whole (unstreamed) body's word count. Else only its length is kept (in `chunks`).
    text: String,
    keep_text: bool,
    usage: Usage,
    done: bool,
    prompt_chars: u32,
    /// The dataset's count of the prompt (0: not known).
    prompt_tokens: u32,
    max_tokens: u32,
    ignore_eos: bool,
    stream: bool,
    /// The body was read to its end.
    body_ended: bool,
}

impl Measure {
    fn new(req: &Request<'_>, sent: Instant) -> Self {
        Measure {
            sent,
            first_byte: None,
            status: 0,
            chunks: Vec::new(),
            text: String::new(),
            keep_text: !req.stream || req.keep_text,
            usage: Usage::default(),
            done: false,
            body_ended: false,
            prompt_chars: req.prompt.flat().len() as u32,
            prompt_tokens: req.prompt_tokens,
            max_tokens: req.max_tokens,
            ignore_eos: req.ignore_eos,
            stream: req.stream,
        }
    }

    fn add(&mut self, p: &super::backends::Parsed, at: Instant) {
        if p.is_content() {
            let after = at.saturating_duration_since(self.sent).as_micros().min(u128::from(NONE_US - 1)) as u32;
            self.chunks.push((after, p.tokens.unwrap_or(0), p.text.len() as u32));
            if self.keep_text {
                self.text.push_str(&p.text);
            }
        }
        let u = &p.usage;
        self.usage.prompt_tokens = u.prompt_tokens.or(self.usage.prompt_tokens);
        self.usage.completion_tokens = u.completion_tokens.or(self.usage.completion_tokens);
        self.usage.cached_tokens = u.cached_tokens.or(self.usage.cached_tokens);
        self.done |= p.done;
    }

    fn finish(
        self,
        timing: Timing,
        end: Instant,
        error: Option<(ErrorKind, String)>,
        counted: Option<u32>,
        expected_prompt: Option<u32>,
    ) -> Sent {
        let us = |t: Instant| t.saturating_duration_since(self.sent).as_micros().min(u128::from(NONE_US - 1)) as u32;
        let since_start = |t: Instant| t.saturating_duration_since(timing.stage_start).as_micros() as u64;
        // Output tokens: the server's count; else what the API counted per chunk; else one per
        // streamed chunk, or words of a whole body (estimates until a tokenizer is given).
        let api_counted: u32 = self.chunks.iter().map(|c| c.1).sum();
        let (output_tokens, source) = match (self.usage.completion_tokens, counted) {
            (Some(n), _) => (n, TokenSource::Usage),
            (None, Some(n)) if n > 0 => (n, TokenSource::Tokenizer),
            (None, _) if api_counted > 0 => (api_counted, TokenSource::Chunks),
            (None, _) if self.chunks.len() > 1 => (self.chunks.len() as u32, TokenSource::Chunks),
            (None, _) => (self.text.split_whitespace().count() as u32, TokenSource::Words),
        };
        // The two exact checks of results.proto's `Counts`: the prompt as the server counted it,
        // and the output length against the one asked for.
        let prompt_mismatch =
            expected_prompt.is_some_and(|want| self.usage.prompt_tokens.is_some_and(|got| got != want));
        let length_mismatch = self
            .usage
            .completion_tokens
            .is_some_and(|got| if self.ignore_eos { got != self.max_tokens } else { got > self.max_tokens });
        let per_chunk = spread(&self.chunks, output_tokens);
        let chunks: Vec<(u32, u32)> = self.chunks.iter().zip(per_chunk).map(|(c, n)| (c.0, n)).collect();
        let mut error = error;
        if error.is_none() && output_tokens == 0 {
            error = Some((ErrorKind::Empty, "the answer has no output token".into()));
        }
        let record = RequestRecord {
            intended_us: since_start(timing.intended),
            sent_us: since_start(self.sent),
            first_byte_us: self.first_byte.map_or(NONE_US, us),
            first_token_us: self.chunks.first().map_or(NONE_US, |c| c.0),
            last_token_us: self.chunks.last().map_or(NONE_US, |c| c.0),
            end_us: us(end),
            input_tokens: self.usage.prompt_tokens.unwrap_or(if self.prompt_tokens > 0 {
                self.prompt_tokens
            } else {
                self.prompt_chars.div_ceil(4)
            }),
            dataset_input_tokens: self.prompt_tokens,
            output_tokens,
            cached_tokens: self.usage.cached_tokens.unwrap_or(0),
            chunks: self.chunks.len() as u32,
            model: 0,
            status: self.status,
            error: error.as_ref().map(|e| e.0),
            token_source: source,
            prompt_mismatch,
            length_mismatch,
            streamed: self.stream,
            waited_for_slot: timing.waited_for_slot,
            later_turn: false,
        };
        Sent { outcome: Outcome { record, chunks }, text: self.text, error: error.map(|e| e.1) }
    }
}

/// Tokens of each chunk, summing to `total`: what the API counted per chunk when that adds up,
/// else `total` spread in proportion to each chunk's text (a chunk of several tokens, as with
/// speculative decoding, gets its share), every chunk at least one while there are enough.
fn spread(chunks: &[(u32, u32, u32)], total: u32) -> Vec<u32> {
    if chunks.is_empty() {
        return vec![];
    }
    let api: u32 = chunks.iter().map(|c| c.1).sum();
    if api == total {
        return chunks.iter().map(|c| c.1).collect();
    }
    let n = chunks.len() as u32;
    if total <= n {
        return (0..n).map(|i| u32::from(i < total)).collect();
    }
    // In proportion to text length, at least one each, rounded by largest remainders.
    let bytes: f64 = chunks.iter().map(|c| f64::from(c.2.max(1))).sum();
    let shares: Vec<f64> = chunks.iter().map(|c| f64::from(total) * f64::from(c.2.max(1)) / bytes).collect();
    let mut out: Vec<u32> = shares.iter().map(|s| (s.floor() as u32).max(1)).collect();
    let mut sum: u32 = out.iter().sum();
    let mut order: Vec<usize> = (0..out.len()).collect();
    // Remainders, largest first (ties: earlier chunk first).
    order.sort_by(|&a, &b| (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor())).then(a.cmp(&b)));
    for &i in order.iter().cycle() {
        if sum >= total {
            break;
        }
        out[i] += 1;
        sum += 1;
    }
    while sum > total {
        // Minimums pushed it over: take from the largest.
        let i = (0..out.len()).max_by_key(|&i| (out[i], std::cmp::Reverse(i))).expect("chunks exist");
        out[i] -= 1;
        sum -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_spread_over_chunks_by_text_and_sum_to_the_total() {
        let c = |bytes| (0, 0, bytes);
        assert_eq!(spread(&[c(4), c(4), c(16)], 6), [1, 1, 4]);
        assert_eq!(spread(&[c(4), c(4)], 2), [1, 1]);
        assert_eq!(spread(&[c(4), c(4), c(4)], 2), [1, 1, 0]);
        assert_eq!(spread(&[(0, 1, 3), (0, 1, 0)], 2), [1, 1], "API counts that add up are kept");
        let s = spread(&[c(3), c(5), c(7)], 10);
        assert_eq!(s.iter().sum::<u32>(), 10);
    }
}
