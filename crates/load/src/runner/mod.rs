//! Runs one load stage: open loop (arrivals on their intended times from a [`Schedule`], an
//! optional concurrency cap) or closed loop (N virtual users, each sending when its last answer
//! is in), and aggregates what comes back.
//!
//! The dispatcher never waits for answers: each request waits for its answer in a task of its
//! own (on a one-thread runtime the dispatcher sends it first: [`launch`]). A request that
//! must wait for a concurrency slot is sent late *and counted* (`delayed_by_concurrency_cap`, its
//! lag in `schedule_lag_ms`); arrivals still waiting when the stage ends are counted as dropped.
//! Requests meant to start within the warm-up are sent but left out of the results.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    task::{Context, Waker},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

use tokio::{sync::Semaphore, task::JoinSet, time::Instant};

use super::{
    arrivals::Schedule,
    backends::{Message, Prompt, Request},
    client::{Client, Sent, Timing},
    exporter::Exporter,
    host,
    pacer::Pacer,
    recorder::{Outcome, Slo, StageAggregate},
    records::Records,
    verdict::{self, Asked},
};
use inferbench_schema::{Offered, StageResult};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// Its prompt.
    pub prompt: Prompt,
    /// Output tokens to ask for.
    pub max_tokens: u32,
    /// The prompt's tokens as the dataset counted them (0: not known).
    pub input_tokens: u32,
    /// Index of the model (in the stage's list) to send it to.
    pub model: u16,
    /// A conversation's later turns, each sent once the previous answer is complete, with the
    /// real history (the model's own answers) before it. Empty for a single request.
    pub turns: Arc<[Turn]>,
}

/// A later turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The user's next message.
    pub user: String,
    /// Output tokens to ask for.
    pub max_tokens: u32,
}

/// Where requests come from (a dataset, sampled).
pub trait Prompts: Send + Sync + 'static {
    /// The `i`-th request of the run.
    fn get(&self, i: u64) -> Work;
}

/// Sends requests (the HTTP [`Client`]; tests use a fake on tokio's paused clock).
pub trait Sender: Send + Sync + 'static {
    /// Sends `work` to `model` now and measures it.
    fn send(
        &self,
        work: Work,
        model: Arc<str>,
        id: String,
        timing: Timing,
        stream: bool,
        ignore_eos: bool,
    ) -> impl Future<Output = Sent> + Send;
}

impl Sender for Client {
    async fn send(
        &self,
        work: Work,
        model: Arc<str>,
        id: String,
        timing: Timing,
        stream: bool,
        ignore_eos: bool,
    ) -> Sent {
        let req = Request {
            model: &model,
            prompt: &work.prompt,
            max_tokens: work.max_tokens,
            prompt_tokens: work.input_tokens,
            ignore_eos,
            stream,
            keep_text: !work.turns.is_empty(),
        };
        let mut sent = Client::send(self, &req, &id, timing).await;
        sent.outcome.record.model = work.model;
        sent
    }
}

/// How load is offered in a stage.
#[derive(Debug, Clone)]
pub enum Load {
    /// Arrivals on a schedule.
    Open {
        /// Intended send times (boxed: its RNG state is large).
        schedule: Box<Schedule>,
        /// Its rate, for the results (req/s; inf for all at once).
        requested_rate: f64,
        /// Its process, for the results.
        process: String,
    },
    /// Virtual users sending back to back.
    Closed {
        /// Users.
        users: u32,
        /// How long.
        duration: Option<Duration>,
        /// Most requests in all.
        max_requests: Option<u64>,
    },
}

