//! How often, and for how long, this machine stops running a busy thread: the noise floor under
//! every schedule-lag figure measured on it (`inferbench dev pauses`, run by `scripts/bench-lag`).
//!
//! Why: on a virtual machine the host takes a core away now and then (to run another guest, its
//! own tick, a periodic task of its own). The guest's scheduler never sees it — the thread counts
//! as running — and steal shows it only in whole ticks. The guest's own kernel threads pause it
//! too (here `kdamond`, about 0.9 ms every 512 ms, up to 13 ms, on whichever core it lands).
//!
//! A load client that is behind by a pause of `S` catches up at its spare capacity, so at
//! utilisation `u` its arrivals stay late for about `S / (1 − u)`: at 90 % CPU a 2 ms pause makes
//! 20 ms of late arrivals. Measured on the 2-core VM this project is developed on, with nothing
//! else running: pauses of 1–2 ms (some 4–28 ms) on both cores at one phase of a 100 ms period,
//! and others on a 4 ms grid, 0.2–1.5 % of each core in all; lag episodes of a client run recur
//! on a 100 ms grid alike.
//!
//! The probe: one thread per core, pinned, reads the monotonic clock in a loop; a step between two
//! reads longer than [`MIN_PAUSE`] is a pause. Linux only (CPU affinity).

use std::time::Duration;

/// A step between two clock reads shorter than this is the loop itself, or an interrupt.
pub const MIN_PAUSE: Duration = Duration::from_micros(100);

/// The period whose phase is checked: Linux's CFS bandwidth period, and what this VM's host shows.
const PERIOD_NS: u64 = 100_000_000;

/// A pause: when it began (monotonic clock, ns) and how long it was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pause {
    pub at_ns: u64,
    pub len: Duration,
}

/// What a probe of one core found.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub core: usize,
    pub seconds: f64,
    pub pauses: usize,
    /// All pauses together.
    pub total: Duration,
    pub largest: Duration,
    /// Pauses of 1 ms or more.
    pub over_1ms: usize,
    /// Where the long pauses fall in a [`PERIOD_NS`] cycle.
    pub periodic: Periodic,
}

/// Of the pauses of 0.5 ms or more (`of`), how many (`near`) begin within 2 ms of the most common
/// phase of [`PERIOD_NS`], and that phase: a periodic pause of the host shows as most of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Periodic {
    pub near: usize,
    pub of: usize,
    pub phase_ms: f64,
}

/// Summarises the pauses one core saw over `seconds`.
pub fn summarise(core: usize, seconds: f64, pauses: &[Pause]) -> Summary {
    let long: Vec<u64> =
        pauses.iter().filter(|p| p.len >= Duration::from_micros(500)).map(|p| p.at_ns % PERIOD_NS).collect();
    // The 1 ms bin whose ±2 ms window (wrapping around the period) holds the most long pauses.
    let bins = (PERIOD_NS / 1_000_000) as i64;
    let near = |centre: i64| {
        long.iter()
            .filter(|&&ph| {
                let d = (ph as i64 / 1_000_000 - centre).rem_euclid(bins);
                d <= 2 || d >= bins - 2
            })
            .count()
    };
    let (phase, most) = (0..bins).map(|b| (b, near(b))).max_by_key(|&(b, n)| (n, -b)).unwrap_or((0, 0));
    Summary {
        core,
        seconds,
        pauses: pauses.len(),
        total: pauses.iter().map(|p| p.len).sum(),
        largest: pauses.iter().map(|p| p.len).max().unwrap_or_default(),
        over_1ms: pauses.iter().filter(|p| p.len >= Duration::from_millis(1)).count(),
        periodic: Periodic { near: most, of: long.len(), phase_ms: phase as f64 },
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "core {}: {} pauses ≥ {} µs in {:.1} s, {:.2} ms per second ({:.2} % of the core), {} of 1 ms or more, largest {:.2} ms",
            self.core,
            self.pauses,
            MIN_PAUSE.as_micros(),
            self.seconds,
            ms(self.total) / self.seconds.max(f64::MIN_POSITIVE),
            100.0 * self.total.as_secs_f64() / self.seconds.max(f64::MIN_POSITIVE),
            self.over_1ms,
            ms(self.largest),
        )?;
        let Periodic { near, of, phase_ms } = self.periodic;
        if of >= 4 {
            write!(
                f,
                "; {near} of the {of} pauses ≥ 0.5 ms began within 2 ms of {phase_ms:.0} ms into a 100 ms period"
            )?;
        }
        Ok(())
    }
}

