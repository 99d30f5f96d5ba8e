//! Releases an open-loop stage's arrivals at their intended times, precisely. Tokio's timer wheel
//! fires on whole milliseconds, so `sleep_until(t)` wakes up to ~1 ms after `t` — measured here as
//! a schedule-lag p99 of 2 ms at 1 000–5 000 req/s, a bias the client would add to every latency
//! "from the intended time". The precise pacer walks the schedule on a thread of its own, waiting
//! on the OS's high-resolution timer with the timer slack at its minimum (no spinning: an idle
//! pacer costs nothing), and hands each due arrival to the runner over a channel — one cross-thread
//! wake per arrival, none when the runner is already busy.
//!
//! The runner keeps a copy of the (deterministic, seeded) schedule advanced in step with the
//! arrivals it receives, so when a stage ends early it counts the arrivals still due exactly as
//! before. The coarse pacer (tokio's timers, in place) is for tests on tokio's paused clock, where
//! a real thread's sleep would not follow virtual time.

use std::{sync::mpsc, time::Duration};

use tokio::time::Instant;

use super::arrivals::Schedule;

/// The channel holds this many released arrivals the runner has not taken yet.
const BACKLOG: usize = 4096;
/// The thread wakes at most once per this long: at high rates (arrivals closer than this) it
/// releases those due together, so a wake (and the runner's) serves several arrivals. Lag stays
/// under it; at lower rates each arrival has a wake of its own.
const MIN_WAKE_GAP: Duration = Duration::from_micros(200);

/// Releases arrivals.
pub struct Pacer {
    /// The runner's copy of the schedule, in step with the arrivals released.
    mirror: Schedule,
    start: Instant,
    end: Option<Instant>,
    thread: Option<Released>,
}

struct Released {
    arrivals: tokio::sync::mpsc::Receiver<Duration>,
    /// Dropped with the pacer: the thread's wait returns and it ends.
    _stop: mpsc::Sender<()>,
}

impl Pacer {
    /// A pacer of `schedule` from `start`, ending before `end`: on a thread of its own when
    /// `precise` (and one can be made), else on tokio's timers.
    pub fn new(schedule: Schedule, start: Instant, end: Option<Instant>, precise: bool) -> Pacer {
        let thread = precise.then(|| spawn(schedule.clone(), start, end)).flatten();
        Pacer { mirror: schedule, start, end, thread }
    }

    /// The next arrival's intended time, once it is due; `None` at the schedule's or stage's end.
    pub async fn next(&mut self) -> Option<Instant> {
        let offset = match &mut self.thread {
            Some(t) => {
                let offset = t.arrivals.recv().await?;
                let mirrored = self.mirror.next();
                debug_assert_eq!(mirrored, Some(offset), "the thread and the mirror walk one schedule");
                offset
            }
            None => {
                let offset = self.mirror.next()?;
                if self.end.is_some_and(|e| self.start + offset >= e) {
                    return None;
                }
                tokio::time::sleep_until(self.start + offset).await;
                offset
            }
        };
        Some(self.start + offset)
    }

    /// The schedule after the last arrival released (to count what a stage cut short leaves).
    pub fn rest(&mut self) -> &mut Schedule {
        &mut self.mirror
    }
}

fn spawn(schedule: Schedule, start: Instant, end: Option<Instant>) -> Option<Released> {
    let (tx, arrivals) = tokio::sync::mpsc::channel(BACKLOG);
    let (stop_tx, stop) = mpsc::channel::<()>();
    let (start, end) = (start.into_std(), end.map(Instant::into_std));
    let spawned = std::thread::Builder::new().name("inferbench-pacer".into()).spawn(move || {
        set_min_timer_slack();
        let mut earliest_wake = std::time::Instant::now();
        for offset in schedule {
            let at = start + offset;
            if end.is_some_and(|e| at >= e) {
                return;
            }
            // Due already: released with the others of this wake. Else wait for it, but not
            // sooner than the wake gap after the last wake.
            let target = at.max(earliest_wake);
            let mut waited = false;
            loop {
                let now = std::time::Instant::now();
                if at <= now && (!waited || target <= now) {
                    break;
                }
                waited = true;
                match stop.recv_timeout(target - now) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return, // the pacer was dropped
                }
            }
            if waited {
                earliest_wake = std::time::Instant::now() + MIN_WAKE_GAP;
            }
            if tx.blocking_send(offset).is_err() {
                return;
            }
        }
    });
    spawned.ok().map(|_| Released { arrivals, _stop: stop_tx })
}

/// Linux rounds a thread's timed waits up by its timer slack (50 µs by default): 1 ns for the pacer.
fn set_min_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::arrivals::{Process, Segment};

    fn schedule(rate: f64, secs: f64) -> Schedule {
        Schedule::new(Process::Constant, vec![Segment::steady(rate, Some(Duration::from_secs_f64(secs)))], None, 0)
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_coarse_pacer_follows_tokios_clock_and_stops_at_the_end() {
        let t0 = Instant::now();
        let mut p = Pacer::new(schedule(4.0, 10.0), t0, Some(t0 + Duration::from_secs(1)), false);
        let mut got = vec![];
        while let Some(t) = p.next().await {
            assert_eq!(Instant::now(), t, "released at its time");
            got.push(t - t0);
        }
        assert_eq!(got, [0, 250, 500, 750].map(Duration::from_millis));
    }

    #[tokio::test]
    async fn the_precise_pacer_releases_in_order_never_early_and_leaves_the_rest_counted() {
        let t0 = Instant::now();
        let mut p = Pacer::new(schedule(1000.0, 10.0), t0, Some(t0 + Duration::from_millis(50)), true);
        let mut n = 0;
        let mut last = t0;
        while let Some(t) = p.next().await {
            assert!(Instant::now() >= t && t >= last, "in order, never before its time");
            last = t;
            n += 1;
            if n == 20 {
                break;
            }
        }
        assert_eq!(last - t0, Duration::from_millis(19));
        // The mirror is in step: the next arrival it would give is the 21st.
        assert_eq!(p.rest().next(), Some(Duration::from_millis(20)));
    }
}
