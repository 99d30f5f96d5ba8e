//! The load engine (`inferbench load`, issue 5), built bottom-up. What exists so far:
//! [`sse`] (incremental server-sent-events parsing, timestamped on arrival), [`arrivals`]
//! (arrival schedules on absolute intended times) and [`recorder`] (per-request records and the
//! per-stage aggregates of `proto/results.proto`). The command itself is not wired yet: it says so.

pub mod arrivals;
pub mod recorder;
pub mod sse;
