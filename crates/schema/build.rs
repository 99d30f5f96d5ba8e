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
    typed_json(&mut cfg, &fds);
    cfg.compile_fds(fds).expect("generate prost types");
}

/// `results.proto`'s messages read proto3 JSON with serde (`summary.json`, see
/// `src/proto_json.rs`): each field gets the reader of its type; unknown fields are refused, as
/// prost-reflect's reader refuses them.
fn typed_json(cfg: &mut prost_build::Config, fds: &prost_types::FileDescriptorSet) {
    use prost_types::field_descriptor_proto::{Label, Type};
    let Some(file) = fds.file.iter().find(|f| f.name().ends_with("results.proto")) else {
        panic!("results.proto is not among the protos");
    };
    let package = file.package();
    for m in &file.message_type {
        let name = format!(".{package}.{}", m.name());
        cfg.type_attribute(&name, "#[derive(::serde::Deserialize)] #[serde(default, deny_unknown_fields)]");
        for f in &m.field {
            let path = format!("{name}.{}", f.name());
            let entry = m.nested_type.iter().find(|n| {
                n.options.as_ref().is_some_and(|o| o.map_entry()) && f.type_name().ends_with(&format!(".{}", n.name()))
            });
            let reader = match (entry, f.label(), f.r#type()) {
                (Some(e), _, _) => match e.field.iter().find(|v| v.number() == 2).map(|v| v.r#type()) {
                    Some(Type::Uint64 | Type::Int64 | Type::Uint32 | Type::Int32) => "crate::proto_json::integer_map",
                    _ => "crate::proto_json::or_default",
                },
                (None, Label::Repeated, _) => "crate::proto_json::or_default",
                (None, _, Type::Double | Type::Float) if f.proto3_optional() => "crate::proto_json::optional_float",
                (None, _, Type::Double | Type::Float) => "crate::proto_json::float",
                (None, _, Type::Uint64 | Type::Int64 | Type::Uint32 | Type::Int32) if f.proto3_optional() => {
                    panic!("{path}: optional integers have no JSON reader yet (src/proto_json.rs)")
                }
                (None, _, Type::Uint64 | Type::Int64 | Type::Uint32 | Type::Int32) => "crate::proto_json::integer",
                (None, _, Type::String | Type::Bool) => "crate::proto_json::or_default",
                (None, _, Type::Message) => "::serde::Deserialize::deserialize",
                (None, _, t) => panic!("{path}: no JSON reader for {t:?} (src/proto_json.rs)"),
            };
            let alias =
                if f.json_name() != f.name() { format!(", alias = \"{}\"", f.json_name()) } else { String::new() };
            cfg.field_attribute(&path, format!("#[serde(deserialize_with = \"{reader}\"{alias})]"));
        }
    }
}
