//! The load engine's client against the simulator on 127.0.0.1: every API shape, streamed and not,
//! and each failure kind.

use std::time::Duration;

use clap::Parser;
use inferbench::{
    cli::sim_cmd::SimArgs,
    load::{
        backends::{Message, Prompt, Request},
        client::{Client, Sent, Timing},
        recorder::{ErrorKind, NONE_US, TokenSource},
    },
    schema::Api,
    sim::Server,
};
use tokio::time::Instant;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    sim: SimArgs,
}

async fn sim(flags: &[&str]) -> Server {
    let args = Flags::try_parse_from(["sim", "--zero-latency"].iter().chain(flags)).unwrap().sim;
    Server::bind(args.to_config().unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

async fn send(url: &str, api: Api, prompt: &Prompt, max_tokens: u32, stream: bool) -> Sent {
    send_with(url, api, prompt, max_tokens, stream, Duration::from_secs(10)).await
}

async fn send_with(url: &str, api: Api, prompt: &Prompt, max_tokens: u32, stream: bool, timeout: Duration) -> Sent {
    let client = Client::new(url, api, timeout).unwrap();
    let model = if api == Api::TritonGenerate { "ensemble" } else { "meta-llama/Llama-3.1-8B-Instruct" };
    let req = Request { model, prompt, max_tokens, prompt_tokens: 0, ignore_eos: true, stream, keep_text: true };
    let now = Instant::now();
    client.send(&req, "test-1", Timing { stage_start: now, intended: now, waited_for_slot: false }).await
}

fn text(s: &str) -> Prompt {
    Prompt::Text(s.into())
}

#[tokio::test]
async fn every_api_streamed_and_not_is_measured() {
    // TGI has no ignore_eos: a huge mean output keeps EOS from ending its answers early.
    let s = sim(&["--mean-output-tokens", "1000000000"]).await;
    let url = s.url();
    let cases = [
        (Api::OpenaiCompletions, true, TokenSource::Usage, 8),
        (Api::OpenaiCompletions, false, TokenSource::Usage, 1),
        (Api::OpenaiChatCompletions, true, TokenSource::Usage, 8),
        (Api::OpenaiChatCompletions, false, TokenSource::Usage, 1),
        (Api::TgiGenerate, true, TokenSource::Usage, 8),
        (Api::TgiGenerate, false, TokenSource::Usage, 1),
        (Api::TritonGenerate, true, TokenSource::Chunks, 8),
        (Api::TritonGenerate, false, TokenSource::Words, 1),
        (Api::JetstreamGenerate, false, TokenSource::Words, 1),
    ];
    for (api, stream, source, chunks) in cases {
        let sent = send(&url, api, &text("Tell me a story"), 8, stream).await;
        let r = sent.outcome.record;
        assert_eq!(r.error, None, "{api:?} stream={stream}: {:?}", sent.error);
        assert_eq!((r.output_tokens, r.token_source, r.status), (8, source, 200), "{api:?} stream={stream}");
        assert_eq!(r.chunks, chunks, "{api:?} stream={stream}");
        assert_eq!(sent.text.split_whitespace().count(), 8, "{api:?} stream={stream}: {}", sent.text);
        assert!(r.first_byte_us != NONE_US && r.first_byte_us <= r.first_token_us, "{api:?}: {r:?}");
        assert!(r.first_token_us <= r.last_token_us && r.last_token_us <= r.end_us, "{api:?}: {r:?}");
        assert_eq!(sent.outcome.chunks.iter().map(|c| c.1).sum::<u32>(), 8, "{api:?}: tokens per chunk sum");
        assert!(!r.length_mismatch && !r.prompt_mismatch, "{api:?}");
        assert_eq!(r.streamed, stream && api != Api::JetstreamGenerate, "{api:?}");
    }
}

#[tokio::test]
async fn multi_token_chunks_take_their_share_and_chat_history_is_sent_whole() {
    let s = sim(&["--tokens-per-step", "4"]).await;
    let history = Prompt::Chat(vec![
        Message { role: "user".into(), content: "Hello".into() },
        Message { role: "assistant".into(), content: "Hi, how can I help?".into() },
        Message { role: "user".into(), content: "Tell me more".into() },
    ]);
    let sent = send(&s.url(), Api::OpenaiChatCompletions, &history, 10, true).await;
    let r = sent.outcome.record;
    assert_eq!((r.error, r.output_tokens, r.chunks), (None, 10, 4));
    let per_chunk: Vec<u32> = sent.outcome.chunks.iter().map(|c| c.1).collect();
    assert_eq!(per_chunk.iter().sum::<u32>(), 10);
    assert!(per_chunk[1] >= 2 && per_chunk[2] >= 2, "the 4-token chunks carry several: {per_chunk:?}");
    // The server saw the three messages (its prompt count includes each one's template tokens).
    let one = send(&s.url(), Api::OpenaiChatCompletions, &text("Tell me more"), 1, false).await;
    assert!(
        r.input_tokens > one.outcome.record.input_tokens + 8,
        "{} vs {}",
        r.input_tokens,
        one.outcome.record.input_tokens
    );
}

#[tokio::test]
async fn failures_are_classified() {
    let s = sim(&[]).await;
    let url = s.url();
    let admin = |body: &'static str| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new().post(format!("{url}/admin/faults")).body(body).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    admin(r#"{"error_rate": 1, "error_status": 503}"#).await;
    let r = send(&url, Api::OpenaiCompletions, &text("x"), 4, true).await;
    assert_eq!((r.outcome.record.error, r.outcome.record.status), (Some(ErrorKind::Http5xx), 503));
    assert!(r.error.unwrap().contains("HTTP 503"));
    admin(r#"{"error_status": 429}"#).await;
    let r = send(&url, Api::OpenaiCompletions, &text("x"), 4, true).await;
    assert_eq!(r.outcome.record.error, Some(ErrorKind::Http429));
    admin(r#"{"error_rate": 0, "reset_rate": 1, "reset_after_tokens": 2}"#).await;
    let r = send(&url, Api::OpenaiCompletions, &text("x"), 8, true).await;
    assert_eq!(r.outcome.record.error, Some(ErrorKind::StreamCut), "{:?}", r.error);
    admin(r#"{"reset_rate": 0, "stall_rate": 1, "stall_seconds": 30, "stall_after_tokens": 1}"#).await;
    let r = send_with(&url, Api::OpenaiCompletions, &text("x"), 8, true, Duration::from_millis(300)).await;
    assert_eq!(r.outcome.record.error, Some(ErrorKind::Timeout));
    admin(r#"{"stall_rate": 0}"#).await;
    // An unknown model is a 4xx; nothing listening is a connect error.
    let client = Client::new(&url, Api::OpenaiCompletions, Duration::from_secs(5)).unwrap();
    let now = Instant::now();
    let req = Request {
        model: "nope",
        prompt: &text("x"),
        max_tokens: 2,
        prompt_tokens: 0,
        ignore_eos: true,
        stream: false,
        keep_text: true,
    };
    let r = client.send(&req, "t", Timing { stage_start: now, intended: now, waited_for_slot: false }).await;
    assert_eq!(r.outcome.record.error, Some(ErrorKind::Http4xx));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = send(&format!("http://{closed}"), Api::OpenaiCompletions, &text("x"), 2, false).await;
    assert_eq!(r.outcome.record.error, Some(ErrorKind::Connect), "{:?}", r.error);
    assert!(Client::new("https://example.com", Api::OpenaiCompletions, Duration::from_secs(1)).is_err());
}

#[tokio::test]
async fn an_error_event_in_a_stream_is_the_servers_error_and_garbage_is_a_parse_error() {
    use axum::{Router, routing::post};
    const SSE: [(&str, &str); 1] = [("content-type", "text/event-stream")];
    let app = Router::new()
        .route(
            "/v1/completions",
            post(|| async {
                (SSE, "data: {\"choices\":[{\"text\":\"hi\"}]}\n\ndata: {\"error\":{\"message\":\"CUDA out of memory\",\"code\":500}}\n\n")
            }),
        )
        .route("/v1/chat/completions", post(|| async { (SSE, "data: {\"choices\": [oops\n\n") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = send(&url, Api::OpenaiCompletions, &text("x"), 4, true).await;
    assert_eq!(r.outcome.record.error, Some(ErrorKind::ServerError), "{:?}", r.error);
    assert!(r.error.unwrap().contains("CUDA out of memory"));
    let r = send(&url, Api::OpenaiChatCompletions, &text("x"), 4, true).await;
    assert_eq!(r.outcome.record.error, Some(ErrorKind::Parse), "{:?}", r.error);
}

#[tokio::test]
async fn a_target_with_a_path_gets_it_before_every_api_path_with_its_host_header() {
    use axum::{Json, Router, http::HeaderMap, routing::post};
    let answer = |headers: HeaderMap| async move {
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_owned();
        Json(serde_json::json!({"choices": [{"text": host}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}))
    };
    let app = Router::new().route("/serving/model-a/v1/completions", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    for base in [format!("http://{addr}/serving/model-a"), format!("http://{addr}/serving/model-a/")] {
        // Twice on one client: the second request goes on the connection the first left idle.
        let client = Client::new(&base, Api::OpenaiCompletions, Duration::from_secs(5)).unwrap();
        for _ in 0..2 {
            let now = Instant::now();
            let req = Request {
                model: "m",
                prompt: &text("x"),
                max_tokens: 1,
                prompt_tokens: 0,
                ignore_eos: true,
                stream: false,
                keep_text: true,
            };
            let r = client.send(&req, "t", Timing { stage_start: now, intended: now, waited_for_slot: false }).await;
            assert_eq!((r.outcome.record.error, r.text), (None, addr.to_string()), "{base}: {:?}", r.error);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenizer_counts_answers_without_usage_and_the_servers_counts_are_checked_exactly() {
    use axum::{Json, Router, routing::post};
    use inferbench::load::{recorder::TokenSource, tokenize::Tokenizer};
    // A word-level tokenizer: every word is one token.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"},
    });
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let tokenizer = std::sync::Arc::new(Tokenizer::load(path.to_str().unwrap()).unwrap());
    let app = Router::new()
        // usage: a 2-token prompt, 10 output tokens (what the text re-tokenizes to is no check).
        .route(
            "/v1/completions",
            post(|| async {
                Json(serde_json::json!({"choices": [{"text": "one two three"}], "usage": {"prompt_tokens": 2, "completion_tokens": 10}}))
            }),
        )
        // No usage: the tokenizer counts.
        .route(
            "/v1/chat/completions",
            post(|| async { Json(serde_json::json!({"choices": [{"message": {"content": "one two three four"}}]})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let now = Instant::now();
    let timing = Timing { stage_start: now, intended: now, waited_for_slot: false };
    // (API, the dataset's prompt count, max_tokens, ignore_eos) → (tokens, source, prompt and
    // length mismatches).
    for (api, prompt_tokens, max_tokens, ignore_eos, want) in [
        // The server counted 2 prompt tokens where the tokenizer counted 1; it sent 10 of at most 8.
        (Api::OpenaiCompletions, 1, 8, false, (10, TokenSource::Usage, true, true)),
        // Both as asked: 2 prompt tokens, exactly 10 output tokens.
        (Api::OpenaiCompletions, 2, 10, true, (10, TokenSource::Usage, false, false)),
        // Exactly 12 asked, 10 sent.
        (Api::OpenaiCompletions, 2, 12, true, (10, TokenSource::Usage, false, true)),
        // No usage: the tokenizer counts the answer, and nothing is checked.
        (Api::OpenaiChatCompletions, 1, 8, true, (4, TokenSource::Tokenizer, false, false)),
    ] {
        let client = Client::new(&url, api, Duration::from_secs(5)).unwrap().with_tokenizer(tokenizer.clone());
        let req = Request {
            model: "m",
            prompt: &text("x"),
            max_tokens,
            prompt_tokens,
            ignore_eos,
            stream: false,
            keep_text: true,
        };
        let r = client.send(&req, "t", timing).await;
        let rec = r.outcome.record;
        assert_eq!(rec.error, None);
        assert_eq!((rec.output_tokens, rec.token_source, rec.prompt_mismatch, rec.length_mismatch), want, "{api:?}");
        assert_eq!(rec.dataset_input_tokens, prompt_tokens);
    }
}

/// `inferbench dev canned` on a free port of 127.0.0.1.
async fn canned() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(inferbench::sim::canned::serve(listener));
    url
}

#[tokio::test]
async fn the_canned_server_answers_every_openai_shape_with_the_asked_length() {
    let url = canned().await;
    for api in [Api::OpenaiCompletions, Api::OpenaiChatCompletions] {
        for stream in [true, false] {
            let s = send(&url, api, &text("four words of prompt"), 7, stream).await;
            let r = &s.outcome.record;
            assert_eq!(s.error, None, "{api:?} stream={stream}");
            assert_eq!((r.status, r.output_tokens, r.token_source), (200, 7, TokenSource::Usage), "{api:?} {stream}");
            assert_eq!(s.text, " tok".repeat(7), "{api:?} {stream}");
            // Streamed: one chunk per token (chat's role-only first chunk carries no content).
            assert_eq!(r.chunks, if stream { 7 } else { 1 }, "{api:?} {stream}");
            assert!(!r.length_mismatch && !r.prompt_mismatch);
        }
    }
    let body = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(body.status(), 200, "the scraper finds an (empty) exposition");
    // Bad requests are refused with a JSON error (serde's quotes escaped), and a huge answer is
    // refused rather than allocated.
    let http = reqwest::Client::new();
    for body in [r#"{"max_tokens": "x"}"#, r#"{"max_tokens": 4294967295}"#] {
        let r = http.post(format!("{url}/v1/completions")).body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()), "{body}: {e}");
    }
}
