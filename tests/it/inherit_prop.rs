//! Property: any chain of overrides, written as text-format catalogs and resolved by the tool,
//! gives the same benchmark as merging the same overrides by hand with the documented rules
//! (scalars replace — false and 0 too —, messages merge, repeated fields replace, a oneof case
//! replaces the other case and merges with the same case).

use std::sync::Arc;

use inferbench::{
    catalog::{Catalog, SourceFile},
    schema::{load_balancer, load_spec},
};
use proptest::prelude::*;

/// The load balancer a layer sets, if any.
#[derive(Debug, Clone, PartialEq)]
enum Lb {
    Service(Option<i32>),
    Gateway(Option<bool>),
}

/// What one benchmark of the chain sets.
#[derive(Debug, Clone)]
struct Layer {
    replicas: Option<i32>,
    accelerator: Option<String>,
    tensor_parallelism: Option<String>,
    lb: Option<Lb>,
    rates: Option<Vec<u32>>,
    models: Option<Vec<String>>,
    streaming: Option<bool>,
}

fn layer() -> impl Strategy<Value = Layer> {
    (
        proptest::option::of(0..5i32),
        proptest::option::of("[a-z]{1,6}"),
        proptest::option::of("[1-8]"),
        proptest::option::of(prop_oneof![
            proptest::option::of(1..65535i32).prop_map(Lb::Service),
            proptest::option::of(any::<bool>()).prop_map(Lb::Gateway),
        ]),
        proptest::option::of(proptest::collection::vec(1..100u32, 0..4)),
        proptest::option::of(proptest::collection::vec("[a-z]{1,4}", 1..3)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(replicas, accelerator, tensor_parallelism, lb, rates, models, streaming)| Layer {
            replicas,
            accelerator,
            tensor_parallelism,
            lb,
            rates,
            models,
            streaming,
        })
}

fn to_text(i: usize, l: &Layer) -> String {
    let mut ms = String::new();
    if let Some(r) = l.replicas {
        ms += &format!("replicas: {r} ");
    }
    if let Some(a) = &l.accelerator {
        ms += &format!("accelerator: \"{a}\" ");
    }
    if let Some(tp) = &l.tensor_parallelism {
        ms += &format!("vllm {{ tensor_parallelism: \"{tp}\" }} ");
    }
    let lb = match &l.lb {
        None => String::new(),
        Some(Lb::Service(p)) => {
            format!("load_balancer {{ k8s_service {{ {} }} }}", p.map(|p| format!("port: {p}")).unwrap_or_default())
        }
        Some(Lb::Gateway(fd)) => {
            format!(
                "load_balancer {{ gateway {{ {} }} }}",
                fd.map(|b| format!("full_duplex_streaming_enabled: {b}")).unwrap_or_default()
            )
        }
    };
    let mut load = String::new();
    if let Some(r) = &l.rates {
        // An empty list cannot be told from "not set" in text format; write at least one rate.
        let r = if r.is_empty() { vec![1] } else { r.clone() };
        load +=
            &format!("rates {{ request_rates: [{}] }} ", r.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
    }
    if let Some(m) = &l.models {
        load += &format!("models: [{}] ", m.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", "));
    }
    if let Some(s) = l.streaming {
        load += &format!("streaming: {s} ");
    }
    let base = if i == 0 { String::new() } else { format!("base_benchmark_name: \"b{}\"", i - 1) };
    format!(
        "benchmarks {{ name: \"b{i}\" {base} config {{ model_server {{ {ms} }} {lb} benchmark_tool {{ load {{ {load} }} }} }} }}\n"
    )
}

/// The documented rules, by hand.
fn merge_by_hand(chain: &[Layer]) -> Layer {
    let mut acc = Layer {
        replicas: None,
        accelerator: None,
        tensor_parallelism: None,
        lb: None,
        rates: None,
        models: None,
        streaming: None,
    };
    for l in chain {
        acc.replicas = l.replicas.or(acc.replicas);
        acc.accelerator = l.accelerator.clone().or(acc.accelerator);
        acc.tensor_parallelism = l.tensor_parallelism.clone().or(acc.tensor_parallelism);
        acc.lb = match (acc.lb.take(), &l.lb) {
            (prev, None) => prev,
            (Some(Lb::Service(a)), Some(Lb::Service(b))) => Some(Lb::Service(b.or(a))),
            (Some(Lb::Gateway(a)), Some(Lb::Gateway(b))) => Some(Lb::Gateway(b.or(a))),
            (_, Some(other)) => Some(other.clone()),
        };
        acc.rates = l.rates.clone().map(|r| if r.is_empty() { vec![1] } else { r }).or(acc.rates);
        acc.models = l.models.clone().or(acc.models);
        acc.streaming = l.streaming.or(acc.streaming);
    }
    acc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn resolution_equals_merging_by_hand(chain in proptest::collection::vec(layer(), 1..7), split in 0usize..7) {
        // Spread the chain over two files, children possibly before their bases.
        let texts: Vec<String> = chain.iter().enumerate().map(|(i, l)| to_text(i, l)).collect();
        let split = split.min(texts.len());
        let (a, b) = texts.split_at(split);
        let files = vec![
            Arc::new(SourceFile::new("b.pbtxt".into(), b.iter().rev().cloned().collect())),
            Arc::new(SourceFile::new("a.pbtxt".into(), a.concat())),
        ];
        let cat = Catalog::from_files(files).unwrap();
        let resolved = cat.resolve().unwrap();
        let last = format!("b{}", chain.len() - 1);
        let got = resolved.iter().find(|r| r.name == last).unwrap().benchmark.config.clone().unwrap();
        let want = merge_by_hand(&chain);

        let ms = got.model_server.unwrap_or_default();
        prop_assert_eq!(ms.replicas, want.replicas);
        prop_assert_eq!(ms.accelerator, want.accelerator);
        let tp = match ms.r#type {
            Some(inferbench::schema::model_server::Type::Vllm(v)) => v.tensor_parallelism,
            _ => None,
        };
        prop_assert_eq!(tp, want.tensor_parallelism);
        let lb = got.load_balancer.and_then(|l| l.r#type).map(|t| match t {
            load_balancer::Type::K8sService(s) => Lb::Service(s.port),
            load_balancer::Type::Gateway(g) => Lb::Gateway(g.full_duplex_streaming_enabled),
        });
        prop_assert_eq!(lb, want.lb);
        let load = match got.benchmark_tool.and_then(|t| t.r#type) {
            Some(inferbench::schema::benchmark_tool::Type::Load(l)) => l,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let rates = match load.pattern {
            Some(load_spec::Pattern::Rates(r)) => Some(r.request_rates.iter().map(|&x| x as u32).collect::<Vec<_>>()),
            None => None,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(rates, want.rates);
        prop_assert_eq!(if load.models.is_empty() { None } else { Some(load.models) }, want.models);
        prop_assert_eq!(load.streaming, want.streaming);
    }
}
