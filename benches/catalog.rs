//! Speed of the spine on a generated catalog of 1 000 benchmarks in 5-deep inheritance chains:
//! parse + resolve + validate (target ≤ 200 ms) and plan + render + snapshot (target ≤ 1 s); and
//! one inheritance chain 10 000 deep, parse + resolve (target: well under 1 s).
//!
//!     cargo bench --bench catalog

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use inferbench::{
    catalog::{Catalog, SourceFile, validate},
    generate::{self, Loaded},
    plan::PlanOptions,
    render::{RenderOptions, Renderer},
    schema::hardware::HardwareTable,
};

/// 200 chains of 5: a root and four children, each overriding something different.
fn catalog_text() -> String {
    let mut s = String::new();
    for c in 0..200 {
        s += &format!(
            r#"benchmarks {{
  name: "m{c}-l0"
  description: "root {c}"
  config {{
    model_server {{
      image: "vllm/vllm-openai:v0.8.1"
      accelerator: "nvidia-h100-80gb"
      replicas: 1
      resources {{ cpu: "8" memory: "64Gi" }}
      vllm {{ model: "meta-llama/Llama-2-7b-hf" tensor_parallelism: "1" max_model_len: 4096 }}
    }}
    load_balancer {{ k8s_service {{ port: 8081 }} }}
    benchmark_tool {{
      lpg {{ dataset: "sharegpt_v3_unfiltered_cleaned_split" models: "meta-llama/Llama-2-7b-hf" benchmark_time_seconds: "60" output_length: "1024" }}
    }}
  }}
}}
benchmarks {{ name: "m{c}-l1" base_benchmark_name: "m{c}-l0" config {{ model_server {{ replicas: 2 }} }} }}
benchmarks {{ name: "m{c}-l2" base_benchmark_name: "m{c}-l1" config {{ load_balancer {{ gateway {{ full_duplex_streaming_enabled: true envoy {{ epp {{ refresh_metrics_interval: "50ms" }} }} }} }} }} }}
benchmarks {{ name: "m{c}-l3" base_benchmark_name: "m{c}-l2" config {{ benchmark_tool {{ lpg {{ request_rates: "1,2,4,8,16" }} }} }} }}
benchmarks {{ name: "m{c}-l4" base_benchmark_name: "m{c}-l3" config {{ model_server {{ vllm {{ tensor_parallelism: "2" }} }} load_balancer {{ gateway {{ full_duplex_streaming_enabled: false }} }} }} }}
"#
        );
    }
    s
}

/// One chain: a root, then `depth - 1` children written children first, each overriding one field.
fn deep_chain_text(depth: usize) -> String {
    let mut s = String::new();
    for i in (1..depth).rev() {
        s += &format!(
            "benchmarks {{ name: \"c{i}\" base_benchmark_name: \"c{}\" config {{ model_server {{ replicas: {i} }} }} }}\n",
            i - 1
        );
    }
    s + "benchmarks { name: \"c0\" config { model_server { accelerator: \"nvidia-l4\" vllm { model: \"m\" } } } }\n"
}

fn load(text: &str, hw: &HardwareTable) -> Loaded {
    let file = Arc::new(SourceFile::new("bench.pbtxt".into(), text.to_owned()));
    let catalog = Catalog::from_files(vec![file]).expect("parses");
    let resolved = catalog.resolve().expect("resolves");
    let diags = validate::validate_all(&catalog, &resolved, hw, validate::RUN_ID_LEN);
    assert!(diags.is_empty(), "{diags:?}");
    Loaded { catalog, resolved, hardware: hw.clone() }
}

fn bench(c: &mut Criterion) {
    let text = catalog_text();
    let hw = HardwareTable::builtin();
    assert_eq!(load(&text, &hw).resolved.len(), 1000);

    c.bench_function("parse+resolve+validate 1000 benchmarks, 5 deep", |b| b.iter(|| black_box(load(&text, &hw))));

    let deep = deep_chain_text(10_000);
    let mut g = c.benchmark_group("inheritance");
    g.sample_size(10);
    g.bench_function("parse+resolve one chain 10 000 deep", |b| {
        b.iter(|| {
            let file = Arc::new(SourceFile::new("deep.pbtxt".into(), deep.clone()));
            let resolved = Catalog::from_files(vec![file]).expect("parses").resolve().expect("resolves");
            assert_eq!(resolved.len(), 10_000);
            black_box(resolved)
        })
    });
    g.finish();

    let loaded = load(&text, &hw);
    let renderer = Renderer::builtin(RenderOptions::default()).unwrap();
    let mut g = c.benchmark_group("render");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("plan+render+snapshot 1000 benchmarks", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |out| {
                let opts = PlanOptions {
                    run_id: Some("bench001".into()),
                    output_root: out.path().into(),
                    name_regex: None,
                    overwrite_snapshot: false,
                    workers: None,
                };
                let plan = generate::plan(&loaded, &opts).unwrap();
                let reports = generate::generate(&plan, &renderer, false);
                assert!(reports.iter().all(|r| r.outcome.is_ok()));
                out
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
