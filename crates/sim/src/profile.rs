//! The simulator's latency model: what one engine step costs on the simulated hardware.
//!
//! Coefficients come from the hardware table (`catalog/hardware.pbtxt`, shared with the planner's
//! auto-generated rates) and can be overridden flag by flag. See `proto/hardware.proto` `StepModel`
//! for the formula and the table's comments for where each figure comes from.

use std::time::Duration;

use inferbench_schema::{HardwareProfile, hardware::HardwareTable};

/// Default KV-cache capacity when a profile gives none (tokens).
pub const DEFAULT_KV_TOKENS: u64 = 262_144;
/// Default longest sequence when a profile gives none.
pub const DEFAULT_MAX_MODEL_LEN: u32 = 4096;

/// Per-step cost coefficients, already scaled for tensor parallelism and the time scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepModel {
    /// Fixed cost of a step, µs.
    pub base_us: f64,
    /// Per computed prompt token, µs.
    pub prefill_us_per_token: f64,
    /// Per decoding sequence, µs.
    pub decode_us_per_seq: f64,
    /// Per 1 000 tokens of context read by decode attention, µs.
    pub attention_us_per_1k_context: f64,
}

impl StepModel {
    /// Every coefficient zero: the server answers as fast as it can (for speed tests).
    pub const ZERO: StepModel =
        StepModel { base_us: 0.0, prefill_us_per_token: 0.0, decode_us_per_seq: 0.0, attention_us_per_1k_context: 0.0 };

    /// Time of one step that computes `prefill_tokens` prompt tokens and decodes `decode_seqs`
    /// sequences attending to `context_tokens` tokens in all.
    pub fn step_time(&self, prefill_tokens: u64, decode_seqs: u64, context_tokens: u64) -> Duration {
        let us = self.base_us
            + self.prefill_us_per_token * prefill_tokens as f64
            + self.decode_us_per_seq * decode_seqs as f64
            + self.attention_us_per_1k_context * context_tokens as f64 / 1000.0;
        // Nanosecond resolution keeps paused-clock tests exact for whole-µs coefficients.
        Duration::from_nanos((us * 1000.0).round().max(0.0) as u64)
    }

    /// Multiplies every coefficient (time scale, tensor-parallel speed-up).
    pub fn scaled(self, f: f64) -> StepModel {
        StepModel {
            base_us: self.base_us * f,
            prefill_us_per_token: self.prefill_us_per_token * f,
            decode_us_per_seq: self.decode_us_per_seq * f,
            attention_us_per_1k_context: self.attention_us_per_1k_context * f,
        }
    }

    /// Whether every step takes no time.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }
}

/// A resolved hardware profile: latency model and capacities for one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// "model@accelerator" it came from, or "custom".
    pub name: String,
    /// Step costs.
    pub step: StepModel,
    /// KV-cache capacity in tokens.
    pub kv_cache_tokens: u64,
    /// Longest prompt + output accepted.
    pub max_model_len: u32,
}

/// Why a profile could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// `--profile` is not MODEL@ACCELERATOR.
    #[error("--profile \"{0}\" is not MODEL@ACCELERATOR (e.g. meta-llama/Llama-3.1-8B-Instruct@nvidia-h100-80gb)")]
    Syntax(String),
    /// The table has no such pair.
    #[error("the hardware table ({table}) has no profile {name}; known: {known}")]
    Unknown {
        /// The pair asked for.
        name: String,
        /// Where the table was read from.
        table: String,
        /// Every known pair.
        known: String,
    },
    /// The profile has no step model.
    #[error("hardware profile {0} has no step latency model (StepModel `step`); give --step-* flags instead")]
    NoStepModel(String),
}

