//! `/metrics`: vLLM's Prometheus metrics with their real names, types and buckets, so dashboards,
//! the load engine's scraper and the Inference Gateway's endpoint picker read the simulator as they
//! read vLLM (V1 names, plus the V0 `gpu_cache_usage_perc` / `num_requests_swapped` that older
//! dashboards and endpoint pickers still scrape).
//!
//! Every series carries `model_name` and `engine` labels, as vLLM V1 does; one engine per simulated
//! data-parallel rank. Names, types, label names, buckets and help texts are vLLM 0.32's
//! (`tests/it/sim_conformance.rs` compares them with a real vLLM); the families the simulator does not
//! model are listed in the README ("Differences from vLLM 0.32 that stay").

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
const PREEMPTION_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0];
const N_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];
const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
    1920.0, 7680.0,
];

/// vLLM's 1-2-5 buckets up to `max` (token-count histograms).
fn buckets_125(max: u32) -> Vec<f64> {
    let mut out = vec![];
    let mut m = 1u64;
    'outer: loop {
        for k in [1, 2, 5] {
            let v = k * m;
            if v > u64::from(max) {
                break 'outer;
            }
            out.push(v as f64);
        }
        m *= 10;
    }
    out
}

/// The registry and every family.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    running: IntGaugeVec,
    waiting: IntGaugeVec,
    waiting_by_reason: IntGaugeVec,
    sleep_state: IntGaugeVec,
    swapped: IntGaugeVec,
    kv_usage: GaugeVec,
    gpu_cache_usage: GaugeVec,
    preemptions: IntCounterVec,
    prompt_tokens: IntCounterVec,
    generation_tokens: IntCounterVec,
    success: IntCounterVec,
    prefix_queries: IntCounterVec,
    prefix_hits: IntCounterVec,
    external_prefix_queries: IntCounterVec,
    external_prefix_hits: IntCounterVec,
    mm_queries: IntCounterVec,
    mm_hits: IntCounterVec,
    prompt_by_source: IntCounterVec,
    prompt_cached: IntCounterVec,
    prompt_cached_by_source: IntCounterVec,
    admission_rejections: IntCounterVec,
    ttft: HistogramVec,
    tpot: HistogramVec,
    itl: HistogramVec,
    e2e: HistogramVec,
    queue: HistogramVec,
    inference: HistogramVec,
    prefill: HistogramVec,
    decode: HistogramVec,
    req_prompt: HistogramVec,
    req_gen: HistogramVec,
    max_tokens: HistogramVec,
    max_gen_tokens: HistogramVec,
    params_n: HistogramVec,
    req_tpot: HistogramVec,
    req_preemptions: HistogramVec,
    prefill_kv_computed: HistogramVec,
    iteration: HistogramVec,
    cache_info: GaugeVec,
    lora_info: GaugeVec,
    /// Requests refused with 429 because the waiting queue was full (simulator-only; see
    /// [`Metrics::count_rejection`]).
    pub rejected: IntCounterVec,
    /// How late chunks leave the simulator against the simulated timeline (simulator-only): its
    /// own overhead on every latency a client measures.
    /// Label `chunk`: "first" (the TTFT chunk) or "next".
    pub delivery_lag: HistogramVec,
}

/// The series of one engine (labels bound once, so updates are plain atomics).
#[derive(Clone)]
pub struct EngineMetrics {
    pub(crate) running: IntGauge,
    pub(crate) waiting: IntGauge,
    pub(crate) waiting_capacity: IntGauge,
    pub(crate) kv_usage: Gauge,
    pub(crate) gpu_cache_usage: Gauge,
    pub(crate) preemptions: IntCounter,
    pub(crate) prompt_tokens: IntCounter,
    pub(crate) generation_tokens: IntCounter,
    pub(crate) success: [IntCounter; 3],
    pub(crate) prefix_queries: IntCounter,
    pub(crate) prefix_hits: IntCounter,
    /// `vllm:prompt_tokens_by_source_total`: local_compute, local_cache_hit.
    pub(crate) prompt_by_source: [IntCounter; 2],
    pub(crate) prompt_cached: IntCounter,
    /// `vllm:prompt_tokens_cached_by_source_total{source="device"}`.
    pub(crate) prompt_cached_device: IntCounter,
    pub(crate) ttft: Histogram,
    pub(crate) tpot: Histogram,
    pub(crate) itl: Histogram,
    pub(crate) e2e: Histogram,
    pub(crate) queue: Histogram,
    pub(crate) inference: Histogram,
    pub(crate) prefill: Histogram,
    pub(crate) decode: Histogram,
    pub(crate) req_prompt: Histogram,
    pub(crate) req_gen: Histogram,
    pub(crate) max_tokens: Histogram,
    pub(crate) max_gen_tokens: Histogram,
    pub(crate) params_n: Histogram,
    pub(crate) req_tpot: Histogram,
    pub(crate) req_preemptions: Histogram,
    pub(crate) prefill_kv_computed: Histogram,
    pub(crate) iteration: Histogram,
}

