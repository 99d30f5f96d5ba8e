//! `inferbench load`: a `LoadSpec` (from `--spec`, then flags that mirror the
//! latency-profile-generator's) → stages → results. In a benchmark pod it runs
//! `load --spec /etc/inferbench/load.pbtxt --output-dir /results` with the target in
//! `INFERBENCH_URL`.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};
use tokio_util::sync::CancellationToken;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::{
    load::session::Session,
    schema::{
        self, Api, Dataset, LoadSpec, RateList, Synthetic, dataset, handoff,
        load_spec::Pattern,
        text::{SourceFile, parse},
    },
};

/// Arguments of `inferbench load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// A LoadSpec in text format; the flags below override its fields.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Target base URL (also INFERBENCH_URL, which the benchmark pod gets from the platform).
    #[arg(long, env = "INFERBENCH_URL")]
    pub url: Option<String>,
    /// Target host, with --port (LPG's way of giving the target).
    #[arg(long)]
    pub host: Option<String>,
    /// Target port.
    #[arg(long)]
    pub port: Option<u16>,
    /// API: openai-completions, openai-chat, tgi, triton, jetstream.
    #[arg(long)]
    pub api: Option<String>,
    /// LPG's backend names: vllm, sglang, tgi, tensorrt_llm_triton, jetstream (and ours).
    #[arg(long)]
    pub backend: Option<String>,
    /// Models to send to, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Share of requests per model, comma-separated (default: equal).
    #[arg(long, value_delimiter = ',')]
    pub traffic_split: Vec<f64>,
    /// Request rates (req/s, comma-separated or repeated; "inf": all at once), one stage each.
    #[arg(long, value_delimiter = ',')]
    pub request_rate: Vec<f64>,
    /// Closed loop: virtual users (comma-separated), one stage each.
    #[arg(long, value_delimiter = ',')]
    pub users: Vec<u32>,
    /// Requests per stage.
    #[arg(long)]
    pub num_prompts: Option<u64>,
    /// Seconds per stage.
    #[arg(long, alias = "duration-seconds")]
    pub benchmark_time_seconds: Option<f64>,
    /// Seconds at the start of each stage left out of the results.
    #[arg(long)]
    pub warmup_seconds: Option<f64>,
    /// Most requests in flight (arrivals beyond wait, and are counted).
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Poll between arrivals under 200 µs apart instead of sleeping (lower lag above 5 000 req/s;
    /// keeps a core busy: only on cores of the client's own, with no CPU limit).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub busy_poll: Option<bool>,
    /// Stream answers (SSE); `--stream-request false` to not.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub stream_request: Option<bool>,
    /// Seconds before a request is given up (a timeout error).
    #[arg(long)]
    pub request_timeout: Option<f64>,
    /// Dataset file: ShareGPT JSON, or JSON Lines `{prompt, output_len}` (`.jsonl`). Default:
    /// synthetic prompts of 256 tokens asking for 128.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Drop prompts longer than this (tokens).
    #[arg(long)]
    pub max_input_length: Option<u32>,
    /// Drop entries whose output is longer than this (tokens).
    #[arg(long)]
    pub max_output_length: Option<u32>,
    /// A local tokenizer.json (or a folder holding one) for token counts.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Ask for exactly the requested output length (`--ignore-eos false` to not).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub ignore_eos: Option<bool>,
    /// Seed of arrivals and sampling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write summary.json and requests.jsonl.zst here.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// After the run, seal --output-dir (SHA256SUMS) and keep running until `inferbench results
    /// release DIR` (or --hold-timeout): how the kube platform fetches results from the load pod
    /// before its emptyDir goes away.
    #[arg(long)]
    pub hold_results: bool,
    #[command(flatten)]
    pub history: super::history_cmd::HistoryArg,
    /// How long --hold-results waits for the fetch, in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub hold_timeout: u64,
    /// Write LPG's result file per rate, where LPG puts it (the working folder), named
    /// `{file-prefix}-{backend}-{rate}qps-{date}-{model}.json` (also under --output-dir/lpg/).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub save_json_results: Option<bool>,
    /// LPG's file prefix (with --save-json-results; default "benchmark-catalog").
    #[arg(long)]
    pub file_prefix: Option<String>,
    /// Scrape the server's /metrics during the run (default: true; `false` turns it off).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub scrape_server_metrics: Option<bool>,
    /// Accelerator metrics (DCGM exporters' /metrics URLs, comma-separated) scraped beside the
    /// server's and summarised per stage and per GPU. In the load pod the platform passes those it
    /// found on the model server's nodes.
    #[arg(long, env = "INFERBENCH_ACCELERATOR_URLS", value_delimiter = ',', value_name = "URLS")]
    pub accelerator_urls: Vec<String>,
    /// Serve the load engine's own metrics live (Prometheus text at /metrics) on this port while
    /// it runs: requests, errors, latency histograms, tokens, the current stage, client CPU, each
    /// stage's load verdict. With --hold-results, until the results are fetched.
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u32>,
    /// The address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 in a pod).
    #[arg(long, value_name = "IP")]
    pub metrics_address: Option<String>,
    /// After the run, keep serving --metrics-port this long (a Prometheus scraping every 15 s
    /// then sees the run's end); Ctrl-C ends it early. With --hold-results the metrics are served
    /// until the results are fetched anyway.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub metrics_linger: f64,
    /// Local IP addresses to connect from, in turn (comma-separated; e.g. 127.0.0.2,127.0.0.3
    /// towards a server on this machine): each has its own ~28 000 ports towards the server.
    #[arg(long, value_delimiter = ',', value_name = "IPS")]
    pub source_addresses: Vec<String>,
    /// Load processes sharing the load (1…1024): arrival k goes to worker k mod N, closed-loop
    /// users are dealt out; each stage starts on one instant and the workers' results are merged
    /// exactly into one (a `workers` table per stage). For more streams than one process's files
    /// or ports allow, or more cores.
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Run as worker K of the spec's workers (how `--workers` starts its processes).
    #[arg(long, hide = true, requires = "worker_gate")]
    pub worker_index: Option<u32>,
    /// The folder of this worker's start gate (see --worker-index).
    #[arg(long, hide = true, value_name = "DIR")]
    pub worker_gate: Option<PathBuf>,
    /// LPG's extra metadata: a JSON object whose entries are added to the results' metadata (and
    /// LPG's `dimensions`).
    #[arg(long)]
    pub additional_metadata_metrics_to_save: Option<String>,
}