/// How long requests in flight may take to finish once a stop is asked.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// One stage to run.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Its name in the results ("rate-4", …).
    pub name: String,
    /// How load is offered.
    pub load: Load,
    /// Stop sending after this long (open loop; the schedule may end sooner).
    pub duration: Option<Duration>,
    /// Requests meant to start before this are sent but not measured.
    pub warmup: Duration,
    /// Most requests in flight (open loop).
    pub max_concurrency: Option<u32>,
    /// Model names (requests pick by index).
    pub models: Vec<Arc<str>>,
    /// Stream answers.
    pub stream: bool,
    /// Ask for exactly `max_tokens`.
    pub ignore_eos: bool,
    /// Goodput thresholds.
    pub slo: Slo,
    /// Stops the stage early (Ctrl-C).
    pub stop: CancellationToken,
    /// Counters a progress display reads while the stage runs.
    pub live: Arc<Live>,
    /// Wait for arrival times on the kernel's high-resolution timer (µs precision) rather than
    /// tokio's millisecond timers (which tests on tokio's paused clock need).
    pub precise_pacing: bool,
    /// Poll between close arrivals instead of sleeping ([`Pacer::busy_polling`]).
    pub busy_poll: bool,
    /// The live metrics endpoint, when served.
    pub exporter: Option<Arc<Exporter>>,
    /// This process's share of the load (see [`Share`]).
    pub share: Share,
    /// Start on this instant (the one every worker was given) rather than at once.
    pub start_at: Option<Instant>,
}

/// Which part of a stage's load this process sends, when several workers share it: arrival k of
/// the global schedule when k mod `of` is `index`; closed-loop users dealt out as evenly as
/// possible. One process is `Share::default()`: index 0 of 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This worker, 0-based.
    pub index: u32,
    /// Workers in all (≥ 1).
    pub of: u32,
}

impl Default for Share {
    fn default() -> Share {
        Share { index: 0, of: 1 }
    }
}

impl Share {
    /// This worker's users of `users` (the first `users mod of` workers get one more).
    pub fn users(self, users: u32) -> u32 {
        users / self.of + u32::from(self.index < users % self.of)
    }

    /// This worker's arrivals of `total` numbered 0…total-1 (those ≡ index mod of).
    pub fn arrivals(self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.of));
        total / n + u64::from(i < total % n)
    }
}

/// What a running stage has done so far (read by a progress display; never by the results).
#[derive(Debug, Default)]
pub struct Live {
    /// Requests sent (warm-up included).
    pub sent: AtomicU64,
    /// Requests answered or failed.
    pub done: AtomicU64,
    /// Requests failed.
    pub failed: AtomicU64,
    /// Median TTFT of the measured requests so far, µs (refreshed at most 4×/s, as answers come).
    pub ttft_p50_us: AtomicU64,
}

/// A finished stage.
#[derive(Debug)]
pub struct StageOutput {
    /// Aggregates.
    pub result: StageResult,
    /// One record per measured request, in completion order.
    pub records: Records,
    /// Requests sent whose results were left out as warm-up.
    pub warmup: u64,
    /// Requests made, warm-up included: the next stage's first request index.
    pub requests_made: u64,
    /// Its aggregates (what a worker's shard keeps).
    pub aggregate: StageAggregate,
    /// Arrivals the whole schedule offered (every worker's), for a shared open loop.
    pub planned_arrivals: Option<u64>,
    /// How late the stage began after the instant it was given (µs; 0 when none was given).
    pub began_late_us: i64,
}

struct Shared {
    agg: StageAggregate,
    records: Records,
    warmup: u64,
    /// When the live TTFT median was last refreshed.
    p50_at: Option<std::time::Instant>,
}

