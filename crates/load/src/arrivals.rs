//! Arrival schedules: the *intended* send time of every request, as offsets from the start of a
//! load stage, drawn ahead of sending. A sender sleeps until `start + offset` (absolute times), so
//! lateness never accumulates into drift, and each request's lag (actual − intended) is measurable.
//!
//! A schedule is a list of segments, each offering `rate` req/s for a duration, optionally ramping
//! linearly from another rate (staged patterns for autoscaling tests). Within the segments arrivals
//! follow one [`Process`]; a time-varying rate is handled by time rescaling: unit-rate gaps
//! (exponential for Poisson, 1 for constant, gamma for bursty) are mapped through the integral of the
//! rate, so a Poisson process stays Poisson across rate changes and ramps. The first arrival is at
//! offset 0. A segment of infinite rate sends everything at its start (`num_prompts` must bound it).

use std::time::Duration;

use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Exp1, Gamma};

/// Arrivals this close to the end of the last segment fall after it (float sums of gaps).
const END_TOLERANCE: f64 = 1e-9;

/// Highest finite rate (req/s).
pub const MAX_RATE: f64 = 1e6;

/// How gaps between arrivals are drawn (at unit rate; the segment's rate scales them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Process {
    /// Exponential gaps: a Poisson process.
    Poisson,
    /// Equal gaps.
    Constant,
    /// Gamma gaps of shape `burstiness` (mean 1, squared coefficient of variation 1/burstiness):
    /// < 1 is burstier than Poisson, 1 is Poisson, > 1 is more regular (vLLM's `--burstiness`).
    Gamma {
        /// Shape of the gamma distribution.
        burstiness: f64,
    },
}

/// A stretch of offered load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Rate at the end of the segment (req/s); `f64::INFINITY` sends everything at once.
    pub rate: f64,
    /// Length; `None`: until the request count is reached.
    pub duration: Option<Duration>,
    /// Rate at the start of the segment when it ramps linearly to `rate` (needs a duration).
    pub ramp_from: Option<f64>,
}

impl Segment {
    /// `rate` req/s for `duration`.
    pub fn steady(rate: f64, duration: Option<Duration>) -> Self {
        Segment { rate, duration, ramp_from: None }
    }
}

/// A schedule that cannot be drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A negative or NaN rate.
    #[error("request rate must be within 0..=1e6 req/s (or inf, all at once), got {0}")]
    BadRate(f64),
    /// Infinite rate with nothing to bound it.
    #[error("an infinite request rate (all at once) needs a number of prompts to send")]
    Unbounded,
    /// A ramp without a duration.
    #[error("a ramp needs a duration")]
    RampWithoutDuration,
    /// Burstiness ≤ 0.
    #[error("burstiness must be > 0, got {0}")]
    BadBurstiness(f64),
}

/// The intended offsets of one stage's arrivals, in order.
#[derive(Debug, Clone)]
pub struct Schedule {
    process: Process,
    segments: Vec<Segment>,
    max_count: Option<u64>,
    count: u64,
    /// Current segment and where it starts (seconds from the stage start).
    seg: usize,
    seg_start: f64,
    /// Offset of the last arrival (seconds).
    t: f64,
    rng: StdRng,
    gamma: Option<Gamma<f64>>,
    /// This worker's share: arrivals whose global index is `share.0` mod `share.1` (see
    /// [`Schedule::shared`]).
    share: (u64, u64),
    seed: u64,
}

impl Schedule {
    /// A schedule over `segments`, at most `max_count` arrivals, drawn from `seed`.
    pub fn new(
        process: Process,
        segments: Vec<Segment>,
        max_count: Option<u64>,
        seed: u64,
    ) -> Result<Schedule, ScheduleError> {
        let mut unbounded_inf = false;
        for s in &segments {
            for r in [Some(s.rate), s.ramp_from].into_iter().flatten() {
                // A finite rate above MAX_RATE would make gaps smaller than the float step of the
                // offsets (and a schedule that never ends): "all at once" is `inf` with a count.
                if r.is_nan() || r < 0.0 || (r.is_finite() && r > MAX_RATE) {
                    return Err(ScheduleError::BadRate(r));
                }
            }
            if s.ramp_from.is_some() && s.duration.is_none() {
                return Err(ScheduleError::RampWithoutDuration);
            }
            unbounded_inf |= s.rate.is_infinite();
        }
        if unbounded_inf && max_count.is_none() {
            return Err(ScheduleError::Unbounded);
        }
        let gamma = match process {
            Process::Gamma { burstiness } if !(burstiness > 0.0 && burstiness.is_finite()) => {
                return Err(ScheduleError::BadBurstiness(burstiness));
            }
            Process::Gamma { burstiness } => Some(Gamma::new(burstiness, 1.0 / burstiness).expect("shape checked")),
            _ => None,
        };
        Ok(Schedule {
            process,
            segments,
            max_count,
            count: 0,
            seg: 0,
            seg_start: 0.0,
            t: 0.0,
            rng: StdRng::seed_from_u64(seed),
            gamma,
            share: (0, 1),
            seed,
        })
    }