/// Overrides `field` when the flag was given.
fn set<T>(field: &mut Option<T>, flag: Option<T>) {
    if flag.is_some() {
        *field = flag;
    }
}

/// An API from our names or LPG's `--backend` values.
fn api_named(name: &str) -> Option<Api> {
    Some(match name.to_ascii_lowercase().replace('-', "_").as_str() {
        "openai_completions" | "completions" | "vllm" | "sglang" | "openai" => Api::OpenaiCompletions,
        "openai_chat" | "openai_chat_completions" | "chat" => Api::OpenaiChatCompletions,
        "tgi" | "tgi_generate" => Api::TgiGenerate,
        "triton" | "tensorrt_llm_triton" | "triton_generate" => Api::TritonGenerate,
        "jetstream" | "jetstream_generate" => Api::JetstreamGenerate,
        _ => return None,
    })
}

impl LoadArgs {
    /// The LoadSpec these arguments describe.
    pub fn to_spec(&self) -> anyhow::Result<LoadSpec> {
        let mut spec = match &self.spec {
            Some(path) => {
                let file = SourceFile::read(path).map_err(|d| anyhow::anyhow!("{d}"))?;
                let msg = parse::parse(&file, schema::message("LoadSpec")).map_err(|d| anyhow::anyhow!("{d}"))?;
                msg.transcode_to::<LoadSpec>().with_context(|| format!("{}", path.display()))?
            }
            None => LoadSpec::default(),
        };
        if let Some(u) = &self.url {
            spec.url = Some(u.clone());
        } else if let Some(h) = &self.host {
            spec.url = Some(format!("http://{h}:{}", self.port.unwrap_or(8000)));
        }
        if let Some(a) = self.api.as_ref().or(self.backend.as_ref()) {
            spec.set_api(api_named(a).with_context(|| {
                format!("unknown API/backend \"{a}\": use openai-completions, openai-chat, tgi, triton, jetstream (or LPG's vllm, sglang, tensorrt_llm_triton)")
            })?);
        }
        if !self.models.is_empty() {
            spec.models = self.models.clone();
        }
        if !self.traffic_split.is_empty() {
            spec.traffic_split = self.traffic_split.clone();
        }
        if !self.request_rate.is_empty() {
            spec.pattern = Some(Pattern::Rates(RateList { request_rates: self.request_rate.clone() }));
        } else if !self.users.is_empty() {
            spec.pattern = Some(Pattern::Concurrency(schema::ClosedLoop { users: self.users.clone() }));
        }
        if self.save_json_results == Some(true) {
            spec.outputs.get_or_insert_with(Default::default).lpg_json = Some(true);
        }
        if let Some(p) = &self.file_prefix {
            spec.outputs.get_or_insert_with(Default::default).file_prefix = Some(p.clone());
        }
        if let Some(extra) = &self.additional_metadata_metrics_to_save {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(extra).with_context(|| {
                format!("--additional-metadata-metrics-to-save: expected a JSON object such as '{{\"key\": \"value\"}}', got {extra:?}")
            })?;
            for (k, v) in map {
                let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                spec.metadata.push(schema::Metadata { key: Some(k), value: Some(value) });
            }
        }
        if let Some(on) = self.scrape_server_metrics {
            spec.server_metrics.get_or_insert_with(Default::default).enabled = Some(on);
        }
        let accelerators: Vec<String> = self.accelerator_urls.iter().filter(|u| !u.is_empty()).cloned().collect();
        if !accelerators.is_empty() {
            spec.server_metrics.get_or_insert_with(Default::default).accelerator_urls.extend(accelerators);
        }
        set(&mut spec.metrics_port, self.metrics_port);
        set(&mut spec.metrics_address, self.metrics_address.clone());
        set(&mut spec.num_prompts, self.num_prompts);
        set(&mut spec.duration_seconds, self.benchmark_time_seconds);
        set(&mut spec.warmup_seconds, self.warmup_seconds);
        set(&mut spec.max_concurrency, self.max_concurrency);
        set(&mut spec.busy_poll, self.busy_poll);
        set(&mut spec.streaming, self.stream_request);
        set(&mut spec.request_timeout_seconds, self.request_timeout);
        set(&mut spec.ignore_eos, self.ignore_eos);
        set(&mut spec.seed, self.seed);
        set(&mut spec.workers, self.workers);
        if !self.source_addresses.is_empty() {
            spec.source_addresses.clone_from(&self.source_addresses);
        }
        if let Some(t) = &self.tokenizer {
            spec.tokenizer = Some(t.clone());
        }
        let ds = spec.dataset.get_or_insert_with(Dataset::default);
        if let Some(d) = &self.dataset {
            ds.source = Some(if d.ends_with(".jsonl") {
                dataset::Source::Jsonl(d.clone())
            } else {
                dataset::Source::Sharegpt(d.clone())
            });
        }
        if ds.source.is_none() {
            ds.source = Some(dataset::Source::Synthetic(Synthetic::default()));
        }
        set(&mut ds.max_input_length, self.max_input_length);
        set(&mut ds.max_output_length, self.max_output_length);
        if spec.duration_seconds.is_none() && spec.num_prompts.is_none() {
            spec.duration_seconds = Some(60.0);
        }
        if spec.url.as_deref().unwrap_or_default().is_empty() {
            bail!("no target: give --url (or --host/--port, or INFERBENCH_URL, or url in --spec)");
        }
        Ok(spec)
    }
}

