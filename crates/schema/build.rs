//! Compiles `proto/*.proto` with the pure-Rust `protobuf-parse` (no `protoc` exists here) into a
//! descriptor set, generates prost types from it and keeps the same bytes for prost-reflect, so
//! catalogs can be parsed as text format into `DynamicMessage`s and decoded into typed structs.

use std::{env, fs, path::PathBuf};

use prost::Message as _;
use protobuf::Message as _;

/// The schema lives at the top of the repository (`proto/`), where the catalogs that follow it are.
const PROTOS: &[&str] = &["../../proto/benchmark.proto", "../../proto/hardware.proto", "../../proto/results.proto"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }

    let fds = protobuf_parse::Parser::new()
        .pure()
        .include("../../proto")
        .inputs(PROTOS)
        .file_descriptor_set()
        .unwrap_or_else(|e| panic!("parsing proto/: {e:#}"));
    let bytes = fds.write_to_bytes().expect("encode descriptor set");
    fs::write(out.join("descriptors.bin"), &bytes).expect("write descriptors.bin");

    let fds = prost_types::FileDescriptorSet::decode(bytes.as_slice()).expect("decode descriptors");
    let mut cfg = prost_build::Config::new();
    // Only our messages (not enums, not google.protobuf.*) get the reflection derive.
    let ours = fds.file.iter().filter(|f| f.package() == "benchmark.proto");
    for (package, message) in ours.flat_map(|f| f.message_type.iter().map(move |m| (f.package(), m.name()))) {
        cfg.type_attribute(
            format!(".{package}.{message}"),
            format!(
                "#[derive(::prost_reflect::ReflectMessage)] #[prost_reflect(descriptor_pool = \"crate::DESCRIPTOR_POOL\", message_name = \"{package}.{message}\")]"
            ),
        );
    }
    cfg.compile_fds(fds).expect("generate prost types");
}