    /// Only worker `index`'s share of `workers`: the global schedule is drawn whole (every worker
    /// draws the same times from the seed) and arrival k is given only when k mod `workers` is
    /// `index`, so the workers' shares together are, arrival for arrival, the one schedule.
    pub fn shared(mut self, index: u32, workers: u32) -> Schedule {
        self.share = (u64::from(index), u64::from(workers.max(1)));
        self
    }

    /// The global index of the last arrival given (0-based; every worker's count, not this
    /// worker's): the request number its prompt is drawn by.
    pub fn last_index(&self) -> u64 {
        self.count.saturating_sub(1)
    }

    /// Arrivals the whole schedule (all workers) has before `end` (None: all), counted on a copy
    /// from its start: what every worker agrees a stage offered, so the next stage's request
    /// numbers are the same on each.
    pub fn arrivals_before(&self, end: Option<Duration>) -> u64 {
        self.whole().take_while(|t| end.is_none_or(|e| *t < e)).count() as u64
    }

    /// The whole schedule (every worker's arrivals) from its start, whatever this one's share.
    pub fn whole(&self) -> Schedule {
        Schedule::new(self.process, self.segments.clone(), self.max_count, self.seed).expect("built before")
    }

    /// Offered requests over the whole schedule (∫ rate), when finite: what a run should send.
    pub fn expected_count(&self) -> Option<f64> {
        let mut n = 0.0;
        for s in &self.segments {
            let d = s.duration?.as_secs_f64();
            n += (s.ramp_from.unwrap_or(s.rate) + s.rate) / 2.0 * d;
        }
        Some(self.max_count.map_or(n, |m| n.min(m as f64)))
    }

    /// Arrivals the rate offers from the start to `t` seconds (∫₀ᵗ rate): the clock on which the
    /// process's gaps are drawn (a gap of `g` units is `g` of this, whatever the rate), so
    /// differences of it turn the gaps of a ramp or of stages into gaps of one unit-rate process.
    /// Past the last segment's end, as if its rate went on: what a client still sending then
    /// should have sent by `t` (a starved client sends a 2 s schedule over minutes). None where
    /// the rate is infinite (all at once).
    pub fn expected_by(&self, t: f64) -> Option<f64> {
        let (mut n, mut start) = (0.0, 0.0);
        for (i, s) in self.segments.iter().enumerate() {
            let r0 = s.ramp_from.unwrap_or(s.rate);
            if !(r0.is_finite() && s.rate.is_finite()) {
                return None;
            }
            let len = s.duration.map_or(f64::INFINITY, |d| d.as_secs_f64());
            let x = (t - start).clamp(0.0, len);
            let slope = if s.ramp_from.is_some() { (s.rate - r0) / len } else { 0.0 };
            n += r0 * x + slope / 2.0 * x * x;
            if t <= start + len {
                break;
            }
            start += len;
            if i + 1 == self.segments.len() {
                n += s.rate * (t - start);
            }
        }
        Some(n)
    }

    /// The process the gaps are drawn from.
    pub fn process(&self) -> Process {
        self.process
    }

    fn unit_gap(&mut self) -> f64 {
        match self.process {
            Process::Poisson => Exp1.sample(&mut self.rng),
            Process::Constant => 1.0,
            Process::Gamma { .. } => self.gamma.as_ref().expect("built with the process").sample(&mut self.rng),
        }
    }

