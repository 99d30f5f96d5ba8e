//! Server metrics: the model server's Prometheus `/metrics`, scraped every interval during a run,
//! kept as time series of the gauges, counters and histograms that explain a latency curve (queue
//! length, running batch, KV-cache usage, token counters, server-side TTFT), and summarised per
//! stage. The client's numbers say *what* happened; these say *why* (a growing queue, a full KV
//! cache, preemptions).
//!
//! A scrape that fails is counted, never fatal: an external endpoint may have no `/metrics`.
//! Series of one metric with several label sets (models, LoRA adapters, data-parallel engines) are
//! summed, except ratios (`*_perc`, `*usage*`), which are averaged.

use crate::GetError;
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use openmetrics_parser::PrometheusValue;
use serde::Serialize;
use tokio::time::Instant;

use inferbench_schema::ServerSeries;

/// How a metric is summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A level: mean, min, max, last of the samples.
    Gauge,
    /// A cumulative count: summarised as a rate per second.
    Counter,
    /// A histogram: summarised as the mean observation (Δsum / Δcount) per interval.
    Histogram,
}

/// The metrics kept, by server. vLLM (V0 and V1 names), SGLang, TGI, Triton, JetStream — and the
/// simulator, which serves vLLM's names. (TensorRT-LLM's `nv_trt_llm_*` gauges are left out: their
/// label sets mean different things — max, used, free — and must not be summed.)
pub const WATCHED: &[(&str, Kind)] = &[
    ("vllm:num_requests_running", Kind::Gauge),
    ("vllm:num_requests_waiting", Kind::Gauge),
    ("vllm:kv_cache_usage_perc", Kind::Gauge),
    ("vllm:gpu_cache_usage_perc", Kind::Gauge),
    ("vllm:num_preemptions_total", Kind::Counter),
    ("vllm:prompt_tokens_total", Kind::Counter),
    ("vllm:generation_tokens_total", Kind::Counter),
    ("vllm:request_success_total", Kind::Counter),
    ("vllm:prefix_cache_hits_total", Kind::Counter),
    ("vllm:prefix_cache_queries_total", Kind::Counter),
    ("vllm:time_to_first_token_seconds", Kind::Histogram),
    ("vllm:inter_token_latency_seconds", Kind::Histogram),
    ("vllm:time_per_output_token_seconds", Kind::Histogram),
    ("vllm:e2e_request_latency_seconds", Kind::Histogram),
    ("vllm:request_queue_time_seconds", Kind::Histogram),
    ("sglang:num_running_reqs", Kind::Gauge),
    ("sglang:num_queue_reqs", Kind::Gauge),
    ("sglang:token_usage", Kind::Gauge),
    ("sglang:gen_throughput", Kind::Gauge),
    ("sglang:prompt_tokens_total", Kind::Counter),
    ("sglang:generation_tokens_total", Kind::Counter),
    ("sglang:time_to_first_token_seconds", Kind::Histogram),
    ("tgi_queue_size", Kind::Gauge),
    ("tgi_batch_current_size", Kind::Gauge),
    ("tgi_batch_current_max_tokens", Kind::Gauge),
    ("tgi_request_success", Kind::Counter),
    ("tgi_request_generated_tokens", Kind::Histogram),
    ("tgi_request_queue_duration", Kind::Histogram),
    ("nv_inference_request_success", Kind::Counter),
    ("jetstream_prefill_backlog_size", Kind::Gauge),
    ("jetstream_slots_used_percentage", Kind::Gauge),
];

/// Accelerator metrics kept, per GPU and over all GPUs: a DCGM exporter's families (NVIDIA GPUs;
/// the simulator serves the same for its simulated GPUs). Each is a gauge; per GPU it is kept as
/// `NAME{gpu="0"}` (`NAME{Hostname="node",gpu="0"}` when the exporter names its node, as GPU
/// numbers repeat across nodes), and over all GPUs as `NAME`: the mean of utilisations and
/// ratios, the sum of memory and power.
pub const ACCELERATOR: &[(&str, Across)] = &[
    ("DCGM_FI_DEV_GPU_UTIL", Across::Mean),
    ("DCGM_FI_PROF_SM_ACTIVE", Across::Mean),
    ("DCGM_FI_PROF_DRAM_ACTIVE", Across::Mean),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", Across::Mean),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", Across::Mean),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", Across::Mean),
    ("DCGM_FI_DEV_FB_USED", Across::Sum),
    ("DCGM_FI_DEV_FB_FREE", Across::Sum),
    ("DCGM_FI_DEV_POWER_USAGE", Across::Sum),
];

