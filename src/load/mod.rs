//! The load engine (`inferbench load`, issue 5), built bottom-up. What exists so far:
//! [`sse`] (incremental server-sent-events parsing, timestamped on arrival), [`arrivals`]
//! (arrival schedules on absolute intended times), [`backends`] (each server API on the wire),
//! [`client`] (one request sent and measured) and [`recorder`] (per-request records and the
//! per-stage aggregates of `proto/results.proto`). The command itself is not wired yet: it says so.

pub mod arrivals;
pub mod backends;
pub mod client;
pub mod datasets;
pub mod recorder;
pub mod runner;
pub mod sse;
pub mod tokenize;
