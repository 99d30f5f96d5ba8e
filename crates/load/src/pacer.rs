//! Releases an open-loop stage's arrivals at their intended times, precisely. Tokio's timer wheel
//! fires on whole milliseconds, so `sleep_until(t)` wakes up to ~1 ms after `t` — measured here as
//! a schedule-lag p99 of 2 ms at 1 000–5 000 req/s, a bias the client would add to every latency
//! "from the intended time". The precise pacer waits on a `timerfd` instead: the kernel's
//! high-resolution timer (no timer slack), registered with tokio's reactor like a socket, so the
//! worker thread waiting for I/O is the one the timer wakes and it runs the dispatcher at once.
//!
//! It replaced a pacer thread of its own (sleeping on the high-resolution timer, handing arrivals
//! to the dispatcher over a channel): each release then cost two thread wakes (the pacer's, then
//! a tokio worker's), and at 16 000 req/s those wakes were most of the client's CPU — spacing
//! them 500 µs apart instead of 200 µs cut the client's CPU by 18 %, 1 000 µs by 31 %. With the
//! timer in the reactor each release is one wake, and none when a worker is busy anyway.
//!
//! Wakes are at least `MIN_WAKE_GAP` apart: at high rates the arrivals due by then are released
//! together, so a wake serves several (lag stays under the gap).
//!
//! When more than `RELEASE_BURST` arrivals are due at once (the client fell behind: a stall, a
//! burst), the pacer releases them `RELEASE_BURST` at a time and yields to the runtime between
//! bursts. Tokio wakes a yielded task only once it has run out of ready tasks and polled for I/O,
//! so the answers that came in meanwhile are read, and their connections go back to the pool,
//! before more requests start. Released all at once, a backlog of thousands started ahead of
//! every answer: each took a connection of its own, new and cold, and the dearer requests fed the
//! backlog. Measured on 2 cores (the client on one, `dev canned` on the other), runs interleaved:
//! offered 28 000–34 000 req/s, most runs collapsed to 17 000–24 000 achieved; now 34 000–40 000
//! are achieved (with a standing lag of 0.1–0.25 s near the top), and offered 56 000–80 000,
//! 44 000–45 000. At 24 000 req/s, 5 of 5 runs kept schedule-lag p99 under 1 ms, against 2 of 5.
//!
//! Busy polling (opt-in, `busy_poll`): an arrival due within `MIN_WAKE_GAP` is waited for by
//! yielding to the runtime in a loop instead of on the timer. Each yield lets the worker poll
//! for I/O without blocking and run what is ready, so answers are still read, but the worker
//! never parks: no timer to fire late behind busy work, no idle thread to wake. Measured against
//! the timer, runs interleaved (client on one core, `dev canned` on the other): lag p99 at
//! 40 000 req/s 0.03–0.055 ms against 0.15–0.18 ms; at 48 000 req/s 0.16–1.58 ms against 1.2 ms,
//! 2.5 ms and one run that fell behind (380 ms). The client's core shows 99 % busy throughout.
//!
//! The coarse pacer (tokio's timers) is for tests on tokio's paused clock, where a kernel timer
//! would not follow virtual time, and for systems with no `timerfd`.

use std::time::Duration;

use tokio::time::Instant;

use super::arrivals::Schedule;

/// The pacer wakes at most once per this long: at high rates (arrivals closer than this) it
/// releases those due together, so a wake serves several arrivals. Lag stays under it; at lower
/// rates each arrival has a wake of its own.
const MIN_WAKE_GAP: Duration = Duration::from_micros(200);

/// Arrivals released in a row, with no wait between, before the pacer yields to the runtime (see
/// the module doc). Far above what a wake releases on time (~5 at 24 000 req/s). Offered 32 000–
/// 36 000 req/s, 8–24 achieved alike; 1–4 (a yield too often) and 64 or more (the backlog feeds
/// itself again) achieved less.
const RELEASE_BURST: u32 = 16;

/// Releases arrivals.
pub struct Pacer {
    schedule: Schedule,
    start: Instant,
    end: Option<Instant>,
    /// The precise timer; `None`: tokio's.
    timer: Option<timer::Timer>,
    /// The arrival being waited for (kept if the wait is cancelled).
    waiting: Option<Duration>,
    /// No wake before this.
    earliest_wake: Instant,
    /// Arrivals released since the pacer last waited or yielded.
    in_a_row: u32,
    /// Poll for arrivals due within `MIN_WAKE_GAP` instead of waiting on the timer.
    busy: bool,
    /// Waits on a timer so far.
    timer_waits: u64,
}

