//! The generated protobuf types of `proto/*.proto` and the descriptor pool they reflect on.
//!
//! Everything downstream (plan, render, load, sim) works on these typed structs; only the catalog
//! module touches `DynamicMessage`s, because parsing text format and merging by field presence
//! needs reflection.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// Descriptor set of `proto/benchmark.proto`, `hardware.proto` and `results.proto`, built by `build.rs`.
/// It starts from prost-reflect's global pool, which holds the well-known types we import
/// (`google.protobuf.Timestamp`).
pub static DESCRIPTOR_POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    let mut pool = DescriptorPool::global();
    pool.decode_file_descriptor_set(include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin")).as_ref())
        .expect("descriptor set compiled by build.rs decodes");
    pool
});

/// The protobuf package of our schema.
pub const PACKAGE: &str = "benchmark.proto";

/// Looks up one of our messages by its short name (e.g. `"Benchmarks"`).
///
/// # Panics
/// If the schema has no such message: names are compile-time constants of this crate.
pub fn message(name: &str) -> MessageDescriptor {
    DESCRIPTOR_POOL
        .get_message_by_name(&format!("{PACKAGE}.{name}"))
        .unwrap_or_else(|| panic!("schema has no message {name}"))
}

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/benchmark.proto.rs"));
}

pub use generated::*;

impl ModelServer {
    /// The server kind as written in the catalog (`vllm`, `sglang`, ...), or `None` when unset.
    pub fn kind_name(&self) -> Option<&'static str> {
        use model_server::Type;
        Some(match self.r#type.as_ref()? {
            Type::Vllm(_) => "vllm",
            Type::Sglang(_) => "sglang",
            Type::Tgi(_) => "tgi",
            Type::Triton(_) => "triton",
            Type::Jetstream(_) => "jetstream",
            Type::Simulator(_) => "simulator",
            Type::External(_) => "external",
        })
    }

    /// The model the server serves, when the kind says.
    pub fn model(&self) -> Option<&str> {
        use model_server::Type;
        let m = match self.r#type.as_ref()? {
            Type::Vllm(v) => v.model.as_deref(),
            Type::Sglang(v) => v.model.as_deref(),
            Type::Tgi(v) => v.model.as_deref(),
            Type::Triton(v) => v.model.as_deref(),
            Type::Jetstream(v) => v.model.as_deref(),
            Type::Simulator(v) => v.model.as_deref(),
            Type::External(v) => v.model.as_deref(),
        };
        m.filter(|m| !m.is_empty())
    }

    /// Tensor parallelism (1 when unset or unparsable; validation reports the latter).
    pub fn tensor_parallelism(&self) -> u32 {
        use model_server::Type;
        let tp = match self.r#type.as_ref() {
            Some(Type::Vllm(v)) => v.tensor_parallelism.as_deref().and_then(|s| s.trim().parse().ok()),
            Some(Type::Sglang(v)) => v.tensor_parallelism.and_then(|n| u32::try_from(n).ok()),
            Some(Type::Tgi(v)) => v.tensor_parallelism.and_then(|n| u32::try_from(n).ok()),
            Some(Type::Triton(v)) => v.tensor_parallelism.and_then(|n| u32::try_from(n).ok()),
            Some(Type::Jetstream(v)) => v.tensor_parallelism.and_then(|n| u32::try_from(n).ok()),
            Some(Type::Simulator(v)) => v.tensor_parallelism.and_then(|n| u32::try_from(n).ok()),
            Some(Type::External(_)) | None => None,
        };
        tp.filter(|&n| n > 0).unwrap_or(1)
    }

    /// Replicas (default 1).
    pub fn replica_count(&self) -> u32 {
        self.replicas.and_then(|n| u32::try_from(n).ok()).unwrap_or(1)
    }
}
