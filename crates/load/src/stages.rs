//! A `LoadSpec`'s pattern as the stages the runner runs: one per rate of a rate list, one for a
//! staged pattern (its stages are segments of one schedule), one per user count of a closed loop.
//! A stage ends at `duration_seconds`, or after `num_prompts` requests (LPG's way), whichever comes
//! first.

use crate::LoadError;
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

use super::{
    arrivals::{Process, Schedule, Segment},
    recorder::Slo,
    runner::{Load, StageSpec},
};
use inferbench_schema::{Arrival, LoadSpec, load_spec::Pattern};

/// Longest duration accepted (about 30 years): beyond, times overflow.
const MAX_SECONDS: f64 = 1e9;

/// A duration field must be a finite number of seconds ≥ 0 within [`MAX_SECONDS`].
fn check_seconds(name: &str, v: Option<f64>) -> Result<(), String> {
    match v {
        Some(s) if !(0.0..=MAX_SECONDS).contains(&s) => {
            Err(format!("{name} must be within 0..={MAX_SECONDS} seconds, got {s}"))
        }
        _ => Ok(()),
    }
}

/// Requests in flight when the spec sets no cap: each holds a connection (a file descriptor and a
/// port), and an overloaded server must not make the client run out of them.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 8192;

/// The stages of `spec`, or why it cannot run; `stop` ends them early.
pub fn plan(spec: &LoadSpec, stop: &CancellationToken) -> Result<Vec<StageSpec>, LoadError> {
    plan_stages(spec, stop).map_err(LoadError::Spec)
}

fn plan_stages(spec: &LoadSpec, stop: &CancellationToken) -> Result<Vec<StageSpec>, String> {
    for (name, v) in [
        ("duration_seconds", spec.duration_seconds),
        ("warmup_seconds", spec.warmup_seconds),
        ("request_timeout_seconds", spec.request_timeout_seconds),
        ("server_metrics.interval_seconds", spec.server_metrics.as_ref().and_then(|m| m.interval_seconds)),
    ] {
        check_seconds(name, v)?;
    }
    check_workers(spec)?;
    let duration = spec.duration_seconds.filter(|d| *d > 0.0).map(Duration::from_secs_f64);
    let count = spec.num_prompts.filter(|n| *n > 0);
    if duration.is_none() && count.is_none() {
        return Err("give a duration (duration_seconds / --benchmark-time-seconds) or a number of prompts".into());
    }
    let process = match spec.arrival() {
        Arrival::Constant => Process::Constant,
        Arrival::Gamma => Process::Gamma { burstiness: spec.burstiness.unwrap_or(1.0) },
        Arrival::Poisson | Arrival::Unspecified => Process::Poisson,
    };
    let label = match process {
        Process::Poisson => "poisson".to_owned(),
        Process::Constant => "constant".to_owned(),
        Process::Gamma { burstiness } => format!("gamma(burstiness={burstiness})"),
    };
    let models: Vec<Arc<str>> = spec.models.iter().map(|m| Arc::from(m.as_str())).collect();
    if models.is_empty() {
        return Err("no model to send requests to (models / --models)".into());
    }
    let slo =
        spec.slo.as_ref().map_or(Slo::default(), |s| Slo { ttft_ms: s.ttft_ms, tpot_ms: s.tpot_ms, e2e_ms: s.e2e_ms });
    let base = |name: String, load: Load, duration: Option<Duration>| StageSpec {
        name,
        load,
        duration,
        warmup: Duration::from_secs_f64(spec.warmup_seconds.unwrap_or(0.0).max(0.0)),
        max_concurrency: Some(spec.max_concurrency.filter(|c| *c > 0).unwrap_or(DEFAULT_MAX_CONCURRENCY)),
        models: models.clone(),
        stream: spec.streaming.unwrap_or(true),
        ignore_eos: spec.ignore_eos.unwrap_or(true),
        slo,
        stop: stop.clone(),
        live: Arc::default(),
        precise_pacing: true,
        busy_poll: spec.busy_poll.unwrap_or(false),
        exporter: None,
        share: Default::default(),
        start_at: None,
    };
    let seed = spec.seed.unwrap_or(0);
    let schedule = |segments: Vec<Segment>, i: u64| {
        Schedule::new(process, segments, count, seed ^ i.wrapping_mul(0x9e37_79b9))
            .map(Box::new)
            .map_err(|e| e.to_string())
    };
    match &spec.pattern {
        None => Err("no load pattern: give request rates (--request-rate), stages, concurrency or a sweep".into()),
        Some(Pattern::Rates(r)) if r.request_rates.is_empty() => Err("the rate list is empty".into()),
        Some(Pattern::Rates(r)) => r
            .request_rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| {
                let name = if rate.is_infinite() { "rate-inf".to_owned() } else { format!("rate-{rate}") };
                let schedule = schedule(vec![Segment::steady(rate, duration)], i as u64)?;
                Ok(base(name, Load::Open { schedule, requested_rate: rate, process: label.clone() }, duration))
            })
            .collect(),
        Some(Pattern::Stages(s)) => {
            let mut segments = Vec::new();
            let mut previous = 0.0;
            for (i, st) in s.stages.iter().enumerate() {
                check_seconds(&format!("stages[{i}].duration_seconds"), st.duration_seconds)?;
                let d = st.duration_seconds.filter(|d| *d > 0.0).ok_or(format!("stage {i} needs a duration"))?;
                let rate = st.rate.unwrap_or(0.0);
                let ramp_from = st.ramp.unwrap_or(false).then_some(previous);
                segments.push(Segment { rate, duration: Some(Duration::from_secs_f64(d)), ramp_from });
                previous = rate;
            }
            let total: f64 = s.stages.iter().filter_map(|s| s.duration_seconds).sum();
            let requested = segments.iter().map(|s| s.rate).fold(0.0, f64::max);
            let load = Load::Open { schedule: schedule(segments, 0)?, requested_rate: requested, process: label };
            Ok(vec![base("stages".into(), load, Some(Duration::from_secs_f64(total)))])
        }
        Some(Pattern::Concurrency(c)) if c.users.is_empty() => Err("the user list is empty".into()),
        Some(Pattern::Concurrency(c)) => Ok(c
            .users
            .iter()
            .map(|&u| base(format!("users-{u}"), Load::Closed { users: u, duration, max_requests: count }, duration))
            .collect()),
        Some(Pattern::Sweep(sw)) => {
            check_seconds("sweep.probe_seconds", sw.probe_seconds)?;
            let users = sw.probe_concurrency.filter(|u| *u > 0).unwrap_or(256);
            let probe = Some(Duration::from_secs_f64(sw.probe_seconds.filter(|s| *s > 0.0).unwrap_or(60.0)));
            // The rate stages follow once the probe has measured saturation: see `sweep_rates`.
            Ok(vec![base(SWEEP_PROBE.into(), Load::Closed { users, duration: probe, max_requests: None }, probe)])
        }
    }
}

