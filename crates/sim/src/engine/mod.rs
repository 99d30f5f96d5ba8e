//! One simulated replica: a continuous-batching scheduler loop in the manner of vLLM V1.
//!
//! Each step the scheduler (1) gives every running sequence its tokens for the step — one decode
//! token, or the next prefill chunk — within `max_num_batched_tokens`, preempting the most recently
//! admitted sequences (by recompute) when the KV cache cannot grow; (2) if nothing was preempted,
//! admits waiting requests in arrival order while `max_num_seqs`, the token budget and the KV cache
//! allow, skipping the prefill of prompt blocks found in the prefix cache (chunked prefill: a long
//! prompt is spread over several steps). The step then lasts the [`StepModel`] time of what it
//! computed, and at its end every sequence whose prompt is fully computed gets a token.
//!
//! Time is tokio time, scheduled on absolute deadlines (step *n* ends at step *n−1*'s end plus its
//! duration): timer granularity (1 ms) never accumulates into drift, and on a paused clock every
//! latency is exact.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};

use super::{
    kv::{Holding, KvCache},
    metrics::EngineMetrics,
    profile::StepModel,
};

/// Scheduler settings of one replica.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Most sequences in a batch (vLLM `--max-num-seqs`).
    pub max_num_seqs: u32,
    /// Most tokens computed in a step (vLLM `--max-num-batched-tokens`).
    pub max_num_batched_tokens: u32,
    /// KV-cache blocks.
    pub kv_blocks: u32,
    /// Tokens per KV block.
    pub block_size: u32,
    /// Reuse the KV of shared prompt prefixes.
    pub prefix_caching: bool,
    /// Tokens each decode step yields per sequence (> 1 as with speculative decoding).
    pub tokens_per_step: u32,
    /// Waiting requests beyond which new ones are refused (429); `None`: unbounded, as vLLM.
    pub max_waiting: Option<usize>,
    /// Step cost.
    pub step: StepModel,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_num_seqs: 256,
            max_num_batched_tokens: 8192,
            kv_blocks: 16_384,
            block_size: 16,
            prefix_caching: true,
            tokens_per_step: 1,
            max_waiting: None,
            step: StepModel::ZERO,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model emitted EOS.
    Stop,
    /// `max_tokens` reached.
    Length,
}

impl Finish {
    /// The OpenAI `finish_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// A request handed to an engine.
#[derive(Debug)]
pub struct Submission {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Hash chain of the prompt's full blocks (prefix caching).
    pub block_hashes: Vec<u64>,
    /// Tokens to generate.
    pub output_len: u32,
    /// How generation ends after `output_len` tokens.
    pub finish: Finish,
    /// The request's `max_tokens` (metrics).
    pub max_tokens: u32,
}

/// What an engine tells a request at the end of a step that gave it tokens: one event per step, so
/// the last tokens and the end arrive together (a stream can put `finish_reason` on the chunk that
/// carries the last tokens, as vLLM does).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// New tokens this step.
    pub tokens: u32,
    /// When the step ended on the simulated timeline (what the latency model says the client
    /// should see; the stream measures how late it actually delivers).
    pub at: Instant,
    /// Set on the last event: generation ended.
    pub done: Option<Usage>,
}

/// Token counts of a finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Prompt tokens whose prefill was skipped thanks to the prefix cache.
    pub cached_tokens: u32,
    /// Why it ended.
    pub finish: Finish,
    /// Times the request was preempted.
    pub preemptions: u32,
}

/// A refused submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The waiting queue is full.
    #[error("the waiting queue is full ({0} requests)")]
    QueueFull(usize),
}

struct Queued {
    sub: Submission,
    tx: mpsc::UnboundedSender<Event>,
    arrived: Instant,
}

/// The side of an engine that request handlers hold.
pub struct EngineHandle {
    inbox: Mutex<Vec<Queued>>,
    notify: Notify,
    /// Requests submitted and not yet running (inbox + waiting queue).
    waiting: AtomicUsize,
    /// Requests running.
    running: AtomicUsize,
    preemptions: AtomicU64,
    max_waiting: Option<usize>,
    /// What the engine's accelerators did, for the simulated DCGM metrics.
    pub work: Work,
}