/// `finished_reason` label values in the order of [`EngineMetrics::success`].
pub const FINISH_REASONS: [&str; 3] = ["stop", "length", "abort"];
/// vLLM's other `finished_reason` values, never reached here (their series stay at 0).
const OTHER_FINISH_REASONS: [&str; 2] = ["error", "repetition"];
/// `vllm:prompt_tokens_by_source_total`'s sources.
const PROMPT_SOURCES: [&str; 3] = ["local_compute", "local_cache_hit", "external_kv_transfer"];
/// `vllm:prompt_tokens_cached_by_source_total`'s sources (only `device` here).
const CACHED_SOURCES: [&str; 5] = ["device", "host", "p2p", "disk", "external_unspecified"];
/// `vllm:engine_sleep_state`'s states (always awake).
const SLEEP_STATES: [&str; 3] = ["awake", "weights_offloaded", "discard_all"];

const LABELS: &[&str] = &["model_name", "engine"];

impl Metrics {
    /// Families for a server whose longest sequence is `max_model_len`.
    pub fn new(max_model_len: u32) -> Self {
        let registry = Registry::new();
        let tok = buckets_125(max_model_len);
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definitions are valid");
                registry.register(Box::new(m.clone())).expect("metric names are unique");
                m
            }};
        }
        let gauge = |name: &str, help: &str| reg!(IntGaugeVec::new(Opts::new(name, help), LABELS));
        let fgauge = |name: &str, help: &str| reg!(GaugeVec::new(Opts::new(name, help), LABELS));
        let counter = |name: &str, help: &str| reg!(IntCounterVec::new(Opts::new(name, help), LABELS));
        let hist = |name: &str, help: &str, b: &[f64]| {
            reg!(HistogramVec::new(HistogramOpts::new(name, help).buckets(b.to_vec()), LABELS))
        };
        let with = |name: &str, help: &str, extra: &str| {
            reg!(IntCounterVec::new(Opts::new(name, help), &["model_name", "engine", extra]))
        };
        Self {
            running: gauge("vllm:num_requests_running", "Number of requests in model execution batches."),
            waiting: gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
            waiting_by_reason: reg!(IntGaugeVec::new(
                Opts::new(
                    "vllm:num_requests_waiting_by_reason",
                    "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
                ),
                &["model_name", "engine", "reason"],
            )),
            sleep_state: reg!(IntGaugeVec::new(
                Opts::new(
                    "vllm:engine_sleep_state",
                    "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
                ),
                &["model_name", "engine", "sleep_state"],
            )),
            swapped: gauge("vllm:num_requests_swapped", "Number of requests swapped to CPU (V0 name; always 0)."),
            kv_usage: fgauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
            gpu_cache_usage: fgauge(
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage (V0 name of kv_cache_usage_perc).",
            ),
            preemptions: counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine."),
            prompt_tokens: counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
            generation_tokens: counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
            success: with("vllm:request_success_total", "Count of successfully processed requests.", "finished_reason"),
            prefix_queries: counter(
                "vllm:prefix_cache_queries_total",
                "Prefix cache queries, in terms of number of queried tokens.",
            ),
            prefix_hits: counter(
                "vllm:prefix_cache_hits_total",
                "Prefix cache hits, in terms of number of cached tokens.",
            ),
            external_prefix_queries: counter(
                "vllm:external_prefix_cache_queries_total",
                "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.",
            ),
            external_prefix_hits: counter(
                "vllm:external_prefix_cache_hits_total",
                "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.",
            ),
            mm_queries: counter(
                "vllm:mm_cache_queries_total",
                "Multi-modal cache queries, in terms of number of queried items.",
            ),
            mm_hits: counter("vllm:mm_cache_hits_total", "Multi-modal cache hits, in terms of number of cached items."),
            prompt_by_source: with(
                "vllm:prompt_tokens_by_source_total",
                "Number of prompt tokens by source.",
                "source",
            ),
            prompt_cached: counter(
                "vllm:prompt_tokens_cached_total",
                "Number of cached prompt tokens (local + external).",
            ),
            prompt_cached_by_source: with(
                "vllm:prompt_tokens_cached_by_source_total",
                "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.",
                "source",
            ),
            admission_rejections: reg!(IntCounterVec::new(
                Opts::new(
                    "vllm:admission_rejections_total",
                    "Number of admission attempts rejected by a queue limit, by reason.",
                ),
                &["model_name", "reason"],
            )),
            ttft: hist(
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                TTFT_BUCKETS,
            ),
            tpot: hist(
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds (the name before vLLM 0.11; inter-token latency).",
                ITL_BUCKETS,
            ),
            itl: hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS),
            e2e: hist(
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                REQUEST_BUCKETS,
            ),
            queue: hist(
                "vllm:request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                REQUEST_BUCKETS,
            ),
            inference: hist(
                "vllm:request_inference_time_seconds",
                "Histogram of time spent in RUNNING phase for request.",
                REQUEST_BUCKETS,
            ),
            prefill: hist(
                "vllm:request_prefill_time_seconds",
                "Histogram of time spent in PREFILL phase for request.",
                REQUEST_BUCKETS,
            ),
            decode: hist(
                "vllm:request_decode_time_seconds",
                "Histogram of time spent in DECODE phase for request.",
                REQUEST_BUCKETS,
            ),
            req_prompt: hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", &tok),
            req_gen: hist("vllm:request_generation_tokens", "Number of generation tokens processed.", &tok),
            max_tokens: hist("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", &tok),
            max_gen_tokens: hist(
                "vllm:request_max_num_generation_tokens",
                "Histogram of maximum number of requested generation tokens.",
                &tok,
            ),
            params_n: hist("vllm:request_params_n", "Histogram of the n request parameter.", N_BUCKETS),
            req_tpot: hist(
                "vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.",
                ITL_BUCKETS,
            ),
            req_preemptions: hist(
                "vllm:request_num_preemptions",
                "Histogram of the number of times a request was preempted.",
                PREEMPTION_BUCKETS,
            ),
            prefill_kv_computed: hist(
                "vllm:request_prefill_kv_computed_tokens",
                "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
                &tok,
            ),
            iteration: hist(
                "vllm:iteration_tokens_total",
                "Histogram of number of tokens per engine_step.",
                &[1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0],
            ),
            cache_info: reg!(GaugeVec::new(
                Opts::new("vllm:cache_config_info", "Information of the LLMEngine CacheConfig"),
                &["block_size", "num_gpu_blocks", "enable_prefix_caching", "kv_cache_size_tokens", "engine"],
            )),
            lora_info: reg!(GaugeVec::new(
                Opts::new("vllm:lora_requests_info", "Running stats on lora requests."),
                &["max_lora", "running_lora_adapters", "waiting_lora_adapters"],
            )),
            rejected: counter("inferbench_sim:requests_rejected_total", "Requests refused because the queue was full."),
            delivery_lag: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "inferbench_sim:delivery_lag_seconds",
                    "Time from a step's end on the simulated timeline to its chunk leaving for the socket.",
                )
                .buckets(vec![0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
                &["chunk"],
            )),
            registry,
        }
    }

    /// Binds the series of engine `engine` serving `model`; the series vLLM shows at 0 from the
    /// start (the finish reasons, sources, states never reached here) are created at once.
    pub fn engine(&self, model: &str, engine: usize) -> EngineMetrics {
        let e = engine.to_string();
        let l = [model, e.as_str()];
        self.swapped.with_label_values(&l).set(0);
        for r in OTHER_FINISH_REASONS {
            self.success.with_label_values(&[model, e.as_str(), r]);
        }
        self.waiting_by_reason.with_label_values(&[model, e.as_str(), "deferred"]).set(0);
        for (i, state) in SLEEP_STATES.into_iter().enumerate() {
            self.sleep_state.with_label_values(&[model, e.as_str(), state]).set(i64::from(i == 0));
        }
        for c in [&self.external_prefix_queries, &self.external_prefix_hits, &self.mm_queries, &self.mm_hits] {
            c.with_label_values(&l);
        }
        for source in PROMPT_SOURCES {
            self.prompt_by_source.with_label_values(&[model, e.as_str(), source]);
        }
        for source in CACHED_SOURCES {
            self.prompt_cached_by_source.with_label_values(&[model, e.as_str(), source]);
        }
        self.rejected.with_label_values(&l);
        for reason in ["max_num_queued_reqs", "max_num_queued_tokens"] {
            self.admission_rejections.with_label_values(&[model, reason]);
        }
        EngineMetrics {
            running: self.running.with_label_values(&l),
            waiting: self.waiting.with_label_values(&l),
            waiting_capacity: self.waiting_by_reason.with_label_values(&[model, e.as_str(), "capacity"]),
            kv_usage: self.kv_usage.with_label_values(&l),
            gpu_cache_usage: self.gpu_cache_usage.with_label_values(&l),
            preemptions: self.preemptions.with_label_values(&l),
            prompt_tokens: self.prompt_tokens.with_label_values(&l),
            generation_tokens: self.generation_tokens.with_label_values(&l),
            success: FINISH_REASONS.map(|r| self.success.with_label_values(&[model, e.as_str(), r])),
            prefix_queries: self.prefix_queries.with_label_values(&l),
            prefix_hits: self.prefix_hits.with_label_values(&l),
            prompt_by_source: [PROMPT_SOURCES[0], PROMPT_SOURCES[1]]
                .map(|s| self.prompt_by_source.with_label_values(&[model, e.as_str(), s])),
            prompt_cached: self.prompt_cached.with_label_values(&l),
            prompt_cached_device: self.prompt_cached_by_source.with_label_values(&[
                model,
                e.as_str(),
                CACHED_SOURCES[0],
            ]),
            ttft: self.ttft.with_label_values(&l),
            tpot: self.tpot.with_label_values(&l),
            itl: self.itl.with_label_values(&l),
            e2e: self.e2e.with_label_values(&l),
            queue: self.queue.with_label_values(&l),
            inference: self.inference.with_label_values(&l),
            prefill: self.prefill.with_label_values(&l),
            decode: self.decode.with_label_values(&l),
            req_prompt: self.req_prompt.with_label_values(&l),
            req_gen: self.req_gen.with_label_values(&l),
            max_tokens: self.max_tokens.with_label_values(&l),
            max_gen_tokens: self.max_gen_tokens.with_label_values(&l),
            params_n: self.params_n.with_label_values(&l),
            req_tpot: self.req_tpot.with_label_values(&l),
            req_preemptions: self.req_preemptions.with_label_values(&l),
            prefill_kv_computed: self.prefill_kv_computed.with_label_values(&l),
            iteration: self.iteration.with_label_values(&l),
        }
    }

    /// Counts a request refused because engine `engine`'s waiting queue was full: in the
    /// simulator's own counter and in vLLM's admission-rejection family (vLLM's nearest limit is
    /// `--max-num-queued-reqs`).
    pub fn count_rejection(&self, model: &str, engine: usize) {
        self.rejected.with_label_values(&[model, engine.to_string().as_str()]).inc();
        self.admission_rejections.with_label_values(&[model, "max_num_queued_reqs"]).inc();
    }

    /// Sets `vllm:cache_config_info` of engine `engine`.
    pub fn cache_config(&self, engine: usize, block_size: u32, blocks: u32, prefix_caching: bool) {
        let tokens = u64::from(block_size) * u64::from(blocks);
        self.cache_info
            .with_label_values(&[
                block_size.to_string(),
                blocks.to_string(),
                if prefix_caching { "True" } else { "False" }.to_owned(),
                tokens.to_string(),
                engine.to_string(),
            ])
            .set(1.0);
    }

    /// Sets `vllm:lora_requests_info` (value: the time it was set, as vLLM does).
    pub fn lora_info(&self, max_lora: u32, running: &str, waiting: &str) {
        self.lora_info.reset();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.lora_info.with_label_values(&[max_lora.to_string().as_str(), running, waiting]).set(now);
    }

    /// The registry (other families join it: the simulated GPUs' DCGM metrics).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition (format 0.0.4, what vLLM serves), bucket bounds written as
    /// Python writes floats (`le="1.0"`, not `le="1"`: a query matching `le="1.0"` finds them).
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into memory");
        python_le(&String::from_utf8(buf).expect("the text format is UTF-8"))
    }
}

/// `le="N"` bounds rewritten as Python's `repr` of the float (`1` → `1.0`, `0.001` unchanged).
fn python_le(text: &str) -> String {
    const LE: &str = "le=\"";
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut rest = text;
    while let Some(i) = rest.find(LE) {
        let (head, tail) = rest.split_at(i + LE.len());
        out.push_str(head);
        let end = tail.find('"').unwrap_or(tail.len());
        let bound = &tail[..end];
        match bound.parse::<f64>() {
            Ok(f) if f.is_finite() => out.push_str(&crate::api::validate::py_float(f)),
            _ => out.push_str(bound),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_written_as_python_floats() {
        let text = "a_bucket{engine=\"0\",le=\"1\"} 0\na_bucket{le=\"0.025\"} 0\na_bucket{le=\"+Inf\"} 2\n";
        assert_eq!(
            python_le(text),
            "a_bucket{engine=\"0\",le=\"1.0\"} 0\na_bucket{le=\"0.025\"} 0\na_bucket{le=\"+Inf\"} 2\n"
        );
    }

    #[test]
    fn token_buckets_are_1_2_5() {
        assert_eq!(buckets_125(1000), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]);
    }
}