    /// Moves `self.t` on by `work` units of ∫ rate; None when the segments end first.
    fn advance(&mut self, mut work: f64) -> Option<f64> {
        loop {
            let s = *self.segments.get(self.seg)?;
            let end = s.duration.map_or(f64::INFINITY, |d| self.seg_start + d.as_secs_f64());
            let r0 = s.ramp_from.unwrap_or(s.rate);
            if s.rate.is_infinite() || r0.is_infinite() {
                return Some(self.t);
            }
            let slope = if s.ramp_from.is_some() { (s.rate - r0) / (end - self.seg_start) } else { 0.0 };
            let rate_now = r0 + slope * (self.t - self.seg_start);
            let left = end - self.t;
            let available = if left.is_infinite() {
                if rate_now > 0.0 { f64::INFINITY } else { 0.0 }
            } else {
                rate_now * left + slope / 2.0 * left * left
            };
            if work <= available && available > 0.0 {
                // Solve rate_now·x + slope/2·x² = work for the smallest x ≥ 0.
                let x = if slope.abs() < 1e-12 {
                    work / rate_now
                } else {
                    (-rate_now + (rate_now * rate_now + 2.0 * slope * work).max(0.0).sqrt()) / slope
                };
                self.t = (self.t + x).min(end);
                return Some(self.t);
            }
            if end.is_infinite() {
                return None; // rate 0 forever
            }
            work -= available;
            self.t = end;
            self.seg += 1;
            self.seg_start = end;
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let t = self.next_of_all()?;
            if (self.count - 1) % self.share.1 == self.share.0 {
                return Some(t);
            }
        }
    }
}

impl Schedule {
    /// The next arrival of the whole schedule, whichever worker's it is.
    fn next_of_all(&mut self) -> Option<Duration> {
        if self.max_count.is_some_and(|m| self.count >= m) {
            return None;
        }
        let work = if self.count == 0 { 0.0 } else { self.unit_gap() };
        // The first arrival is at the first instant the load is non-zero.
        let t = if self.count == 0 { self.first()? } else { self.advance(work)? };
        if let Some(s) = self.segments.get(self.seg)
            && let Some(d) = s.duration
            && t >= self.seg_start + d.as_secs_f64() - END_TOLERANCE
            && self.seg + 1 == self.segments.len()
        {
            return None; // the last segment's end: the stage is over
        }
        self.count += 1;
        Some(Duration::from_secs_f64(t))
    }
}