/// An engine's accumulated work, nanoseconds of simulated step time: what a DCGM exporter reads
/// off its GPUs (utilisation = busy over wall time), derived from the steps the engine ran.
#[derive(Debug, Default)]
pub struct Work {
    /// Time inside steps: a kernel running (DCGM_FI_DEV_GPU_UTIL).
    pub busy_ns: AtomicU64,
    /// Step time weighted by how full the step keeps the SMs: its tokens over
    /// [`SM_SATURATING_TOKENS`] (a decode step of a few sequences leaves most SMs idle).
    pub sm_ns: AtomicU64,
    /// Step time weighted by how busy memory is: decode reads the weights and the KV cache
    /// (memory-bound, near 0.9), prefill computes (near 0.4).
    pub dram_ns: AtomicU64,
}

/// Tokens in a step that keep every SM busy.
pub const SM_SATURATING_TOKENS: f64 = 256.0;

impl EngineHandle {
    /// Queues a request; events arrive on the returned receiver. Dropping the receiver aborts it.
    pub fn submit(&self, sub: Submission) -> Result<mpsc::UnboundedReceiver<Event>, Rejected> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut inbox = self.inbox.lock().expect("inbox lock");
            if let Some(max) = self.max_waiting
                && self.waiting.load(Ordering::Relaxed) >= max
            {
                return Err(Rejected::QueueFull(max));
            }
            self.waiting.fetch_add(1, Ordering::Relaxed);
            inbox.push(Queued { sub, tx, arrived: Instant::now() });
        }
        self.notify.notify_one();
        Ok(rx)
    }

    /// Preemptions since start.
    pub fn preemptions(&self) -> u64 {
        self.preemptions.load(Ordering::Relaxed)
    }

    /// Requests not finished (waiting + running): the load the dispatcher balances.
    pub fn load(&self) -> usize {
        self.waiting.load(Ordering::Relaxed) + self.running.load(Ordering::Relaxed)
    }
}

struct Seq {
    q: Queued,
    /// Tokens whose KV is computed.
    computed: u64,
    generated: u32,
    hold: Holding,
    cached: u32,
    /// Every full prompt block is in the prefix cache.
    published: bool,
    /// `vllm:prompt_tokens_total` counted (once, whatever the preemptions).
    prompt_counted: bool,
    preemptions: u32,
    scheduled_at: Option<Instant>,
    first_token_at: Option<Instant>,
    last_token_at: Option<Instant>,
    /// Tokens of the last step, sent with the end when it finishes the sequence.
    last_new: u32,
    aborted: bool,
}

impl Seq {
    fn prompt_len(&self) -> u64 {
        self.q.sub.prompt.len() as u64
    }
    /// Tokens known: prompt + generated.
    fn total(&self) -> u64 {
        self.prompt_len() + u64::from(self.generated)
    }
    fn is_decoding(&self) -> bool {
        self.generated > 0 && self.total() - self.computed == 1
    }
}

/// What one step computes: (index in `running`, tokens).
type Plan = Vec<(usize, u32)>;

/// The scheduler loop of one replica.
pub struct Engine {
    cfg: EngineConfig,
    handle: Arc<EngineHandle>,
    kv: KvCache,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    metrics: Option<EngineMetrics>,
    last_sweep: Instant,
}

/// How often the waiting queue is scanned for requests whose client has gone.
const SWEEP_EVERY: Duration = Duration::from_millis(10);

/// Lateness of a timer wake-up absorbed by scheduling from the previous deadline; beyond it (a
/// stalled host) the next step starts from now rather than bursting to catch up.
const CATCH_UP: Duration = Duration::from_millis(2);

impl Engine {
    /// A new engine and the handle to submit to it.
    pub fn new(cfg: EngineConfig, metrics: Option<EngineMetrics>) -> (Engine, Arc<EngineHandle>) {
        let handle = Arc::new(EngineHandle {
            inbox: Mutex::new(Vec::new()),
            notify: Notify::new(),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            preemptions: AtomicU64::new(0),
            max_waiting: cfg.max_waiting,
            work: Work::default(),
        });
        let kv = KvCache::new(cfg.kv_blocks, cfg.block_size, cfg.prefix_caching);
        let e = Engine {
            cfg,
            handle: handle.clone(),
            kv,
            waiting: VecDeque::new(),
            running: Vec::new(),
            metrics,
            last_sweep: Instant::now(),
        };
        (e, handle)
    }

