//! Every integration test, in one binary: the crate and its dependencies are linked once (when
//! these were 15 binaries, each one linked all of it: 15 links, and their disk), and the helpers
//! are shared ([`common`]). Each module is one area, named as the old `tests/*.rs` files were, so
//! `cargo test --test it kube::` runs what `cargo test --test kube` did.
//!
//! The tests that talk to the real vLLM (`real_vllm::`, `sim_conformance::`) share the server and
//! count its tokens: they take turns ([`common::real_vllm::turn`]), and `scripts/test` runs them on
//! their own after the others (a kube test beside them would be measured too), as they ran when
//! each area was its own binary.

mod common;

mod catalog;
mod cli;
mod gcs;
mod history;
mod inherit_prop;
mod kube;
mod load_cli;
mod load_client;
mod load_workers;
mod real_vllm;
mod render;
mod report;
mod run_local;
mod sim;
mod sim_cli;
mod sim_conformance;
mod snapshot;
