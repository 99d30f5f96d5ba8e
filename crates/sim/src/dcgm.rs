//! The accelerator metrics a node's DCGM exporter would serve for the simulated GPUs, with DCGM's
//! names, types, help texts and labels, on the simulator's own `/metrics`: so the load engine's
//! accelerator scraping, per-stage summaries and the report's timeline are exercised with no GPU.
//!
//! Derived from the engine model, per engine (its `tensor_parallelism` GPUs share its work), over
//! the last [`EVERY`]:
//! - `DCGM_FI_DEV_GPU_UTIL`: the share of time inside steps, in %;
//! - `DCGM_FI_PROF_SM_ACTIVE`: step time weighted by how full the step keeps the SMs (its tokens
//!   over 256), a ratio;
//! - `DCGM_FI_PROF_DRAM_ACTIVE`: step time weighted by memory traffic (decode ~0.9, prefill ~0.4);
//! - `DCGM_FI_DEV_POWER_USAGE`: idle power plus (TDP − idle) × (0.6 SM + 0.4 DRAM activity), W;
//! - `DCGM_FI_DEV_FB_USED` / `FB_FREE`: vLLM reserves `gpu_memory_utilization` (0.9) of each GPU's
//!   memory at start — weights plus the KV-cache pool — and holds it: constant, in MiB, as a real
//!   DCGM shows a vLLM GPU.
//!
//! Memory sizes and TDPs come from the accelerator's name ([`Accelerator::named`]).

use std::{sync::Arc, time::Duration};

use prometheus::{GaugeVec, Opts, Registry};
use tokio::time::Instant;

use super::engine::EngineHandle;

/// How often the gauges are recomputed (DCGM's own sampling is about as often).
pub const EVERY: Duration = Duration::from_secs(1);

/// What the simulator knows of a GPU model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accelerator {
    /// Its name as DCGM's `modelName` label shows it.
    pub model_name: &'static str,
    /// Memory, MiB.
    pub memory_mib: f64,
    /// Board power limit, W.
    pub tdp_watts: f64,
    /// Power at rest, W.
    pub idle_watts: f64,
}

/// Known accelerators: a fragment of the catalog's accelerator name → its figures (first match).
const KNOWN: &[(&str, Accelerator)] = &[
    ("h200", Accelerator { model_name: "NVIDIA H200", memory_mib: 143_771.0, tdp_watts: 700.0, idle_watts: 75.0 }),
    (
        "h100",
        Accelerator { model_name: "NVIDIA H100 80GB HBM3", memory_mib: 81_559.0, tdp_watts: 700.0, idle_watts: 70.0 },
    ),
    ("b200", Accelerator { model_name: "NVIDIA B200", memory_mib: 183_359.0, tdp_watts: 1000.0, idle_watts: 140.0 }),
    (
        "a100-80",
        Accelerator { model_name: "NVIDIA A100-SXM4-80GB", memory_mib: 81_920.0, tdp_watts: 400.0, idle_watts: 55.0 },
    ),
    (
        "a100",
        Accelerator { model_name: "NVIDIA A100-SXM4-40GB", memory_mib: 40_960.0, tdp_watts: 400.0, idle_watts: 50.0 },
    ),
    ("l40", Accelerator { model_name: "NVIDIA L40S", memory_mib: 46_068.0, tdp_watts: 350.0, idle_watts: 35.0 }),
    ("l4", Accelerator { model_name: "NVIDIA L4", memory_mib: 23_034.0, tdp_watts: 72.0, idle_watts: 16.0 }),
    ("a10", Accelerator { model_name: "NVIDIA A10G", memory_mib: 23_028.0, tdp_watts: 150.0, idle_watts: 25.0 }),
    (
        "v100",
        Accelerator { model_name: "Tesla V100-SXM2-16GB", memory_mib: 16_384.0, tdp_watts: 300.0, idle_watts: 40.0 },
    ),
    ("t4", Accelerator { model_name: "Tesla T4", memory_mib: 15_360.0, tdp_watts: 70.0, idle_watts: 10.0 }),
];

/// What is assumed of an accelerator the table does not know.
const UNKNOWN: Accelerator =
    Accelerator { model_name: "simulated GPU", memory_mib: 81_920.0, tdp_watts: 400.0, idle_watts: 50.0 };

/// The share of each GPU's memory vLLM takes at start (`--gpu-memory-utilization`'s default).
const GPU_MEMORY_UTILIZATION: f64 = 0.9;

