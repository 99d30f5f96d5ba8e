//! The simulator's HTTP surface: the APIs of the real servers, each in its own file, over one
//! shared path (parse → [`Simulator::generate`] → a streamed or collected answer).
//!
//! | route | server |
//! |---|---|
//! | `POST /v1/completions`, `POST /v1/chat/completions` | OpenAI as vLLM serves it ([`openai`]) |
//! | `POST /generate`, `POST /generate_stream` | TGI ([`tgi`]); `/generate` with a `prompt` body is JetStream's |
//! | `POST /v2/models/{model}/generate[_stream]` | Triton / TensorRT-LLM ([`triton`]) |
//! | `POST /v1/generate` | JetStream's HTTP server ([`jetstream`]) |
//! | `GET /health`, `/health/ready`, `/v2/health/ready`, `/v1/models`, `/version`, `/metrics` | ops ([`ops`]) |
//! | `GET/POST /admin/faults` | simulator-only fault control ([`ops`]) |
//!
//! Every response echoes the request's `x-request-id`. Sockets use TCP_NODELAY: without it each
//! small SSE frame waits for a delayed ACK (~40 ms on loopback).

pub mod jetstream;
pub mod openai;
pub mod ops;
pub mod tgi;
pub mod triton;
pub mod validate;

use std::{io, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use super::{
    SimError, Simulator, Started,
    engine::{Finish, Usage},
    faults::FAULT_HEADER,
    tokens::TextGen,
};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// A keep-alive connection idle this long (no request begun) is closed, as vLLM's server
/// (uvicorn) closes its own: a client that opened tens of thousands and walked away must not keep
/// the server's files, or its next connections — `/health` among them — wait behind them.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `sim` on `listener`, each connection on a task of its own. A failed accept (out of
/// files: more connections than its limit) is waited out a little, and accepting goes on: those
/// open end, and idle ones are closed after [`IDLE_TIMEOUT`].
pub async fn serve(listener: TcpListener, sim: Arc<Simulator>) -> io::Result<()> {
    let app = hyper_util::service::TowerToHyperService::new(router(sim));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // A connection gone before it was accepted.
            Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => continue,
            // Out of files or memory: not the end of the server.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(IDLE_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), app)
                .with_upgrades()
                .await;
        });
    }
}

/// Every route.
pub fn router(sim: Arc<Simulator>) -> Router {
    Router::new()
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat))
        .route("/generate", post(tgi::generate_or_jetstream))
        .route("/generate_stream", post(tgi::generate_stream))
        .route("/v2/models/{model}/generate", post(triton::generate))
        .route("/v2/models/{model}/generate_stream", post(triton::generate_stream))
        .route("/v1/generate", post(jetstream::generate))
        .route("/health", get(ops::health))
        .route("/health/ready", get(ops::health))
        .route("/v2/health/ready", get(ops::health))
        .route("/v1/models", get(ops::models))
        .route("/version", get(ops::version))
        .route("/metrics", get(ops::metrics))
        .route("/admin/faults", get(ops::get_faults).post(ops::post_faults))
        // FastAPI's answers to an unknown route and a wrong method, as from vLLM.
        .fallback(|| async { validate::detail(404, "Not Found") })
        .method_not_allowed_fallback(|| async { validate::detail(405, "Method Not Allowed") })
        .layer(middleware::from_fn(echo_request_id))
        // Long-context prompts are megabytes of JSON; axum's default limit is 2 MB.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(sim)
}

async fn echo_request_id(req: Request, next: Next) -> Response {
    let id = req.headers().get("x-request-id").cloned();
    let mut resp = next.run(req).await;
    if let Some(id) = id {
        resp.headers_mut().insert("x-request-id", id);
    }
    resp
}

/// Parses a JSON body; a malformed one is a 400 naming serde's complaint (line and column).
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::bad_request(format!("invalid JSON request body: {e}"), None))
}

/// The request's fault header.
pub fn fault_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(FAULT_HEADER).and_then(|v| v.to_str().ok())
}

/// The request's `x-request-id`, or a number.
pub fn request_id(headers: &HeaderMap, number: u64) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("{number:016x}"), str::to_owned)
}

/// A JSON response.
pub fn json_response(status: u16, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Writes a value as JSON (the types here always serialize).
pub fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("response types serialize")
}

/// Appends `data: JSON\n\n` (with `space` after the colon or not: TGI writes none).
pub fn sse_frame<T: serde::Serialize>(out: &mut Vec<u8>, v: &T, space: bool) {
    out.extend_from_slice(if space { b"data: " } else { b"data:" });
    serde_json::to_writer(&mut *out, v).expect("response types serialize");
    out.extend_from_slice(b"\n\n");
}