/// Runs a stage to its end (every request answered or timed out). `first` numbers its requests.
pub async fn run_stage<S: Sender>(
    sender: Arc<S>,
    prompts: Arc<dyn Prompts>,
    spec: StageSpec,
    first: u64,
) -> StageOutput {
    let shared = Arc::new(Mutex::new(Shared {
        agg: StageAggregate::new(spec.slo),
        records: Records::new(),
        warmup: 0,
        p50_at: None,
    }));
    if let Some(at) = spec.start_at {
        tokio::time::sleep_until(at).await;
    }
    // Anchored on the instant given (every worker's intended times count from the same one); a
    // worker that wakes late sends late, and its schedule lag says so.
    let start = spec.start_at.unwrap_or_else(Instant::now);
    let began_late_us = Instant::now().saturating_duration_since(start).as_micros() as i64;
    let host_before = host::Sample::now();
    let warmup_end = start + spec.warmup;
    let mut cancelled = 0u64;
    let ctx = Arc::new(Ctx {
        sender,
        prompts,
        shared: shared.clone(),
        models: spec.models.clone().into(),
        name: spec.name.clone(),
        stream: spec.stream,
        ignore_eos: spec.ignore_eos,
        start,
        warmup_end,
        stop: spec.stop.clone(),
        live: spec.live.clone(),
        exporter: spec.exporter.clone(),
        share_of: spec.share.of,
    });
    let mut offered = Offered::default();
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_in_flight(spec.live.clone(), start, sampling.clone()));
    let users_ran = Arc::new(AtomicU64::new(0));
    let share = spec.share;
    let mut planned_arrivals = None;
    let (mut tasks, made, dropped) = match spec.load.clone() {
        Load::Open { schedule, requested_rate, process } => {
            let schedule = Box::new(schedule.shared(share.index, share.of));
            offered.requested_rate = requested_rate;
            offered.process = process;
            // The dispatcher runs as a task of the runtime, not on the thread that awaits the stage
            // (`block_on`'s, outside the workers): the request tasks it spawns then go to its
            // worker's own queue instead of waking another thread for each. In a set, so that
            // dropping the stage aborts it (and the requests it started).
            let mut dispatcher = JoinSet::new();
            let end = spec.duration.map(|d| start + d);
            let pacer = Pacer::new(*schedule, start, end, spec.precise_pacing).busy_polling(spec.busy_poll);
            dispatcher.spawn(dispatch(ctx.clone(), pacer, end, spec.max_concurrency, first));
            let d = match dispatcher.join_next().await.expect("spawned") {
                Ok(d) => d,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("the dispatcher ended early: {e}"),
            };
            // Sharing workers agree on the next stage's first request number: the arrivals the
            // whole schedule offered, whatever each sent.
            let made = match &spec.load {
                Load::Open { schedule, .. } if share.of > 1 => schedule.arrivals_before(spec.duration),
                _ => d.made,
            };
            planned_arrivals = (share.of > 1).then_some(made);
            (d.tasks, made, d.dropped)
        }
        Load::Closed { users, duration, max_requests } => {
            let users = share.users(users);
            offered.users = users;
            offered.process = "closed-loop".into();
            let max_requests = max_requests.map(|m| share.arrivals(m));
            let end = duration.or(spec.duration).map(|d| start + d);
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut user_tasks = JoinSet::new();
            for _ in 0..users.max(1) {
                let (ctx, next, stop, ran) = (ctx.clone(), next.clone(), spec.stop.clone(), users_ran.clone());
                user_tasks.spawn(async move {
                    for nth in 0u64.. {
                        let now = Instant::now();
                        if end.is_some_and(|e| now >= e) || stop.is_cancelled() {
                            return;
                        }
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if max_requests.is_some_and(|m| k >= m) {
                            return;
                        }
                        // Numbered apart from the other workers' (k-th of this worker's share).
                        ctx.request(first + k * u64::from(share.of) + u64::from(share.index), now, false).await;
                        if nth == 0 {
                            ran.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
            cancelled += drain(&mut user_tasks, &spec.stop).await;
            let made = next.load(std::sync::atomic::Ordering::Relaxed);
            (JoinSet::new(), max_requests.map_or(made, |m| made.min(m)) * u64::from(share.of), 0)
        }
    };
    cancelled += drain(&mut tasks, &spec.stop).await;
    drop(ctx); // its handle on the results
    let mut shared =
        Arc::try_unwrap(shared).ok().expect("every request task ended").into_inner().expect("not poisoned");
    // Requests cut by a stop were sent: they count as failed ("cancelled"), not as never sent.
    shared.agg.record_cancelled(cancelled, start.elapsed().as_micros() as u64);
    if let Some(e) = &spec.exporter {
        e.cancelled(cancelled);
    }
    offered.dropped = dropped;
    let host = host::Sample::now().since(&host_before);
    offered.client_cpu_seconds = host.client_cpu_seconds;
    offered.client_cores = host::cores();
    offered.host_steal_seconds = host.steal_seconds;
    offered.users_ran = users_ran.load(Relaxed).min(u64::from(u32::MAX)) as u32;
    sampling.cancel();
    let in_flight = sampler.await.unwrap_or_default();
    let mut result = shared.agg.finish(&spec.name, offered);
    if let Some(c) = result.counts.as_mut() {
        c.warmup = shared.warmup;
    }
    let asked = match &spec.load {
        Load::Open { schedule, .. } if share.of > 1 => Asked::Shared { schedule, index: share.index, of: share.of },
        Load::Open { schedule, .. } => Asked::Open(schedule),
        Load::Closed { users, .. } => Asked::Closed(*users),
    };
    result.verdict = verdict::verdict(&result, &shared.records, asked, &in_flight);
    StageOutput {
        result,
        records: shared.records,
        warmup: shared.warmup,
        requests_made: made,
        aggregate: shared.agg,
        planned_arrivals,
        began_late_us,
    }
}

/// How often the requests in flight are sampled for the verdict's Little's-law check.
const IN_FLIGHT_EVERY: Duration = Duration::from_millis(100);

/// The requests in flight (sent and not yet answered, warm-up included) every
/// [`IN_FLIGHT_EVERY`] until `done`: (µs since `start`, count).
async fn sample_in_flight(live: Arc<Live>, start: Instant, done: CancellationToken) -> Vec<(u64, u64)> {
    let mut out = vec![];
    let mut tick = tokio::time::interval(IN_FLIGHT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = done.cancelled() => return out,
        }
        let open = live.sent.load(Relaxed).saturating_sub(live.done.load(Relaxed));
        out.push((start.elapsed().as_micros() as u64, open));
    }
}

/// What an open-loop stage's dispatcher leaves: the requests it started, how many, and the
/// arrivals it dropped.
struct Dispatched {
    tasks: JoinSet<()>,
    made: u64,
    dropped: u64,
}

/// Starts each arrival `pacer` releases, until `end`, with at most `max_concurrency` requests in
/// flight; see the module doc for delayed and dropped arrivals.
async fn dispatch<S: Sender>(
    ctx: Arc<Ctx<S>>,
    mut pacer: Pacer,
    end: Option<Instant>,
    max_concurrency: Option<u32>,
    first: u64,
) -> Dispatched {
    let (start, stop) = (ctx.start, ctx.stop.clone());
    let mut tasks = JoinSet::new();
    let (mut made, mut dropped) = (0u64, 0u64);
    let cap = max_concurrency.map(|n| Arc::new(Semaphore::new(n.max(1) as usize)));
    let inline = tokio::runtime::Handle::current().metrics().num_workers() == 1;
    let overrun = end.map(|e| e.saturating_duration_since(start).mul_f64(OVERRUN_FRACTION).max(OVERRUN_MIN));
    loop {
        let intended = tokio::select! {
            i = pacer.next() => i,
            () = stop.cancelled() => None,
        };
        let Some(intended) = intended else { break };
        // A client far behind its schedule (starved of CPU) would go on sending a stage's arrivals
        // long after its end (a 2 s schedule once took 214 s): past the end by the overrun allowed,
        // this arrival and those still due are dropped, and counted.
        if let (Some(e), Some(d)) = (end, overrun)
            && Instant::now() > e + d
        {
            dropped += 1 + still_due(&mut pacer, start, end, made, ctx.share_of);
            break;
        }
        // Its number in the whole schedule (every worker's): the prompt it is sent with.
        let index = pacer.rest().last_index();
        let (permit, waited) = match &cap {
            None => (None, false),
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => (Some(p), false),
                Err(_) => {
                    // Wait for a slot, but not past the stage's end or a stop: then it is
                    // dropped.
                    let wait = sem.clone().acquire_owned();
                    let deadline = async {
                        match end {
                            Some(e) => tokio::time::sleep_until(e).await,
                            None => std::future::pending().await,
                        }
                    };
                    let p = tokio::select! {
                        p = wait => Some(p),
                        () = deadline => None,
                        () = stop.cancelled() => None,
                    };
                    match p {
                        Some(Ok(p)) => (Some(p), true),
                        _ => {
                            // The stage ended while it waited: it and every arrival still
                            // due before the end are dropped, and counted.
                            dropped += 1 + still_due(&mut pacer, start, end, made, ctx.share_of);
                            break;
                        }
                    }
                }
            },
        };
        let ctx = ctx.clone();
        let request = async move {
            ctx.request(first + index, intended, waited).await;
            drop(permit);
        };
        launch(&mut tasks, request, inline);
        made += 1;
        // A finished task stays in the set, future and all (~2 KB), until joined: reaped as
        // we go, memory follows the requests in flight rather than the requests made.
        while tasks.try_join_next().is_some() {}
    }
    Dispatched { tasks, made, dropped }
}

/// How long past a stage's end a client behind its schedule may still send the stage's arrivals:
/// this share of the stage, at least [`OVERRUN_MIN`]. Beyond, they are dropped (and counted).
const OVERRUN_FRACTION: f64 = 0.1;
/// See [`OVERRUN_FRACTION`].
const OVERRUN_MIN: Duration = Duration::from_secs(1);

/// Arrivals of the schedule after the last one released that were due before `end`: exactly up
/// to 10⁶ more; beyond, from the schedule's expected count (this worker's share of it).
fn still_due(pacer: &mut Pacer, start: Instant, end: Option<Instant>, made: u64, share_of: u32) -> u64 {
    let due = |o: &Duration| end.is_some_and(|e| start + *o < e);
    let schedule = pacer.rest();
    let counted = schedule.by_ref().take_while(due).take(1_000_000).count() as u64;
    let expected = schedule.expected_count().unwrap_or(0.0) as u64 / u64::from(share_of);
    counted + if counted == 1_000_000 { expected.saturating_sub(made + 1 + counted) } else { 0 }
}

/// Starts `request` as a task of its own; `inline` (a runtime of one thread), after sending it
/// in the dispatcher's own poll.
///
/// With one worker thread, a spawned request first waits behind every task already queued on it
/// (mostly answers read in the last I/O poll): near the client's maximum that wait was half the
/// schedule lag. Polled here, it takes its connection and writes its bytes before the
/// dispatcher takes the next arrival. Measured at 27 200 req/s (the client on one core, `dev
/// canned` on the other), runs interleaved: schedule-lag p50 0.18–0.21 ms spawned, 0.07–0.08 ms
/// inline; p99 0.63–1.51 ms spawned, 0.18–0.32 ms inline, at the same client CPU.
///
/// With more workers, an idle one takes a spawned request at once, and the sends run in
/// parallel; inline, they all ran on the dispatcher's thread. Both layouts sharing 2 cores with
/// the server, 3 runs each: lag p99 0.25–0.53 ms spawned, 0.36–1.17 ms inline at 20 000 req/s;
/// 0.44–0.87 ms against 2.4–29 ms at 36 000 req/s.
fn launch(tasks: &mut JoinSet<()>, request: impl Future<Output = ()> + Send + 'static, inline: bool) {
    if !inline {
        tasks.spawn(request);
        return;
    }
    let mut request = Box::pin(request);
    // Whatever this poll leaves it waiting for, the task polls it again at once (a spawned task
    // is scheduled) and registers its own waker; a wake meanwhile is not needed.
    if request.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending() {
        tasks.spawn(request);
    }
}

/// Waits for every task (requests end by themselves, bounded by their timeout); once a stop is
/// asked, gives them [`STOP_GRACE`] and aborts the rest. Returns how many were aborted.
async fn drain(tasks: &mut JoinSet<()>, stop: &CancellationToken) -> u64 {
    loop {
        if stop.is_cancelled() {
            let grace = tokio::time::sleep(STOP_GRACE);
            tokio::pin!(grace);
            loop {
                tokio::select! {
                    r = tasks.join_next() => if r.is_none() { return 0 },
                    () = &mut grace => {
                        let cut = tasks.len() as u64;
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                        return cut;
                    }
                }
            }
        }
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { return 0 },
            () = stop.cancelled() => {}
        }
    }
}

/// What every request of a stage shares.
struct Ctx<S> {
    sender: Arc<S>,
    prompts: Arc<dyn Prompts>,
    shared: Arc<Mutex<Shared>>,
    models: Arc<[Arc<str>]>,
    name: String,
    stream: bool,
    ignore_eos: bool,
    start: Instant,
    warmup_end: Instant,
    stop: CancellationToken,
    live: Arc<Live>,
    exporter: Option<Arc<Exporter>>,
    /// Workers sharing the stage.
    share_of: u32,
}

impl<S: Sender> Ctx<S> {
    /// Makes request `i` (meant for `intended`) and records it, or counts it as warm-up. A
    /// conversation's later turns follow, each when the previous answer is complete (intended
    /// then: the user answers at once), until a turn fails or a stop is asked.
    async fn request(&self, i: u64, intended: Instant, waited_for_slot: bool) {
        let mut work = self.prompts.get(i);
        let model = self.models[usize::from(work.model) % self.models.len()].clone();
        let turns = std::mem::take(&mut work.turns);
        let mut history = match (&work.prompt, turns.is_empty()) {
            (_, true) => vec![],
            (Prompt::Chat(m), false) => m.clone(),
            (Prompt::Text(t), false) => vec![Message { role: "user".into(), content: t.to_string() }],
        };
        let in_warmup = intended < self.warmup_end;
        let mut timing = Timing { stage_start: self.start, intended, waited_for_slot };
        let mut id = format!("ib-{}-{i}", self.name);
        for k in 0..=turns.len() {
            let m = work.model;
            self.live.sent.fetch_add(1, Relaxed);
            if let Some(e) = &self.exporter {
                e.request_sent();
            }
            let mut sent = self.sender.send(work, model.clone(), id, timing, self.stream, self.ignore_eos).await;
            sent.outcome.record.later_turn = k > 0;
            let ok = sent.outcome.record.error.is_none();
            self.live.done.fetch_add(1, Relaxed);
            if !ok {
                self.live.failed.fetch_add(1, Relaxed);
            }
            if let Some(e) = &self.exporter {
                e.request_ended(&sent.outcome, in_warmup);
            }
            record(&self.shared, sent.outcome, sent.error.as_deref(), in_warmup, &self.live);
            let Some(next) = turns.get(k) else { break };
            if !ok || self.stop.is_cancelled() {
                break;
            }
            history.push(Message { role: "assistant".into(), content: sent.text });
            history.push(Message { role: "user".into(), content: next.user.clone() });
            timing = Timing { stage_start: self.start, intended: Instant::now(), waited_for_slot: false };
            work = Work {
                prompt: Prompt::Chat(history.clone()),
                max_tokens: next.max_tokens,
                // A later turn's prompt is the history, counted by nobody before it is sent.
                input_tokens: 0,
                model: m,
                turns: Arc::default(),
            };
            id = format!("ib-{}-{i}-t{}", self.name, k + 1);
        }
    }
}

fn record(shared: &Mutex<Shared>, outcome: Outcome, error: Option<&str>, in_warmup: bool, live: &Live) {
    let mut s = shared.lock().expect("results lock");
    if in_warmup {
        s.warmup += 1;
    } else {
        if let (Some(kind), Some(words)) = (outcome.record.error, error) {
            s.agg.note_error(kind, words);
        }
        s.agg.record(&outcome);
        s.records.push(outcome.record);
        // A quantile walks the whole histogram (tens of µs): refreshed four times a second, not
        // on every answer (it is for the progress display only).
        let now = std::time::Instant::now();
        if s.p50_at.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(250)) {
            s.p50_at = Some(now);
            live.ttft_p50_us.store(s.agg.ttft_p50_us(), Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
