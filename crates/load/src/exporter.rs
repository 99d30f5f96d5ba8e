//! The load engine's own metrics, live (`LoadSpec.metrics_port`, `--metrics-port`): Prometheus
//! text at `/metrics` while a run goes on, so the client sits on the same dashboard as the server
//! it loads. Counters follow `summary.json`'s definitions (measured requests, warm-up apart), so
//! at the end of a run they add up to its figures: `completed` to the stages' `succeeded`,
//! `failed{kind}` to their `errors`, the histograms' counts to their distributions' counts, the
//! token counters to their totals.
//!
//! Names follow Prometheus' conventions: `inferbench_` prefix, base units (seconds) in the name,
//! `_total` on counters.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus::{
    Counter, Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::{
    host,
    recorder::{ErrorKind, NONE_US, Outcome},
    runner::Live,
};

/// Latency buckets, seconds: 1 ms to 10 min.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0,
    300.0, 600.0,
];
/// Inter-token and schedule-lag buckets, seconds: 10 µs to 10 s.
const SHORT_BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The registry and its metrics.
pub struct Exporter {
    registry: Registry,
    sent: IntCounter,
    in_flight: IntGauge,
    completed: IntCounter,
    failed: IntCounterVec,
    warmup: IntCounter,
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    lag: Histogram,
    input_tokens: IntCounter,
    output_tokens: IntCounter,
    stage_info: IntGaugeVec,
    stage_index: IntGauge,
    stages_planned: IntGauge,
    requested_rate: Gauge,
    users: IntGauge,
    achieved_rate: Gauge,
    cpu: Counter,
    delivered: IntGaugeVec,
    /// The running stage: its name, when it started, its live counters.
    current: Mutex<Option<(String, std::time::Instant, Arc<Live>)>>,
    /// The client's CPU seconds at the last scrape (the counter grows by the difference).
    cpu_seen: Mutex<f64>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

/// A running metrics endpoint: served until dropped.
pub struct Served {
    /// The metrics.
    pub exporter: Arc<Exporter>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a stage offers, for [`Exporter::stage_started`].
#[derive(Debug, Clone, Copy)]
pub struct StageLoad {
    /// Its requested arrival rate (0 closed loop).
    pub requested_rate: f64,
    /// Its users (0 open loop).
    pub users: u32,
}

fn hist(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid histogram")
}

impl Exporter {
    /// Every metric, registered.
    pub fn new() -> Arc<Exporter> {
        let registry = Registry::new();
        let e = Exporter {
            sent: IntCounter::new("inferbench_requests_sent_total", "Requests sent, warm-up included.").expect("ok"),
            in_flight: IntGauge::new("inferbench_requests_in_flight", "Requests sent and not yet answered.")
                .expect("ok"),
            completed: IntCounter::new(
                "inferbench_requests_completed_total",
                "Measured requests answered successfully (summary.json: counts.succeeded).",
            )
            .expect("ok"),
            failed: IntCounterVec::new(
                Opts::new(
                    "inferbench_requests_failed_total",
                    "Measured requests failed, by kind (summary.json: counts.errors).",
                ),
                &["kind"],
            )
            .expect("ok"),
            warmup: IntCounter::new(
                "inferbench_requests_warmup_total",
                "Requests finished in a warm-up, left out of the results.",
            )
            .expect("ok"),
            ttft: hist(
                "inferbench_time_to_first_token_seconds",
                "Time to first token of streamed successful requests.",
                LATENCY_BUCKETS,
            ),
            itl: hist(
                "inferbench_inter_token_latency_seconds",
                "Gap between output tokens (per token).",
                SHORT_BUCKETS,
            ),
            e2e: hist(
                "inferbench_request_latency_seconds",
                "End-to-end latency of successful requests.",
                LATENCY_BUCKETS,
            ),
            lag: hist(
                "inferbench_schedule_lag_seconds",
                "Send time minus intended time, every measured request.",
                SHORT_BUCKETS,
            ),
            input_tokens: IntCounter::new("inferbench_input_tokens_total", "Prompt tokens of successful requests.")
                .expect("ok"),
            output_tokens: IntCounter::new("inferbench_output_tokens_total", "Output tokens of successful requests.")
                .expect("ok"),
            stage_info: IntGaugeVec::new(
                Opts::new("inferbench_stage_info", "1 for the stage running now (label: its name in summary.json)."),
                &["stage"],
            )
            .expect("ok"),
            stage_index: IntGauge::new("inferbench_stage_index", "The running stage's place, from 1 (0: none yet).")
                .expect("ok"),
            stages_planned: IntGauge::new("inferbench_stages_planned", "Stages planned so far.").expect("ok"),
            requested_rate: Gauge::new(
                "inferbench_stage_requested_requests_per_second",
                "The running stage's requested arrival rate (0: closed loop).",
            )
            .expect("ok"),
            users: IntGauge::new("inferbench_stage_users", "The running stage's closed-loop users (0: open loop).")
                .expect("ok"),
            achieved_rate: Gauge::new(
                "inferbench_stage_achieved_requests_per_second",
                "Requests the running stage sent per second since it started.",
            )
            .expect("ok"),
            cpu: Counter::new("inferbench_client_cpu_seconds_total", "CPU time the client used (user + system).")
                .expect("ok"),
            delivered: IntGaugeVec::new(
                Opts::new(
                    "inferbench_stage_load_delivered",
                    "Per finished stage: 1 when the client delivered the configured load, 0 when not (its verdict).",
                ),
                &["stage"],
            )
            .expect("ok"),
            registry,
            current: Mutex::new(None),
            cpu_seen: Mutex::new(0.0),
        };
        let metrics: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(e.sent.clone()),
            Box::new(e.in_flight.clone()),
            Box::new(e.completed.clone()),
            Box::new(e.failed.clone()),
            Box::new(e.warmup.clone()),
            Box::new(e.ttft.clone()),
            Box::new(e.itl.clone()),
            Box::new(e.e2e.clone()),
            Box::new(e.lag.clone()),
            Box::new(e.input_tokens.clone()),
            Box::new(e.output_tokens.clone()),
            Box::new(e.stage_info.clone()),
            Box::new(e.stage_index.clone()),
            Box::new(e.stages_planned.clone()),
            Box::new(e.requested_rate.clone()),
            Box::new(e.users.clone()),
            Box::new(e.achieved_rate.clone()),
            Box::new(e.cpu.clone()),
            Box::new(e.delivered.clone()),
        ];
        for m in metrics {
            e.registry.register(m).expect("each name once");
        }
        // Every kind at 0 from the start: a dashboard's rate() sees the first error.
        for k in ErrorKind::ALL {
            e.failed.with_label_values(&[k.as_str()]);
        }
        Arc::new(e)
    }

