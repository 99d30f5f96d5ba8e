//! What the machine did during a stage besides sending the load: the CPU time the client used,
//! and the time the hypervisor took this machine's cores away (steal). Both say why a client fell
//! behind. A client busy on all of its cores was its own bottleneck, and the rate was beyond its
//! maximum on this machine. Steal means the host stopped the whole machine, client and server
//! alike: the schedule lag and the latencies include those pauses. On a shared 2-core VM, 8 s runs
//! that lost 0.2 s or more to steal mostly missed a 1 ms lag p99 that runs with less held at the
//! same rate.
//!
//! Linux only (`/proc`, the process's CPU clock); elsewhere both read as 0.

use std::time::Duration;

/// Threads whose name starts with this belong to a model server running in this process (the
/// local platform's simulator), not to the client: their CPU is left out of the client's.
pub const SERVER_THREADS: &str = "sim-";

/// Counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// The client's CPU time so far (the process's, less the in-process server's threads').
    cpu: Duration,
    /// Steal on all cores so far.
    steal: Duration,
}

/// What happened between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU seconds the client used.
    pub client_cpu_seconds: f64,
    /// Seconds of steal, all cores summed.
    pub steal_seconds: f64,
}

impl Sample {
    /// The counters now.
    pub fn now() -> Sample {
        imp::sample()
    }

    /// The client's CPU seconds so far.
    pub fn client_cpu_seconds(&self) -> f64 {
        self.cpu.as_secs_f64()
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Sample) -> Usage {
        Usage {
            client_cpu_seconds: self.cpu.saturating_sub(earlier.cpu).as_secs_f64(),
            steal_seconds: self.steal.saturating_sub(earlier.steal).as_secs_f64(),
        }
    }
}

/// The cores the client may run on (its CPU affinity, and its quota in a container).
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::{fs, time::Duration};

    use super::{SERVER_THREADS, Sample};

    pub fn sample() -> Sample {
        let tick = ticks_per_second();
        let server = server_ticks().map_or(Duration::ZERO, |t| ticks(t, tick));
        Sample {
            cpu: process_cpu().saturating_sub(server),
            steal: fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| steal_ticks(&s))
                .map_or(Duration::ZERO, |t| ticks(t, tick)),
        }
    }

    fn ticks(n: u64, per_second: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / per_second as f64)
    }

    pub(super) fn ticks_per_second() -> u64 {
        // SAFETY: sysconf reads a constant of the system; no memory is passed.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 { t as u64 } else { 100 }
    }

    /// User + system time of every thread of this process, to the nanosecond.
    fn process_cpu() -> Duration {
        cpu_clock(rustix::time::ClockId::ProcessCPUTime)
    }

    pub(super) fn cpu_clock(clock: rustix::time::ClockId) -> Duration {
        let t = rustix::time::clock_gettime(clock);
        Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
    }

    /// CPU ticks of the threads of an in-process server (`None`: none, or `/proc` unreadable).
    pub(super) fn server_ticks() -> Option<u64> {
        let mut total = None;
        for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
            let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if let Some((name, t)) = thread_ticks(&stat)
                && name.starts_with(SERVER_THREADS)
            {
                *total.get_or_insert(0) += t;
            }
        }
        total
    }

    /// A thread's name and user + system ticks from its `/proc/…/stat` line. The name is in
    /// parentheses and may itself hold spaces or parentheses: the fields follow the last `)`.
    pub(super) fn thread_ticks(stat: &str) -> Option<(&str, u64)> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let name = stat.get(open + 1..close)?;
        // After the name: state (field 3), …, utime (field 14), stime (field 15).
        let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        Some((name, user + system))
    }

    /// Steal ticks of all cores from `/proc/stat`'s `cpu` line (the 8th number).
    pub(super) fn steal_ticks(proc_stat: &str) -> Option<u64> {
        let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
        line.split_whitespace().nth(8)?.parse().ok()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Sample;

    pub fn sample() -> Sample {
        Sample::default()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{imp::*, *};

    #[test]
    fn proc_lines_are_read_by_field_even_with_odd_thread_names() {
        let stat = "4242 (sim-a) b (c) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 9 0 100";
        assert_eq!(thread_ticks(stat), Some(("sim-a) b (c", 281)));
        assert_eq!(thread_ticks("4242 (x) S 1"), None, "cut short");
        let proc_stat = "cpu  100 2 30 4000 5 0 6 77 0 0\ncpu0 50 1 15 2000 2 0 3 40 0 0\nintr 1\n";
        assert_eq!(steal_ticks(proc_stat), Some(77), "the machine's line, not a core's");
        assert_eq!(steal_ticks("intr 1\n"), None);
    }

    /// Spins until this thread has used `d` of CPU (wall time would depend on other tests).
    fn spin(d: Duration) {
        let cpu = || cpu_clock(rustix::time::ClockId::ThreadCPUTime);
        let t0 = cpu();
        let mut x = 0u64;
        while cpu() - t0 < d {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn an_in_process_servers_threads_are_told_apart_and_the_clients_cpu_is_counted() {
        // A thread named like the local platform's simulator threads works, then stays alive (its
        // entry in /proc goes when it ends) while its ticks are read.
        let before = server_ticks().unwrap_or(0);
        let (worked, wait) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let server = std::thread::Builder::new()
            .name(format!("{SERVER_THREADS}test"))
            .spawn(move || {
                spin(Duration::from_millis(200));
                worked.0.send(()).unwrap();
                let _ = wait.1.recv();
            })
            .unwrap();
        worked.1.recv().unwrap();
        let after = server_ticks().expect("the server thread is listed");
        drop(wait.0);
        server.join().unwrap();
        // Ticks are whole (1/100 s here) and truncated: 200 ms shows as at least ~19.
        assert!(after - before >= 15 * ticks_per_second() / 100, "{before} -> {after}");

        // This thread's work counts (other tests' threads can only add to it).
        let before = Sample::now();
        spin(Duration::from_millis(200));
        let client = Sample::now().since(&before);
        assert!(client.client_cpu_seconds >= 0.15, "{client:?}");
        assert!(client.steal_seconds >= 0.0 && cores() >= 1);
    }
}
