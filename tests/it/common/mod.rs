//! Helpers more than one test module uses.

pub mod real_vllm;
pub mod results;
pub mod run;
pub mod script;
pub mod spanner;
