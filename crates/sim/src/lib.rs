//! `inferbench sim`: a simulated LLM model server, so benchmarks, the load engine and reports run
//! with no GPU.
//!
//! It speaks the HTTP APIs of the real servers (OpenAI completions and chat as vLLM serves them,
//! TGI, Triton / TensorRT-LLM, JetStream — see [`api`]) and answers from a simulated vLLM-like
//! engine per data-parallel rank ([`engine`]): continuous batching, chunked prefill, a paged KV
//! cache with prefix caching and preemption, and step times from a per-hardware latency model
//! ([`profile`], from `catalog/hardware.pbtxt`). Metrics carry vLLM's names ([`metrics`]); faults
//! can be injected ([`faults`]). It knows nothing of catalogs: it takes a [`SimConfig`] (from its
//! flags, [`args`], the same for `inferbench sim` and a rendered simulator pod).
//!
//! A leaf of the workspace: it imports only `inferbench-schema` (the hardware table its latency
//! model comes from).

pub mod api;
pub mod args;
pub mod canned;
pub mod dcgm;
pub mod engine;
pub mod faults;
pub mod kv;
pub mod metrics;
pub mod profile;
#[cfg(test)]
mod saturation;
pub mod tokens;

use std::{
    borrow::Cow,
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle, time::Instant};

use self::{
    engine::{Engine, EngineConfig, EngineHandle, Event, Finish, Rejected, Submission},
    faults::{FaultPlan, Faults},
    metrics::Metrics,
    profile::Profile,
};

/// Everything the simulator is configured with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Names the base model is served as (the first is reported as its id).
    pub served_models: Vec<String>,
    /// LoRA adapter names also accepted as `model`.
    pub lora_adapters: Vec<String>,
    /// `--max-loras` (reported in `vllm:lora_requests_info`).
    pub max_loras: u32,
    /// Hardware profile (latency model, KV capacity).
    pub profile: Profile,
    /// Scheduler settings of each rank (its `kv_blocks` derived from the profile).
    pub engine: EngineConfig,
    /// Engines (vLLM `--data-parallel-size`); requests go to the least loaded.
    pub data_parallel: u32,
    /// GPUs per engine (`--tensor-parallel-size`): each has its own DCGM series.
    pub tensor_parallelism: u32,
    /// Longest prompt + output accepted.
    pub max_model_len: u32,
    /// Mean output length when a request does not ask to ignore EOS (geometric distribution).
    pub mean_output_tokens: u32,
    /// Seed of every draw (output lengths, text, fault rates).
    pub seed: u64,
    /// Faults at start.
    pub faults: Faults,
}

/// Why a configuration cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The KV cache cannot hold one sequence of max_model_len (vLLM refuses to start then too).
    #[error(
        "the KV cache ({kv} tokens) cannot hold one sequence of --max-model-len {max_model_len}: lower --max-model-len or raise --num-gpu-blocks-override"
    )]
    KvTooSmall {
        /// KV capacity in tokens.
        kv: u64,
        /// Asked length.
        max_model_len: u32,
    },
    /// Some setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The hardware table named could not be read.
    #[error("{0}")]
    Hardware(inferbench_schema::text::Diagnostics),
    /// The profile asked for is not in the hardware table.
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
}

/// Why a simulator stopped serving, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// Serving failed (accepting connections).
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    /// The serving task panicked.
    #[error("the server task ended: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl SimConfig {
    /// Checks that the settings can run.
    pub fn check(&self) -> Result<(), ConfigError> {
        let kv = u64::from(self.engine.kv_blocks) * u64::from(self.engine.block_size);
        if kv < u64::from(self.max_model_len) {
            return Err(ConfigError::KvTooSmall { kv, max_model_len: self.max_model_len });
        }
        if self.served_models.is_empty() || self.served_models.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid("a served model name is required".into()));
        }
        let bad = |what: &str| Err(ConfigError::Invalid(format!("{what} must be at least 1")));
        if self.engine.max_num_seqs == 0 {
            return bad("--max-num-seqs");
        }
        if self.engine.max_num_batched_tokens == 0 {
            return bad("--max-num-batched-tokens");
        }
        if self.engine.block_size == 0 {
            return bad("--block-size");
        }
        if self.data_parallel == 0 {
            return bad("--data-parallel-size");
        }
        if self.engine.tokens_per_step == 0 {
            return bad("--tokens-per-step");
        }
        if self.mean_output_tokens == 0 {
            return bad("--mean-output-tokens");
        }
        self.faults.check().map_err(|e| ConfigError::Invalid(e.0))
    }
}