    /// Listens on `addr` (before the run: a port in use is said at once); see [`Exporter::serve`].
    pub fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    }

    /// Serves `/metrics` on `listener` until the result is dropped (call in a runtime).
    pub fn serve(self: &Arc<Self>, listener: std::net::TcpListener) -> std::io::Result<Served> {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let me = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let me = me.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move { Ok::<_, std::convert::Infallible>(me.answer(req.uri().path())) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Served { exporter: self.clone(), task })
    }

    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        if path != "/metrics" {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found: the metrics are at /metrics\n")));
            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
            return r;
        }
        let mut r = Response::new(Full::new(Bytes::from(self.text())));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }

    /// The exposition text now (the rate and the CPU brought up to date first).
    pub fn text(&self) -> String {
        if let Some((_, started, live)) = self.current.lock().expect("exporter").as_ref() {
            let secs = started.elapsed().as_secs_f64();
            if secs > 0.0 {
                self.achieved_rate.set(live.sent.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs);
            }
        }
        let cpu = host::Sample::now().client_cpu_seconds();
        let mut seen = self.cpu_seen.lock().expect("exporter");
        if cpu > *seen {
            self.cpu.inc_by(cpu - *seen);
            *seen = cpu;
        }
        drop(seen);
        let mut buf = vec![];
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("the text encoder writes UTF-8")
    }

    /// Stage `name` (the `index`-th of `planned`) starts now, with its `live` counters.
    pub fn stage_started(&self, name: &str, index: usize, planned: usize, load: StageLoad, live: Arc<Live>) {
        self.stage_info.reset();
        self.stage_info.with_label_values(&[name]).set(1);
        self.stage_index.set(index as i64);
        self.stages_planned.set(planned as i64);
        self.requested_rate.set(if load.requested_rate.is_finite() { load.requested_rate } else { 0.0 });
        self.users.set(i64::from(load.users));
        self.achieved_rate.set(0.0);
        *self.current.lock().expect("exporter") = Some((name.to_owned(), std::time::Instant::now(), live));
    }

    /// Stage `name` ended; `delivered`: its verdict (None: nothing measured).
    pub fn stage_ended(&self, name: &str, delivered: Option<bool>) {
        if let Some(d) = delivered {
            self.delivered.with_label_values(&[name]).set(i64::from(d));
        }
    }

    /// A request is being sent.
    pub fn request_sent(&self) {
        self.sent.inc();
        self.in_flight.inc();
    }

    /// A request ended: `outcome`, measured unless `in_warmup` (as `summary.json` counts it).
    pub fn request_ended(&self, o: &Outcome, in_warmup: bool) {
        self.in_flight.dec();
        if in_warmup {
            self.warmup.inc();
            return;
        }
        let r = &o.record;
        self.lag.observe(r.sent_us.saturating_sub(r.intended_us) as f64 / 1e6);
        if let Some(e) = r.error {
            self.failed.with_label_values(&[e.as_str()]).inc();
            return;
        }
        self.completed.inc();
        self.input_tokens.inc_by(u64::from(r.input_tokens));
        self.output_tokens.inc_by(u64::from(r.output_tokens));
        self.e2e.observe(f64::from(r.end_us) / 1e6);
        if r.first_token_us != NONE_US && r.streamed {
            self.ttft.observe(f64::from(r.first_token_us) / 1e6);
        }
        if r.streamed {
            // Per token, as summary.json's itl_ms: a chunk of k tokens after a gap g is k gaps of g/k.
            let mut previous: Option<u32> = None;
            for &(at, tokens) in o.chunks.iter().filter(|c| c.1 > 0) {
                if let Some(p) = previous {
                    let gap = f64::from(at.saturating_sub(p)) / 1e6 / f64::from(tokens);
                    for _ in 0..tokens {
                        self.itl.observe(gap);
                    }
                } else {
                    for _ in 1..tokens {
                        self.itl.observe(0.0);
                    }
                }
                previous = Some(at);
            }
        }
    }

    /// Requests cut by a stop: failed as "cancelled" (as `summary.json` counts them).
    pub fn cancelled(&self, n: u64) {
        if n > 0 {
            self.failed.with_label_values(&["cancelled"]).inc_by(n);
            self.in_flight.sub(n as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_moves_the_counters_and_histograms_as_summary_json_counts_it() {
        let e = Exporter::new();
        e.stage_started("rate-4", 1, 2, StageLoad { requested_rate: 4.0, users: 0 }, Arc::default());
        let ok = crate::recorder::tests::example();
        for _ in 0..3 {
            e.request_sent();
        }
        e.request_ended(&ok, false);
        e.request_ended(&ok, true);
        let mut failed = ok.clone();
        failed.record.error = Some(crate::recorder::ErrorKind::Http5xx);
        e.request_ended(&failed, false);
        e.stage_ended("rate-4", Some(false));
        let t = e.text();
        for line in [
            "inferbench_requests_sent_total 3",
            "inferbench_requests_in_flight 0",
            "inferbench_requests_completed_total 1",
            "inferbench_requests_failed_total{kind=\"http_5xx\"} 1",
            "inferbench_requests_warmup_total 1",
            "inferbench_time_to_first_token_seconds_count 1",
            "inferbench_time_to_first_token_seconds_sum 0.1",
            "inferbench_request_latency_seconds_count 1",
            "inferbench_inter_token_latency_seconds_count 3",
            "inferbench_schedule_lag_seconds_count 2",
            "inferbench_output_tokens_total 4",
            "inferbench_stage_info{stage=\"rate-4\"} 1",
            "inferbench_stage_index 1",
            "inferbench_stage_requested_requests_per_second 4",
            "inferbench_stage_load_delivered{stage=\"rate-4\"} 0",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} in\n{t}");
        }
        assert!(t.contains("# TYPE inferbench_client_cpu_seconds_total counter"));
    }
}