/// How an accelerator metric's GPUs make one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Across {
    /// Their mean (utilisations, ratios).
    Mean,
    /// Their sum (memory, power).
    Sum,
}

/// The name of an accelerator metric's series for one GPU.
pub fn per_gpu(name: &str, hostname: Option<&str>, gpu: &str) -> String {
    match hostname {
        Some(h) => format!("{name}{{Hostname=\"{h}\",gpu=\"{gpu}\"}}"),
        None => format!("{name}{{gpu=\"{gpu}\"}}"),
    }
}

/// Whether `key` (a name in a sample's values) is one of [`ACCELERATOR`]'s, whole or per GPU.
pub fn is_accelerator(key: &str) -> bool {
    ACCELERATOR.iter().any(|(n, _)| key.strip_prefix(n).is_some_and(|rest| rest.is_empty() || rest.starts_with('{')))
}

/// One scrape: seconds since the scraper started, and the value of each watched metric found.
/// Histograms appear as `name_sum` and `name_count`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the scraper started.
    pub t: f64,
    /// Values by name.
    pub values: BTreeMap<String, f64>,
}

/// Takes the watched metrics out of an exposition text.
pub(crate) fn extract(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let scrape = openmetrics_parser::prometheus::parse_prometheus(text).map_err(|e| format!("{e:?}"))?;
    let mut out = BTreeMap::new();
    for (name, kind) in WATCHED {
        let Some(family) = scrape.families.get(*name) else { continue };
        let (mut sum, mut count, mut n) = (0.0, 0.0, 0u32);
        for s in family.iter_samples() {
            n += 1;
            match &s.value {
                PrometheusValue::Counter(c) => sum += c.value.as_f64(),
                PrometheusValue::Gauge(v) | PrometheusValue::Unknown(v) => sum += v.as_f64(),
                PrometheusValue::Histogram(h) => {
                    sum += h.sum.as_ref().map_or(0.0, |s| s.as_f64());
                    count += h.count.unwrap_or(0) as f64;
                }
                PrometheusValue::Summary(_) => {}
            }
        }
        if n == 0 {
            continue;
        }
        match kind {
            Kind::Histogram => {
                out.insert(format!("{name}_sum"), sum);
                out.insert(format!("{name}_count"), count);
            }
            _ if name.ends_with("_perc") || name.contains("usage") || name.ends_with("percentage") => {
                out.insert((*name).to_owned(), sum / f64::from(n));
            }
            _ => {
                out.insert((*name).to_owned(), sum);
            }
        }
    }
    for (name, across) in ACCELERATOR {
        let Some(family) = scrape.families.get(*name) else { continue };
        let mut values = vec![];
        for s in family.iter_samples() {
            let v = match &s.value {
                PrometheusValue::Gauge(v) | PrometheusValue::Unknown(v) => v.as_f64(),
                PrometheusValue::Counter(c) => c.value.as_f64(),
                _ => continue,
            };
            let labels = s.get_labelset().ok();
            let label = |l: &str| labels.as_ref().and_then(|ls| ls.get_label_value(l)).map(str::to_owned);
            let gpu = label("gpu").unwrap_or_else(|| values.len().to_string());
            out.insert(per_gpu(name, label("Hostname").as_deref(), &gpu), v);
            values.push(v);
        }
        if !values.is_empty() {
            let total: f64 = values.iter().sum();
            let v = match across {
                Across::Mean => total / values.len() as f64,
                Across::Sum => total,
            };
            out.insert((*name).to_owned(), v);
        }
    }
    Ok(out)
}

/// The increase of a counter from `a` to `b`, as Prometheus' `increase`: a decrease is a reset
/// (the server restarted), after which the new value is the increase.
fn increase(a: f64, b: f64) -> f64 {
    if b >= a { b - a } else { b }
}