/// A request as every API reduces it.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// `model` as sent (None: the default model).
    pub model: Option<String>,
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Most tokens to generate; None: up to the context limit.
    pub max_tokens: Option<i64>,
    /// Fewest tokens before EOS may end generation.
    pub min_tokens: u32,
    /// Generate exactly `max_tokens`.
    pub ignore_eos: bool,
}

/// An error every API renders in its own shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SimError {
    /// HTTP status.
    pub status: u16,
    /// Message.
    pub message: String,
    /// OpenAI-style error type (`BadRequestError`, `NotFoundError`, …).
    pub kind: &'static str,
    /// The request field at fault, if any (`body.max_tokens` for pydantic's errors).
    pub param: Option<Cow<'static, str>>,
}

impl SimError {
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self { status: 400, message: message.into(), kind: "BadRequestError", param: param.map(Cow::Borrowed) }
    }

    /// The request field at fault, if any.
    pub fn param_name(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// An error of `status` with the message a real server gives for it.
    pub fn injected(status: u16) -> Self {
        let (message, kind) = match status {
            429 => ("Too many requests (injected fault)", "RateLimitError"),
            503 => ("Service unavailable (injected fault)", "ServiceUnavailableError"),
            400..=499 => ("Bad request (injected fault)", "BadRequestError"),
            _ => ("Internal server error (injected fault)", "InternalServerError"),
        };
        Self { status, message: message.into(), kind, param: None }
    }
}

/// A request admitted to an engine.
pub struct Started {
    /// Events of the request.
    pub rx: mpsc::UnboundedReceiver<Event>,
    /// Seed of its output text.
    pub text_seed: u64,
    /// Request number (ids).
    pub number: u64,
    /// The model name to report.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Faults to apply while streaming.
    pub faults: FaultPlan,
    /// Keeps the LoRA adapter counted as running while alive.
    pub _lora: Option<LoraGuard>,
    /// Where delivery lateness is observed: the first chunk's, the others'.
    pub delivery_lag: [prometheus::Histogram; 2],
}

/// The shared state of a running simulator.
pub struct Simulator {
    /// Configuration.
    pub cfg: SimConfig,
    engines: Vec<Arc<EngineHandle>>,
    tasks: Vec<JoinHandle<()>>,
    /// Publishes the simulated GPUs' DCGM metrics.
    dcgm: JoinHandle<()>,
    /// Metrics registry.
    pub metrics: Metrics,
    faults: RwLock<Faults>,
    ready_at: Mutex<Instant>,
    requests: AtomicU64,
    lora_running: Arc<Mutex<BTreeMap<String, u32>>>,
    /// Unix seconds at start (`created` fields).
    pub created: u64,
}

impl Simulator {
    /// Starts the engines (needs a tokio runtime).
    pub fn start(cfg: SimConfig) -> Result<Arc<Simulator>, ConfigError> {
        cfg.check()?;
        let metrics = Metrics::new(cfg.max_model_len);
        if !cfg.lora_adapters.is_empty() {
            metrics.lora_info(cfg.max_loras, "", "");
        }
        let (mut engines, mut tasks) = (vec![], vec![]);
        for i in 0..cfg.data_parallel as usize {
            metrics.cache_config(i, cfg.engine.block_size, cfg.engine.kv_blocks, cfg.engine.prefix_caching);
            let (engine, handle) = Engine::new(cfg.engine.clone(), Some(metrics.engine(&cfg.served_models[0], i)));
            tasks.push(tokio::spawn(engine.run()));
            engines.push(handle);
        }
        let accel = dcgm::Accelerator::named(cfg.profile.name.rsplit_once('@').map_or("", |(_, a)| a));
        let dcgm =
            tokio::spawn(dcgm::Dcgm::register(metrics.registry()).run(engines.clone(), cfg.tensor_parallelism, accel));
        let ready_at = Instant::now() + std::time::Duration::from_secs_f64(cfg.faults.not_ready_seconds);
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(Arc::new(Simulator {
            faults: RwLock::new(Faults { not_ready_seconds: 0.0, ..cfg.faults.clone() }),
            cfg,
            engines,
            tasks,
            dcgm,
            metrics,
            ready_at: Mutex::new(ready_at),
            requests: AtomicU64::new(0),
            lora_running: Arc::default(),
            created,
        }))
    }

    /// Whether the server is ready (not in an injected start-up delay).
    pub fn is_ready(&self) -> bool {
        Instant::now() >= *self.ready_at.lock().expect("ready lock")
    }

    /// Current faults (with the start-up delay left).
    pub fn faults(&self) -> Faults {
        let left = self.ready_at.lock().expect("ready lock").saturating_duration_since(Instant::now());
        Faults { not_ready_seconds: left.as_secs_f64(), ..self.faults.read().expect("faults lock").clone() }
    }

