//! The runner on tokio's paused clock with a fake server: exact timing, caps never exceeded.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::{
    arrivals::{Process, Segment},
    recorder::{RequestRecord, TokenSource},
};

/// Answers every request after `service`, 4 tokens, and tracks concurrency and send times.
struct Fake {
    service: Duration,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    sends: Mutex<Vec<Duration>>,
    /// The task each request was sent from, and the one it waited for its answer in.
    tasks: Mutex<Vec<(Option<tokio::task::Id>, Option<tokio::task::Id>)>>,
}

impl Fake {
    fn new(service_ms: u64) -> Arc<Fake> {
        Arc::new(Fake {
            service: Duration::from_millis(service_ms),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
            sends: Mutex::new(vec![]),
            tasks: Mutex::new(vec![]),
        })
    }
}

impl Sender for Fake {
    async fn send(&self, _w: Work, _m: Arc<str>, _id: String, timing: Timing, _s: bool, _i: bool) -> Sent {
        let sent = Instant::now();
        self.sends.lock().unwrap().push(sent - timing.stage_start);
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        let sent_in = tokio::task::try_id();
        tokio::time::sleep(self.service).await;
        self.tasks.lock().unwrap().push((sent_in, tokio::task::try_id()));
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let us = |d: Duration| d.as_micros() as u32;
        let record = RequestRecord {
            intended_us: (timing.intended - timing.stage_start).as_micros() as u64,
            sent_us: (sent - timing.stage_start).as_micros() as u64,
            first_byte_us: 0,
            first_token_us: us(self.service / 2),
            last_token_us: us(self.service),
            end_us: us(self.service),
            dataset_input_tokens: 0,
            input_tokens: 10,
            output_tokens: 4,
            cached_tokens: 0,
            chunks: 1,
            model: 0,
            status: 200,
            error: None,
            token_source: TokenSource::Usage,
            prompt_mismatch: false,
            length_mismatch: false,
            streamed: true,
            waited_for_slot: timing.waited_for_slot,
            later_turn: false,
        };
        Sent { outcome: Outcome { record, chunks: vec![(us(self.service / 2), 4)] }, text: String::new(), error: None }
    }
}

struct Same;
impl Prompts for Same {
    fn get(&self, _i: u64) -> Work {
        Work { prompt: Prompt::Text("x".into()), max_tokens: 4, input_tokens: 1, model: 0, turns: Arc::default() }
    }
}

fn open(segments: Vec<Segment>, cap: Option<u32>, warmup_ms: u64) -> StageSpec {
    let schedule = Schedule::new(Process::Constant, segments, None, 0).unwrap();
    StageSpec {
        name: "t".into(),
        load: Load::Open { schedule: Box::new(schedule), requested_rate: 100.0, process: "constant".into() },
        duration: None,
        warmup: Duration::from_millis(warmup_ms),
        max_concurrency: cap,
        models: vec!["m".into()],
        stream: true,
        ignore_eos: true,
        slo: Slo::default(),
        stop: CancellationToken::new(),
        live: Arc::default(),
        precise_pacing: false,
        busy_poll: false,
        exporter: None,
        share: Default::default(),
        start_at: None,
    }
}

fn secs(s: f64) -> Option<Duration> {
    Some(Duration::from_secs_f64(s))
}

#[tokio::test(start_paused = true)]
async fn open_loop_sends_on_the_intended_times_and_measures_no_lag() {
    let fake = Fake::new(50);
    let out = run_stage(fake.clone(), Arc::new(Same), open(vec![Segment::steady(100.0, secs(1.0))], None, 0), 0).await;
    let c = out.result.counts.unwrap();
    assert_eq!((c.sent, c.succeeded, out.requests_made), (100, 100, 100));
    let sends = fake.sends.lock().unwrap().clone();
    assert!(sends.iter().enumerate().all(|(i, t)| *t == Duration::from_millis(10 * i as u64)), "{sends:?}");
    assert_eq!(out.result.schedule_lag_ms.unwrap().max, 0.001, "no lag (1 µs is the histogram's floor)");
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 5, "50 ms answers at 100/s");
    let o = out.result.offered.unwrap();
    assert_eq!((o.late, o.delayed_by_concurrency_cap, o.dropped), (0, 0, 0));
}

