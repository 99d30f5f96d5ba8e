//! One load run from a `LoadSpec`: prepared (stages planned, tokenizer and dataset loaded — the
//! slow, fallible part, done before anything is sent), then run stage after stage with the
//! server's metrics scraped alongside, results written after every stage. `inferbench load` and
//! the local platform both run this, so a benchmark measured in-process and one measured in a pod
//! are the same code.

use crate::{FileError, LoadError};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use tokio_util::sync::CancellationToken;

use tokio::time::Instant;

use super::{
    agreement,
    client::Client,
    compat,
    datasets::{self, Sampled},
    exporter::{Exporter, Served, StageLoad},
    gate::{self, Gate, Start},
    output,
    records::Records,
    runner::{Live, Load, Share, StageSpec, run_stage},
    scrape::Scraper,
    shard, stages,
    tokenize::Tokenizer,
};
use inferbench_schema::{LoadSpec, RateList, Results, RunInfo, StageResult, Sweep, load_spec::Pattern, result_files};

/// Connections opened before the first stage (see [`Client::warm`]): as many as arrivals in
/// [`WARM_SPAN`] at the busiest planned rate (or one per closed-loop user), within these bounds.
/// An open loop that meets a short stall with too few connections opens one per queued arrival
/// at once, and the handshakes feed the backlog that caused them: measured at 24 000 req/s on
/// 2 cores, 64 pooled connections left stalls of 25–116 ms at the start of most runs (lag p99
/// 25–79 ms); 480 kept lag p99 under 1 ms.
const WARM_CONNECTIONS: (usize, usize) = (8, 512);
/// See [`WARM_CONNECTIONS`].
const WARM_SPAN: f64 = 0.02;

/// Connections worth opening before `stages` run.
fn warm_connections(stages: &[StageSpec]) -> usize {
    let want = |s: &StageSpec| -> f64 {
        match &s.load {
            // The cap bounds an open loop's requests in flight; closed loops have their users.
            Load::Open { requested_rate, .. } => {
                (requested_rate * WARM_SPAN).min(f64::from(s.max_concurrency.unwrap_or(u32::MAX)))
            }
            Load::Closed { users, .. } => f64::from(*users),
        }
    };
    let most = stages.iter().map(want).fold(0.0, f64::max);
    (most.ceil() as usize).clamp(WARM_CONNECTIONS.0, WARM_CONNECTIONS.1)
}

/// Files a process keeps for itself beside its connections (logs, results, the runtime's own).
const FILES_RESERVED: u64 = 64;

/// Why the streams a closed-loop stage holds open at once cannot all be had by one worker, if they cannot:
/// each is a connection, so a file of the process (its hard limit: the soft one is raised to it)
/// and a local port towards the one server address (the kernel's ephemeral range). Said before
/// the run, with what to do, instead of users that silently never run.
fn streams_beyond_limits(spec: &LoadSpec, stages: &[StageSpec]) -> Option<String> {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(u64::MAX);
    let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|x| x.parse::<u64>().ok());
            Some(it.next()??.abs_diff(it.next()??) + 1)
        })
        .unwrap_or(u64::MAX);
    streams_beyond(spec, stages, files, ports)
}

/// [`streams_beyond_limits`] with a process file limit of `files` and `ports` ephemeral ports.
fn streams_beyond(spec: &LoadSpec, stages: &[StageSpec], files: u64, ports: u64) -> Option<String> {
    let workers = spec.workers.unwrap_or(1).max(1);
    // Worker 0 has the largest share.
    let share = Share { index: 0, of: workers };
    // Closed-loop users each hold a stream; an open loop's cap is a bound, not a demand (its
    // streams are the rate × the latency, unknown before the run).
    let (most, what) = stages
        .iter()
        .filter_map(|s| match &s.load {
            Load::Closed { users, .. } => Some((u64::from(share.users(*users)), format!("{users} users"))),
            Load::Open { .. } => None,
        })
        .max_by_key(|(n, _)| *n)?;
    // Each source address has its own ports towards the server.
    let sources = spec.source_addresses.len().max(1) as u64;
    let (limit, why) = if files.saturating_sub(FILES_RESERVED) < ports.saturating_mul(sources) {
        (
            files.saturating_sub(FILES_RESERVED),
            format!("this process may open {files} files (its hard limit, `ulimit -Hn`)"),
        )
    } else if sources > 1 {
        (
            ports * sources,
            format!(
                "{sources} source addresses have {ports} local ports each towards the server (net.ipv4.ip_local_port_range)"
            ),
        )
    } else {
        (
            ports,
            format!(
                "one address has {ports} local ports towards the server (net.ipv4.ip_local_port_range; more with --source-addresses)"
            ),
        )
    };
    if most <= limit {
        return None;
    }
    let need = (most * u64::from(workers)).div_ceil(limit.max(1)).max(u64::from(workers) + 1);
    let per = if workers > 1 { format!(" ({most} for each of {workers} workers)") } else { String::new() };
    Some(format!(
        "{what} need up to {most} open connections{per}, but {why}: the rest would never run. \
         Share them among processes with --workers {need} (LoadSpec.workers), or ask for fewer"
    ))
}