    /// Applies a partial update of the faults; returns the new settings.
    pub fn patch_faults(&self, patch: &serde_json::Value) -> Result<Faults, faults::FaultError> {
        let mut cur = self.faults.write().expect("faults lock");
        let left = self.ready_at.lock().expect("ready lock").saturating_duration_since(Instant::now());
        // patch() checks every value (durations within a day), so nothing below can overflow.
        let new = Faults { not_ready_seconds: left.as_secs_f64(), ..cur.clone() }.patch(patch)?;
        if patch.get("not_ready_seconds").is_some() {
            *self.ready_at.lock().expect("ready lock") =
                Instant::now() + std::time::Duration::from_secs_f64(new.not_ready_seconds);
        }
        *cur = Faults { not_ready_seconds: 0.0, ..new };
        drop(cur);
        Ok(self.faults())
    }

    /// Whether `name` is served (base names and LoRA adapters).
    pub fn serves(&self, name: &str) -> bool {
        self.cfg.served_models.iter().chain(&self.cfg.lora_adapters).any(|m| m == name)
    }

    /// The model name a request is answered as: its `model` if served (404 as vLLM if not),
    /// else the first served name.
    pub fn check_model(&self, model: Option<&str>) -> Result<String, SimError> {
        match model {
            Some(m) if !self.serves(m) => Err(SimError {
                status: 404,
                message: format!(
                    "The model `{m}` does not exist. Valid aliases: {}.",
                    self.cfg.served_models.join(", ")
                ),
                kind: "NotFoundError",
                param: Some(Cow::Borrowed("model")),
            }),
            Some(m) => Ok(m.to_owned()),
            None => Ok(self.cfg.served_models[0].clone()),
        }
    }

    /// Validates a request, draws its output length and faults, and submits it to the least
    /// loaded engine. `fault_header` is the request's `x-inferbench-fault` header.
    pub fn generate(&self, req: GenRequest, fault_header: Option<&str>) -> Result<Started, SimError> {
        if !self.is_ready() {
            return Err(SimError {
                status: 503,
                message: "The server is starting up (simulated model loading)".into(),
                kind: "ServiceUnavailableError",
                param: None,
            });
        }
        if self.engine_died() {
            return Err(SimError {
                status: 500,
                message: "The simulated engine stopped (a bug: please report it)".into(),
                kind: "InternalServerError",
                param: None,
            });
        }
        let model = self.check_model(req.model.as_deref())?;
        let number = self.requests.fetch_add(1, Ordering::Relaxed);
        let mut faults = self.faults.read().expect("faults lock").plan(self.cfg.seed, number);
        if let Some(h) = fault_header {
            faults = faults.with_header(h).map_err(|m| SimError::bad_request(m.0, None))?;
        }
        if let Some(status) = faults.error {
            return Err(SimError::injected(status));
        }
        let prompt_len = req.prompt.len() as u64;
        if prompt_len == 0 {
            return Err(SimError::bad_request("The prompt is empty.", Some("prompt")));
        }
        let limit = u64::from(self.cfg.max_model_len);
        let max_tokens = match req.max_tokens {
            Some(n) if n < 1 => {
                return Err(SimError::bad_request(
                    format!("max_tokens must be at least 1, got {n}."),
                    Some("max_tokens"),
                ));
            }
            Some(n) => n as u64,
            None => limit.saturating_sub(prompt_len).max(1),
        };
        if prompt_len.saturating_add(max_tokens) > limit {
            return Err(SimError::bad_request(
                format!(
                    "This model's maximum context length is {limit} tokens. However, you requested {} tokens ({prompt_len} in the messages, {max_tokens} in the completion). Please reduce the length of the messages or completion.",
                    prompt_len.saturating_add(max_tokens)
                ),
                None,
            ));
        }
        let max_tokens = max_tokens as u32;
        if req.min_tokens > max_tokens {
            return Err(SimError::bad_request(
                format!("min_tokens must be less than or equal to max_tokens={max_tokens}, got {}.", req.min_tokens),
                None,
            ));
        }
        let hash = tokens::content_hash(self.cfg.seed, &req.prompt, max_tokens);
        let (output_len, finish) = self.output_len(&req, max_tokens, hash ^ number);
        let block_hashes = if self.cfg.engine.prefix_caching {
            kv::block_hashes(&req.prompt, self.cfg.engine.block_size, 0)
        } else {
            Vec::new()
        };
        let (index, engine) =
            self.engines.iter().enumerate().min_by_key(|(_, e)| e.load()).expect("at least one engine");
        let sub = Submission { prompt: req.prompt, block_hashes, output_len, finish, max_tokens };
        let rx = engine.submit(sub).map_err(|Rejected::QueueFull(n)| {
            self.metrics.count_rejection(&self.cfg.served_models[0], index);
            SimError {
                status: 429,
                message: format!("The server is overloaded: the waiting queue is full ({n} requests)."),
                kind: "RateLimitError",
                param: None,
            }
        })?;
        let lora = self.cfg.lora_adapters.contains(&model).then(|| LoraGuard::new(self, &model));
        Ok(Started {
            rx,
            text_seed: hash,
            number,
            model,
            prompt_tokens: prompt_len as u32,
            faults,
            _lora: lora,
            delivery_lag: ["first", "next"].map(|c| self.metrics.delivery_lag.with_label_values(&[c])),
        })
    }