/// Summarises the samples taken in `[from, to]` (seconds since the scraper started): gauges over
/// their samples; counters as the increase over the window per second (resets handled), their
/// min/max/last from intervals between consecutive samples; histograms as the mean observation
/// (Δsum / Δcount). Intervals shorter than `min_interval` (a stage-boundary scrape next to a
/// periodic one) count in the mean but not in min/max/last, where they would be noise.
/// A metric with too few samples is left out.
pub fn summarise(samples: &[Sample], from: f64, to: f64, min_interval: f64) -> BTreeMap<String, ServerSeries> {
    let window: Vec<&Sample> = samples.iter().filter(|s| s.t >= from && s.t <= to).collect();
    let mut out = BTreeMap::new();
    for (name, kind) in WATCHED {
        let series = match kind {
            Kind::Gauge => {
                let v: Vec<f64> = window.iter().filter_map(|s| s.values.get(*name).copied()).collect();
                stats("gauge", &v, v.iter().sum::<f64>() / v.len().max(1) as f64)
            }
            Kind::Counter => {
                let pts: Vec<(f64, f64)> =
                    window.iter().filter_map(|s| s.values.get(*name).map(|v| (s.t, *v))).collect();
                let total: f64 = pts.windows(2).map(|w| increase(w[0].1, w[1].1)).sum();
                let mut rates: Vec<f64> = pts
                    .windows(2)
                    .filter(|w| w[1].0 - w[0].0 >= min_interval.max(f64::MIN_POSITIVE))
                    .map(|w| increase(w[0].1, w[1].1) / (w[1].0 - w[0].0))
                    .collect();
                let mean = match (pts.first(), pts.last()) {
                    (Some(a), Some(b)) if b.0 > a.0 => total / (b.0 - a.0),
                    _ => 0.0,
                };
                // Only the stage's own start and end scrapes (a stage shorter than the interval,
                // or an interval set long so as not to disturb the server): one interval, the
                // whole stage.
                if rates.is_empty() && pts.len() >= 2 && pts[pts.len() - 1].0 > pts[0].0 {
                    rates.push(mean);
                }
                stats("counter", &rates, mean).map(|s| ServerSeries { total: Some(total), ..s })
            }
            Kind::Histogram => {
                let (s, c) = (format!("{name}_sum"), format!("{name}_count"));
                let pts: Vec<(f64, f64)> = window
                    .iter()
                    .filter_map(|x| Some((x.values.get(&s).copied()?, x.values.get(&c).copied()?)))
                    .collect();
                let means: Vec<f64> =
                    pts.windows(2).filter(|w| w[1].1 > w[0].1).map(|w| (w[1].0 - w[0].0) / (w[1].1 - w[0].1)).collect();
                let (mean, observed) = match (pts.first(), pts.last()) {
                    (Some(a), Some(b)) if b.1 > a.1 => ((b.0 - a.0) / (b.1 - a.1), b.1 - a.1),
                    _ => (f64::NAN, 0.0),
                };
                if mean.is_nan() {
                    None
                } else {
                    stats("histogram", &means, mean).map(|s| ServerSeries { total: Some(observed), ..s })
                }
            }
        };
        if let Some(s) = series {
            out.insert((*name).to_owned(), s);
        }
    }
    // Accelerator gauges, over all GPUs and per GPU: whatever keys the samples hold.
    let keys: std::collections::BTreeSet<&String> =
        window.iter().flat_map(|s| s.values.keys()).filter(|k| is_accelerator(k)).collect();
    for key in keys {
        let v: Vec<f64> = window.iter().filter_map(|s| s.values.get(key).copied()).collect();
        if let Some(s) = stats("gauge", &v, v.iter().sum::<f64>() / v.len().max(1) as f64) {
            out.insert(key.clone(), s);
        }
    }
    out
}

fn stats(kind: &str, v: &[f64], mean: f64) -> Option<ServerSeries> {
    let (&last, _) = v.split_last()?;
    Some(ServerSeries {
        kind: kind.into(),
        mean,
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        last,
        samples: v.len() as u64,
        total: None,
    })
}