    /// Runs until the task is aborted (the simulator aborts its engines when dropped).
    ///
    /// tokio's timers fire on whole milliseconds (also on a paused clock): a step ending at 3.1 ms
    /// is seen at 4 ms, but the next step is scheduled from 3.1 ms, so the rate of steps is exact
    /// and sub-millisecond steps run back to back.
    pub async fn run(mut self) {
        let mut deadline = Instant::now();
        loop {
            self.drain_inbox();
            if self.running.is_empty() && self.waiting.is_empty() {
                self.publish_gauges();
                // notify_one() stores a permit, so a submission racing this check is not lost.
                self.handle.notify.notified().await;
                deadline = Instant::now();
                continue;
            }
            let plan = self.schedule();
            self.publish_gauges();
            if plan.is_empty() {
                // Nothing can run: cannot happen with a KV cache that holds one max-length sequence
                // (SimConfig::check), but never spin or stall for good if it does.
                debug_assert!(false, "a step with work scheduled nothing");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let dt = self.step_time(&plan);
            self.count_work(&plan, dt);
            let now = Instant::now();
            let start = if now.saturating_duration_since(deadline) <= CATCH_UP { deadline } else { now };
            deadline = start + dt;
            if dt.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep_until(deadline).await;
            }
            // Metrics are taken on the simulated timeline (the step's intended end), so they are
            // what the latency model says; what clients see adds HTTP and timer lateness.
            self.finish_step(&plan, deadline);
        }
    }

    fn drain_inbox(&mut self) {
        let new = std::mem::take(&mut *self.handle.inbox.lock().expect("inbox lock"));
        for q in new {
            self.waiting.push_back(Seq {
                q,
                computed: 0,
                generated: 0,
                hold: Holding::default(),
                cached: 0,
                published: false,
                prompt_counted: false,
                preemptions: 0,
                scheduled_at: None,
                first_token_at: None,
                last_token_at: None,
                last_new: 0,
                aborted: false,
            });
        }
    }

    /// Adds a step of `dt` to the engine's [`Work`].
    fn count_work(&self, plan: &Plan, dt: Duration) {
        let ns = dt.as_nanos() as f64;
        let (mut tokens, mut decode) = (0u64, 0u64);
        for &(i, n) in plan {
            tokens += u64::from(n);
            decode += u64::from(self.running[i].is_decoding());
        }
        let decode_share = if plan.is_empty() { 0.0 } else { decode as f64 / plan.len() as f64 };
        let sm = (tokens as f64 / SM_SATURATING_TOKENS).min(1.0);
        let dram = 0.4 + 0.5 * decode_share;
        let w = &self.handle.work;
        w.busy_ns.fetch_add(ns as u64, Ordering::Relaxed);
        w.sm_ns.fetch_add((ns * sm) as u64, Ordering::Relaxed);
        w.dram_ns.fetch_add((ns * dram) as u64, Ordering::Relaxed);
    }

    fn step_time(&self, plan: &Plan) -> Duration {
        let (mut prefill, mut decode, mut context) = (0u64, 0u64, 0u64);
        for &(i, n) in plan {
            let s = &self.running[i];
            if s.is_decoding() {
                decode += 1;
                context += s.computed;
            } else {
                prefill += u64::from(n);
            }
        }
        self.cfg.step.step_time(prefill, decode, context)
    }

