//! Fault injection, so the load engine's and the platform's failure handling can be tested
//! deterministically: set by flags, changed at run time through `POST /admin/faults` (a partial
//! JSON object; unknown keys are refused), or forced per request with the `x-inferbench-fault`
//! header.
//!
//! Rates are drawn per request from the simulator's seed and the request's sequence number, so a
//! run with the same seed and arrival order fails the same requests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest stall or start-up delay accepted (a day): beyond it a `Duration` or `Instant` could
/// overflow, and no test needs more.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Request header that forces faults on one request: comma-separated `error=STATUS`,
/// `reset-after=TOKENS`, `stall=SECONDS@TOKENS`.
pub const FAULT_HEADER: &str = "x-inferbench-fault";

/// Fault settings (also the JSON of `/admin/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Fraction of requests answered with `error_status` instead of being served.
    pub error_rate: f64,
    /// HTTP status of injected errors (429, 500, 503, …).
    pub error_status: u16,
    /// Fraction of streamed requests whose connection is cut after `reset_after_tokens` tokens.
    pub reset_rate: f64,
    /// Tokens sent before an injected reset.
    pub reset_after_tokens: u32,
    /// Fraction of streamed requests that stall for `stall_seconds` after `stall_after_tokens`.
    pub stall_rate: f64,
    /// Length of an injected stall.
    pub stall_seconds: f64,
    /// Tokens sent before an injected stall.
    pub stall_after_tokens: u32,
    /// Seconds from now during which the server is not ready (`/health` 503, requests 503), as
    /// while a real server loads weights. Reads back as the seconds left.
    pub not_ready_seconds: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 500,
            reset_rate: 0.0,
            reset_after_tokens: 1,
            stall_rate: 0.0,
            stall_seconds: 0.0,
            stall_after_tokens: 1,
            not_ready_seconds: 0.0,
        }
    }
}

/// What goes wrong with one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultPlan {
    /// Answer with this status instead.
    pub error: Option<u16>,
    /// Cut the connection after this many tokens.
    pub reset_after: Option<u32>,
    /// Pause this long after this many tokens.
    pub stall: Option<(Duration, u32)>,
}

/// A fault setting that cannot be, named (from a request header, a PATCH, or the flags).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FaultError(pub String);

impl Faults {
    /// Checks values a user sent.
    pub fn check(&self) -> Result<(), FaultError> {
        self.check_settings().map_err(FaultError)
    }

    fn check_settings(&self) -> Result<(), String> {
        for (name, v) in
            [("error_rate", self.error_rate), ("reset_rate", self.reset_rate), ("stall_rate", self.stall_rate)]
        {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be within 0..=1, got {v}"));
            }
        }
        if !(400..=599).contains(&self.error_status) {
            return Err(format!("error_status must be an HTTP error status (400..=599), got {}", self.error_status));
        }
        for (name, v) in [("stall_seconds", self.stall_seconds), ("not_ready_seconds", self.not_ready_seconds)] {
            if !(0.0..=MAX_SECONDS).contains(&v) {
                return Err(format!("{name} must be within 0..={MAX_SECONDS}, got {v}"));
            }
        }
        Ok(())
    }

    /// Applies a partial JSON object: only the keys given change; unknown keys are an error.
    pub fn patch(&self, patch: &serde_json::Value) -> Result<Faults, FaultError> {
        self.apply_patch(patch).map_err(FaultError)
    }

    fn apply_patch(&self, patch: &serde_json::Value) -> Result<Faults, String> {
        let serde_json::Value::Object(p) = patch else {
            return Err("expected a JSON object of fault settings".into());
        };
        let mut v = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let obj = v.as_object_mut().expect("Faults serializes to an object");
        for (k, val) in p {
            if !obj.contains_key(k) {
                let known: Vec<_> = obj.keys().cloned().collect();
                return Err(format!("unknown fault setting \"{k}\"; known: {}", known.join(", ")));
            }
            obj.insert(k.clone(), val.clone());
        }
        let f: Faults = serde_json::from_value(v).map_err(|e| e.to_string())?;
        f.check().map_err(|e| e.0)?;
        Ok(f)
    }

    /// The plan for request number `n` given the simulator's `seed`.
    pub fn plan(&self, seed: u64, n: u64) -> FaultPlan {
        let u = |salt: u64| unit(seed ^ salt, n);
        FaultPlan {
            error: (self.error_rate > 0.0 && u(0x11) < self.error_rate).then_some(self.error_status),
            reset_after: (self.reset_rate > 0.0 && u(0x22) < self.reset_rate).then_some(self.reset_after_tokens),
            stall: (self.stall_rate > 0.0 && u(0x33) < self.stall_rate)
                .then(|| (Duration::from_secs_f64(self.stall_seconds), self.stall_after_tokens)),
        }
    }
}

