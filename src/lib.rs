//! inferbench: benchmark-as-code for LLM serving.
//!
//! The pipeline, one way: `catalog` (parse, inherit, validate) → `plan` (run id, selection, load
//! specs, generated rates) → `render` (tera → Kubernetes manifests) → `snapshot` (immutable
//! folders under `output/`) → `platform` (local or Kubernetes: deploy, run the load, collect) →
//! `results` → `report` → `history` (every run in a SQL database, read through the report's
//! reader; it hands the report its history section as plain data). [`generate`] (catalog → snapshots) and [`run`] (snapshots → results) are
//! the two orchestrators, named after the verbs a user types; `cli` wires them to commands.
//!
//! Below all of it are the workspace's other crates, re-exported here under their short names:
//! [`schema`] (`inferbench-schema`: the contracts every crate speaks), and the leaves [`load`]
//! (`inferbench-load`: the load engine), [`sim`] (`inferbench-sim`: the simulated model server) and
//! [`node`] (`inferbench-node`: the node emulator), which import only the contracts. Cargo holds
//! that shape: a leaf cannot import upwards. README, "Code layout", draws the graph.

pub use inferbench_load as load;
pub use inferbench_node as node;
pub use inferbench_schema as schema;
pub use inferbench_sim as sim;

pub mod catalog;
pub mod cli;
pub mod generate;
pub mod history;
pub mod plan;
pub mod platform;
pub mod render;
pub mod report;
pub mod results;
pub mod run;
pub mod snapshot;
