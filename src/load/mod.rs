//! `inferbench load`: the load engine (issue 5, in progress). A `LoadSpec` becomes [`stages`];
//! each stage is run by the [`runner`] (open loop on [`arrivals`]' intended times, or closed-loop
//! users), whose requests come from [`datasets`] (token counts by [`tokenize`]) and are sent and
//! measured by the [`client`] through an API's [`backends`] ([`sse`] parsing stamped on arrival);
//! the [`recorder`] aggregates them into `proto/results.proto` and [`output`] writes the files;
//! [`scrape`] samples the server's `/metrics` alongside. A [`session`] ties one run together.
//!
//! [`compat`] writes the peers' result formats (LPG, `vllm bench serve`, inference-perf).
//!
//! Not built yet (each says so when asked for): the sweep pattern, the ipex / conversations /
//! multi-turn datasets, the progress bar.

pub mod arrivals;
pub mod backends;
pub mod client;
pub mod compat;
pub mod datasets;
pub mod output;
pub mod recorder;
pub mod runner;
pub mod scrape;
pub mod session;
pub mod sse;
pub mod stages;
pub mod tokenize;