/// Runs `inferbench load`.
pub fn load(args: &LoadArgs) -> super::CommandResult {
    Ok(run(args)?)
}

fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let spec = args.to_spec()?;
    crate::load::stages::check_workers(&spec).map_err(anyhow::Error::msg)?;
    if spec.workers.unwrap_or(1) > 1 && args.worker_index.is_none() {
        return run_workers(args, &spec);
    }
    let stop = CancellationToken::new();
    let mut session = Session::prepare(spec.clone(), &stop).map_err(anyhow::Error::msg)?;
    let mut gate = None;
    if let (Some(k), Some(dir)) = (args.worker_index, &args.worker_gate) {
        let g = crate::load::gate::Gate::new(dir).with_context(|| format!("the start gate {}", dir.display()))?;
        gate = Some(g.clone());
        session = session.as_worker(k, g).map_err(anyhow::Error::msg)?;
    }
    if args.save_json_results == Some(true) {
        session.lpg_also_in = Some(std::env::current_dir()?);
    }
    if session.broken.0 > 0 {
        eprintln!(
            "inferbench load: {} dataset entries could not be read and were skipped (first: {})",
            session.broken.0,
            session.broken.1.as_deref().unwrap_or("?")
        );
    }
    let url = spec.url.clone().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    eprintln!("inferbench load: {} stage(s) against {url} ({})", session.stage_count(), session.api_name());
    let session_metrics = session.metrics_addr;
    if let Some(at) = session_metrics {
        eprintln!("inferbench load: live metrics at http://{at}/metrics");
    }
    // Ctrl-C / SIGTERM: stop sending, let requests in flight finish (a short grace), write what
    // was measured, exit 130. A second one exits at once (nothing is written then: every result
    // file is written whole or not at all).
    stop_on_signal(
        &rt,
        &stop,
        format!(
            "inferbench load: stopping: no new requests; those in flight get up to {} s to finish, then what was measured is written (Ctrl-C again exits at once, writing nothing)",
            crate::load::runner::STOP_GRACE.as_secs()
        ),
    )?;
    if let Some(g) = gate {
        // A worker in a pod is stopped through its gate (the platform cannot signal it).
        rt.spawn(g.watch_stop(stop.clone()));
    }
    let out = rt.block_on(async {
        let bar = super::progress::StageBar::start(session.current.clone());
        let in_pod = args.hold_results;
        session
            .run(args.output_dir.as_deref(), &stop, &mut |s| {
                bar.suspend(|| {
                    print_stage(s);
                    if in_pod {
                        // For the platform following this pod's log: the stage as data.
                        let _ = writeln!(std::io::stdout(), "{}", handoff::stage_log_line(s));
                    }
                })
            })
            .await
    });
    let out = out.map_err(anyhow::Error::msg)?;
    let rows: Vec<super::progress::Row<'_>> =
        out.results.stages.iter().map(|s| super::progress::Row { benchmark: "", stage: Ok(s) }).collect();
    let _ = writeln!(std::io::stdout(), "{}", super::progress::summary_table(&rows));
    if let Some(dir) = &args.output_dir {
        eprintln!("inferbench load: wrote {}/summary.json, requests.jsonl.zst and server_metrics.json", dir.display());
    }
    if let Some(slow) = out.slowest_scrape_seconds.filter(|s| *s >= SLOW_SCRAPE_SECONDS) {
        eprintln!(
            "inferbench load: a scrape of the server's /metrics took {:.0} ms: a server that renders its metrics where it streams its answers (vLLM's API server) stalls them meanwhile; if latencies look high, scrape less often (server_metrics {{ interval_seconds: … }})",
            slow * 1e3
        );
    }
    let (sent, ok) = out.sent_ok();
    // A worker's part is not a run: the merge of all of them is recorded (by `--workers`).
    let whole_run = !args.hold_results && args.worker_index.is_none();
    if let Some(dir) = args.output_dir.as_deref().filter(|_| whole_run && sent > 0) {
        // Beside the output folder, as a run's history is beside its run folder.
        let beside = dir.parent().unwrap_or(Path::new(""));
        super::history_cmd::record_after(&args.history, beside, dir, "inferbench load");
    }
    if let Some(dir) = args.output_dir.as_deref().filter(|_| args.hold_results && !stop.is_cancelled()) {
        hold(dir, args.hold_timeout, &stop)?;
    }
    let interrupted = stop.is_cancelled();
    if let Some(at) = session_metrics.filter(|_| !interrupted && !args.hold_results && args.metrics_linger > 0.0) {
        eprintln!(
            "inferbench load: serving the final metrics at http://{at}/metrics for {} s (Ctrl-C ends it)",
            args.metrics_linger
        );
        let linger = std::time::Duration::from_secs_f64(args.metrics_linger.min(86_400.0));
        rt.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = stop.cancelled() => {}
            }
        });
    }
    drop(out);
    if interrupted {
        return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
    }
    if sent > 0 && ok == 0 {
        eprintln!("inferbench load: every request failed (see the error counts above)");
        return Ok(ExitCode::from(super::EXIT_INPUT));
    }
    Ok(ExitCode::SUCCESS)
}

