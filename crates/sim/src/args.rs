//! The simulator's arguments (`inferbench sim` and a rendered simulator pod's `args`) → [`SimConfig`].
//!
//! The flags accept vLLM's names where vLLM has one (`--tensor-parallel-size`, `--max-num-seqs`,
//! `--max-model-len`, `--lora-modules`, …) and ignore the vLLM flags that mean nothing here
//! (`--gpu-memory-utilization`, `--dtype`, …), so a vLLM Deployment's arguments work unchanged.
//! The local platform parses a rendered simulator pod's arguments with these same definitions.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

use super::{
    ConfigError, SimConfig,
    engine::EngineConfig,
    faults::Faults,
    profile::{Profile, StepModel},
};
use inferbench_schema::hardware::HardwareTable;

/// The model served when none is named.
pub const DEFAULT_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// The accelerator simulated when none is named.
pub const DEFAULT_ACCELERATOR: &str = "nvidia-h100-80gb";

/// Arguments of `inferbench sim`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, env = "INFERBENCH_SIM_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, env = "INFERBENCH_SIM_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Share the port with other simulators started so (SO_REUSEPORT): the kernel deals the
    /// connections out among them. One process holds as many streams as its open files allow;
    /// several on one port hold more (a load of 100 000 streams on one machine).
    #[arg(long)]
    pub reuse_port: bool,
    /// Model served (and, with --accelerator, the hardware profile looked up).
    #[arg(long, env = "INFERBENCH_SIM_MODEL", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Names the model is served as (default: --model). Repeatable.
    #[arg(long, num_args = 1.., value_name = "NAME")]
    pub served_model_name: Vec<String>,
    /// Hardware profile MODEL@ACCELERATOR from the hardware table. Default: --model@--accelerator,
    /// else the default profile.
    #[arg(long, env = "INFERBENCH_SIM_PROFILE", value_name = "MODEL@ACCEL", help_heading = "Latency model")]
    pub profile: Option<String>,
    /// Accelerator simulated when --profile is not given.
    #[arg(long, default_value = DEFAULT_ACCELERATOR, help_heading = "Latency model")]
    pub accelerator: String,
    /// Hardware table to read profiles from. Default: the built-in catalog/hardware.pbtxt.
    #[arg(long, env = "INFERBENCH_HARDWARE", value_name = "FILE", help_heading = "Latency model")]
    pub hardware: Option<PathBuf>,
    /// Tensor parallelism of the simulated deployment (scales step times and KV capacity).
    #[arg(long, alias = "tensor-parallel-size", value_name = "N", help_heading = "Latency model")]
    pub tensor_parallelism: Option<u32>,
    /// Multiplies every step time (0.1: ten times faster than the hardware; 0: no latency at all).
    #[arg(long, default_value_t = 1.0, help_heading = "Latency model")]
    pub time_scale: f64,
    /// No latency at all (the same as --time-scale 0): for speed tests.
    #[arg(long, help_heading = "Latency model")]
    pub zero_latency: bool,
    /// Override the profile's fixed step cost, µs.
    #[arg(long, value_name = "US", help_heading = "Latency model")]
    pub step_base_us: Option<f64>,
    /// Override the profile's prefill cost per token, µs.
    #[arg(long, value_name = "US", help_heading = "Latency model")]
    pub step_prefill_us_per_token: Option<f64>,
    /// Override the profile's decode cost per sequence, µs.
    #[arg(long, value_name = "US", help_heading = "Latency model")]
    pub step_decode_us_per_seq: Option<f64>,
    /// Override the profile's attention cost per 1 000 context tokens, µs.
    #[arg(long, value_name = "US", help_heading = "Latency model")]
    pub step_attention_us_per_1k_context: Option<f64>,

    /// Most sequences per batch.
    #[arg(long, default_value_t = 256, help_heading = "Scheduler")]
    pub max_num_seqs: u32,
    /// Most tokens computed per step (chunked prefill budget).
    #[arg(long, default_value_t = 8192, help_heading = "Scheduler")]
    pub max_num_batched_tokens: u32,
    /// Tokens per KV-cache block.
    #[arg(long, default_value_t = 16, help_heading = "Scheduler")]
    pub block_size: u32,
    /// KV-cache blocks per engine (default: the profile's KV capacity / --block-size).
    #[arg(long, value_name = "N", help_heading = "Scheduler")]
    pub num_gpu_blocks_override: Option<u32>,
    /// Longest prompt + output accepted (default: the profile's).
    #[arg(long, value_name = "TOKENS", help_heading = "Scheduler")]
    pub max_model_len: Option<u32>,
    /// Reuse the KV cache of shared prompt prefixes (the default, as vLLM V1).
    #[arg(long, overrides_with = "no_enable_prefix_caching", help_heading = "Scheduler")]
    pub enable_prefix_caching: bool,
    /// Turn prefix caching off.
    #[arg(long, help_heading = "Scheduler")]
    pub no_enable_prefix_caching: bool,
    /// Engines (data-parallel ranks) in this server; requests go to the least loaded.
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Scheduler")]
    pub data_parallel_size: u32,
    /// Waiting requests beyond which new ones get 429 (default: unbounded, as vLLM).
    #[arg(long, value_name = "N", help_heading = "Scheduler")]
    pub max_waiting_queue_length: Option<usize>,
    /// Tokens each decode step yields per sequence (> 1 as with speculative decoding: streams
    /// then carry several tokens per chunk).
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Scheduler")]
    pub tokens_per_step: u32,
    /// Mean output length of requests that do not ask to ignore EOS (EOS equally likely at
    /// every token).
    #[arg(long, default_value_t = 128, value_name = "TOKENS", help_heading = "Scheduler")]
    pub mean_output_tokens: u32,
    /// Seed of output lengths, text and fault draws.
    #[arg(long, default_value_t = 0, help_heading = "Scheduler")]
    pub seed: u64,

    /// Accept LoRA adapters (vLLM flag; adapters come from --lora-modules).
    #[arg(long, help_heading = "LoRA")]
    pub enable_lora: bool,
    /// LoRA adapters NAME=PATH (or NAME); their names are accepted as `model`.
    #[arg(long, num_args = 1.., value_name = "NAME=PATH", help_heading = "LoRA")]
    pub lora_modules: Vec<String>,
    /// Adapters per batch (reported in vllm:lora_requests_info).
    #[arg(long, default_value_t = 1, help_heading = "LoRA")]
    pub max_loras: u32,
    /// Accepted for vLLM compatibility; no effect.
    #[arg(long, hide = true, help_heading = "LoRA")]
    pub max_lora_rank: Option<String>,

    /// Fraction of requests answered with --error-status.
    #[arg(long, default_value_t = 0.0, help_heading = "Faults (changeable at run time: POST /admin/faults)")]
    pub error_rate: f64,
    /// Status of injected errors.
    #[arg(long, default_value_t = 500, help_heading = "Faults (changeable at run time: POST /admin/faults)")]
    pub error_status: u16,
    /// Fraction of streams cut after --reset-after-tokens tokens.
    #[arg(long, default_value_t = 0.0, help_heading = "Faults (changeable at run time: POST /admin/faults)")]
    pub reset_rate: f64,
    /// Tokens sent before an injected reset.
    #[arg(long, default_value_t = 1, help_heading = "Faults (changeable at run time: POST /admin/faults)")]
    pub reset_after_tokens: u32,
    /// Fraction of streams that stall for --stall-seconds after --stall-after-tokens tokens.
    #[arg(long, default_value_t = 0.0, help_heading = "Faults (changeable at run time: POST /admin/faults)")]
    pub stall_rate: f64,
    /// Length of an injected stall.
    #[arg(long, default_value_t = 0.0, help_heading = "Faults (changeable at run time: POST /admin/faults)")]
    pub stall_seconds: f64,
    /// Tokens sent before an injected stall.
    #[arg(long, default_value_t = 1, help_heading = "Faults (changeable at run time: POST /admin/faults)")]
    pub stall_after_tokens: u32,
    /// Not ready for this many seconds after start (/health 503), like a server loading weights.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "SECONDS",
        help_heading = "Faults (changeable at run time: POST /admin/faults)"
    )]
    pub startup_delay: f64,

    /// vLLM flags accepted and ignored.
    #[arg(long, hide = true)]
    pub gpu_memory_utilization: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub dtype: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub kv_cache_dtype: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub quantization: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub swap_space: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub download_dir: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub load_format: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub enforce_eager: bool,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub trust_remote_code: bool,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub disable_log_requests: bool,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub disable_log_stats: bool,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub enable_chunked_prefill: bool,
}