/// How an API frames a token stream.
pub trait StreamFormat: Send + 'static {
    /// Frames sent before any token (OpenAI chat's role chunk).
    fn head(&mut self, _out: &mut Vec<u8>) {}
    /// Frames for one engine step's `n` tokens of `text`; `done` is set on the last step. When
    /// generation stopped at EOS, the last token is EOS and has no text (`text` has `n - 1` words).
    fn tokens(&mut self, text: &str, n: u32, done: Option<&Usage>, out: &mut Vec<u8>);
}

/// Words of text in a step's `n` tokens: one fewer on the last step when it ended at EOS, which
/// counts as a generated token (as in vLLM's usage) but is not text.
pub fn text_tokens(n: u32, done: Option<&Usage>) -> u32 {
    match done {
        Some(u) if u.finish == Finish::Stop => n.saturating_sub(1),
        _ => n,
    }
}

struct StreamState<F> {
    started: Started,
    text: TextGen,
    fmt: F,
    sent: u32,
    stalled: bool,
    head_sent: bool,
    finished: bool,
}

/// A streamed (SSE) answer: frames as the engine yields tokens, with injected stalls and resets.
pub fn stream_response<F: StreamFormat>(started: Started, fmt: F) -> Response {
    let state = StreamState {
        text: TextGen::new(started.text_seed),
        started,
        fmt,
        sent: 0,
        stalled: false,
        head_sent: false,
        finished: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.finished {
            return None;
        }
        let mut out = Vec::new();
        if let Some((pause, after)) = st.started.faults.stall
            && !st.stalled
            && st.sent >= after
        {
            st.stalled = true;
            tokio::time::sleep(pause).await;
        }
        if let Some(after) = st.started.faults.reset_after
            && st.sent >= after
        {
            st.finished = true;
            return Some((Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected connection reset")), st));
        }
        let Some(ev) = st.started.rx.recv().await else {
            st.finished = true;
            return Some((Err(io::Error::other("the engine stopped")), st));
        };
        st.started.delivery_lag[usize::from(st.head_sent)].observe(ev.at.elapsed().as_secs_f64());
        // The head (chat's role chunk) goes with the first tokens, as vLLM sends it on the
        // engine's first output: a client timing the first frame sees the real TTFT.
        if !st.head_sent {
            st.head_sent = true;
            st.fmt.head(&mut out);
        }
        let mut words = String::with_capacity(ev.tokens as usize * 6);
        st.text.push_words(text_tokens(ev.tokens, ev.done.as_ref()), &mut words);
        st.fmt.tokens(&words, ev.tokens, ev.done.as_ref(), &mut out);
        st.sent += ev.tokens;
        st.finished = ev.done.is_some();
        Some((Ok::<_, io::Error>(Bytes::from(out)), st))
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A whole answer, for non-streamed requests.
pub struct Collected {
    /// The generated text.
    pub text: String,
    /// Token counts and finish reason.
    pub usage: Usage,
}

/// Waits for the whole answer. An injected stall delays it; an injected reset (any token count:
/// nothing is sent before the end) cuts the connection, returned as the `Err` response.
pub async fn collect(mut started: Started) -> Result<Collected, Response> {
    if let Some((pause, _)) = started.faults.stall {
        tokio::time::sleep(pause).await;
    }
    let mut tokens = 0;
    let usage = loop {
        match started.rx.recv().await {
            Some(ev) => {
                tokens += ev.tokens;
                if let Some(u) = ev.done {
                    break u;
                }
            }
            None => return Err(error_body_response(io::Error::other("the engine stopped"))),
        }
    };
    if started.faults.reset_after.is_some() {
        return Err(error_body_response(io::Error::new(io::ErrorKind::ConnectionReset, "injected connection reset")));
    }
    let words = text_tokens(tokens, Some(&usage));
    Ok(Collected { text: TextGen::new(started.text_seed).words(words), usage })
}

/// A 200 whose body fails at once: the client sees the connection cut.
fn error_body_response(e: io::Error) -> Response {
    let stream = futures_util::stream::once(async move { Err::<Bytes, _>(e) });
    Response::new(Body::from_stream(stream))
}

/// The OpenAI error envelope (`{"error": {message, type, param, code}}`), as vLLM and most
/// OpenAI-compatible servers answer.
pub fn openai_error(e: &SimError) -> Response {
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        error: Info<'a>,
    }
    #[derive(serde::Serialize)]
    struct Info<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        param: Option<&'a str>,
        code: u16,
    }
    let body = Envelope { error: Info { message: &e.message, kind: e.kind, param: e.param_name(), code: e.status } };
    json_response(e.status, to_json(&body))
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        openai_error(&self)
    }
}