/// With one worker thread, the dispatcher sends each request itself, so that it does not wait
/// behind the tasks queued on that thread.
#[tokio::test(start_paused = true)]
async fn a_request_is_sent_from_the_dispatchers_poll_and_answered_in_a_task_of_its_own() {
    let fake = Fake::new(50);
    run_stage(fake.clone(), Arc::new(Same), open(vec![Segment::steady(100.0, secs(0.1))], None, 0), 0).await;
    let tasks = fake.tasks.lock().unwrap().clone();
    assert_eq!(tasks.len(), 10);
    let dispatcher = tasks[0].0;
    assert!(dispatcher.is_some(), "sent from a task of the runtime");
    assert!(tasks.iter().all(|(sent_in, _)| *sent_in == dispatcher), "not queued behind other tasks: {tasks:?}");
    let answered_in: std::collections::HashSet<_> = tasks.iter().map(|(_, a)| *a).collect();
    assert_eq!(answered_in.len(), 10, "each answer awaited in a task of its own: {tasks:?}");
    assert!(!answered_in.contains(&dispatcher), "the dispatcher never waits for an answer");
}

/// With more worker threads, an idle one takes each request at once: each is sent and answered
/// in a task of its own (on the real clock: a paused one needs a one-thread runtime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_more_workers_each_request_is_sent_from_a_task_of_its_own() {
    let fake = Fake::new(20);
    run_stage(fake.clone(), Arc::new(Same), open(vec![Segment::steady(200.0, secs(0.05))], None, 0), 0).await;
    let tasks = fake.tasks.lock().unwrap().clone();
    assert_eq!(tasks.len(), 10);
    assert!(tasks.iter().all(|(sent_in, answered_in)| sent_in.is_some() && sent_in == answered_in), "{tasks:?}");
    let sent_in: std::collections::HashSet<_> = tasks.iter().map(|(s, _)| *s).collect();
    assert_eq!(sent_in.len(), 10, "{tasks:?}");
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_cap_is_never_exceeded_and_its_delays_are_counted() {
    let fake = Fake::new(50);
    let mut spec = open(vec![Segment::steady(100.0, secs(1.0))], Some(2), 0);
    spec.duration = secs(1.0);
    let out = run_stage(fake.clone(), Arc::new(Same), spec, 0).await;
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
    let o = out.result.offered.unwrap();
    // Two slots of 50 ms serve 40/s of the 100/s asked: the rest wait, and the queue is cut at 1 s.
    assert!(o.delayed_by_concurrency_cap > 30, "{o:?}");
    let sent = out.result.counts.unwrap().sent;
    assert!((39..=41).contains(&sent), "{sent}");
    assert_eq!(sent + o.dropped, 100, "every arrival due in the stage is sent or counted as dropped");
    assert!(out.result.schedule_lag_ms.unwrap().max > 500.0, "the queue's lag is measured");
}

#[tokio::test(start_paused = true)]
async fn stages_switch_on_time_and_warm_up_is_left_out() {
    let fake = Fake::new(20);
    let segs = vec![Segment::steady(10.0, secs(1.0)), Segment::steady(50.0, secs(1.0))];
    let out = run_stage(fake.clone(), Arc::new(Same), open(segs, None, 500), 0).await;
    let sends = fake.sends.lock().unwrap().clone();
    let first = sends.iter().filter(|t| **t < Duration::from_secs(1)).count();
    assert_eq!((first, sends.len() - first), (10, 50));
    assert_eq!(sends[10], Duration::from_secs(1));
    assert_eq!(out.warmup, 5, "0, 100, …, 400 ms are warm-up");
    assert_eq!(out.result.counts.unwrap().sent, 55);
}

#[tokio::test(start_paused = true)]
async fn closed_loop_users_send_back_to_back() {
    let fake = Fake::new(100);
    let spec =
        StageSpec { load: Load::Closed { users: 3, duration: secs(1.0), max_requests: None }, ..open(vec![], None, 0) };
    let out = run_stage(fake.clone(), Arc::new(Same), spec, 0).await;
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(out.result.counts.unwrap().sent, 30, "3 users × 10 answers of 100 ms");
    assert_eq!(out.result.offered.unwrap().users, 3);
    let spec =
        StageSpec { load: Load::Closed { users: 4, duration: None, max_requests: Some(10) }, ..open(vec![], None, 0) };
    let out = run_stage(Fake::new(10), Arc::new(Same), spec, 0).await;
    assert_eq!((out.result.counts.unwrap().sent, out.requests_made), (10, 10));
}

