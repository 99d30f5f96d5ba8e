//! The verdict on the client: did it deliver the load it was configured for? Each check and its
//! threshold is defined in `proto/results.proto` (`LoadVerdict`); this computes them from what a
//! stage measured — its aggregates, its per-request records, the schedule it was given and the
//! requests it held open over time.
//!
//! Why a verdict at all: a client that falls behind (too little CPU, too few connections, a
//! concurrency cap, users that never got through) measures a server under less load than asked,
//! and its latencies then look better than the configured load's. Nothing else in the results
//! says so in one word.

use statrs::distribution::{Continuous, ContinuousCDF, Exp, Gamma};

use super::{
    arrivals::{Process, Schedule},
    recorder::NONE_US,
    records::Records,
};
use inferbench_schema::{LoadCheck, LoadVerdict, StageResult};

/// "lag": schedule-lag p99 limit, ms.
pub const LAG_P99_LIMIT_MS: f64 = 10.0;
/// "cap": most arrivals that may wait for a concurrency slot, as a fraction of those sent.
pub const CAP_DELAYED_LIMIT: f64 = 0.01;
/// "cpu": most of the client's cores it may keep busy.
pub const CPU_LIMIT: f64 = 0.9;
/// "in_flight": least fraction of the implied requests in flight.
pub const IN_FLIGHT_LOW: f64 = 0.9;
/// "arrivals": the KS test fails below this p-value.
pub const KS_ALPHA: f64 = 0.001;
/// "rate": two-sided 99.9 % interval (normal quantile).
const Z_999: f64 = 3.290_526_731_491_926;
/// Fewest first-turn requests for the arrival-process test.
const KS_MIN: usize = 20;

/// The requests a client held open, sampled while a stage ran: (µs since the stage start,
/// requests in flight), in time order.
pub type InFlight = [(u64, u64)];