    /// Whether an engine task ended (only a bug can end one): requests then fail instead of hanging.
    pub fn engine_died(&self) -> bool {
        self.tasks.iter().any(JoinHandle::is_finished)
    }

    /// Output length: `max_tokens` when EOS is ignored, else `min_tokens` (EOS is blocked until
    /// then) plus a geometric draw (EOS equally likely at every token) of mean `mean_output_tokens`.
    fn output_len(&self, req: &GenRequest, max_tokens: u32, draw: u64) -> (u32, Finish) {
        if req.ignore_eos {
            return (max_tokens, Finish::Length);
        }
        let p = 1.0 / f64::from(self.cfg.mean_output_tokens);
        let u = faults::uniform(self.cfg.seed, draw).max(f64::MIN_POSITIVE);
        let n = if p >= 1.0 { 1.0 } else { (u.ln() / (1.0 - p).ln()).ceil() };
        let n = (n.clamp(1.0, f64::from(u32::MAX)) as u32).saturating_add(req.min_tokens);
        if n >= max_tokens { (max_tokens, Finish::Length) } else { (n, Finish::Stop) }
    }

    /// Stops the engines.
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.dcgm.abort();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counts a LoRA adapter as running in `vllm:lora_requests_info` while alive.
pub struct LoraGuard {
    name: String,
    running: Arc<Mutex<BTreeMap<String, u32>>>,
    metrics: Metrics,
    max_loras: u32,
}

impl LoraGuard {
    fn new(sim: &Simulator, name: &str) -> Self {
        let g = LoraGuard {
            name: name.to_owned(),
            running: sim.lora_running.clone(),
            metrics: sim.metrics.clone(),
            max_loras: sim.cfg.max_loras,
        };
        g.update(1);
        g
    }

    fn update(&self, delta: i32) {
        let mut m = self.running.lock().expect("lora lock");
        let c = m.entry(self.name.clone()).or_default();
        *c = c.saturating_add_signed(delta);
        if *c == 0 {
            m.remove(&self.name);
        }
        let names: Vec<&str> = m.keys().map(String::as_str).collect();
        self.metrics.lora_info(self.max_loras, &names.join(","), "");
    }
}

impl Drop for LoraGuard {
    fn drop(&mut self) {
        self.update(-1);
    }
}

/// A simulator serving HTTP.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The simulator behind it.
    pub sim: Arc<Simulator>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` (port 0: any free port) and serves until dropped or [`Server::wait`] ends.
    pub async fn bind(cfg: SimConfig, addr: SocketAddr) -> Result<Server, ServeError> {
        Server::bind_sharing(cfg, addr, false).await
    }

    /// [`Server::bind`], sharing the port with other servers bound with `reuse_port` (the kernel
    /// deals connections out among them). The accept queue is long (4 096): thousands of clients
    /// connect at once when a large closed loop starts.
    pub async fn bind_sharing(cfg: SimConfig, addr: SocketAddr, reuse_port: bool) -> Result<Server, ServeError> {
        let listen = || -> std::io::Result<TcpListener> {
            let socket =
                if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(reuse_port)?;
            socket.bind(addr)?;
            socket.listen(4096)
        };
        let listener = listen().map_err(|source| ServeError::Listen { addr, source })?;
        let addr = listener.local_addr()?;
        let sim = Simulator::start(cfg)?;
        let task = tokio::spawn(api::serve(listener, sim.clone()));
        Ok(Server { addr, sim, task })
    }

    /// Base URL, e.g. `http://127.0.0.1:8000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until the task ends (an I/O error) or the process is stopped.
    pub async fn wait(mut self) -> Result<(), ServeError> {
        (&mut self.task).await??;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        self.sim.shutdown();
    }
}