#[tokio::test(start_paused = true)]
async fn a_stop_ends_the_stage_and_keeps_what_was_measured() {
    let fake = Fake::new(10_000); // answers take 10 s
    let spec = open(vec![Segment::steady(10.0, secs(60.0))], None, 0);
    let stop = spec.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1050)).await;
        stop.cancel();
    });
    let fast = Fake::new(100);
    let quick = open(vec![Segment::steady(10.0, secs(60.0))], None, 0);
    let quick_stop = quick.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1050)).await;
        quick_stop.cancel();
    });
    let (slow, quick) = tokio::join!(
        run_stage(fake.clone(), Arc::new(Same), spec, 0),
        run_stage(fast.clone(), Arc::new(Same), quick, 0)
    );
    // 11 arrivals in the first 1.05 s. The quick answers all finish within the grace; the slow
    // ones are cut after it: sent, failed as cancelled.
    assert_eq!((quick.requests_made, quick.result.counts.unwrap().succeeded), (11, 11));
    assert_eq!(slow.requests_made, 11);
    let c = slow.result.counts.unwrap();
    assert_eq!((c.sent, c.failed, c.errors.get("cancelled").copied()), (11, 11, Some(11)));
    assert_eq!(slow.result.offered.unwrap().dropped, 0);
}

/// Answers "answer to <last user message>" after 30 ms, and keeps every prompt it was sent.
struct Echo {
    prompts: Mutex<Vec<(Duration, Prompt, u32)>>,
    start: Instant,
}

impl Sender for Echo {
    async fn send(&self, w: Work, _m: Arc<str>, _id: String, timing: Timing, _s: bool, _i: bool) -> Sent {
        self.prompts.lock().unwrap().push((Instant::now() - self.start, w.prompt.clone(), w.max_tokens));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let last = match &w.prompt {
            Prompt::Chat(m) => m.last().unwrap().content.clone(),
            Prompt::Text(t) => t.to_string(),
        };
        let record = RequestRecord {
            intended_us: (timing.intended - timing.stage_start).as_micros() as u64,
            sent_us: 0,
            first_byte_us: 0,
            first_token_us: 10_000,
            last_token_us: 30_000,
            end_us: 30_000,
            dataset_input_tokens: 0,
            input_tokens: 4,
            output_tokens: 4,
            cached_tokens: 0,
            chunks: 1,
            model: 0,
            status: 200,
            error: None,
            token_source: TokenSource::Usage,
            prompt_mismatch: false,
            length_mismatch: false,
            streamed: true,
            waited_for_slot: false,
            later_turn: false,
        };
        Sent { outcome: Outcome { record, chunks: vec![(10_000, 4)] }, text: format!("answer to {last}"), error: None }
    }
}

struct Conversation;
impl Prompts for Conversation {
    fn get(&self, _i: u64) -> Work {
        let turns = vec![Turn { user: "q1".into(), max_tokens: 7 }, Turn { user: "q2".into(), max_tokens: 9 }];
        Work { prompt: Prompt::Text("q0".into()), max_tokens: 5, input_tokens: 1, model: 0, turns: turns.into() }
    }
}

#[tokio::test(start_paused = true)]
async fn a_conversation_sends_each_turn_after_the_previous_answer_with_the_real_history() {
    let echo = Arc::new(Echo { prompts: Mutex::default(), start: Instant::now() });
    let mut spec = open(vec![Segment::steady(1.0, secs(1.0))], None, 0);
    spec.load = Load::Closed { users: 1, duration: None, max_requests: Some(1) };
    let out = run_stage(echo.clone(), Arc::new(Conversation), spec, 0).await;
    assert_eq!(out.result.counts.unwrap().sent, 3, "one conversation, three requests");
    let sent = echo.prompts.lock().unwrap().clone();
    let times: Vec<u64> = sent.iter().map(|(t, _, _)| t.as_millis() as u64).collect();
    assert_eq!(times, [0, 30, 60], "each turn when the previous answer is complete");
    let msgs = |p: &Prompt| match p {
        Prompt::Chat(m) => m.iter().map(|m| format!("{}: {}", m.role, m.content)).collect::<Vec<_>>(),
        Prompt::Text(t) => vec![t.to_string()],
    };
    assert_eq!(
        msgs(&sent[2].1),
        ["user: q0", "assistant: answer to q0", "user: q1", "assistant: answer to q1", "user: q2"]
    );
    assert_eq!(sent.iter().map(|s| s.2).collect::<Vec<_>>(), [5, 7, 9], "each turn's own answer length");
}

/// Hands out prompt numbers and remembers which were asked for.
#[derive(Default)]
struct Numbered(Mutex<Vec<u64>>);
impl Prompts for Numbered {
    fn get(&self, i: u64) -> Work {
        self.0.lock().unwrap().push(i);
        Same.get(i)
    }
}

