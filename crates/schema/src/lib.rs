//! inferbench-schema: the contracts, on the ground floor. Every other crate of the workspace
//! speaks these and nothing of each other's insides:
//!
//! - the generated types of `proto/*.proto` (at the root of this crate) and the descriptor pool
//!   they reflect on;
//! - [`text`]: the text format (`.pbtxt`) parser, with positions and the [`text::Diagnostic`]s
//!   that name file, line, column and field path; [`hardware`], the checked hardware table;
//! - [`result_files`]: the results files (`summary.json`, `requests.jsonl.zst`, their names),
//!   each with its writer and its reader side by side; [`handoff`], how they leave a load pod
//!   (sealed, packed, verified) for the platform that downloads them;
//! - [`manifest`]: the names, labels and annotations the templates write and the platforms read;
//! - [`clock`] and [`hash`]: the timestamps and digests written into those files.
//!
//! The crates above it: `inferbench-load` and `inferbench-sim` (leaves: they import only this
//! crate), `inferbench-node` (a leaf that needs none of it), and `inferbench` (catalog → plan → render → snapshot → platform →
//! results → report, and the CLI). Cargo holds the shape: a leaf cannot import upwards.

pub mod clock;
pub mod handoff;
pub mod hardware;
pub mod hash;
pub mod manifest;
mod proto;
pub mod proto_json;
pub mod result_files;
pub mod text;

pub use proto::*;