/// A whole command line of [`SimArgs`] (they are a flattened group elsewhere).
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct SimLine {
    #[command(flatten)]
    sim: SimArgs,
}

impl Default for SimArgs {
    /// The flags' defaults, as `inferbench sim` with no flags (clap's definitions are the only
    /// ones; the `INFERBENCH_SIM_*` variables apply as they would there).
    fn default() -> Self {
        <SimLine as clap::Parser>::try_parse_from(std::iter::empty::<String>())
            .expect("every simulator flag has a default")
            .sim
    }
}

impl SimArgs {
    /// The simulator's arguments as a pod's container gives them (after `sim`).
    pub fn parse_args<I: IntoIterator<Item = T>, T: Into<std::ffi::OsString> + Clone>(
        argv: I,
    ) -> Result<SimArgs, clap::Error> {
        <SimLine as clap::Parser>::try_parse_from(argv).map(|l| l.sim)
    }

    /// The profile: --profile, else --model@--accelerator if the table has it, else the default.
    fn profile(&self, table: &HardwareTable, tp: u32) -> Result<Profile, ConfigError> {
        let name = match &self.profile {
            Some(p) => p.clone(),
            None if table.find(&self.model, &self.accelerator).is_some() => {
                format!("{}@{}", self.model, self.accelerator)
            }
            None => format!("{DEFAULT_MODEL}@{DEFAULT_ACCELERATOR}"),
        };
        let mut p = Profile::from_table(table, &name, tp)?;
        let s = &mut p.step;
        for (flag, v) in [
            (&mut s.base_us, self.step_base_us),
            (&mut s.prefill_us_per_token, self.step_prefill_us_per_token),
            (&mut s.decode_us_per_seq, self.step_decode_us_per_seq),
            (&mut s.attention_us_per_1k_context, self.step_attention_us_per_1k_context),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(ConfigError::Invalid(format!("--step-* coefficients must be ≥ 0, got {v}")));
                }
                *flag = v;
            }
        }
        Ok(p)
    }

    /// The simulator configuration these flags describe.
    pub fn to_config(&self) -> Result<SimConfig, ConfigError> {
        let table = match &self.hardware {
            Some(path) => HardwareTable::load(path).map_err(ConfigError::Hardware)?,
            None => HardwareTable::builtin(),
        };
        let tp = self.tensor_parallelism.unwrap_or(1).max(1);
        let profile = self.profile(&table, tp)?;
        if !(self.time_scale.is_finite() && self.time_scale >= 0.0) {
            return Err(ConfigError::Invalid(format!("--time-scale must be ≥ 0, got {}", self.time_scale)));
        }
        let scale = if self.zero_latency { 0.0 } else { self.time_scale };
        let step = if scale == 0.0 { StepModel::ZERO } else { profile.step.scaled(scale) };
        let block_size = self.block_size.max(1);
        let kv_blocks = self
            .num_gpu_blocks_override
            .unwrap_or_else(|| (profile.kv_cache_tokens / u64::from(block_size)).min(u64::from(u32::MAX)) as u32);
        let lora_adapters: Vec<String> = self
            .lora_modules
            .iter()
            .map(|m| m.split_once('=').map_or(m.as_str(), |(n, _)| n).trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        let served_models =
            if self.served_model_name.is_empty() { vec![self.model.clone()] } else { self.served_model_name.clone() };
        let cfg = SimConfig {
            served_models,
            lora_adapters,
            max_loras: self.max_loras,
            max_model_len: self.max_model_len.unwrap_or(profile.max_model_len),
            engine: EngineConfig {
                max_num_seqs: self.max_num_seqs,
                max_num_batched_tokens: self.max_num_batched_tokens,
                kv_blocks,
                block_size,
                prefix_caching: !self.no_enable_prefix_caching,
                tokens_per_step: self.tokens_per_step,
                max_waiting: self.max_waiting_queue_length,
                step,
            },
            profile,
            data_parallel: self.data_parallel_size,
            tensor_parallelism: tp,
            mean_output_tokens: self.mean_output_tokens,
            seed: self.seed,
            faults: Faults {
                error_rate: self.error_rate,
                error_status: self.error_status,
                reset_rate: self.reset_rate,
                reset_after_tokens: self.reset_after_tokens,
                stall_rate: self.stall_rate,
                stall_seconds: self.stall_seconds,
                stall_after_tokens: self.stall_after_tokens,
                not_ready_seconds: self.startup_delay,
            },
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// The address to listen on.
    pub fn addr(&self) -> Result<SocketAddr, ConfigError> {
        let host = if self.host == "localhost" { "127.0.0.1" } else { self.host.as_str() };
        format!("{host}:{}", self.port)
            .parse()
            .or_else(|_| format!("[{host}]:{}", self.port).parse())
            .map_err(|_| ConfigError::Invalid(format!("--host {} is not an IP address", self.host)))
    }
}