impl Accelerator {
    /// The figures of an accelerator named as in a catalog ("nvidia-h100-80gb", "nvidia-l4").
    pub fn named(name: &str) -> Accelerator {
        let n = name.to_ascii_lowercase();
        KNOWN.iter().find(|(k, _)| n.contains(k)).map_or(UNKNOWN, |(_, a)| *a)
    }
}

/// The DCGM families, registered.
pub struct Dcgm {
    util: GaugeVec,
    sm: GaugeVec,
    dram: GaugeVec,
    power: GaugeVec,
    fb_used: GaugeVec,
    fb_free: GaugeVec,
}

/// DCGM exporter's label names.
const LABELS: &[&str] = &["gpu", "UUID", "device", "modelName", "Hostname"];

impl Dcgm {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> Dcgm {
        let gauge = |name: &str, help: &str| {
            let g = GaugeVec::new(Opts::new(name, help), LABELS).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique names");
            g
        };
        Dcgm {
            util: gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
            sm: gauge("DCGM_FI_PROF_SM_ACTIVE", "The ratio of cycles an SM has at least 1 warp assigned (in %)."),
            dram: gauge(
                "DCGM_FI_PROF_DRAM_ACTIVE",
                "Ratio of cycles the device memory interface is active sending or receiving data (in %).",
            ),
            power: gauge("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
            fb_used: gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
            fb_free: gauge("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
        }
    }

    /// Publishes the gauges of `engines` (each with `tp` GPUs of `accel`) every [`EVERY`], until
    /// aborted.
    pub async fn run(self, engines: Vec<Arc<EngineHandle>>, tp: u32, accel: Accelerator) {
        let host = hostname();
        let labels: Vec<Vec<[String; 5]>> = (0..engines.len())
            .map(|e| {
                (0..tp.max(1))
                    .map(|k| {
                        let gpu = e as u32 * tp.max(1) + k;
                        [
                            gpu.to_string(),
                            format!("GPU-00000000-0000-0000-0000-{gpu:012x}"),
                            format!("nvidia{gpu}"),
                            accel.model_name.to_owned(),
                            host.clone(),
                        ]
                    })
                    .collect()
            })
            .collect();
        let used = accel.memory_mib * GPU_MEMORY_UTILIZATION;
        let read = |h: &EngineHandle| {
            let w = &h.work;
            let f = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            (f(&w.busy_ns), f(&w.sm_ns), f(&w.dram_ns))
        };
        let mut last: Vec<(u64, u64, u64)> = engines.iter().map(|h| read(h)).collect();
        let mut at = Instant::now();
        for gpus in &labels {
            for l in gpus {
                self.set(l, 0.0, 0.0, 0.0, accel.idle_watts, used, accel.memory_mib - used);
            }
        }
        let mut tick = tokio::time::interval_at(at + EVERY, EVERY);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let wall = now.duration_since(at).as_nanos().max(1) as f64;
            at = now;
            for (i, h) in engines.iter().enumerate() {
                let (b, s, d) = read(h);
                let (b0, s0, d0) = last[i];
                last[i] = (b, s, d);
                let share = |x: u64, x0: u64| (x.saturating_sub(x0) as f64 / wall).min(1.0);
                let (busy, sm, dram) = (share(b, b0), share(s, s0), share(d, d0));
                let power = accel.idle_watts + (accel.tdp_watts - accel.idle_watts) * (0.6 * sm + 0.4 * dram);
                for l in &labels[i] {
                    self.set(l, (busy * 100.0).round(), sm, dram, power, used, accel.memory_mib - used);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set(&self, l: &[String; 5], util: f64, sm: f64, dram: f64, power: f64, used: f64, free: f64) {
        let l: [&str; 5] = [&l[0], &l[1], &l[2], &l[3], &l[4]];
        self.util.with_label_values(&l).set(util);
        self.sm.with_label_values(&l).set(sm);
        self.dram.with_label_values(&l).set(dram);
        self.power.with_label_values(&l).set(power);
        self.fb_used.with_label_values(&l).set(used.round());
        self.fb_free.with_label_values(&l).set(free.round());
    }
}

/// This machine's name (DCGM's `Hostname` label), or "localhost".
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accelerators_are_known_by_their_catalog_names() {
        assert_eq!(Accelerator::named("nvidia-h100-80gb").tdp_watts, 700.0);
        assert_eq!(Accelerator::named("nvidia-l4").memory_mib, 23_034.0);
        assert_eq!(Accelerator::named("nvidia-a100-80gb").memory_mib, 81_920.0);
        assert_eq!(Accelerator::named("nvidia-tesla-a100").memory_mib, 40_960.0);
        assert_eq!(Accelerator::named("tpu-v5e"), UNKNOWN);
    }
}
