//! `inferbench dev canned`: an OpenAI-compatible server that answers at once with a canned reply
//! of the asked length — no engine, no batching, no metrics of its own. It is the cheapest server
//! the load engine can meet, so measuring against it shows the *client's* ceiling on a machine
//! (`scripts/bench-load`): client and server share the cores, and every cycle the server does not
//! spend is one the client can. The simulator's zero-latency mode still runs a vLLM-like engine
//! and costs several times more per request.
//!
//! It speaks `/v1/completions` and `/v1/chat/completions`, streamed (one SSE event per token, a
//! role-only first chunk for chat as vLLM sends, a usage chunk when asked, `[DONE]`) and not; the
//! whole answer is written at once. `GET /metrics` answers an empty exposition and `/health` 200,
//! so the load engine's scraper and readiness checks work unchanged.

use std::{convert::Infallible, fmt::Write as _, net::SocketAddr};

use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, StatusCode, body::Bytes, header, service::service_fn};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

/// The text of every generated token.
const TOKEN: &str = " tok";
/// Longest answer given: a larger `max_tokens` is refused (400), not allocated.
const MAX_TOKENS: u32 = 1 << 20;

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, a client gone mid-handshake: passing; keep serving.
                eprintln!("inferbench dev canned: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req| async move { Ok::<_, Infallible>(answer(req).await) });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Binds `addr` and serves; prints the address it listens on (the port may be 0).
pub async fn run(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("inferbench dev canned: serving canned answers on http://{}", listener.local_addr()?);
    serve(listener).await;
    Ok(())
}

/// What is read of a request (the rest is ignored).
#[derive(Deserialize)]
struct Asked<'a> {
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default, borrow)]
    prompt: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    messages: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

async fn answer(req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let chat = match (req.method(), path.as_str()) {
        (&hyper::Method::POST, "/v1/completions") => false,
        (&hyper::Method::POST, "/v1/chat/completions") => true,
        (&hyper::Method::GET, "/metrics") => return reply(StatusCode::OK, "text/plain; version=0.0.4", ""),
        (&hyper::Method::GET, "/health" | "/v1/models") => return reply(StatusCode::OK, "application/json", "{}"),
        _ => return reply(StatusCode::NOT_FOUND, "application/json", r#"{"error":"not found"}"#),
    };
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return reply(StatusCode::BAD_REQUEST, "application/json", r#"{"error":"the body broke"}"#);
    };
    let asked: Asked<'_> = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return bad_request(&e.to_string()),
    };
    let n = asked.max_tokens.unwrap_or(16);
    if n > MAX_TOKENS {
        return bad_request(&format!("max_tokens {n} is over this server's {MAX_TOKENS}"));
    }
    // A prompt token per 4 bytes of prompt, or 8 per message: a count, not a tokenizer's.
    let prompt = asked.prompt.as_ref().map_or(asked.messages.as_ref().map_or(0, |m| 8 * m.len()), |p| p.len() / 4);
    let total = prompt as u64 + u64::from(n);
    let usage = format!(r#"{{"prompt_tokens":{prompt},"completion_tokens":{n},"total_tokens":{total}}}"#);
    if asked.stream {
        let with_usage = asked.stream_options.is_some_and(|o| o.include_usage);
        reply(StatusCode::OK, "text/event-stream", &stream(chat, n, with_usage.then_some(&usage)))
    } else {
        let text = TOKEN.repeat(n as usize);
        let body = if chat {
            format!(
                r#"{{"id":"c","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"length"}}],"usage":{usage}}}"#
            )
        } else {
            format!(
                r#"{{"id":"c","object":"text_completion","choices":[{{"index":0,"text":"{text}","finish_reason":"length"}}],"usage":{usage}}}"#
            )
        };
        reply(StatusCode::OK, "application/json", &body)
    }
}

/// The SSE events of an answer of `n` tokens.
fn stream(chat: bool, n: u32, usage: Option<&str>) -> String {
    let mut s = String::with_capacity(96 * (n as usize + 3));
    if chat {
        s.push_str(r#"data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#);
        s.push_str("\n\n");
    }
    for i in 0..n {
        let finish = if i + 1 == n { r#""length""# } else { "null" };
        if chat {
            let _ = write!(
                s,
                r#"data: {{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{TOKEN}"}},"finish_reason":{finish}}}]}}"#
            );
        } else {
            let _ = write!(
                s,
                r#"data: {{"id":"c","object":"text_completion","choices":[{{"index":0,"text":"{TOKEN}","finish_reason":{finish}}}]}}"#
            );
        }
        s.push_str("\n\n");
    }
    if let Some(u) = usage {
        let _ = write!(s, r#"data: {{"id":"c","choices":[],"usage":{u}}}"#);
        s.push_str("\n\n");
    }
    s.push_str("data: [DONE]\n\n");
    s
}

fn bad_request(message: &str) -> Response<Full<Bytes>> {
    reply(StatusCode::BAD_REQUEST, "application/json", &serde_json::json!({ "error": message }).to_string())
}

fn reply(status: StatusCode, content_type: &'static str, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r
}