/// What the scraper saw: written as `server_metrics.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scraped {
    /// The scraped URL.
    pub url: String,
    /// Accelerator metrics scraped beside it (DCGM exporters), when given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accelerator_urls: Vec<String>,
    /// Seconds between scrapes.
    pub interval_seconds: f64,
    /// RFC 3339 time of `t = 0`.
    pub started_at: String,
    /// Scrapes that failed (connection, status, parse).
    pub failed_scrapes: u64,
    /// The first failure, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// The longest a scrape took, in seconds. A server that renders its metrics on the thread
    /// that streams its answers (vLLM's API server) stalls every stream meanwhile: on 2 cores at
    /// 16 req/s, scrapes of up to 0.33 s took vLLM's mean TTFT from 13-16 ms to 130-500 ms. A
    /// long one here says the scraping disturbed the run: scrape less often (`interval_seconds`).
    pub slowest_scrape_seconds: f64,
    /// How each metric is summarised.
    pub kinds: BTreeMap<&'static str, Kind>,
    /// The samples, in time order.
    pub samples: Vec<Sample>,
    /// Each load stage's measured window (after its warm-up), on the samples' clock, so a time
    /// series of the run can show which stage was running when.
    pub stages: Vec<StageWindow>,
}

/// A load stage's measured window, in seconds since the scraper started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageWindow {
    /// The stage's name (as in `summary.json`).
    pub name: String,
    /// When the stage started (its warm-up included): its per-request records' times
    /// (`intended_us`, `sent_us`) count from here, so the client's and the server's series share
    /// one time axis.
    pub start: f64,
    /// Start of its measurement (after warm-up).
    pub from: f64,
    /// Its end.
    pub to: f64,
}

/// A running scraper; stopped when dropped.
pub struct Scraper {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    state: Mutex<Scraped>,
    start: Instant,
    http: HyperClient<HttpConnector, Empty<Bytes>>,
    /// The server's metrics, then the accelerators'.
    urls: Vec<String>,
    timeout: Duration,
}

impl Inner {
    /// Scrapes every URL at once; one sample of what answered (a failure is counted).
    async fn scrape(&self) {
        let asked = Instant::now();
        let got = futures_util::future::join_all(self.urls.iter().map(|url| async move {
            tokio::time::timeout(self.timeout, fetch(&self.http, url))
                .await
                .unwrap_or_else(|_| Err(format!("{url}: timed out")))
                .and_then(|text| extract(&text))
        }))
        .await;
        let took = asked.elapsed().as_secs_f64();
        // Stamped when the answers arrived: the values are the server's as of (about) then.
        let t = self.start.elapsed().as_secs_f64();
        let mut s = self.state.lock().expect("scraper state");
        s.slowest_scrape_seconds = s.slowest_scrape_seconds.max(took);
        let mut values = BTreeMap::new();
        let mut answered = false;
        for g in got {
            match g {
                Ok(v) => {
                    answered = true;
                    values.extend(v);
                }
                Err(e) => {
                    s.failed_scrapes += 1;
                    s.first_error.get_or_insert(e);
                }
            }
        }
        if answered {
            // Stage-boundary scrapes can interleave with the periodic one: keep time order.
            let at = s.samples.partition_point(|x| x.t <= t);
            s.samples.insert(at, Sample { t, values });
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scraper {
    /// Starts scraping `url` (and `accelerator_urls` beside it) now and every `interval` (call
    /// inside a tokio runtime).
    pub fn start(url: &str, accelerator_urls: &[String], interval: Duration) -> Scraper {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = Arc::new(Inner {
            state: Mutex::new(Scraped {
                url: url.to_owned(),
                accelerator_urls: accelerator_urls.to_vec(),
                interval_seconds: interval.as_secs_f64(),
                started_at: inferbench_schema::clock::now(),
                kinds: WATCHED
                    .iter()
                    .map(|(n, k)| (*n, *k))
                    .chain(ACCELERATOR.iter().map(|(n, _)| (*n, Kind::Gauge)))
                    .collect(),
                ..Scraped::default()
            }),
            start: Instant::now(),
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            urls: std::iter::once(url.to_owned()).chain(accelerator_urls.iter().cloned()).collect(),
            timeout: interval.clamp(Duration::from_secs(1), Duration::from_secs(10)),
        });
        let i = inner.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                i.scrape().await;
            }
        });
        Scraper { inner, task }
    }

