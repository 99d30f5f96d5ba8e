//! A load client for measuring the simulator (`scripts/bench-sim` runs it): N concurrent streams,
//! closed loop for a duration or once each, recording per request the time to the first token
//! chunk and the tokens received; prints one JSON line.
//!
//! `cargo bench --bench sim_load -- URL CONCURRENCY MAX_TOKENS SECONDS [once | WARMUP_SECONDS]`
//! (SECONDS is ignored with `once`: each of the CONCURRENCY streams is sent once, all at once).
//! With WARMUP_SECONDS, TTFT figures cover only requests sent after the warm-up (connections
//! established, the batch in its steady state).
//!
//! This is a measuring aid until the load engine (issue 5) exists, not the load engine.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt;

#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    tokens: u64,
    ttft_us: Vec<u64>,
    max_in_flight: u64,
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let url = format!("{}/v1/completions", a[0]);
    let concurrency: usize = a[1].parse().unwrap();
    let max_tokens: u32 = a[2].parse().unwrap();
    let seconds: f64 = a[3].parse().unwrap();
    let once = a.get(4).is_some_and(|s| s == "once");
    let warmup = Duration::from_secs_f64(a.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.0));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(concurrency).build().unwrap();
        let body = serde_json::to_vec(&serde_json::json!({
            "prompt": "The quick brown fox jumps over the lazy dog. ".repeat(3),
            "max_tokens": max_tokens, "ignore_eos": true, "stream": true,
        }))
        .unwrap();
        let body = bytes::Bytes::from(body);
        let in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let t0 = Instant::now();
        let measured_from = t0 + warmup;
        let mut tasks = vec![];
        for _ in 0..concurrency {
            let (client, url, body, in_flight) = (client.clone(), url.clone(), body.clone(), in_flight.clone());
            tasks.push(tokio::spawn(async move {
                let mut t = Tally::default();
                loop {
                    let start = Instant::now();
                    let n = in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    t.max_in_flight = t.max_in_flight.max(n);
                    let r =
                        client.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                    let mut ok = false;
                    if let Ok(r) = r
                        && r.status().is_success()
                    {
                        let mut stream = r.bytes_stream();
                        let mut first = None;
                        let mut tokens = 0u64;
                        ok = true;
                        while let Some(chunk) = stream.next().await {
                            let Ok(chunk) = chunk else {
                                ok = false;
                                break;
                            };
                            let frames = chunk.windows(6).filter(|w| w == b"data: ").count() as u64;
                            let done = chunk.windows(6).any(|w| w == b"[DONE]") as u64;
                            if first.is_none() && frames > done {
                                first = Some(start.elapsed());
                            }
                            tokens += frames - done;
                        }
                        t.tokens += tokens;
                        if let Some(f) = first
                            && start >= measured_from
                        {
                            t.ttft_us.push(f.as_micros() as u64);
                        }
                        ok &= tokens == u64::from(max_tokens);
                    }
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    t.requests += 1;
                    t.errors += u64::from(!ok);
                    if once || Instant::now() >= deadline {
                        return t;
                    }
                }
            }));
        }
        let mut all = Tally::default();
        for task in tasks {
            let t = task.await.unwrap();
            all.requests += t.requests;
            all.errors += t.errors;
            all.tokens += t.tokens;
            all.ttft_us.extend(t.ttft_us);
            all.max_in_flight = all.max_in_flight.max(t.max_in_flight);
        }
        let elapsed = t0.elapsed().as_secs_f64();
        all.ttft_us.sort_unstable();
        let pct = |p: f64| {
            all.ttft_us
                .get(((all.ttft_us.len() as f64 * p) as usize).min(all.ttft_us.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let mean = all.ttft_us.iter().sum::<u64>() as f64 / all.ttft_us.len().max(1) as f64;
        println!(
            "{}",
            serde_json::json!({
                "requests": all.requests, "errors": all.errors, "tokens": all.tokens, "seconds": elapsed,
                "req_per_s": all.requests as f64 / elapsed, "tok_per_s": all.tokens as f64 / elapsed,
                "max_in_flight": all.max_in_flight,
                "ttft_ms": {"mean": mean / 1e3, "p50": pct(0.5) as f64 / 1e3, "p99": pct(0.99) as f64 / 1e3},
            })
        );
    });
}