    /// Decides what the next step computes.
    fn schedule(&mut self) -> Plan {
        self.drop_departed();
        let mut budget = self.cfg.max_num_batched_tokens.max(1);
        let mut plan = Plan::new();
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let s = &self.running[i];
            let remaining_out = s.q.sub.output_len - s.generated;
            let n = if s.is_decoding() {
                self.cfg.tokens_per_step.max(1).min(remaining_out).min(budget)
            } else {
                (s.total() - s.computed).min(u64::from(budget)) as u32
            };
            let blocks = self.kv.blocks_for(s.computed + u64::from(n));
            // Make room by preempting from the back (the most recently admitted).
            let mut self_preempted = false;
            while !self.kv.grow(&mut self.running[i].hold, blocks) {
                let victim = self.running.len() - 1;
                self.preempt(victim);
                preempted = true;
                if victim == i {
                    self_preempted = true;
                    break;
                }
            }
            if self_preempted {
                break;
            }
            budget -= n;
            plan.push((i, n));
            i += 1;
        }
        while !preempted && self.running.len() < self.cfg.max_num_seqs as usize && budget > 0 {
            let Some(s) = self.waiting.front() else { break };
            // Prefix cache: never the whole prompt (the last token is always computed, as vLLM).
            let mut hits = self.kv.lookup(&s.q.sub.block_hashes);
            let bs = u64::from(self.kv.block_size());
            while hits > 0 && hits as u64 * bs >= s.prompt_len() {
                hits -= 1;
            }
            let cached = hits as u64 * bs;
            let n = (s.total() - cached).min(u64::from(budget)) as u32;
            let blocks = self.kv.blocks_for(cached + u64::from(n));
            if self.kv.admission_cost(&s.q.sub.block_hashes, hits, blocks) > self.kv.available() {
                break;
            }
            let mut s = self.waiting.pop_front().expect("front exists");
            self.kv.acquire(&mut s.hold, &s.q.sub.block_hashes, hits);
            let grown = self.kv.grow(&mut s.hold, blocks);
            debug_assert!(grown, "admission_cost() counted the space");
            if !grown {
                self.kv.release(&mut s.hold);
                self.waiting.push_front(s);
                break;
            }
            if s.scheduled_at.is_none() {
                // First admission: count prefix-cache queries and hits once per request.
                s.cached = cached as u32;
                if let Some(m) = &self.metrics {
                    m.prefix_queries.inc_by(s.prompt_len());
                    m.prefix_hits.inc_by(cached);
                    m.queue.observe(s.q.arrived.elapsed().as_secs_f64());
                }
                s.scheduled_at = Some(Instant::now());
            }
            s.computed = cached;
            self.handle.waiting.fetch_sub(1, Ordering::Relaxed);
            budget -= n;
            plan.push((self.running.len(), n));
            self.running.push(s);
        }
        self.handle.running.store(self.running.len(), Ordering::Relaxed);
        plan
    }

    /// Forgets requests whose client has gone: running ones at every step (their KV is freed at
    /// once), waiting ones every [`SWEEP_EVERY`] (a scan of a long queue is not free).
    fn drop_departed(&mut self) {
        if self.running.iter().any(|s| s.q.tx.is_closed()) {
            for mut s in std::mem::take(&mut self.running) {
                if s.q.tx.is_closed() {
                    self.kv.release(&mut s.hold);
                    self.count_abort();
                } else {
                    self.running.push(s);
                }
            }
        }
        let now = Instant::now();
        if !self.waiting.is_empty() && now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            let before = self.waiting.len();
            self.waiting.retain(|s| !s.q.tx.is_closed());
            let gone = before - self.waiting.len();
            self.handle.waiting.fetch_sub(gone, Ordering::Relaxed);
            for _ in 0..gone {
                self.count_abort();
            }
        }
    }

    /// Preempts `running[i]` by recompute: its KV is freed and it waits at the queue's head.
    fn preempt(&mut self, i: usize) {
        let mut s = self.running.remove(i);
        self.kv.release(&mut s.hold);
        s.computed = 0;
        s.published = false;
        s.preemptions += 1;
        self.handle.preemptions.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.preemptions.inc();
        }
        self.handle.waiting.fetch_add(1, Ordering::Relaxed);
        self.waiting.push_front(s);
    }

    /// Applies a step's work: KV computed, tokens sampled and sent, finished sequences released.
    fn finish_step(&mut self, plan: &Plan, now: Instant) {
        let mut step_tokens = 0u64;
        let mut later = Vec::with_capacity(plan.len());
        for &(i, n) in plan {
            step_tokens += u64::from(n);
            let s = &mut self.running[i];
            let decoding = s.is_decoding();
            s.computed += u64::from(n);
            if !s.published {
                // Full prompt blocks join the prefix cache as their chunk is computed (as vLLM), so
                // concurrent requests sharing the prefix hit it during a long chunked prefill.
                let full = (s.computed.min(s.prompt_len()) / u64::from(self.kv.block_size())) as usize;
                self.kv.publish(&mut s.hold, &s.q.sub.block_hashes[..full.min(s.q.sub.block_hashes.len())]);
                s.published = s.computed >= s.prompt_len();
                if s.published && !s.prompt_counted {
                    s.prompt_counted = true;
                    if let Some(m) = &self.metrics {
                        let cached = u64::from(s.cached);
                        m.prompt_tokens.inc_by(s.prompt_len());
                        m.prompt_by_source[0].inc_by(s.prompt_len() - cached);
                        m.prompt_by_source[1].inc_by(cached);
                        m.prompt_cached.inc_by(cached);
                        m.prompt_cached_device.inc_by(cached);
                    }
                }
            }
            let new = if decoding {
                n
            } else if s.computed == s.total() {
                1
            } else {
                0
            };
            if new == 0 {
                continue;
            }
            // A decode step computes the last sampled token (and any speculative ones) and samples
            // as many: `total - computed` stays 1.
            s.generated += new;
            if let Some(m) = &self.metrics {
                m.generation_tokens.inc_by(u64::from(new));
                match s.last_token_at {
                    None => m.ttft.observe((now - s.q.arrived).as_secs_f64()),
                    Some(t) => {
                        // One observation per step and request, as vLLM (several tokens with
                        // speculative decoding).
                        let gap = (now - t).as_secs_f64();
                        m.itl.observe(gap);
                        m.tpot.observe(gap);
                    }
                }
            }
            if s.first_token_at.is_none() {
                s.first_token_at = Some(now);
            }
            s.last_token_at = Some(now);
            s.last_new = new;
            if s.generated < s.q.sub.output_len {
                if s.first_token_at == Some(now) {
                    // First tokens are sent before the others of the step: with a thousand streams a
                    // step's sends take a while to reach the sockets, and TTFT is what a benchmark
                    // watches most closely.
                    if s.q.tx.send(Event { tokens: new, at: now, done: None }).is_err() {
                        s.aborted = true;
                    }
                } else {
                    later.push(i);
                }
            }
        }
        for i in later {
            let s = &mut self.running[i];
            if s.q.tx.send(Event { tokens: s.last_new, at: now, done: None }).is_err() {
                s.aborted = true;
            }
        }
        if let Some(m) = &self.metrics {
            m.iteration.observe(step_tokens as f64);
        }
        // Release finished and aborted sequences, keeping the others in admission order.
        if self.running.iter().any(|s| s.aborted || s.generated >= s.q.sub.output_len) {
            for mut s in std::mem::take(&mut self.running) {
                if s.aborted || s.generated >= s.q.sub.output_len {
                    self.kv.release(&mut s.hold);
                    self.complete(s, now);
                } else {
                    self.running.push(s);
                }
            }
        }
        self.handle.running.store(self.running.len(), Ordering::Relaxed);
    }

    fn complete(&self, s: Seq, now: Instant) {
        if s.aborted {
            self.count_abort();
            return;
        }
        let usage = Usage {
            prompt_tokens: s.prompt_len() as u32,
            completion_tokens: s.generated,
            cached_tokens: s.cached,
            finish: s.q.sub.finish,
            preemptions: s.preemptions,
        };
        if let Some(m) = &self.metrics {
            m.success[if usage.finish == Finish::Stop { 0 } else { 1 }].inc();
            m.e2e.observe((now - s.q.arrived).as_secs_f64());
            let sched = s.scheduled_at.unwrap_or(now);
            let first = s.first_token_at.unwrap_or(now);
            m.inference.observe((now - sched).as_secs_f64());
            m.prefill.observe((first - sched).as_secs_f64());
            m.decode.observe((now - first).as_secs_f64());
            m.req_prompt.observe(f64::from(usage.prompt_tokens));
            m.req_gen.observe(f64::from(usage.completion_tokens));
            m.max_tokens.observe(f64::from(s.q.sub.max_tokens));
            m.max_gen_tokens.observe(f64::from(s.q.sub.max_tokens));
            m.params_n.observe(1.0);
            // vLLM's per-request TPOT: the decode time over the tokens after the first.
            let after_first = usage.completion_tokens.saturating_sub(1);
            let decode = (now - first).as_secs_f64();
            m.req_tpot.observe(if after_first > 0 { decode / f64::from(after_first) } else { 0.0 });
            m.req_preemptions.observe(f64::from(usage.preemptions));
            m.prefill_kv_computed
                .observe(f64::from(usage.prompt_tokens - usage.cached_tokens.min(usage.prompt_tokens)));
        }
        let _ = s.q.tx.send(Event { tokens: s.last_new, at: now, done: Some(usage) });
    }

    fn count_abort(&self) {
        if let Some(m) = &self.metrics {
            m.success[2].inc();
        }
    }

    fn publish_gauges(&self) {
        if let Some(m) = &self.metrics {
            m.running.set(self.running.len() as i64);
            let waiting = self.handle.waiting.load(Ordering::Relaxed) as i64;
            m.waiting.set(waiting);
            m.waiting_capacity.set(waiting);
            m.kv_usage.set(self.kv.usage());
            m.gpu_cache_usage.set(self.kv.usage());
        }
    }
}

#[cfg(test)]
mod tests;
