//! Results: a benchmark's `results/` folder, published whole or not at all ([`store`]), and a run
//! folder copied to Google Cloud Storage ([`gcs`]).

pub mod gcs;
pub mod store;