/// Most load workers a spec may ask for.
pub const MAX_WORKERS: u32 = 1024;

/// Why `spec.workers` cannot share its load, if it cannot: out of 1…[`MAX_WORKERS`], a closed
/// loop with fewer users than workers (a worker would have none), or a sweep (each worker's probe
/// would measure its own share and choose other rates).
pub fn check_workers(spec: &LoadSpec) -> Result<(), String> {
    let workers = spec.workers.unwrap_or(1);
    if !(1..=MAX_WORKERS).contains(&workers) {
        return Err(format!("workers {workers}: expected 1…{MAX_WORKERS} load workers"));
    }
    if workers == 1 {
        return Ok(());
    }
    match &spec.pattern {
        Some(Pattern::Concurrency(c)) => match c.users.iter().find(|u| **u < workers) {
            Some(u) => Err(format!(
                "concurrency.users {u} is fewer than workers {workers}: a closed loop needs at least one user per \
                 worker (give more users or fewer workers)"
            )),
            None => Ok(()),
        },
        Some(Pattern::Sweep(_)) => Err(format!(
            "workers {workers}: a sweep runs on one worker (its probe measures the server's saturation once); \
             use rates or concurrency to share the load"
        )),
        _ => Ok(()),
    }
}

/// Name of a sweep's first stage: a closed loop at high concurrency that measures the server's
/// saturation throughput.
pub const SWEEP_PROBE: &str = "sweep-probe";