    /// Scrapes now (at a stage's start and end, so per-stage counter rates span the whole stage).
    pub async fn scrape_now(&self) {
        self.inner.scrape().await;
    }

    /// Seconds since the scraper started, at `at`.
    pub fn offset(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.inner.start).as_secs_f64()
    }

    /// The summary of stage `name` (started at `start`) over `[from, to]`; the window is recorded
    /// in [`Scraped::stages`].
    pub fn summarise(&self, name: &str, start: Instant, from: Instant, to: Instant) -> BTreeMap<String, ServerSeries> {
        let (start, from, to) = (self.offset(start), self.offset(from), self.offset(to));
        let mut s = self.inner.state.lock().expect("scraper state");
        s.stages.push(StageWindow { name: name.to_owned(), start, from, to });
        summarise(&s.samples, from, to, s.interval_seconds / 4.0)
    }

    /// A copy of everything seen so far.
    pub fn scraped(&self) -> Scraped {
        self.inner.state.lock().expect("scraper state").clone()
    }
}

/// A one-off GET: (status, body). For health checks and the like, not for measured requests.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, Bytes), GetError> {
    get_once(url, timeout).await.map_err(GetError)
}

async fn get_once(url: &str, timeout: Duration) -> Result<(u16, Bytes), String> {
    let http: HyperClient<_, Empty<Bytes>> = HyperClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    tokio::time::timeout(timeout, request(&http, url))
        .await
        .unwrap_or_else(|_| Err(format!("{url}: no answer in {} s", timeout.as_secs_f64())))
}

/// GET `url` on `http`: (status, body).
async fn request(http: &HyperClient<HttpConnector, Empty<Bytes>>, url: &str) -> Result<(u16, Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let resp = http.get(uri).await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| format!("{url}: {e}"))?.to_bytes();
    Ok((status, body))
}