/// What the stage was asked to offer.
pub enum Asked<'a> {
    /// An open loop on this schedule (as planned, not yet drawn from).
    Open(&'a Schedule),
    /// Worker `index`'s share of `of` (every n-th arrival) of an open loop on this schedule: its
    /// rate and the requests it keeps open are the schedule's over n. Its own arrival gaps are
    /// not the schedule's process (every n-th of a Poisson process is not Poisson): worker 0
    /// tests the gaps of the whole schedule instead (every worker's arrivals, drawn again from
    /// the seed up to its own last one: what one process would have tested, but for the last
    /// few arrivals), so the merged stage has the one "arrivals" check one process has.
    Shared { schedule: &'a Schedule, index: u32, of: u32 },
    /// A closed loop of this many users.
    Closed(u32),
}

/// The verdict on `result` (its `offered`, `counts`, `schedule_lag_ms` and `duration_seconds`
/// filled in), from its `records` and the `in_flight` samples; None when nothing was measured.
pub fn verdict(result: &StageResult, records: &Records, asked: Asked<'_>, in_flight: &InFlight) -> Option<LoadVerdict> {
    if records.is_empty() {
        return None;
    }
    let offered = result.offered.clone().unwrap_or_default();
    let mut checks = vec![];
    let first_turns = || records.iter().filter(|r| !r.later_turn);
    let span = send_span(records);
    let mean_open_s = {
        let (sum, n) = records
            .iter()
            .filter(|r| r.end_us != NONE_US)
            .fold((0.0, 0u64), |(s, n), r| (s + f64::from(r.end_us) / 1e6, n + 1));
        if n == 0 { None } else { Some(sum / n as f64) }
    };
    let (asked, share, tests_arrivals) = match asked {
        Asked::Shared { schedule, index, of } => (Asked::Open(schedule), f64::from(of.max(1)), index == 0),
        other => (other, 1.0, true),
    };
    match asked {
        Asked::Shared { .. } => unreachable!("taken apart above"),
        Asked::Open(schedule) => {
            checks.push(LoadCheck {
                name: "dropped".into(),
                passed: offered.dropped == 0,
                value: offered.dropped as f64,
                high: Some(0.0),
                ..Default::default()
            });
            if let Some(c) = rate_check(schedule, share, first_turns().map(|r| r.sent_us)) {
                checks.push(c);
            }
            let arrivals = if !tests_arrivals {
                None
            } else if share == 1.0 {
                arrivals_check(schedule, first_turns().map(|r| r.intended_us))
            } else {
                let last = first_turns().map(|r| r.intended_us).max().unwrap_or(0);
                let whole = schedule.whole().map(|t| t.as_micros() as u64).take_while(|us| *us <= last);
                arrivals_check(schedule, whole)
            };
            checks.extend(arrivals);
            // All at once (an infinite rate) has no schedule to keep: its lag is the queue it makes.
            let scheduled = schedule.expected_by(0.0).is_some();
            if let Some(lag) = result.schedule_lag_ms.filter(|d| d.count > 0 && scheduled) {
                checks.push(LoadCheck {
                    name: "lag".into(),
                    passed: lag.p99 <= LAG_P99_LIMIT_MS,
                    value: lag.p99,
                    high: Some(LAG_P99_LIMIT_MS),
                    ..Default::default()
                });
            }
            let sent = result.counts.as_ref().map_or(0, |c| c.sent);
            if sent > 0 {
                let f = offered.delayed_by_concurrency_cap as f64 / sent as f64;
                checks.push(LoadCheck {
                    name: "cap".into(),
                    passed: f <= CAP_DELAYED_LIMIT,
                    value: f,
                    high: Some(CAP_DELAYED_LIMIT),
                    ..Default::default()
                });
            }
            // Little's law over the steady part of the sends: the configured rate there × the
            // time each arrival (with its later turns) keeps a request open.
            if let (Some((a, b)), Some(w)) = (span, mean_open_s) {
                let arrivals = first_turns().count() as f64;
                let per_arrival = w * records.len() as f64 / arrivals.max(1.0);
                let from = a + per_arrival;
                if let (Some(l0), Some(l1)) = (schedule.expected_by(from), schedule.expected_by(b))
                    && b > from
                {
                    let implied = (l1 - l0) / share / (b - from) * per_arrival;
                    // Open requests of a Poisson load are Poisson(implied) (M/G/∞); samples
                    // closer than a request's life are not independent.
                    let independent = ((b - from) / per_arrival.max(0.1)).max(1.0);
                    checks.extend(in_flight_check(in_flight, from, b, implied, Some(independent)));
                }
            }
        }
        Asked::Closed(users) => {
            checks.push(LoadCheck {
                name: "users".into(),
                passed: offered.users_ran >= users,
                value: f64::from(offered.users_ran),
                low: Some(f64::from(users)),
                ..Default::default()
            });
            if let (Some((a, b)), Some(w)) = (span, mean_open_s) {
                checks.extend(in_flight_check(in_flight, a + w, b, f64::from(users), None));
            }
        }
    }
    if offered.client_cores > 0 && result.duration_seconds > 0.0 {
        let used = offered.client_cpu_seconds / (f64::from(offered.client_cores) * result.duration_seconds);
        checks.push(LoadCheck {
            name: "cpu".into(),
            passed: used <= CPU_LIMIT,
            value: used,
            high: Some(CPU_LIMIT),
            ..Default::default()
        });
    }
    let reasons: Vec<String> = checks.iter().filter(|c| !c.passed).map(|c| reason(c, &offered)).collect();
    Some(LoadVerdict { delivered: reasons.is_empty(), reasons, checks })
}

/// First and last send, seconds since the stage start (None: fewer than two requests).
fn send_span(records: &Records) -> Option<(f64, f64)> {
    let (lo, hi) = records.iter().fold((u64::MAX, 0), |(lo, hi), r| (lo.min(r.sent_us), hi.max(r.sent_us)));
    (records.len() >= 2 && hi > lo).then(|| (lo as f64 / 1e6, hi as f64 / 1e6))
}

/// "rate": the sends after the first, against the count the schedule offers over their span.
/// A worker's share (1/`share` of the arrivals) is held to its part of the count; the interval
/// of the whole process's count is then wider than the share's (every n-th arrival is more
/// regular than the process), so a share that passes is within it.
fn rate_check(schedule: &Schedule, share: f64, sent_us: impl Iterator<Item = u64>) -> Option<LoadCheck> {
    let (mut lo, mut hi, mut n) = (u64::MAX, 0u64, 0u64);
    for s in sent_us {
        (lo, hi, n) = (lo.min(s), hi.max(s), n + 1);
    }
    if n < 2 || hi <= lo {
        return None;
    }
    let (a, b) = (lo as f64 / 1e6, hi as f64 / 1e6);
    let mu = (schedule.expected_by(b)? - schedule.expected_by(a)?) / share;
    let (low, high) = count_interval(mu, schedule.process());
    let k = (n - 1) as f64;
    let span = b - a;
    Some(LoadCheck {
        name: "rate".into(),
        passed: (low..=high).contains(&k),
        value: k / span,
        low: Some(low / span),
        high: Some(high / span),
        ..Default::default()
    })
}

/// The two-sided 99.9 % interval of an arrival count whose mean is `mu`: Poisson's (exact up to
/// a mean of 500, normal beyond); a burstier gamma process's variance is `mu / burstiness`.
pub fn count_interval(mu: f64, process: Process) -> (f64, f64) {
    let inflate = match process {
        Process::Gamma { burstiness } if burstiness < 1.0 => 1.0 / burstiness,
        _ => 1.0,
    };
    if mu <= 0.0 {
        return (0.0, 0.0);
    }
    if inflate == 1.0 && mu <= 500.0 {
        // The smallest k whose CDF reaches each tail's quantile (e^-500 is still a normal f64).
        let (mut pmf, mut cdf, mut k) = ((-mu).exp(), 0.0, 0u32);
        let mut low = None;
        loop {
            cdf += pmf;
            if low.is_none() && cdf >= 0.0005 {
                low = Some(f64::from(k));
            }
            if cdf >= 0.9995 || k > 10_000 {
                return (low.unwrap_or(0.0), f64::from(k));
            }
            k += 1;
            pmf *= mu / f64::from(k);
        }
    }
    let half = Z_999 * (mu * inflate).sqrt() + 1.0;
    ((mu - half).max(0.0).floor(), (mu + half).ceil())
}

/// "arrivals": the KS test of the intended gaps, rescaled to unit rate, against the process.
fn arrivals_check(schedule: &Schedule, intended_us: impl Iterator<Item = u64>) -> Option<LoadCheck> {
    let (cdf, shape): (Box<dyn Fn(f64) -> f64>, f64) = match schedule.process() {
        Process::Poisson => {
            let e = Exp::new(1.0).ok()?;
            (Box::new(move |x| e.cdf(x)), 1.0)
        }
        Process::Gamma { burstiness } => {
            let g = Gamma::new(burstiness, burstiness).ok()?;
            (Box::new(move |x| g.cdf(x)), burstiness)
        }
        Process::Constant => return None,
    };
    let mut t: Vec<u64> = intended_us.collect();
    if t.len() < KS_MIN {
        return None;
    }
    t.sort_unstable();
    let clock: Vec<f64> = t.iter().map(|&us| schedule.expected_by(us as f64 / 1e6)).collect::<Option<_>>()?;
    let mut gaps: Vec<f64> = clock.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable_by(f64::total_cmp);
    let n = gaps.len() as f64;
    let d = gaps.iter().enumerate().fold(0.0f64, |d, (i, &x)| {
        let f = cdf(x);
        d.max((i + 1) as f64 / n - f).max(f - i as f64 / n)
    });
    // Recorded times are whole microseconds: a gap is off by up to 1 µs of time, `rate` × 1 µs
    // of the unit clock, which moves the CDF by at most F(δ) where the density falls from 0
    // (shape ≤ 1), else by its peak × δ.
    let rate = (schedule.expected_by(t[t.len() - 1] as f64 / 1e6)? - schedule.expected_by(t[0] as f64 / 1e6)?)
        / ((t[t.len() - 1] - t[0]).max(1) as f64 / 1e6);
    let delta = rate * 1e-6 * 2.0;
    let rounding = if shape <= 1.0 {
        cdf(delta)
    } else {
        Gamma::new(shape, shape).map_or(0.0, |g| g.pdf((shape - 1.0) / shape)) * delta
    };
    let d = (d - rounding).max(0.0);
    let p = kolmogorov_p(d, n);
    Some(LoadCheck { name: "arrivals".into(), passed: p >= KS_ALPHA, value: d, p_value: Some(p), ..Default::default() })
}

/// Kolmogorov's asymptotic p-value of the KS statistic `d` over `n` samples (Stephens' small-n
/// correction).
pub fn kolmogorov_p(d: f64, n: f64) -> f64 {
    let sn = n.sqrt();
    let lambda = (sn + 0.12 + 0.11 / sn) * d;
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as u32 % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// "in_flight": the mean of the samples within `[from, to]` (seconds) against `implied`; None when
/// fewer than 3 samples fall there (a stage too short for a steady state). An open loop's count
/// is random (Poisson, over about `independent` independent samples): its bound is also no
/// tighter than its 99.9 % lower limit, and a load too small to tell is not checked.
fn in_flight_check(
    samples: &InFlight,
    from: f64,
    to: f64,
    implied: f64,
    independent: Option<f64>,
) -> Option<LoadCheck> {
    let within: Vec<u64> =
        samples.iter().filter(|(t, _)| (from..=to).contains(&(*t as f64 / 1e6))).map(|(_, n)| *n).collect();
    // Below one request in flight on average, samples every 100 ms see mostly none, and when they
    // run is not independent of the requests (the client's threads serve both): measured against
    // a server answering in 0.1 ms at 3 000 req/s (0.45 implied), they read 0.0-0.2.
    if within.len() < 3 || implied < 1.0 {
        return None;
    }
    let mean = within.iter().sum::<u64>() as f64 / within.len() as f64;
    let mut low = IN_FLIGHT_LOW * implied;
    if let Some(n) = independent {
        low = low.min(implied - Z_999 * (implied / n.min(within.len() as f64)).sqrt());
        if low <= 0.0 {
            return None;
        }
    }
    Some(LoadCheck { name: "in_flight".into(), passed: mean >= low, value: mean, low: Some(low), ..Default::default() })
}

/// A failed check in words, with what to do.
fn reason(c: &LoadCheck, o: &inferbench_schema::Offered) -> String {
    let (v, low, high) = (c.value, c.low.unwrap_or(f64::NAN), c.high.unwrap_or(f64::NAN));
    match c.name.as_str() {
        "dropped" => format!(
            "{v:.0} arrivals were never sent (the stage ended while they waited for a concurrency slot): raise max_concurrency or lower the rate"
        ),
        "rate" => format!(
            "the client sent {v:.2} req/s, outside {low:.2}–{high:.2} (the 99.9 % interval of the configured rate): it fell behind its schedule"
        ),
        "arrivals" => format!(
            "the intended arrival gaps are not the configured {} process (KS D = {v:.4}, p = {:.2e})",
            o.process,
            c.p_value.unwrap_or(f64::NAN)
        ),
        "lag" => {
            let steal = if o.host_steal_seconds >= 0.01 {
                format!(
                    " (the hypervisor took {:.2} s of the machine's cores meanwhile: the host, not the client, may be why)",
                    o.host_steal_seconds
                )
            } else {
                String::new()
            };
            format!("schedule lag p99 {v:.1} ms > {high:.0} ms: requests left late{steal}")
        }
        "cap" => format!(
            "{:.1} % of arrivals waited for a max_concurrency slot (> {:.0} %): the cap, not the rate, set the load",
            v * 100.0,
            high * 100.0
        ),
        "cpu" => format!(
            "the client kept {:.0} % of its {} cores busy (> {:.0} %): it was its own bottleneck; give it more cores or spread the load",
            v * 100.0,
            o.client_cores,
            high * 100.0
        ),
        "in_flight" => format!(
            "{v:.1} requests in flight on average, fewer than {low:.1} (what the load implies by Little's law, less its noise): the client did not keep the load open"
        ),
        "users" => format!(
            "only {v:.0} of {low:.0} users completed a request: the others never got one through (connection or open-file limits)"
        ),
        other => format!("check {other} failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrivals::Segment;
    use crate::recorder::RequestRecord;

    fn schedule(process: Process, rate: f64) -> Schedule {
        Schedule::new(process, vec![Segment::steady(rate, None)], None, 7).unwrap()
    }

    fn records(intended: &[u64], lag_us: u64, e2e_us: u32) -> Records {
        intended
            .iter()
            .map(|&i| RequestRecord {
                intended_us: i,
                sent_us: i + lag_us,
                end_us: e2e_us,
                ..crate::recorder::tests::example().record
            })
            .collect()
    }

    #[test]
    fn a_poisson_schedule_sent_on_time_passes_every_check() {
        let s = schedule(Process::Poisson, 200.0);
        let intended: Vec<u64> = s.clone().take(4000).map(|d| d.as_micros() as u64).collect();
        let recs = records(&intended, 50, 100_000);
        let end = *intended.last().unwrap();
        // 20 requests (200/s × 0.1 s) open at every sample.
        let in_flight: Vec<(u64, u64)> = (0..end / 100_000).map(|k| (k * 100_000, 20)).collect();
        let result = StageResult {
            duration_seconds: end as f64 / 1e6,
            offered: Some(inferbench_schema::Offered {
                client_cores: 2,
                client_cpu_seconds: 1.0,
                ..Default::default()
            }),
            counts: Some(inferbench_schema::Counts { sent: 4000, ..Default::default() }),
            schedule_lag_ms: Some(inferbench_schema::Distribution { count: 4000, p99: 0.05, ..Default::default() }),
            ..Default::default()
        };
        let v = verdict(&result, &recs, Asked::Open(&s), &in_flight).unwrap();
        assert!(v.delivered, "{:#?}", v);
        let names: Vec<&str> = v.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["dropped", "rate", "arrivals", "lag", "cap", "in_flight", "cpu"]);
        let ks = v.checks.iter().find(|c| c.name == "arrivals").unwrap();
        assert!(ks.p_value.unwrap() > 0.01, "{ks:?}");
    }

    #[test]
    fn a_client_that_falls_behind_fails_rate_lag_and_in_flight_with_reasons() {
        let s = schedule(Process::Poisson, 1000.0);
        let intended: Vec<u64> = s.clone().take(5000).map(|d| d.as_micros() as u64).collect();
        // It sends at half the rate: request k goes at 2 × its intended time.
        let recs: Records = intended
            .iter()
            .map(|&i| RequestRecord {
                intended_us: i,
                sent_us: 2 * i,
                end_us: 10_000,
                ..crate::recorder::tests::example().record
            })
            .collect();
        let in_flight: Vec<(u64, u64)> = (0..100).map(|k| (k * 100_000, 5)).collect();
        let result = StageResult {
            duration_seconds: 10.0,
            offered: Some(inferbench_schema::Offered {
                client_cores: 1,
                client_cpu_seconds: 9.8,
                ..Default::default()
            }),
            counts: Some(inferbench_schema::Counts { sent: 5000, ..Default::default() }),
            schedule_lag_ms: Some(inferbench_schema::Distribution { count: 5000, p99: 4900.0, ..Default::default() }),
            ..Default::default()
        };
        let v = verdict(&result, &recs, Asked::Open(&s), &in_flight).unwrap();
        assert!(!v.delivered);
        let failed: Vec<&str> = v.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["rate", "lag", "in_flight", "cpu"], "{:#?}", v.reasons);
        assert!(v.reasons[0].starts_with("the client sent 50"), "{}", v.reasons[0]);
        assert!(v.reasons.iter().any(|r| r.contains("its own bottleneck")));
        assert!(v.reasons[1].ends_with("requests left late"), "no steal, none named: {}", v.reasons[1]);
        // A host that took the cores away is named beside the lag.
        let stolen = StageResult {
            offered: Some(inferbench_schema::Offered { host_steal_seconds: 0.35, ..result.offered.clone().unwrap() }),
            ..result
        };
        let v = verdict(&stolen, &recs, Asked::Open(&s), &in_flight).unwrap();
        assert!(
            v.reasons[1].contains("the hypervisor took 0.35 s of the machine's cores meanwhile"),
            "{}",
            v.reasons[1]
        );
    }

    #[test]
    fn the_ks_test_tells_a_constant_schedule_from_poisson_and_forgives_microsecond_rounding() {
        // 30 000 req/s, rounded to µs (33 µs gaps): still Poisson.
        let s = schedule(Process::Poisson, 30_000.0);
        let intended: Vec<u64> = s.clone().take(200_000).map(|d| d.as_micros() as u64).collect();
        let c = arrivals_check(&s, intended.into_iter()).unwrap();
        assert!(c.passed, "{c:?}");
        // Equal gaps claimed to be Poisson: refused.
        let constant: Vec<u64> = (0..2000).map(|k| k * 5000).collect();
        let c = arrivals_check(&schedule(Process::Poisson, 200.0), constant.into_iter()).unwrap();
        assert!(!c.passed && c.p_value.unwrap() < 1e-10, "{c:?}");
        // A gamma process against its own shape passes, against Poisson fails.
        let g = schedule(Process::Gamma { burstiness: 0.25 }, 100.0);
        let bursty: Vec<u64> = g.clone().take(5000).map(|d| d.as_micros() as u64).collect();
        assert!(arrivals_check(&g, bursty.iter().copied()).unwrap().passed);
        assert!(!arrivals_check(&schedule(Process::Poisson, 100.0), bursty.into_iter()).unwrap().passed);
    }

    #[test]
    fn worker_0_of_a_shared_load_tests_the_arrivals_of_the_whole_schedule_as_one_process_does() {
        let s = schedule(Process::Poisson, 200.0);
        let all: Vec<u64> = s.clone().take(3000).map(|d| d.as_micros() as u64).collect();
        let result = StageResult {
            counts: Some(inferbench_schema::Counts { sent: 1000, ..Default::default() }),
            duration_seconds: *all.last().unwrap() as f64 / 1e6,
            ..Default::default()
        };
        let arrivals = |v: LoadVerdict| v.checks.into_iter().find(|c| c.name == "arrivals");
        let one = arrivals(verdict(&result, &records(&all, 50, 100_000), Asked::Open(&s), &[]).unwrap()).unwrap();
        let shares: Vec<Option<LoadCheck>> = (0..3u32)
            .map(|index| {
                let mine: Vec<u64> = s.clone().shared(index, 3).take(1000).map(|d| d.as_micros() as u64).collect();
                let asked = Asked::Shared { schedule: &s, index, of: 3 };
                arrivals(verdict(&result, &records(&mine, 50, 100_000), asked, &[]).unwrap())
            })
            .collect();
        // Worker 0's last arrival is at most 2 before the schedule's: nearly the same test.
        let w0 = shares[0].clone().expect("worker 0 tests the arrivals");
        assert!(w0.passed && (w0.value - one.value).abs() < 0.005, "{w0:?} vs {one:?}");
        assert!(shares[1].is_none() && shares[2].is_none(), "once per stage, not per worker");
        // Its share alone (every 3rd arrival of a Poisson process) would have failed the test.
        let mine: Vec<u64> = s.clone().shared(0, 3).take(1000).map(|d| d.as_micros() as u64).collect();
        assert!(!arrivals_check(&s, mine.into_iter()).unwrap().passed);
    }

    #[test]
    fn all_at_once_has_no_schedule_to_keep() {
        let s = Schedule::new(Process::Poisson, vec![Segment::steady(f64::INFINITY, None)], Some(50), 0).unwrap();
        let recs = records(&[0; 50], 30_000, 1000);
        let result = StageResult {
            counts: Some(inferbench_schema::Counts { sent: 50, ..Default::default() }),
            schedule_lag_ms: Some(inferbench_schema::Distribution { count: 50, p99: 30.0, ..Default::default() }),
            ..Default::default()
        };
        let v = verdict(&result, &recs, Asked::Open(&s), &[]).unwrap();
        let names: Vec<&str> = v.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["dropped", "cap"], "no rate, arrival process or lag to hold it to");
        assert!(v.delivered);
    }

    #[test]
    fn closed_loops_count_the_users_that_ran() {
        let recs = records(&(0..100).map(|k| k * 10_000).collect::<Vec<_>>(), 0, 20_000);
        let in_flight: Vec<(u64, u64)> = (0..10).map(|k| (k * 100_000, 2)).collect();
        let result = StageResult {
            offered: Some(inferbench_schema::Offered { users_ran: 2, ..Default::default() }),
            ..Default::default()
        };
        let v = verdict(&result, &recs, Asked::Closed(3), &in_flight).unwrap();
        assert!(!v.delivered);
        assert_eq!(v.reasons.len(), 2, "{:?}", v.reasons);
        assert!(v.reasons[0].starts_with("only 2 of 3 users completed a request"), "{:?}", v.reasons);
        assert!(v.reasons[1].starts_with("2.0 requests in flight on average, fewer than 2.7"), "{:?}", v.reasons);
    }

    #[test]
    fn intervals_and_p_values_are_the_textbook_ones() {
        assert_eq!(count_interval(100.0, Process::Poisson), (69.0, 134.0));
        assert_eq!(count_interval(0.1, Process::Poisson), (0.0, 2.0), "a handful of requests");
        let (lo, hi) = count_interval(1e6, Process::Poisson);
        assert!((lo - (1e6 - 3291.5)).abs() < 2.0 && (hi - (1e6 + 3291.5)).abs() < 2.0, "{lo} {hi}");
        let (lo, hi) = count_interval(1e6, Process::Gamma { burstiness: 0.25 });
        assert!((hi - lo - 4.0 * 3291.0).abs() < 10.0, "variance × 4: {lo} {hi}");
        // Kolmogorov's distribution: P(K > 1.358) = 0.05, P(K > 1.949) = 0.001.
        assert!((kolmogorov_p(1.358 / 1e3, 1e6) - 0.05).abs() < 1e-3);
        assert!((kolmogorov_p(1.949 / 1e3, 1e6) - 0.001).abs() < 1e-4);
    }
}