/// On Ctrl-C / SIGTERM, cancels `stop` and says `said`; a second one exits at once (130).
fn stop_on_signal(rt: &tokio::runtime::Runtime, stop: &CancellationToken, said: String) -> anyhow::Result<()> {
    let stop = stop.clone();
    let _guard = rt.enter();
    let mut signals = super::Signals::new().context("cannot listen for Ctrl-C / SIGTERM")?;
    rt.spawn(async move {
        signals.next().await;
        // Stop first, then say so, and never panic on a closed stderr (`2>&1 | head`): eprintln!
        // would, and the stop would never happen.
        stop.cancel();
        let _ = writeln!(std::io::stderr(), "{said}");
        signals.next().await;
        let _ = writeln!(std::io::stderr(), "inferbench load: exiting now; no results written");
        std::process::exit(i32::from(super::EXIT_INTERRUPTED));
    });
    Ok(())
}

/// `--workers N`: N processes of this program, merged (see `platform::local::workers`).
fn run_workers(args: &LoadArgs, spec: &LoadSpec) -> anyhow::Result<ExitCode> {
    let n = spec.workers.unwrap_or(1);
    // Checked here, before any worker starts: a spec that cannot run fails once, not N times.
    Session::prepare(spec.clone(), &CancellationToken::new()).map_err(anyhow::Error::msg)?;
    // Without --output-dir the workers still write (the merge reads their files): a folder of
    // this process's own, removed at the end.
    let temporary = args
        .output_dir
        .is_none()
        .then(|| std::env::temp_dir().join(format!("inferbench-workers-{}", std::process::id())));
    let out = args.output_dir.clone().or(temporary.clone()).expect("one of them");
    let stop = CancellationToken::new();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    eprintln!(
        "inferbench load: {n} workers against {} (each worker's output in {}/workers/)",
        spec.url.as_deref().unwrap_or_default(),
        out.display()
    );
    stop_on_signal(
        &rt,
        &stop,
        "inferbench load: stopping the workers: each writes what it measured, then they are merged (Ctrl-C again exits at once)".into(),
    )?;
    let merged = rt
        .block_on(crate::platform::local::workers::run(spec, &out, &stop, &mut |s| print_stage(s)))
        .map_err(anyhow::Error::msg)?;
    let rows: Vec<super::progress::Row<'_>> =
        merged.results.stages.iter().map(|s| super::progress::Row { benchmark: "", stage: Ok(s) }).collect();
    let _ = writeln!(std::io::stdout(), "{}", super::progress::summary_table(&rows));
    for s in &merged.results.stages {
        let _ = writeln!(std::io::stdout(), "{}", crate::report::table::workers_table(s));
    }
    if args.save_json_results == Some(true) {
        // LPG's own place (the working folder) gets the merge's LPG files, as one process's run does.
        let lpg = out.join("lpg");
        for entry in std::fs::read_dir(&lpg).with_context(|| format!("{}", lpg.display()))? {
            let from = entry?.path();
            let to = std::env::current_dir()?.join(from.file_name().unwrap_or_default());
            let bytes = std::fs::read(&from).with_context(|| format!("{}", from.display()))?;
            crate::schema::result_files::atomic_write(&to, &bytes)?;
        }
    }
    if let Some(t) = &temporary {
        let _ = std::fs::remove_dir_all(t);
    }
    let (sent, ok) = merged
        .results
        .stages
        .iter()
        .filter_map(|s| s.counts.as_ref())
        .fold((0, 0), |(a, b), c| (a + c.sent, b + c.succeeded));
    if let Some(dir) = args.output_dir.as_deref().filter(|_| sent > 0) {
        super::history_cmd::record_after(&args.history, dir.parent().unwrap_or(Path::new("")), dir, "inferbench load");
    }
    if args.output_dir.is_some() {
        eprintln!("inferbench load: merged {n} workers into {}/summary.json and requests.jsonl.zst", out.display());
    }
    if stop.is_cancelled() {
        return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
    }
    if let Some(p) = merged.results.stages.iter().find_map(|s| s.partial.as_ref()) {
        eprintln!("inferbench load: {}", p.reason);
        return Ok(ExitCode::FAILURE);
    }
    if sent > 0 && ok == 0 {
        eprintln!("inferbench load: every request failed (see the error counts above)");
        return Ok(ExitCode::from(super::EXIT_INPUT));
    }
    if !merged.complete {
        eprintln!("inferbench load: a worker did not end well: see {}/workers/*.log", out.display());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A scrape this long is worth a warning (see `Scraped::slowest_scrape_seconds`).
const SLOW_SCRAPE_SECONDS: f64 = 0.1;

/// Seals the results and waits for `inferbench results release` (see [`handoff`]).
fn hold(dir: &std::path::Path, timeout: u64, stop: &CancellationToken) -> anyhow::Result<()> {
    let n = handoff::seal(dir).map_err(|e| anyhow::anyhow!("sealing {}: {e}", dir.display()))?;
    eprintln!(
        "inferbench load: {n} result files sealed in {}; holding until they are fetched (at most {timeout} s)",
        dir.display()
    );
    if handoff::hold(dir, std::time::Duration::from_secs(timeout), &|| stop.is_cancelled()) {
        eprintln!("inferbench load: results fetched; exiting");
    } else {
        eprintln!("inferbench load: nobody fetched the results; exiting");
    }
    Ok(())
}

/// One line per stage: what was offered, what came back.
pub fn print_stage(s: &schema::StageResult) {
    // A closed stdout (`| head`) must not kill a run that still has results to write.
    let _ = writeln!(std::io::stdout(), "{}", stage_line(s));
}

/// The text of [`print_stage`].
pub fn stage_line(s: &schema::StageResult) -> String {
    use crate::report::table::num;
    let c = s.counts.clone().unwrap_or_default();
    let o = s.offered.clone().unwrap_or_default();
    // What was not measured reads "-" (nothing succeeded; no TTFT or TPOT without streaming).
    let pick = |d: Option<schema::Distribution>, f: fn(&schema::Distribution) -> f64| {
        d.filter(|d| d.count > 0).map_or(f64::NAN, |d| f(&d))
    };
    let mut errors: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
    errors.sort();
    format!(
        "{:<12} sent {:>6} ok {:>6} failed {:>5}{}  achieved {:>8} req/s  out {:>9} tok/s  TTFT p50 {:>8} p99 {:>8} ms  TPOT p50 {:>7} ms  lag p99 {:>7} ms{}{}{}{}{}{}",
        s.name,
        c.sent,
        c.succeeded,
        c.failed,
        if errors.is_empty() { String::new() } else { format!(" ({})", errors.join(", ")) },
        num(o.achieved_rate.unwrap_or(f64::NAN), 2),
        num(s.throughput.map_or(f64::NAN, |t| t.output_tokens_per_second), 1),
        num(pick(s.ttft_ms, |d| d.p50), 2),
        num(pick(s.ttft_ms, |d| d.p99), 2),
        num(pick(s.tpot_ms, |d| d.p50), 2),
        num(pick(s.schedule_lag_ms, |d| d.p99), 2),
        if o.delayed_by_concurrency_cap + o.dropped > 0 {
            format!("  capped: {} delayed, {} dropped", o.delayed_by_concurrency_cap, o.dropped)
        } else {
            String::new()
        },
        match crate::report::table::client_cpu(s) {
            c if c.is_empty() => c,
            c => format!("  client {c}"),
        },
        match &s.verdict {
            Some(v) if v.delivered => "  load delivered".to_owned(),
            Some(v) => format!("  LOAD NOT DELIVERED: {}", v.reasons.join("; ")),
            None => String::new(),
        },
        match (s.workers.len(), crate::report::table::worker_start_skew_ms(s)) {
            (0, _) => String::new(),
            (n, Some(k)) => format!("  {n} workers, start skew {k:.2} ms"),
            (n, None) => format!("  {n} workers"),
        },
        match &s.server_agreement {
            Some(a) if a.agrees => "  server agrees".to_owned(),
            Some(a) => format!("  SERVER DISAGREES: {}", a.disagreements.join("; ")),
            None => String::new(),
        },
        first_errors(&c),
    )
}

/// Lines under a stage line saying, in words, the first failure of each kind it counted.
fn first_errors(c: &schema::Counts) -> String {
    /// Characters of a message shown (summary.json has it whole).
    const SHOWN: usize = 240;
    let mut kinds: Vec<(&String, &String)> = c.first_errors.iter().collect();
    kinds.sort();
    kinds
        .into_iter()
        .map(|(kind, words)| {
            let cut = words.char_indices().nth(SHOWN).map_or(words.as_str(), |(i, _)| &words[..i]);
            let more = if cut.len() < words.len() { " …" } else { "" };
            format!("\n    first {kind} error: {cut}{more}")
        })
        .collect()
}
