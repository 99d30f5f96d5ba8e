//! `inferbench load`: the load engine. A `LoadSpec` becomes [`stages`];
//! each stage is run by the [`runner`] (open loop on [`arrivals`]' intended times, or closed-loop
//! users), whose requests come from [`datasets`] (token counts by [`tokenize`]) and are sent and
//! measured by the [`client`] through an API's [`backends`] ([`sse`] parsing stamped on arrival);
//! the [`recorder`] aggregates them into `proto/results.proto`, [`records`] keeps each one, and
//! [`output`] writes the files;
//! [`scrape`] samples the server's `/metrics` alongside; [`exporter`] serves the engine's own,
//! live. A [`session`] ties one run together.
//!
//! [`compat`] writes the peers' result formats (LPG, `vllm bench serve`, inference-perf).
//!
//! A leaf of the workspace: it imports only `inferbench-schema` (the `LoadSpec` it runs, the
//! `Results` and the files it writes), so the engine in a load pod carries no catalog, template,
//! platform or report code, and a change to those does not rebuild it. Errors that stop a run
//! are a [`LoadError`]; a stop (Ctrl-C) is a `tokio_util` `CancellationToken`.
//!
//! Arrival times are waited for by the [`pacer`] (µs, not tokio's ms). [`host`] measures the
//! client's CPU and the hypervisor's steal during each stage: why a client fell behind;
//! [`pauses`] probes how often the machine stops a busy thread (the noise floor under lag).
//! [`verdict`] says, per stage, whether the client delivered the load it was configured for;
//! [`agreement`], whether its figures agree with the server's own clock and counters.

pub mod agreement;
pub mod arrivals;
pub mod backends;
pub mod client;
pub mod compat;
pub mod datasets;
mod error;
pub mod exporter;
pub mod gate;
pub mod host;
pub(crate) mod http1;
pub mod merge;
pub mod output;
pub mod pacer;
pub mod pauses;
pub(crate) mod pool;
pub mod recorder;
pub mod records;
pub mod runner;
pub mod scrape;
pub mod session;
pub mod shard;
pub mod sse;
pub mod stages;
pub mod tokenize;
pub mod verdict;

pub use error::{FileError, GetError, LoadError};