/// Probes every core this process may run on, all at once, for `seconds`: one summary per core.
#[cfg(target_os = "linux")]
pub fn probe(seconds: f64) -> std::io::Result<Vec<Summary>> {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    let allowed = sched_getaffinity(None)?;
    let cores: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c)).collect();
    let threads: Vec<_> = cores
        .into_iter()
        .map(|core| {
            std::thread::spawn(move || -> std::io::Result<Summary> {
                let mut one = CpuSet::new();
                one.set(core);
                sched_setaffinity(None, &one)?;
                Ok(summarise(core, seconds, &spin(Duration::from_secs_f64(seconds))))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Err(std::io::Error::other("a probe thread panicked"))))
        .collect()
}

#[cfg(not(target_os = "linux"))]
pub fn probe(_seconds: f64) -> std::io::Result<Vec<Summary>> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Reads the monotonic clock in a loop for `how_long`: the pauses between reads.
#[cfg(target_os = "linux")]
fn spin(how_long: Duration) -> Vec<Pause> {
    use rustix::time::{ClockId, clock_gettime};
    let now = || {
        let t = clock_gettime(ClockId::Monotonic);
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    };
    let min = MIN_PAUSE.as_nanos() as u64;
    let mut pauses = Vec::with_capacity(1 << 12);
    let mut last = now();
    let end = last + how_long.as_nanos() as u64;
    while last < end {
        let t = now();
        if t - last > min {
            pauses.push(Pause { at_ns: last, len: Duration::from_nanos(t - last) });
        }
        last = t;
    }
    pauses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(at_ms: f64, len_ms: f64) -> Pause {
        Pause { at_ns: (at_ms * 1e6) as u64, len: Duration::from_secs_f64(len_ms / 1e3) }
    }

    #[test]
    fn pauses_are_summed_and_their_period_phase_found() {
        // Five long pauses 49.5–52 ms into a 100 ms period, one long at 20 ms, two short ones.
        let p = [
            pause(51.0, 1.0),
            pause(151.3, 2.0),
            pause(1_049.5, 0.9),
            pause(2_052.0, 4.5),
            pause(3_050.8, 0.6),
            pause(3_420.0, 0.5),
            pause(3_500.0, 0.2),
            pause(3_700.0, 0.13),
        ];
        let s = summarise(1, 10.0, &p);
        assert_eq!(s.pauses, 8);
        assert!((s.total.as_secs_f64() * 1e3 - 9.83).abs() < 1e-6, "{:?}", s.total);
        assert_eq!(s.largest, Duration::from_micros(4500));
        assert_eq!(s.over_1ms, 3);
        assert_eq!(s.periodic, Periodic { near: 5, of: 6, phase_ms: 50.0 }, "the window around 50 ms holds 49–52 ms");
        let line = s.to_string();
        assert!(
            line.starts_with("core 1: 8 pauses ≥ 100 µs in 10.0 s, 0.98 ms per second (0.10 % of the core), 3 of 1 ms")
        );
        assert!(line.ends_with("5 of the 6 pauses ≥ 0.5 ms began within 2 ms of 50 ms into a 100 ms period"), "{line}");
    }

    #[test]
    fn a_phase_window_wraps_around_the_period_and_few_pauses_say_no_period() {
        let p = [pause(99.5, 1.0), pause(1_000.2, 1.0), pause(2_001.0, 1.0), pause(3_098.0, 1.0)];
        let all = Periodic { near: 4, of: 4, phase_ms: 0.0 };
        assert_eq!(summarise(0, 4.0, &p).periodic, all, "99.5, 0.2, 1.0 and 98.0 ms are all within 2 ms of 0");
        let quiet = summarise(0, 4.0, &[pause(10.0, 0.6)]);
        assert!(!quiet.to_string().contains("period"), "one long pause says nothing of a period");
        assert_eq!(summarise(0, 1.0, &[]).to_string().split(", largest").nth(1), Some(" 0.00 ms"));
    }

    /// The probe itself, briefly: one summary per core this process may use.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_probe_reports_each_allowed_core() {
        let s = probe(0.05).unwrap();
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        assert_eq!(s.len(), allowed.count() as usize, "one per core");
        assert!(s.windows(2).all(|w| w[0].core < w[1].core) && s.iter().all(|c| allowed.is_set(c.core)));
        // Pauses lie within the 50 ms probed; the last may run past its end.
        assert!(s.iter().all(|c| c.seconds == 0.05 && c.total <= Duration::from_millis(50) + c.largest));
    }
}