/// (intended µs, prompt number) of every request a stage of `share` sends, sorted.
async fn sent_by(share: Share, load: Load, duration: Option<Duration>, first: u64) -> (Vec<(u64, u64)>, u64, u32) {
    let prompts = Arc::new(Numbered::default());
    let mut spec = open(vec![], None, 0);
    (spec.load, spec.duration, spec.share) = (load, duration, share);
    let out = run_stage(Fake::new(30), prompts.clone(), spec, first).await;
    let mut intended: Vec<u64> = out.records.iter().map(|r| r.intended_us).collect();
    intended.sort_unstable();
    let mut numbers = prompts.0.lock().unwrap().clone();
    numbers.sort_unstable();
    assert_eq!(intended.len(), numbers.len());
    let users = out.result.offered.unwrap().users;
    (intended.into_iter().zip(numbers).collect(), out.requests_made, users)
}

#[tokio::test(start_paused = true)]
async fn workers_sharing_a_schedule_send_together_exactly_what_one_process_sends() {
    let poisson = || {
        let s = Schedule::new(Process::Poisson, vec![Segment::steady(300.0, secs(1.0))], None, 7).unwrap();
        Load::Open { schedule: Box::new(s), requested_rate: 300.0, process: "poisson".into() }
    };
    let (one, made, _) = sent_by(Share::default(), poisson(), secs(1.0), 1000).await;
    assert!(one.len() > 250, "{}", one.len());
    assert_eq!(made, one.len() as u64);
    let mut union = vec![];
    for index in 0..3 {
        let (part, part_made, _) = sent_by(Share { index, of: 3 }, poisson(), secs(1.0), 1000).await;
        assert_eq!(part_made, made, "every worker agrees on the stage's arrivals (the next stage's numbers)");
        assert!(part.iter().all(|(_, n)| (n - 1000) % 3 == u64::from(index)), "arrival k goes to worker k mod 3");
        assert_eq!(part.len() as u64, Share { index, of: 3 }.arrivals(made));
        union.extend(part);
    }
    union.sort_unstable();
    assert_eq!(union, one, "the same prompts at the same intended times");
}

#[tokio::test(start_paused = true)]
async fn closed_loop_users_and_requests_are_dealt_out_without_overlap() {
    let closed = || Load::Closed { users: 10, duration: None, max_requests: Some(100) };
    let mut numbers = vec![];
    let mut users = 0;
    for index in 0..4 {
        let (part, _, u) = sent_by(Share { index, of: 4 }, closed(), None, 0).await;
        assert_eq!(u, if index < 2 { 3 } else { 2 }, "10 users over 4 workers: 3, 3, 2, 2");
        users += u;
        numbers.extend(part.into_iter().map(|(_, n)| n));
    }
    assert_eq!(users, 10);
    numbers.sort_unstable();
    assert_eq!(numbers, (0..100).collect::<Vec<_>>(), "100 requests in all, each number once");
}

#[tokio::test(start_paused = true)]
async fn a_stage_given_a_start_instant_counts_its_schedule_from_it() {
    let fake = Fake::new(10);
    let mut spec = open(vec![Segment::steady(100.0, secs(0.1))], None, 0);
    let at = Instant::now() + Duration::from_millis(250);
    spec.start_at = Some(at);
    let out = run_stage(fake.clone(), Arc::new(Same), spec, 0).await;
    assert_eq!(out.records.len(), 10);
    assert!(out.records.iter().all(|r| r.sent_us == r.intended_us), "sent on time from the instant given");
    assert!(Instant::now() >= at + Duration::from_millis(90));
}

/// A client that needs `cost` of (paused) clock to send each request: starved of CPU.
struct Starved {
    cost: Duration,
    inner: Arc<Fake>,
}

impl Sender for Starved {
    async fn send(&self, w: Work, m: Arc<str>, id: String, timing: Timing, s: bool, i: bool) -> Sent {
        tokio::time::advance(self.cost).await;
        self.inner.send(w, m, id, timing, s, i).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_starved_client_stops_sending_soon_after_the_stage_end_and_counts_the_rest_as_dropped() {
    let starved = Arc::new(Starved { cost: Duration::from_millis(10), inner: Fake::new(5) });
    // 1 000 arrivals in 1 s, each costing the client 10 ms to send: 10 s to send them all.
    let mut spec = open(vec![Segment::steady(1000.0, secs(1.0))], None, 0);
    spec.duration = secs(1.0);
    let started = Instant::now();
    let out = run_stage(starved, Arc::new(Same), spec, 0).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2_200), "stopped 1 s past the end, not after 10 s: {took:?}");
    let sent = out.result.counts.unwrap().sent;
    let dropped = out.result.offered.unwrap().dropped;
    assert!((150..=250).contains(&sent), "about 2 s of sending at 100/s: {sent}");
    assert_eq!(sent + dropped, 1000, "every arrival sent or counted as dropped");
    assert!(!out.result.verdict.unwrap().delivered, "the verdict says so");
}