impl Pacer {
    /// A pacer of `schedule` from `start`, ending before `end`: on the kernel's high-resolution
    /// timer when `precise` (and one can be made), else on tokio's timers.
    pub fn new(schedule: Schedule, start: Instant, end: Option<Instant>, precise: bool) -> Pacer {
        let timer = precise.then(timer::Timer::new).and_then(Result::ok);
        Pacer {
            schedule,
            start,
            end,
            timer,
            waiting: None,
            earliest_wake: start,
            in_a_row: 0,
            busy: false,
            timer_waits: 0,
        }
    }

    /// Waits for arrivals due within `MIN_WAKE_GAP` by polling (see the module doc), when `on`
    /// and the pacer is precise: on tokio's paused clock, time moves only when nothing is ready
    /// to run, so a polling loop would wait forever.
    pub fn busy_polling(mut self, on: bool) -> Pacer {
        self.busy = on && self.timer.is_some();
        self
    }

    /// The next arrival's intended time, once it is due; `None` at the schedule's or stage's end.
    /// Cancel-safe: an arrival whose wait is dropped is the next one given.
    pub async fn next(&mut self) -> Option<Instant> {
        if self.in_a_row >= RELEASE_BURST {
            self.in_a_row = 0;
            tokio::task::yield_now().await;
        }
        let offset = match self.waiting {
            Some(o) => o,
            None => self.schedule.next()?,
        };
        let at = self.start + offset;
        if self.end.is_some_and(|e| at >= e) {
            self.waiting = None;
            return None;
        }
        // Due already: released with the others of this wake. Else wait for it, but not sooner
        // than the wake gap after the last wake.
        let now = Instant::now();
        if self.busy && at > now && at - now < MIN_WAKE_GAP {
            self.waiting = Some(offset);
            while Instant::now() < at {
                tokio::task::yield_now().await;
            }
            self.waiting = None;
            self.in_a_row = 0;
        } else if at > now {
            self.waiting = Some(offset);
            self.timer_waits += 1;
            let target = at.max(self.earliest_wake);
            match &mut self.timer {
                Some(t) => t.sleep_until(target).await,
                None => tokio::time::sleep_until(target).await,
            }
            self.earliest_wake = Instant::now() + MIN_WAKE_GAP;
            self.waiting = None;
            self.in_a_row = 0;
        }
        self.in_a_row += 1;
        Some(at)
    }

    /// The schedule after the last arrival released (to count what a stage cut short leaves).
    pub fn rest(&mut self) -> &mut Schedule {
        &mut self.schedule
    }
}

#[cfg(target_os = "linux")]
mod timer {
    use std::{io, os::fd::OwnedFd};

    use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
    use tokio::{io::unix::AsyncFd, time::Instant};

