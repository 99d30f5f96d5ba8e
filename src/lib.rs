//! inferbench: benchmark-as-code for LLM serving.
//!
//! The pipeline, one way: `catalog` (parse, inherit, validate) → `plan` (run id, selection, load
//! specs, generated rates) → `render` (tera → Kubernetes manifests) → `snapshot` (immutable
//! folders under `output/`) → platform → results → report. Each module knows only the ones before
//! it; `cli` wires them to commands.

pub mod catalog;
pub mod cli;
pub mod lifecycle;
pub mod load;
pub mod node;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod render;
pub mod report;
pub mod results;
pub mod schema;
pub mod sim;
pub mod snapshot;