/// A load run ready to start.
pub struct Session {
    spec: LoadSpec,
    stages: Vec<StageSpec>,
    client: Arc<Client>,
    prompts: Arc<Sampled>,
    /// Dataset entries that could not be read and were skipped, and the first of them.
    pub broken: (u64, Option<String>),
    /// Also write LPG's files here (`--save-json-results`: LPG's own place, the working folder).
    pub lpg_also_in: Option<PathBuf>,
    /// The stage running now, for a progress display.
    pub current: Arc<std::sync::Mutex<Option<Running>>>,
    /// The live metrics' address (`LoadSpec.metrics_port`), bound when prepared.
    pub metrics_addr: Option<std::net::SocketAddr>,
    metrics_listener: Option<std::net::TcpListener>,
    /// This process's share of the load, and the gate its stages start at (workers only).
    share: Share,
    gate: Option<Gate>,
}

/// The stage running now.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its name.
    pub name: String,
    /// Its live counters.
    pub live: Arc<Live>,
    /// When it started.
    pub started: std::time::Instant,
    /// How long it runs, when bounded by time.
    pub duration: Option<Duration>,
    /// Requests it makes, when bounded by count.
    pub requests: Option<u64>,
    /// Its position among the stages (1-based) and how many are planned.
    pub index: (usize, usize),
}

/// What a run produced.
pub struct Outcome {
    /// The summary (also written as `summary.json` when an output folder was given).
    pub results: Results,
    /// Requests measured, all stages.
    pub recorded: u64,
    /// Every planned stage ran to its end (no stop cut it short).
    pub complete: bool,
    /// The longest a scrape of the server's metrics took, in seconds (None: not scraped).
    pub slowest_scrape_seconds: Option<f64>,
    /// The live metrics endpoint, still served until this is dropped (a pod holding its results
    /// keeps it up, so the last scrape sees the run's end).
    pub metrics: Option<Served>,
}

impl Outcome {
    /// Requests sent and requests that succeeded, all stages.
    pub fn sent_ok(&self) -> (u64, u64) {
        self.results
            .stages
            .iter()
            .filter_map(|s| s.counts.as_ref())
            .fold((0, 0), |(a, b), c| (a + c.sent, b + c.succeeded))
    }
}

