//! Results: a benchmark's `results/` folder, published whole or not at all ([`store`]).

pub mod store;