    /// A `timerfd` on the monotonic clock (the one `Instant` reads), in tokio's reactor.
    pub struct Timer {
        fd: AsyncFd<OwnedFd>,
        /// Reads that found no expiry (readiness tokio still held from an earlier one).
        pub empty_reads: u64,
    }

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            let flags = TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC;
            let fd = rustix::time::timerfd_create(TimerfdClockId::Monotonic, flags)?;
            // SAFETY: the `OwnedFd` is the `AsyncFd`'s own, open until the `AsyncFd` drops it,
            // and never replaced.
            let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)? };
            Ok(Timer { fd, empty_reads: 0 })
        }

        /// Waits until `at` (never returns before it; a timer that cannot be set falls back on
        /// tokio's).
        pub async fn sleep_until(&mut self, at: Instant) {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            // Relative to now: it fires `left` after this call, so never before `at`.
            let value = Timespec { tv_sec: left.as_secs() as _, tv_nsec: left.subsec_nanos().into() };
            let spec = Itimerspec { it_interval: Timespec { tv_sec: 0, tv_nsec: 0 }, it_value: value };
            if rustix::time::timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec).is_err() {
                return tokio::time::sleep_until(at).await;
            }
            loop {
                let Ok(mut ready) = self.fd.readable().await else {
                    return tokio::time::sleep_until(at).await;
                };
                // Reading the expiry count (8 bytes) leaves the fd unreadable until the next
                // expiry, so tokio's readiness is cleared too: kept, the next wait would begin
                // with a read that finds nothing (a syscall per wake, thousands a second).
                let mut count = [0u8; 8];
                let read = rustix::io::read(self.fd.get_ref(), &mut count);
                ready.clear_ready();
                match read {
                    Ok(_) => return,
                    Err(rustix::io::Errno::AGAIN) => self.empty_reads += 1,
                    Err(_) => return tokio::time::sleep_until(at).await,
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod timer {
    /// No `timerfd` here: the pacer uses tokio's timers.
    pub struct Timer;

    impl Timer {
        pub fn new() -> std::io::Result<Timer> {
            Err(std::io::ErrorKind::Unsupported.into())
        }

        pub async fn sleep_until(&mut self, at: tokio::time::Instant) {
            tokio::time::sleep_until(at).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;
    use crate::arrivals::{Process, Segment};

    fn schedule(rate: f64, secs: f64) -> Schedule {
        Schedule::new(Process::Constant, vec![Segment::steady(rate, Some(Duration::from_secs_f64(secs)))], None, 0)
            .unwrap()
    }

    /// On the real clock (a paused one would never move while the pacer polls).
    #[tokio::test]
    async fn busy_polling_waits_without_the_timer_and_never_releases_early() {
        for busy in [true, false] {
            let t0 = Instant::now() + Duration::from_millis(2);
            let mut p = Pacer::new(schedule(20_000.0, 0.05), t0, None, true).busy_polling(busy);
            if p.timer.is_none() {
                return; // no timerfd on this system: busy polling is off, as asked
            }
            let mut got = vec![];
            while let Some(t) = p.next().await {
                assert!(Instant::now() >= t, "released before its time (busy {busy})");
                got.push(t);
            }
            assert_eq!(got.len(), 1000);
            assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
            if busy {
                assert_eq!(p.timer_waits, 1, "only the first arrival, 2 ms ahead, is waited for on the timer");
            } else {
                assert!(p.timer_waits >= 10, "a wake every 200 µs or so: {}", p.timer_waits);
            }
        }
    }

    #[test]
    fn busy_polling_needs_the_precise_pacer() {
        let t0 = Instant::now();
        assert!(!Pacer::new(schedule(1.0, 1.0), t0, None, false).busy_polling(true).busy);
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

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_keeps_its_arrival() {
        let t0 = Instant::now();
        let mut p = Pacer::new(schedule(4.0, 10.0), t0, None, false);
        assert_eq!(p.next().await, Some(t0));
        // Given up 100 ms into the wait for the arrival at 250 ms: it is still the next.
        let cut = tokio::time::timeout(Duration::from_millis(100), p.next()).await;
        assert!(cut.is_err());
        assert_eq!(p.next().await, Some(t0 + Duration::from_millis(250)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_is_released_in_bursts_with_the_runtime_between() {
        // Every arrival is due already (the client is 1 s behind a 1 000 req/s schedule).
        let t0 = Instant::now() - Duration::from_secs(1);
        let mut p = Pacer::new(schedule(1000.0, 10.0), t0, None, false);
        let other = Arc::new(AtomicU32::new(0));
        // Another task of this (single-threaded) runtime: it runs only when the pacer yields.
        let o = other.clone();
        tokio::spawn(async move {
            loop {
                o.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        });
        let mut before = 0;
        for burst in 0..3u32 {
            let mut within = None;
            for k in 0..RELEASE_BURST {
                let at = p.next().await.expect("an arrival");
                assert_eq!(at - t0, Duration::from_millis(u64::from(burst * RELEASE_BURST + k)), "in order");
                let ran = other.load(Ordering::SeqCst);
                // The other task ran before a burst's first arrival (not before the very first
                // burst), and never within a burst.
                assert_eq!(ran > before, k == 0 && burst > 0, "burst {burst}, arrival {k}");
                assert_eq!(*within.get_or_insert(ran), ran, "burst {burst}, arrival {k}");
                before = ran;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn arrivals_on_time_never_yield() {
        // Each arrival is waited for, and a wait restarts the count: three bursts' worth of
        // arrivals on time never reach the yield.
        let t0 = Instant::now();
        let mut p = Pacer::new(schedule(1000.0, 10.0), t0, None, false);
        for _ in 0..3 * RELEASE_BURST {
            assert!(p.next().await.is_some());
            assert_eq!(p.in_a_row, 1);
        }
    }

    #[tokio::test]
    async fn the_precise_pacer_releases_in_order_never_early_and_leaves_the_rest_counted() {
        let t0 = Instant::now();
        let mut p = Pacer::new(schedule(1000.0, 10.0), t0, Some(t0 + Duration::from_millis(50)), true);
        assert!(p.timer.is_some() || !cfg!(target_os = "linux"), "a timerfd on Linux");
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
        assert_eq!(p.rest().next(), Some(Duration::from_millis(20)), "the next arrival is the 21st");
        #[cfg(target_os = "linux")]
        {
            assert!(p.timer_waits >= 10, "most arrivals, 1 ms apart, were waited for: {}", p.timer_waits);
            let empty = p.timer.as_ref().map(|t| t.empty_reads);
            assert_eq!(empty, Some(0), "each wait read its own expiry, never a stale readiness");
        }
    }
}
