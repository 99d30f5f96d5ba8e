//! Wall-clock time as every file of a run writes it, and whether a process that left a lock or a
//! staging folder behind is still there.

use std::path::Path;

/// Now, RFC 3339 UTC (what `run.json`, `summary.json` and `server_metrics.json` record).
pub fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Whether process `pid` exists (Linux: /proc; elsewhere assumed alive, the safe answer for
/// whoever would otherwise delete what it left).
pub fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") { pid != 0 && Path::new(&format!("/proc/{pid}")).exists() } else { true }
}