impl Session {
    /// Plans the stages and loads the tokenizer and the dataset. `spec.url` must be set.
    pub fn prepare(spec: LoadSpec, stop: &CancellationToken) -> Result<Session, LoadError> {
        let url = spec
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| LoadError::Spec("the load spec has no target URL".into()))?;
        let stages = stages::plan(&spec, stop)?;
        if let Some(why) = streams_beyond_limits(&spec, &stages) {
            return Err(LoadError::Spec(why));
        }
        let tokenizer = spec.tokenizer.as_deref().filter(|t| !t.is_empty()).map(Tokenizer::load).transpose()?;
        let mut dataset = spec.dataset.clone().unwrap_or_default();
        if dataset.source.is_none() {
            dataset.source = Some(inferbench_schema::dataset::Source::Synthetic(Default::default()));
        }
        let loaded = datasets::load(&dataset, tokenizer.as_ref(), spec.seed.unwrap_or(0))?;
        let broken = (loaded.broken, loaded.first_broken.clone());
        let timeout = Duration::from_secs_f64(spec.request_timeout_seconds.unwrap_or(600.0).max(0.001));
        let sources = spec
            .source_addresses
            .iter()
            .map(|a| {
                a.parse::<std::net::IpAddr>()
                    .map_err(|_| LoadError::Spec(format!("source_addresses: {a:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut client = Client::new(&url, spec.api(), timeout)?.with_source_addresses(sources);
        if let Some(t) = tokenizer {
            client = client.with_tokenizer(Arc::new(t));
        }
        let client = Arc::new(client);
        let prompts = Arc::new(Sampled::new(loaded, spec.models.len(), &spec.traffic_split, spec.seed.unwrap_or(0))?);
        let metrics_listener = match spec.metrics_port.filter(|p| *p > 0) {
            None => None,
            Some(port) => {
                let host = spec.metrics_address.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "127.0.0.1".into());
                let port =
                    u16::try_from(port).map_err(|_| LoadError::Spec(format!("metrics_port {port} is not a port")))?;
                let addr: std::net::IpAddr = host
                    .parse()
                    .map_err(|_| LoadError::Spec(format!("metrics_address {host:?} is not an IP address")))?;
                let at = std::net::SocketAddr::new(addr, port);
                Some(
                    Exporter::listen(at)
                        .map_err(|e| LoadError::Spec(format!("metrics_port: cannot listen on {at}: {e}")))?,
                )
            }
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        Ok(Session {
            spec,
            stages,
            client,
            prompts,
            broken,
            lpg_also_in: None,
            current: Arc::default(),
            metrics_addr,
            metrics_listener,
            share: Share::default(),
            gate: None,
        })
    }

    /// Makes this process worker `index` of the spec's `workers`: it sends its share of every
    /// stage (see [`Share`]), each stage started on the instant `gate` gives, and writes its
    /// shard of each stage ([`shard::SHARDS`]) for the merge. A concurrency cap is dealt out like
    /// users. Only worker 0 scrapes the server's metrics (one server, one series).
    pub fn as_worker(mut self, index: u32, gate: Gate) -> Result<Session, LoadError> {
        let of = self.spec.workers.unwrap_or(1).max(1);
        if index >= of {
            return Err(LoadError::Spec(format!("worker index {index} is not one of the spec's {of} workers")));
        }
        self.share = Share { index, of };
        for stage in &mut self.stages {
            stage.share = self.share;
            stage.max_concurrency = stage.max_concurrency.map(|c| self.share.users(c).max(1));
        }
        if index > 0 {
            self.spec.server_metrics.get_or_insert_with(Default::default).enabled = Some(false);
        }
        self.gate = Some(gate);
        Ok(self)
    }

    /// Stages planned.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// The API's name.
    pub fn api_name(&self) -> &'static str {
        self.client.api_name()
    }

    /// Runs every stage (until `stop`), calling `on_stage` after each one's results are written
    /// to `output_dir` (when given): a stage reported is a stage on disk.
    pub async fn run(
        mut self,
        output_dir: Option<&Path>,
        stop: &CancellationToken,
        on_stage: &mut (dyn FnMut(&StageResult) + Send),
    ) -> Result<Outcome, LoadError> {
        let url = self.spec.url.clone().unwrap_or_default();
        let mut results = Results {
            run: Some(RunInfo {
                tool_version: env!("CARGO_PKG_VERSION").into(),
                url: url.clone(),
                api: self.spec.api().as_str_name().into(),
                models: self.spec.models.clone(),
                started_at: inferbench_schema::clock::now(),
                load_spec: format!("{}", prost_reflect::ReflectMessage::transcode_to_dynamic(&self.spec)),
                metadata: self.spec.metadata.iter().map(|m| (m.key().to_owned(), m.value().to_owned())).collect(),
            }),
            stages: vec![],
        };
        let metrics = self.spec.server_metrics.clone().unwrap_or_default();
        let scraper = metrics.enabled.unwrap_or(true).then(|| {
            let murl = metrics
                .url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| format!("{}/metrics", url.trim_end_matches('/')));
            let interval = Duration::from_secs_f64(metrics.interval_seconds.unwrap_or(5.0).clamp(0.1, 3600.0));
            Scraper::start(&murl, &metrics.accelerator_urls, interval)
        });
        let exporter = match self.metrics_listener.take() {
            None => None,
            Some(l) => Some(Exporter::new().serve(l).map_err(|e| LoadError::Spec(format!("metrics_port: {e}")))?),
        };
        let records_wanted = self.spec.outputs.as_ref().and_then(|o| o.per_request_records).unwrap_or(true);
        let mut records = vec![];
        let mut first = 0;
        let mut recorded = 0;
        let mut shards: Vec<shard::StageShard> = vec![];
        let mut queue: std::collections::VecDeque<StageSpec> = std::mem::take(&mut self.stages).into();
        tokio::select! {
            () = self.client.warm(warm_connections(queue.make_contiguous())) => {}
            () = stop.cancelled() => {}
        }
        while let Some(stage) = queue.pop_front() {
            if stop.is_cancelled() {
                break;
            }
            let probe_stop = (stage.name == stages::SWEEP_PROBE).then(|| stage.stop.clone());
            let mut stage = stage;
            stage.share = self.share;
            let mut start_given_ns = None;
            if let Some(gate) = &self.gate {
                let answer = gate
                    .ready(results.stages.len() + 1, stop)
                    .await
                    .map_err(|e| LoadError::Spec(format!("the start gate: {e}")))?;
                match answer {
                    Start::Stop => break,
                    Start::At(ns) => {
                        start_given_ns = Some(ns);
                        stage.start_at = Some(gate::instant_of(ns));
                    }
                }
            }
            if let Some(e) = exporter.as_ref().map(|s| &s.exporter) {
                let load = match &stage.load {
                    Load::Open { requested_rate, .. } => StageLoad { requested_rate: *requested_rate, users: 0 },
                    Load::Closed { users, .. } => StageLoad { requested_rate: 0.0, users: *users },
                };
                let index = results.stages.len() + 1;
                e.stage_started(&stage.name, index, index + queue.len(), load, stage.live.clone());
                stage.exporter = Some(e.clone());
            }
            *self.current.lock().expect("current stage") = Some(Running {
                name: stage.name.clone(),
                live: stage.live.clone(),
                started: std::time::Instant::now(),
                duration: stage.duration,
                requests: self.spec.num_prompts.filter(|n| *n > 0),
                index: (results.stages.len() + 1, results.stages.len() + 1 + queue.len()),
            });
            let name = stage.name.clone();
            let warmup = stage.warmup;
            // Server metrics are summarised over what the client measures: after the warm-up.
            let began = Instant::now() + stage.warmup;
            if let Some(s) = &scraper {
                s.scrape_now().await;
            }
            let started = Instant::now();
            let out = run_stage(self.client.clone(), self.prompts.clone(), stage, first).await;
            if let Some(gate) = &self.gate {
                // The server's end-of-stage counters once every worker's answers are in.
                gate.done(results.stages.len() + 1, stop)
                    .await
                    .map_err(|e| LoadError::Spec(format!("the start gate: {e}")))?;
            }
            if let Some(s) = &scraper {
                s.scrape_now().await;
            }
            first += out.requests_made;
            recorded += out.records.len() as u64;
            if self.gate.is_some() {
                shards.push(shard::StageShard {
                    name: name.clone(),
                    worker: self.share.index,
                    workers: self.share.of,
                    start_given_ns,
                    start_offset_us: out.began_late_us,
                    planned_arrivals: out.planned_arrivals,
                    warmup: out.warmup,
                    aggregate: shard::AggregateState::of(&out.aggregate),
                });
            }
            let mut result = out.result;
            if let Some(s) = &scraper {
                result.server_metrics = s.summarise(&name, started, began, Instant::now()).into_iter().collect();
                let allowance = metrics.agreement_allowance_ms.unwrap_or(agreement::DEFAULT_ALLOWANCE_MS);
                result.server_agreement = agreement::agreement(&result, warmup.is_zero(), allowance);
            }
            if let Some(e) = exporter.as_ref().map(|s| &s.exporter) {
                e.stage_ended(&name, result.verdict.as_ref().map(|v| v.delivered));
            }
            results.stages.push(result);
            records.push((name, if records_wanted { out.records } else { Records::new() }));
            // Written after every stage, so a crash later keeps the stages already measured.
            output::off_runtime(|| -> Result<(), FileError> {
                if let Some(dir) = output_dir {
                    output::write(dir, &results, &records)?;
                    if let Some(s) = &scraper {
                        result_files::write_json(dir, result_files::SERVER_METRICS, &s.scraped())?;
                    }
                    if !shards.is_empty() {
                        result_files::write_json(dir, shard::SHARDS, &shards)?;
                    }
                }
                // A worker's files are its share: the merge writes the peers' files of the whole.
                if self.gate.is_some() {
                    return Ok(());
                }
                compat::write(&self.spec, output_dir, self.lpg_also_in.as_deref(), &results, results.stages.len() - 1)
            })?;
            on_stage(results.stages.last().expect("just pushed"));
            if let (Some(stop), Some(Pattern::Sweep(sw))) = (probe_stop, &self.spec.pattern) {
                queue.extend(self.sweep_stages(sw, results.stages.last().expect("just pushed"), &stop)?);
            }
        }
        let complete = queue.is_empty() && !stop.is_cancelled();
        if let Some(gate) = &self.gate {
            gate.over().map_err(|e| LoadError::Spec(format!("the start gate: {e}")))?;
        }
        let slowest_scrape_seconds = scraper.as_ref().map(|s| s.scraped().slowest_scrape_seconds);
        Ok(Outcome { results, recorded, complete, slowest_scrape_seconds, metrics: exporter })
    }

    /// The rate stages of a sweep, from its probe's measured throughput.
    fn sweep_stages(
        &self,
        sw: &Sweep,
        probe: &StageResult,
        stop: &CancellationToken,
    ) -> Result<Vec<StageSpec>, LoadError> {
        let saturation = probe.throughput.map_or(0.0, |t| t.requests_per_second);
        let rates = stages::sweep_rates(sw, saturation);
        if rates.is_empty() {
            return Err(LoadError::Spec(format!(
                "the sweep's probe measured no successful requests ({} sent): no rates to run",
                probe.counts.as_ref().map_or(0, |c| c.sent)
            )));
        }
        let spec = LoadSpec { pattern: Some(Pattern::Rates(RateList { request_rates: rates })), ..self.spec.clone() };
        stages::plan(&spec, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_schema::{ClosedLoop, RateList};

    fn planned(pattern: Pattern, cap: Option<u32>) -> Vec<StageSpec> {
        let spec = LoadSpec {
            pattern: Some(pattern),
            models: vec!["m".into()],
            duration_seconds: Some(10.0),
            max_concurrency: cap,
            num_prompts: Some(1000),
            ..Default::default()
        };
        stages::plan(&spec, &Arc::default()).unwrap()
    }

    #[test]
    fn users_beyond_the_ports_or_files_are_refused_saying_what_to_do() {
        let spec = |users: u32, workers: u32, sources: &[&str]| LoadSpec {
            pattern: Some(Pattern::Concurrency(ClosedLoop { users: vec![users] })),
            models: vec!["m".into()],
            duration_seconds: Some(10.0),
            workers: Some(workers),
            source_addresses: sources.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let check = |s: LoadSpec, files| streams_beyond(&s, &stages::plan(&s, &Arc::default()).unwrap(), files, 28_232);
        let e = check(spec(30_000, 1, &[]), 1 << 20).unwrap();
        assert!(
            e.starts_with("30000 users need up to 30000 open connections, but one address has 28232 local ports"),
            "{e}"
        );
        assert!(e.contains("more with --source-addresses") && e.contains("--workers 2"), "{e}");
        assert_eq!(check(spec(30_000, 1, &["127.0.0.2", "127.0.0.3"]), 1 << 20), None, "two addresses have the ports");
        let e = check(spec(30_000, 1, &["127.0.0.2", "127.0.0.3"]), 20_000).unwrap();
        assert!(e.contains("this process may open 20000 files") && e.contains("--workers 2"), "{e}");
        assert_eq!(check(spec(30_000, 2, &[]), 20_000), None, "15 000 each");
        let e = check(spec(100_000, 4, &[]), 20_000).unwrap();
        assert!(e.contains("(25000 for each of 4 workers)") && e.contains("--workers 6"), "{e}");
    }

    #[test]
    fn connections_are_warmed_for_the_busiest_stage_within_bounds() {
        let rates = |r: Vec<f64>, cap| planned(Pattern::Rates(RateList { request_rates: r }), cap);
        assert_eq!(warm_connections(&rates(vec![2.0, 10.0], None)), 8, "slow loads: the floor");
        assert_eq!(warm_connections(&rates(vec![1000.0, 12_000.0], None)), 240, "20 ms of the busiest rate");
        assert_eq!(warm_connections(&rates(vec![100_000.0], None)), 512, "the ceiling");
        assert_eq!(warm_connections(&rates(vec![f64::INFINITY], Some(100))), 100, "never past the cap");
        let closed = planned(Pattern::Concurrency(ClosedLoop { users: vec![4, 50] }), None);
        assert_eq!(warm_connections(&closed), 50, "one per user");
    }
}