impl FaultPlan {
    /// Overrides from the request header. Errors name the bad part.
    pub fn with_header(self, header: &str) -> Result<FaultPlan, FaultError> {
        self.parse_header(header).map_err(FaultError)
    }

    fn parse_header(mut self, header: &str) -> Result<FaultPlan, String> {
        for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("{FAULT_HEADER}: \"{part}\" is not KEY=VALUE"))?;
            let bad = || format!("{FAULT_HEADER}: bad value in \"{part}\"");
            match k.trim() {
                "error" => {
                    let s: u16 = v.trim().parse().map_err(|_| bad())?;
                    if !(400..=599).contains(&s) {
                        return Err(bad());
                    }
                    self.error = Some(s);
                }
                "reset-after" => self.reset_after = Some(v.trim().parse().map_err(|_| bad())?),
                "stall" => {
                    let (secs, after) = v.split_once('@').unwrap_or((v, "0"));
                    let secs: f64 = secs.trim().parse().map_err(|_| bad())?;
                    if !(0.0..=MAX_SECONDS).contains(&secs) {
                        return Err(bad());
                    }
                    self.stall = Some((Duration::from_secs_f64(secs), after.trim().parse().map_err(|_| bad())?));
                }
                other => {
                    return Err(format!("{FAULT_HEADER}: unknown fault \"{other}\"; known: error, reset-after, stall"));
                }
            }
        }
        Ok(self)
    }
}

/// A uniform number in [0, 1) from a seed and a counter (splitmix64).
fn unit(seed: u64, n: u64) -> f64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform number in [0, 1) (shared with the output-length draw).
pub(crate) fn uniform(seed: u64, n: u64) -> f64 {
    unit(seed, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_hit_about_that_fraction_and_are_reproducible() {
        let f = Faults { error_rate: 0.25, error_status: 503, ..Faults::default() };
        let hits = (0..10_000).filter(|n| f.plan(42, *n).error == Some(503)).count();
        assert!((2300..2700).contains(&hits), "{hits}");
        assert_eq!(f.plan(42, 7), f.plan(42, 7));
    }

    #[test]
    fn patches_change_only_what_is_given_and_refuse_unknown_keys() {
        let f = Faults::default().patch(&serde_json::json!({"error_rate": 0.5})).unwrap();
        assert_eq!(f, Faults { error_rate: 0.5, ..Faults::default() });
        let e = f.patch(&serde_json::json!({"eror_rate": 1})).unwrap_err();
        assert!(e.0.starts_with("unknown fault setting \"eror_rate\"; known: "), "{e}");
        let e = f.patch(&serde_json::json!({"error_rate": 2})).unwrap_err();
        assert_eq!(e.0, "error_rate must be within 0..=1, got 2");
    }

    #[test]
    fn the_header_forces_faults() {
        let p = FaultPlan::default().with_header("error=429, stall=1.5@3,reset-after=10").unwrap();
        assert_eq!(
            p,
            FaultPlan { error: Some(429), reset_after: Some(10), stall: Some((Duration::from_millis(1500), 3)) }
        );
        assert!(FaultPlan::default().with_header("error=200").is_err());
        assert!(FaultPlan::default().with_header("stall=1e20").is_err(), "a huge stall is refused, not a panic");
        assert!(Faults::default().patch(&serde_json::json!({"not_ready_seconds": 1e20})).is_err());
        assert!(FaultPlan::default().with_header("boom=1").unwrap_err().0.contains("unknown fault \"boom\""));
    }
}
