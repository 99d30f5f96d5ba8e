//! Inheritance: a benchmark extends its `base_benchmark_name` by merging onto it.
//!
//! Rules (the contract in the design doc): a scalar the child sets replaces the base's, including
//! false/0/"" — every scalar has explicit presence, so "set to false" survives (the original tool
//! lost it); a message the child sets merges field by field; a repeated field the child sets
//! replaces the whole list; a oneof case the child sets replaces the base's case (setting one
//! member of a oneof clears the others). `name`, `abstract` and `description` describe the
//! benchmark itself and are never inherited.

use prost_reflect::{DynamicMessage, Value};

/// Fields of `Benchmark` that belong to one benchmark and are not inherited.
const OWN_FIELDS: &[&str] = &["name", "base_benchmark_name", "abstract", "description"];

/// Merges `child` onto `base` in place, by the rules above.
pub fn merge(base: &mut DynamicMessage, child: &DynamicMessage) {
    for (field, value) in child.fields() {
        let both_messages = !field.is_list() && !field.is_map() && base.has_field(&field);
        match (value, both_messages) {
            (Value::Message(child_msg), true) => {
                if let Value::Message(base_msg) = base.get_field_mut(&field) {
                    merge(base_msg, child_msg);
                }
            }
            _ => base.set_field(&field, value.clone()),
        }
    }
}

/// Resolves one benchmark from its chain, root first: the root, then each descendant merged on.
pub fn resolve_chain<'a>(chain_root_first: impl IntoIterator<Item = &'a DynamicMessage>) -> Option<DynamicMessage> {
    let mut iter = chain_root_first.into_iter();
    let mut acc = iter.next()?.clone();
    let mut own = acc.clone();
    for child in iter {
        merge(&mut acc, child);
        own = child.clone();
    }
    // The benchmark's own identity fields come from the last (the benchmark itself), never a base.
    for name in OWN_FIELDS {
        match own.get_field_by_name(name) {
            Some(v) if own.has_field_by_name(name) => acc.set_field_by_name(name, v.into_owned()),
            _ => acc.clear_field_by_name(name),
        }
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn msg(text: &str) -> DynamicMessage {
        DynamicMessage::parse_text_format(schema::message("Benchmark"), text).unwrap()
    }

    fn resolved(chain: &[&str]) -> String {
        let msgs: Vec<_> = chain.iter().map(|t| msg(t)).collect();
        resolve_chain(&msgs).unwrap().to_text_format()
    }

    #[test]
    fn scalars_override_messages_merge_and_false_survives() {
        let base = r#"name: "base" description: "the base" config { model_server { replicas: 8 accelerator: "nvidia-l4" } load_balancer { gateway { full_duplex_streaming_enabled: true envoy { epp { image: "e" } } } } }"#;
        let child = r#"name: "child" base_benchmark_name: "base" config { model_server { replicas: 2 } load_balancer { gateway { full_duplex_streaming_enabled: false } } }"#;
        assert_eq!(
            resolved(&[base, child]),
            msg(r#"name: "child" base_benchmark_name: "base" config { model_server { accelerator: "nvidia-l4" replicas: 2 } load_balancer { gateway { full_duplex_streaming_enabled: false envoy { epp { image: "e" } } } } }"#).to_text_format()
        );
    }

    #[test]
    fn repeated_fields_replace_and_oneof_cases_replace() {
        let base = r#"name: "b" config { load_balancer { k8s_service { port: 1 } } benchmark_tool { load { rates { request_rates: [1, 2, 3] } models: ["x", "y"] } } }"#;
        let child = r#"name: "c" config { load_balancer { gateway { } } benchmark_tool { load { rates { request_rates: [9] } } } }"#;
        let out = msg(&resolved(&[base, child]));
        let b: schema::Benchmark = out.transcode_to().unwrap();
        let cfg = b.config.unwrap();
        assert!(matches!(cfg.load_balancer.unwrap().r#type, Some(schema::load_balancer::Type::Gateway(_))));
        let load = match cfg.benchmark_tool.unwrap().r#type.unwrap() {
            schema::benchmark_tool::Type::Load(l) => l,
            other => panic!("{other:?}"),
        };
        assert_eq!(load.models, ["x", "y"]);
        match load.pattern.unwrap() {
            schema::load_spec::Pattern::Rates(r) => assert_eq!(r.request_rates, [9.0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identity_fields_are_not_inherited() {
        let out = resolved(&[r#"name: "a" abstract: true description: "d""#, r#"name: "b" base_benchmark_name: "a""#]);
        assert_eq!(out, msg(r#"name: "b" base_benchmark_name: "a""#).to_text_format());
    }
}