impl Profile {
    /// Looks `MODEL@ACCELERATOR` up in the table and scales it to `tensor_parallelism` (relative to
    /// the TP the profile was measured at: step costs shrink as (tp0/tp)^0.85, i.e. ~90 % scaling
    /// efficiency per doubling, and the KV cache grows with the accelerators added).
    pub fn from_table(table: &HardwareTable, spec: &str, tensor_parallelism: u32) -> Result<Profile, ProfileError> {
        let (model, accel) = spec.rsplit_once('@').ok_or_else(|| ProfileError::Syntax(spec.to_owned()))?;
        if model.is_empty() || accel.is_empty() {
            return Err(ProfileError::Syntax(spec.to_owned()));
        }
        let p = table.find(model, accel).ok_or_else(|| ProfileError::Unknown {
            name: spec.to_owned(),
            table: table.source.clone(),
            known: table.known_pairs().join(", "),
        })?;
        Self::from_row(p, tensor_parallelism)
    }

    /// A table row scaled to `tensor_parallelism`.
    pub fn from_row(p: &HardwareProfile, tensor_parallelism: u32) -> Result<Profile, ProfileError> {
        let name = format!("{}@{}", p.model(), p.accelerator());
        let s = p.step.as_ref().ok_or_else(|| ProfileError::NoStepModel(name.clone()))?;
        let tp0 = f64::from(p.tensor_parallelism.unwrap_or(1).max(1));
        let tp = f64::from(tensor_parallelism.max(1));
        let step = StepModel {
            base_us: s.base_us(),
            prefill_us_per_token: s.prefill_us_per_token(),
            decode_us_per_seq: s.decode_us_per_seq(),
            attention_us_per_1k_context: s.attention_us_per_1k_context(),
        }
        .scaled((tp0 / tp).powf(0.85));
        let kv = p.kv_cache_tokens.map_or(DEFAULT_KV_TOKENS, |k| k.max(1) as u64);
        Ok(Profile {
            name,
            step,
            kv_cache_tokens: (kv as f64 * tp / tp0).round() as u64,
            max_model_len: p.max_model_len.map_or(DEFAULT_MAX_MODEL_LEN, |m| m.max(1) as u32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_time_is_the_linear_model() {
        let m = StepModel {
            base_us: 6000.0,
            prefill_us_per_token: 20.0,
            decode_us_per_seq: 10.0,
            attention_us_per_1k_context: 50.0,
        };
        assert_eq!(m.step_time(0, 0, 0), Duration::from_micros(6000));
        assert_eq!(m.step_time(100, 0, 0), Duration::from_micros(8000));
        assert_eq!(m.step_time(0, 4, 2000), Duration::from_micros(6000 + 40 + 100));
        assert_eq!(m.scaled(0.5).step_time(100, 0, 0), Duration::from_micros(4000));
    }

    #[test]
    fn every_builtin_profile_resolves_and_tp_scaling_speeds_steps_up() {
        let t = HardwareTable::builtin();
        for p in t.profiles() {
            let name = format!("{}@{}", p.model(), p.accelerator());
            let one = Profile::from_table(&t, &name, p.tensor_parallelism.unwrap_or(1) as u32).unwrap();
            assert!(one.step.base_us > 0.0 && one.step.prefill_us_per_token > 0.0, "{name}: {one:?}");
            assert!(one.kv_cache_tokens >= u64::from(one.max_model_len), "{name}: KV cache smaller than one sequence");
            let two = Profile::from_table(&t, &name, 2 * p.tensor_parallelism.unwrap_or(1) as u32).unwrap();
            assert!(two.step.base_us < one.step.base_us && two.kv_cache_tokens > one.kv_cache_tokens);
        }
    }

    #[test]
    fn bad_profile_names_say_what_is_known() {
        let t = HardwareTable::builtin();
        let e = Profile::from_table(&t, "nope", 1).unwrap_err().to_string();
        assert!(e.contains("is not MODEL@ACCELERATOR"), "{e}");
        let e = Profile::from_table(&t, "m@x", 1).unwrap_err().to_string();
        assert!(e.contains("has no profile m@x; known: ") && e.contains("meta-llama/Llama-2-7b-hf@nvidia-l4"), "{e}");
    }
}
