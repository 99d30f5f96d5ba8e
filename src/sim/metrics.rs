//! `/metrics`: vLLM's Prometheus metrics with their real names, types and buckets, so dashboards,
//! the load engine's scraper and the Inference Gateway's endpoint picker read the simulator as they
//! read vLLM (V1 names, plus the V0 `gpu_cache_usage_perc` / `num_requests_swapped` that older
//! dashboards and endpoint pickers still scrape).
//!
//! Every series carries `model_name` and `engine` labels, as vLLM V1 does; one engine per simulated
//! data-parallel rank.

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
    swapped: IntGaugeVec,
    kv_usage: GaugeVec,
    gpu_cache_usage: GaugeVec,
    preemptions: IntCounterVec,
    prompt_tokens: IntCounterVec,
    generation_tokens: IntCounterVec,
    success: IntCounterVec,
    prefix_queries: IntCounterVec,
    prefix_hits: IntCounterVec,
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
    iteration: HistogramVec,
    cache_info: GaugeVec,
    lora_info: GaugeVec,
    /// Requests refused with 429 because the waiting queue was full (simulator-only).
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
    pub(crate) kv_usage: Gauge,
    pub(crate) gpu_cache_usage: Gauge,
    pub(crate) preemptions: IntCounter,
    pub(crate) prompt_tokens: IntCounter,
    pub(crate) generation_tokens: IntCounter,
    pub(crate) success: [IntCounter; 3],
    pub(crate) prefix_queries: IntCounter,
    pub(crate) prefix_hits: IntCounter,
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
    pub(crate) iteration: Histogram,
}

/// `finish_reason` label values in the order of [`EngineMetrics::success`].
pub const FINISH_REASONS: [&str; 3] = ["stop", "length", "abort"];

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
        Self {
            running: gauge("vllm:num_requests_running", "Number of requests in model execution batches."),
            waiting: gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
            swapped: gauge("vllm:num_requests_swapped", "Number of requests swapped to CPU (V0 name; always 0)."),
            kv_usage: fgauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
            gpu_cache_usage: fgauge(
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage (V0 name of kv_cache_usage_perc).",
            ),
            preemptions: counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine."),
            prompt_tokens: counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
            generation_tokens: counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
            success: reg!(IntCounterVec::new(
                Opts::new("vllm:request_success_total", "Count of successfully processed requests."),
                &["model_name", "engine", "finish_reason"],
            )),
            prefix_queries: counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of tokens."),
            prefix_hits: counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of tokens."),
            ttft: hist(
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                TTFT_BUCKETS,
            ),
            tpot: hist(
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                ITL_BUCKETS,
            ),
            itl: hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS),
            e2e: hist(
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                REQUEST_BUCKETS,
            ),
            queue: hist("vllm:request_queue_time_seconds", "Time spent in WAITING phase for request.", REQUEST_BUCKETS),
            inference: hist(
                "vllm:request_inference_time_seconds",
                "Time spent in RUNNING phase for request.",
                REQUEST_BUCKETS,
            ),
            prefill: hist(
                "vllm:request_prefill_time_seconds",
                "Time spent in PREFILL phase for request.",
                REQUEST_BUCKETS,
            ),
            decode: hist(
                "vllm:request_decode_time_seconds",
                "Time spent in DECODE phase for request.",
                REQUEST_BUCKETS,
            ),
            req_prompt: hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", &tok),
            req_gen: hist("vllm:request_generation_tokens", "Number of generation tokens processed.", &tok),
            max_tokens: hist("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", &tok),
            iteration: hist(
                "vllm:iteration_tokens_total",
                "Histogram of number of tokens per engine_step.",
                &[1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0],
            ),
            cache_info: reg!(GaugeVec::new(
                Opts::new("vllm:cache_config_info", "Information of the LLMEngine CacheConfig"),
                &["block_size", "num_gpu_blocks", "enable_prefix_caching"],
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

    /// Binds the series of engine `engine` serving `model`.
    pub fn engine(&self, model: &str, engine: usize) -> EngineMetrics {
        let e = engine.to_string();
        let l = [model, e.as_str()];
        self.swapped.with_label_values(&l).set(0);
        EngineMetrics {
            running: self.running.with_label_values(&l),
            waiting: self.waiting.with_label_values(&l),
            kv_usage: self.kv_usage.with_label_values(&l),
            gpu_cache_usage: self.gpu_cache_usage.with_label_values(&l),
            preemptions: self.preemptions.with_label_values(&l),
            prompt_tokens: self.prompt_tokens.with_label_values(&l),
            generation_tokens: self.generation_tokens.with_label_values(&l),
            success: FINISH_REASONS.map(|r| self.success.with_label_values(&[model, e.as_str(), r])),
            prefix_queries: self.prefix_queries.with_label_values(&l),
            prefix_hits: self.prefix_hits.with_label_values(&l),
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
            iteration: self.iteration.with_label_values(&l),
        }
    }

    /// Sets `vllm:cache_config_info`.
    pub fn cache_config(&self, block_size: u32, blocks: u32, prefix_caching: bool) {
        self.cache_info
            .with_label_values(&[block_size.to_string(), blocks.to_string(), prefix_caching.to_string()])
            .set(1.0);
    }

    /// Sets `vllm:lora_requests_info` (value: the time it was set, as vLLM does).
    pub fn lora_info(&self, max_lora: u32, running: &str, waiting: &str) {
        self.lora_info.reset();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.lora_info.with_label_values(&[max_lora.to_string().as_str(), running, waiting]).set(now);
    }

    /// The Prometheus text exposition (format 0.0.4, what vLLM serves).
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into memory");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
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
    fn token_buckets_are_1_2_5() {
        assert_eq!(buckets_125(1000), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]);
    }
}
