//! Results: a benchmark's `results/` folder, published whole or not at all ([`store`]), and a run
//! folder copied to Google Cloud Storage ([`gcs`]), results handed out of a load pod through the
//! Kubernetes API ([`handoff`]).

pub mod gcs;
pub mod handoff;
pub mod store;
