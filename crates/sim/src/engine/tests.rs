//! Engine behaviour on tokio's paused clock. Timers fire on whole milliseconds, so the models here
//! give whole-millisecond steps and every latency is exact.

use super::*;

fn model() -> StepModel {
    StepModel {
        base_us: 1000.0,
        prefill_us_per_token: 10.0,
        decode_us_per_seq: 1000.0,
        attention_us_per_1k_context: 0.0,
    }
}

fn cfg() -> EngineConfig {
    EngineConfig { step: model(), ..EngineConfig::default() }
}

fn sub(prompt_len: u32, out: u32) -> Submission {
    sub_tokens((0..prompt_len).collect(), out, 16)
}

fn sub_tokens(prompt: Vec<u32>, out: u32, block_size: u32) -> Submission {
    let block_hashes = crate::kv::block_hashes(&prompt, block_size, 0);
    Submission { prompt, block_hashes, output_len: out, finish: Finish::Length, max_tokens: out }
}

/// Times (since `t0`) at which each token event arrived, and the final usage.
struct Trace {
    token_times: Vec<Duration>,
    tokens: u32,
    usage: Usage,
}

async fn collect(mut rx: mpsc::UnboundedReceiver<Event>, t0: Instant) -> Trace {
    let (mut token_times, mut tokens) = (vec![], 0);
    loop {
        let e = rx.recv().await.expect("engine finishes every request");
        token_times.push(t0.elapsed());
        tokens += e.tokens;
        if let Some(usage) = e.done {
            return Trace { token_times, tokens, usage };
        }
    }
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

#[tokio::test(start_paused = true)]
async fn a_single_requests_ttft_is_its_prefill_step_and_decode_steps_follow() {
    let (engine, h) = Engine::new(cfg(), None);
    tokio::spawn(engine.run());
    let t0 = Instant::now();
    let tr = collect(h.submit(sub(100, 3)).unwrap(), t0).await;
    // Prefill of 100 tokens: 1000 + 100×10 µs; each decode step of one sequence: 1000 + 1000 µs.
    assert_eq!(tr.token_times, [us(2000), us(4000), us(6000)]);
    assert_eq!(tr.tokens, 3);
    assert_eq!(
        tr.usage,
        Usage { prompt_tokens: 100, completion_tokens: 3, cached_tokens: 0, finish: Finish::Length, preemptions: 0 }
    );
}

#[tokio::test(start_paused = true)]
async fn ttft_is_queueing_plus_prefill() {
    let (engine, h) = Engine::new(EngineConfig { max_num_seqs: 1, ..cfg() }, None);
    tokio::spawn(engine.run());
    let t0 = Instant::now();
    let a = tokio::spawn(collect(h.submit(sub(100, 2)).unwrap(), t0));
    let b = tokio::spawn(collect(h.submit(sub(200, 2)).unwrap(), t0));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.token_times, [us(2000), us(4000)]);
    // b waits for a to finish (4 ms), then its own prefill: 1000 + 200×10 µs.
    assert_eq!(b.token_times[0], us(4000 + 3000));
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_32_decodes_slower_per_token_by_the_models_factor() {
    // Attention at 125 µs per 1k context tokens: 32 sequences at 8 000 tokens each read 256 k.
    let m = StepModel { attention_us_per_1k_context: 125.0, ..model() };
    let itl = |n: u32| async move {
        let (engine, h) = Engine::new(EngineConfig { step: m, ..cfg() }, None);
        tokio::spawn(engine.run());
        let t0 = Instant::now();
        let rxs: Vec<_> = (0..n).map(|_| h.submit(sub(7992, 10)).unwrap()).collect();
        let mut traces = vec![];
        for rx in rxs {
            traces.push(collect(rx, t0).await);
        }
        // Every sequence decodes in lock-step; the last gap has each at context 7992 + 8.
        let t = &traces[0].token_times;
        t[9] - t[8]
    };
    let (one, batch) = (itl(1).await, itl(32).await);
    assert_eq!(one, m.step_time(0, 1, 8000));
    assert_eq!(one, us(1000 + 1000 + 1000));
    assert_eq!(batch, m.step_time(0, 32, 32 * 8000));
    let factor = batch.as_secs_f64() / one.as_secs_f64();
    let expected = (1000.0 + 32.0 * 1000.0 + 32.0 * 1000.0) / (1000.0 + 1000.0 + 1000.0);
    assert!((factor - expected).abs() < 1e-9, "{factor} vs {expected}");
}

#[tokio::test(start_paused = true)]
async fn long_prompts_are_prefilled_in_chunks() {
    let (engine, h) = Engine::new(EngineConfig { max_num_batched_tokens: 4000, kv_blocks: 1024, ..cfg() }, None);
    tokio::spawn(engine.run());
    let t0 = Instant::now();
    let tr = collect(h.submit(sub(10_000, 1)).unwrap(), t0).await;
    assert_eq!(tr.token_times, [us(2 * (1000 + 40_000) + 1000 + 20_000)]);
}

#[tokio::test(start_paused = true)]
async fn a_full_kv_cache_preempts_the_newest_and_everyone_still_finishes() {
    // 10 blocks of 16 tokens; three sequences that each end up needing 5 blocks.
    let (engine, h) = Engine::new(EngineConfig { kv_blocks: 10, prefix_caching: false, ..cfg() }, None);
    tokio::spawn(async move {
        // The run loop by hand, to check the block accounting after every schedule.
        let mut e = engine;
        let mut deadline = Instant::now();
        loop {
            e.drain_inbox();
            if e.running.is_empty() && e.waiting.is_empty() {
                e.handle.notify.notified().await;
                deadline = Instant::now();
                continue;
            }
            let plan = e.schedule();
            e.kv.check(e.running.iter().map(|s| &s.hold));
            deadline += e.step_time(&plan);
            tokio::time::sleep_until(deadline).await;
            e.finish_step(&plan, Instant::now());
        }
    });
    let t0 = Instant::now();
    let rxs: Vec<_> = (0..3).map(|i| h.submit(sub_tokens(vec![i; 40], 40, 16)).unwrap()).collect();
    let mut traces = vec![];
    for rx in rxs {
        traces.push(collect(rx, t0).await);
    }
    let preemptions = h.preemptions();
    assert!(preemptions > 0, "no preemption");
    assert!(traces.iter().all(|t| t.tokens == 40 && t.usage.completion_tokens == 40));
    assert_eq!(traces.iter().map(|t| u64::from(t.usage.preemptions)).sum::<u64>(), preemptions);
    assert_eq!(traces[0].usage.preemptions, 0, "the oldest is never preempted");
}

#[tokio::test(start_paused = true)]
async fn a_shared_prefix_skips_its_prefill() {
    let (engine, h) = Engine::new(cfg(), None);
    tokio::spawn(engine.run());
    let prompt: Vec<u32> = (0..100).collect();
    let t0 = Instant::now();
    let first = collect(h.submit(sub_tokens(prompt.clone(), 1, 16)).unwrap(), t0).await;
    assert_eq!(first.usage.cached_tokens, 0);
    assert_eq!(first.token_times, [us(1000 + 1000)]);
    let t1 = Instant::now();
    let second = collect(h.submit(sub_tokens(prompt, 1, 16)).unwrap(), t1).await;
    // 6 full blocks (96 tokens) cached; 4 tokens computed: 1000 + 40 µs, seen at the next whole ms.
    assert_eq!(second.usage.cached_tokens, 96);
    assert_eq!(second.token_times, [us(2000)]);
}

#[tokio::test(start_paused = true)]
async fn a_full_waiting_queue_refuses_and_a_dropped_receiver_aborts() {
    let (engine, h) = Engine::new(EngineConfig { max_num_seqs: 1, max_waiting: Some(1), ..cfg() }, None);
    tokio::spawn(engine.run());
    let mut a = h.submit(sub(10, 1000)).unwrap();
    a.recv().await.unwrap(); // a runs
    let b = h.submit(sub(10, 1)).unwrap(); // b waits
    assert_eq!(h.submit(sub(10, 1)).unwrap_err(), Rejected::QueueFull(1));
    drop(a);
    // The engine notices at a's next token, frees it, and runs b.
    let tr = collect(b, Instant::now()).await;
    assert_eq!(tr.tokens, 1);
    assert!(h.submit(sub(10, 1)).is_ok());
}

#[tokio::test(start_paused = true)]
async fn speculative_steps_yield_several_tokens() {
    let (engine, h) = Engine::new(EngineConfig { tokens_per_step: 4, ..cfg() }, None);
    tokio::spawn(engine.run());
    let mut rx = h.submit(sub(10, 10)).unwrap();
    let mut chunks = vec![];
    while let Some(e) = rx.recv().await {
        chunks.push(e.tokens);
    }
    assert_eq!(chunks, [1, 4, 4, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_client_gone_while_queued_frees_its_place() {
    let (engine, h) = Engine::new(EngineConfig { max_num_seqs: 1, max_waiting: Some(1), ..cfg() }, None);
    tokio::spawn(engine.run());
    let mut a = h.submit(sub(10, 1000)).unwrap();
    a.recv().await.unwrap(); // a runs
    let b = h.submit(sub(10, 1)).unwrap(); // b waits
    assert!(h.submit(sub(10, 1)).is_err());
    drop(b);
    // Within a few of a's steps the queue is swept.
    for _ in 0..10 {
        a.recv().await.unwrap();
    }
    assert_eq!(h.load(), 1, "only a is left");
    assert!(h.submit(sub(10, 1)).is_ok());
}