/// A scrape's text: a 2xx answer in UTF-8.
async fn fetch(http: &HyperClient<HttpConnector, Empty<Bytes>>, url: &str) -> Result<String, String> {
    let (status, body) = request(http, url).await?;
    if !(200..300).contains(&status) {
        return Err(format!("{url}: HTTP {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name=\"a\"} 3
vllm:num_requests_waiting{model_name=\"b\"} 4
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine=\"0\"} 0.5
vllm:kv_cache_usage_perc{engine=\"1\"} 0.25
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name=\"a\"} 100
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le=\"0.1\"} 1
vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} 2
vllm:time_to_first_token_seconds_sum 0.5
vllm:time_to_first_token_seconds_count 2
# TYPE unrelated_metric gauge
unrelated_metric 9
";

    #[test]
    fn extract_sums_label_sets_and_averages_ratios() {
        let v = extract(TEXT).unwrap();
        assert_eq!(v["vllm:num_requests_waiting"], 7.0, "queue lengths add up across models");
        assert_eq!(v["vllm:kv_cache_usage_perc"], 0.375, "a usage ratio is averaged across engines");
        assert_eq!(v["vllm:generation_tokens_total"], 100.0);
        assert_eq!(v["vllm:time_to_first_token_seconds_sum"], 0.5);
        assert_eq!(v["vllm:time_to_first_token_seconds_count"], 2.0);
        assert!(!v.contains_key("unrelated_metric"));
        assert!(extract("this is { not prometheus").is_err());
    }

    #[test]
    fn accelerator_metrics_are_kept_per_gpu_and_over_all_gpus() {
        let text = "\
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-a\",Hostname=\"n1\"} 80
DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"GPU-b\",Hostname=\"n1\"} 40
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",Hostname=\"n1\"} 300.5
DCGM_FI_DEV_POWER_USAGE{gpu=\"1\",Hostname=\"n1\"} 200
";
        let v = extract(text).unwrap();
        assert_eq!(v["DCGM_FI_DEV_GPU_UTIL"], 60.0, "utilisation: the mean of the GPUs");
        assert_eq!(v["DCGM_FI_DEV_POWER_USAGE"], 500.5, "power: the sum");
        assert_eq!(v["DCGM_FI_DEV_GPU_UTIL{Hostname=\"n1\",gpu=\"1\"}"], 40.0);
        let samples = [Sample { t: 0.0, values: v.clone() }, Sample { t: 1.0, values: v }];
        let s = summarise(&samples, 0.0, 1.0, 0.1);
        assert_eq!(s["DCGM_FI_DEV_GPU_UTIL"].kind, "gauge");
        assert_eq!(s["DCGM_FI_DEV_POWER_USAGE{Hostname=\"n1\",gpu=\"0\"}"].mean, 300.5);
        assert!(is_accelerator("DCGM_FI_DEV_FB_USED") && !is_accelerator("DCGM_FI_DEV_FB_USEDX"));
    }

    fn sample(t: f64, kv: &[(&str, f64)]) -> Sample {
        Sample { t, values: kv.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect() }
    }

    #[test]
    fn summarise_gauges_counters_and_histograms_within_the_window() {
        let g = "vllm:num_requests_waiting";
        let c = "vllm:generation_tokens_total";
        let (hs, hc) = ("vllm:time_to_first_token_seconds_sum", "vllm:time_to_first_token_seconds_count");
        let samples = vec![
            sample(0.0, &[(g, 100.0), (c, 0.0), (hs, 0.0), (hc, 0.0)]), // before the window
            sample(5.0, &[(g, 2.0), (c, 1000.0), (hs, 1.0), (hc, 10.0)]),
            sample(10.0, &[(g, 4.0), (c, 2000.0), (hs, 3.0), (hc, 20.0)]),
            sample(15.0, &[(g, 6.0), (c, 5000.0), (hs, 3.0), (hc, 20.0)]),
        ];
        let s = summarise(&samples, 4.0, 15.0, 1.0);
        let gauge = &s[g];
        assert_eq!((gauge.kind.as_str(), gauge.mean, gauge.min, gauge.max, gauge.last), ("gauge", 4.0, 2.0, 6.0, 6.0));
        assert_eq!(gauge.samples, 3);
        let counter = &s[c];
        assert_eq!(counter.kind, "counter");
        assert_eq!(counter.mean, 400.0, "(5000 - 1000) / 10 s");
        assert_eq!((counter.min, counter.max, counter.last), (200.0, 600.0, 600.0));
        let h = &s["vllm:time_to_first_token_seconds"];
        assert_eq!(h.mean, 0.2, "2 s over 10 observations");
        assert_eq!(h.samples, 1, "the last interval saw no observation");
        assert!(!s.contains_key("vllm:num_requests_running"), "absent metrics are left out");
        assert!(summarise(&samples, 20.0, 30.0, 1.0).is_empty());
    }

    #[test]
    fn a_stage_with_only_its_own_start_and_end_scrapes_has_its_counters() {
        let c = "vllm:generation_tokens_total";
        let samples = [sample(0.0, &[(c, 100.0)]), sample(4.0, &[(c, 900.0)])];
        let s = summarise(&samples, 0.0, 4.0, 15.0);
        assert_eq!((s[c].mean, s[c].total, s[c].samples), (200.0, Some(800.0), 1));
    }

    #[test]
    fn counter_resets_count_as_increases_and_short_intervals_are_not_min_or_max() {
        let c = "vllm:generation_tokens_total";
        // A restart between 10 s and 20 s: 1000 → 50 → 550 is 50 + 500 tokens, not 0.
        let samples = vec![sample(0.0, &[(c, 1000.0)]), sample(10.0, &[(c, 50.0)]), sample(20.0, &[(c, 550.0)])];
        let s = &summarise(&samples, 0.0, 20.0, 1.0)[c];
        assert_eq!(s.mean, 27.5, "550 tokens / 20 s");
        assert_eq!((s.min, s.max), (5.0, 50.0));
        // A boundary scrape 10 ms after a periodic one: its 100 tokens / 0.01 s is no maximum.
        let samples = vec![sample(0.0, &[(c, 0.0)]), sample(5.0, &[(c, 500.0)]), sample(5.01, &[(c, 600.0)])];
        let s = &summarise(&samples, 0.0, 6.0, 1.25)[c];
        assert_eq!((s.min, s.max, s.samples), (100.0, 100.0, 1));
        assert!((s.mean - 600.0 / 5.01).abs() < 1e-9);
    }
}