impl Schedule {
    fn first(&mut self) -> Option<f64> {
        // Skip leading segments that offer nothing (rate 0, no ramp up).
        loop {
            let s = *self.segments.get(self.seg)?;
            if s.rate > 0.0 || s.ramp_from.is_some_and(|r| r > 0.0) {
                return Some(self.t);
            }
            let d = s.duration?.as_secs_f64();
            self.t = self.seg_start + d;
            self.seg_start = self.t;
            self.seg += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Option<Duration> {
        Some(Duration::from_secs_f64(s))
    }

    fn gaps(offsets: &[Duration]) -> Vec<f64> {
        offsets.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
    }

    fn mean_cv2(g: &[f64]) -> (f64, f64) {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        let v = g.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / g.len() as f64;
        (m, v / (m * m))
    }

    #[test]
    fn poisson_arrivals_have_the_rate_and_exponential_gaps() {
        let s = Schedule::new(Process::Poisson, vec![Segment::steady(50.0, None)], Some(100_000), 1).unwrap();
        let o: Vec<_> = s.collect();
        assert_eq!(o.len(), 100_000);
        assert_eq!(o[0], Duration::ZERO);
        let (mean, cv2) = mean_cv2(&gaps(&o));
        assert!((mean * 50.0 - 1.0).abs() < 0.01, "mean gap {mean}");
        assert!((cv2 - 1.0).abs() < 0.03, "cv² {cv2}");
    }

    #[test]
    fn gamma_burstiness_sets_the_variability_and_keeps_the_rate() {
        for b in [0.25, 4.0] {
            let s = Schedule::new(Process::Gamma { burstiness: b }, vec![Segment::steady(20.0, None)], Some(50_000), 2)
                .unwrap();
            let (mean, cv2) = mean_cv2(&gaps(&s.collect::<Vec<_>>()));
            assert!((mean * 20.0 - 1.0).abs() < 0.03, "burstiness {b}: mean gap {mean}");
            assert!((cv2 * b - 1.0).abs() < 0.1, "burstiness {b}: cv² {cv2}, expected {}", 1.0 / b);
        }
    }

    #[test]
    fn constant_arrivals_are_exact_and_stop_at_the_duration() {
        let s = Schedule::new(Process::Constant, vec![Segment::steady(4.0, secs(2.0))], None, 0).unwrap();
        let o: Vec<f64> = s.map(|d| d.as_secs_f64()).collect();
        assert_eq!(o.len(), 8);
        for (i, t) in o.iter().enumerate() {
            assert!((t - i as f64 / 4.0).abs() < 1e-9, "{o:?}");
        }
    }

    #[test]
    fn stages_switch_rate_on_time_and_ramps_integrate() {
        let segs = vec![Segment::steady(10.0, secs(10.0)), Segment::steady(100.0, secs(10.0))];
        let o: Vec<f64> = Schedule::new(Process::Constant, segs, None, 0).unwrap().map(|d| d.as_secs_f64()).collect();
        let first = o.iter().filter(|t| **t < 10.0).count();
        assert_eq!((first, o.len() - first), (100, 1000), "10 s at 10/s, then 10 s at 100/s");
        assert!((o[100] - 10.0).abs() < 1e-9 && (o[101] - 10.01).abs() < 1e-9, "{:?}", &o[99..102]);

        // A linear ramp 0 → 100 req/s over 10 s offers 500 requests, denser at the end.
        let ramp = vec![Segment { rate: 100.0, duration: secs(10.0), ramp_from: Some(0.0) }];
        let s = Schedule::new(Process::Poisson, ramp.clone(), None, 3).unwrap();
        assert_eq!(s.expected_count(), Some(500.0));
        let o: Vec<f64> = s.map(|d| d.as_secs_f64()).collect();
        assert!((o.len() as f64 - 500.0).abs() < 75.0, "{}", o.len());
        let late = o.iter().filter(|t| **t >= 5.0).count();
        assert!(late > 3 * (o.len() - late) / 2, "three quarters of a linear ramp's load is in its second half");
        let c: Vec<f64> = Schedule::new(Process::Constant, ramp, None, 0).unwrap().map(|d| d.as_secs_f64()).collect();
        assert_eq!(c.len(), 500);
        // Arrival k of a constant ramp is where ∫ rate = k: 5 t² = k.
        assert!((c[320] - (320.0f64 / 5.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn expected_by_integrates_steps_and_ramps() {
        let segs = vec![
            Segment::steady(0.0, secs(1.0)),
            Segment { rate: 10.0, duration: secs(2.0), ramp_from: Some(0.0) },
            Segment::steady(4.0, None),
        ];
        let s = Schedule::new(Process::Poisson, segs, None, 0).unwrap();
        let at = |t: f64| s.expected_by(t).unwrap();
        assert_eq!((at(0.5), at(1.0)), (0.0, 0.0), "a pause offers nothing");
        assert!((at(2.0) - 2.5).abs() < 1e-12, "half a ramp to 10/s over 2 s: 5 t²/2 at t = 1");
        assert!((at(3.0) - 10.0).abs() < 1e-12 && (at(5.0) - 18.0).abs() < 1e-12, "then 4/s");
        let two_seconds = Schedule::new(Process::Poisson, vec![Segment::steady(5.0, secs(2.0))], None, 0).unwrap();
        assert_eq!(two_seconds.expected_by(6.0), Some(30.0), "past the end, as if the rate went on");
        let inf = Schedule::new(Process::Poisson, vec![Segment::steady(f64::INFINITY, None)], Some(3), 0).unwrap();
        assert_eq!(inf.expected_by(1.0), None);
    }

    #[test]
    fn all_at_once_needs_a_count_and_sends_at_zero() {
        assert_eq!(
            Schedule::new(Process::Poisson, vec![Segment::steady(f64::INFINITY, None)], None, 0).unwrap_err(),
            ScheduleError::Unbounded
        );
        let o: Vec<_> =
            Schedule::new(Process::Poisson, vec![Segment::steady(f64::INFINITY, None)], Some(5), 0).unwrap().collect();
        assert_eq!(o, vec![Duration::ZERO; 5]);
    }

    #[test]
    fn seeds_reproduce_and_bad_input_is_refused() {
        let make = |seed| Schedule::new(Process::Poisson, vec![Segment::steady(3.0, None)], Some(50), seed).unwrap();
        assert_eq!(make(9).collect::<Vec<_>>(), make(9).collect::<Vec<_>>());
        assert_ne!(make(9).collect::<Vec<_>>(), make(10).collect::<Vec<_>>());
        assert!(Schedule::new(Process::Poisson, vec![Segment::steady(-1.0, None)], None, 0).is_err());
        assert!(Schedule::new(Process::Gamma { burstiness: 0.0 }, vec![Segment::steady(1.0, None)], None, 0).is_err());
        let pause_then_load = vec![Segment::steady(0.0, secs(3.0)), Segment::steady(2.0, secs(1.0))];
        let o: Vec<f64> =
            Schedule::new(Process::Constant, pause_then_load, None, 0).unwrap().map(|d| d.as_secs_f64()).collect();
        assert_eq!(o, [3.0, 3.5]);
    }
}