/// The rates a sweep runs after its probe measured `saturation` (successful requests/s): `num_rates`
/// evenly spaced up to `max_fraction` × saturation (just past it by default), as
/// inference-benchmarker and guidellm spread theirs; rounded to 0.01 req/s. Empty when the probe
/// measured nothing.
pub fn sweep_rates(sw: &inferbench_schema::Sweep, saturation: f64) -> Vec<f64> {
    if !(saturation.is_finite() && saturation > 0.0) {
        return vec![];
    }
    let n = sw.num_rates.filter(|n| *n > 0).unwrap_or(10).min(1000);
    let top = saturation * sw.max_fraction.filter(|f| f.is_finite() && *f > 0.0).unwrap_or(1.1);
    let mut rates: Vec<f64> =
        (1..=n).map(|i| ((top * f64::from(i) / f64::from(n)) * 100.0).round() / 100.0).filter(|r| *r > 0.0).collect();
    rates.dedup();
    rates
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_schema::{ClosedLoop, RateList, Stage, Stages};

    fn plan_(spec: &LoadSpec) -> Result<Vec<StageSpec>, String> {
        plan(spec, &CancellationToken::new()).map_err(|e| e.to_string())
    }

    fn spec(pattern: Pattern) -> LoadSpec {
        LoadSpec {
            pattern: Some(pattern),
            models: vec!["m".into()],
            duration_seconds: Some(10.0),
            ..Default::default()
        }
    }

    #[test]
    fn a_sweep_probes_first_then_spreads_rates_up_to_just_past_saturation() {
        let sw = inferbench_schema::Sweep {
            num_rates: Some(4),
            probe_concurrency: Some(32),
            probe_seconds: Some(5.0),
            ..Default::default()
        };
        let st = plan_(&spec(Pattern::Sweep(sw))).unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].name, SWEEP_PROBE);
        assert!(matches!(st[0].load, Load::Closed { users: 32, max_requests: None, .. }));
        assert_eq!(st[0].duration, Some(Duration::from_secs(5)));
        assert_eq!(sweep_rates(&sw, 100.0), [27.5, 55.0, 82.5, 110.0]);
        let half = inferbench_schema::Sweep { max_fraction: Some(0.5), num_rates: Some(2), ..sw };
        assert_eq!(sweep_rates(&half, 10.0), [2.5, 5.0]);
        assert!(sweep_rates(&sw, 0.0).is_empty(), "nothing measured, nothing to run");
        assert_eq!(sweep_rates(&inferbench_schema::Sweep::default(), 1.0).len(), 10, "ten rates by default");
    }

    #[test]
    fn rates_users_and_stages_become_stages() {
        let s = plan_(&spec(Pattern::Rates(RateList { request_rates: vec![1.0, 2.5] }))).unwrap();
        assert_eq!(s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["rate-1", "rate-2.5"]);
        let e = plan_(&spec(Pattern::Rates(RateList { request_rates: vec![f64::INFINITY] }))).unwrap_err();
        assert!(e.contains("needs a number of prompts"), "{e}");
        let mut all_at_once = spec(Pattern::Rates(RateList { request_rates: vec![f64::INFINITY] }));
        all_at_once.num_prompts = Some(3);
        let Load::Open { schedule, .. } = &plan_(&all_at_once).unwrap()[0].load else { panic!() };
        assert_eq!(schedule.clone().count(), 3);

        let s = plan_(&spec(Pattern::Concurrency(ClosedLoop { users: vec![4, 16] }))).unwrap();
        assert!(matches!(s[1].load, Load::Closed { users: 16, .. }));

        let stages = vec![
            Stage { rate: Some(10.0), duration_seconds: Some(5.0), ramp: None },
            Stage { rate: Some(20.0), duration_seconds: Some(5.0), ramp: Some(true) },
        ];
        let mut st = spec(Pattern::Stages(Stages { stages }));
        st.set_arrival(Arrival::Constant);
        let s = plan_(&st).unwrap();
        assert_eq!(s.len(), 1);
        let Load::Open { schedule, .. } = &s[0].load else { panic!() };
        // 5 s at 10/s, then a ramp 10 → 20 over 5 s: 50 + 75.
        assert_eq!(schedule.clone().count(), 125);
    }

    #[test]
    fn what_cannot_run_says_why() {
        let mut s = spec(Pattern::Rates(RateList { request_rates: vec![1.0] }));
        s.duration_seconds = None;
        assert!(plan_(&s).unwrap_err().contains("give a duration"));
        assert!(
            plan_(&LoadSpec { models: vec!["m".into()], duration_seconds: Some(1.0), ..Default::default() })
                .unwrap_err()
                .contains("no load pattern")
        );
        let sw = inferbench_schema::Sweep { probe_seconds: Some(f64::NAN), ..Default::default() };
        let e = plan_(&spec(Pattern::Sweep(sw))).unwrap_err();
        assert!(e.contains("sweep.probe_seconds"), "{e}");
        let mut s = spec(Pattern::Rates(RateList { request_rates: vec![1.0] }));
        s.server_metrics =
            Some(inferbench_schema::ServerMetrics { interval_seconds: Some(f64::NAN), ..Default::default() });
        assert!(plan_(&s).unwrap_err().contains("server_metrics.interval_seconds"));
    }
}
