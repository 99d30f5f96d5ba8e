//! Catalog: the seed's example resolves as documented, and every class of user error comes out
//! with the exact message a user sees (file:line:col, field path, what was expected).

use std::{fs, path::PathBuf};

use inferbench::{
    catalog::{Catalog, select::FileSelection, validate},
    generate,
    schema::hardware::HardwareTable,
    schema::{load_balancer, model_server},
};

/// Writes files into a temp catalog folder; returns the folder (kept alive) and the paths.
fn catalog(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = files
        .iter()
        .map(|(name, text)| {
            let p = dir.path().join(name);
            fs::write(&p, text).unwrap();
            p
        })
        .collect();
    (dir, paths)
}

/// Every error a user would see for these files: load, resolve and validate, as displayed, with
/// the temp folder replaced by `cat/`.
fn errors(files: &[(&str, &str)]) -> String {
    let (dir, paths) = catalog(files);
    let shown = |s: String| s.replace(&format!("{}/", dir.path().display()), "cat/");
    let cat = match Catalog::load(&paths) {
        Ok(c) => c,
        Err(d) => return shown(d.to_string()),
    };
    let resolved = match cat.resolve() {
        Ok(r) => r,
        Err(d) => return shown(d.to_string()),
    };
    let d = validate::validate_all(&cat, &resolved, &HardwareTable::builtin(), validate::RUN_ID_LEN);
    match d.into_result(()) {
        Ok(()) => "ok".into(),
        Err(d) => shown(d.to_string()),
    }
}

#[test]
fn the_seed_example_parses_resolves_and_new_benchmark_only_changes_replicas() {
    let sel = FileSelection { paths: vec!["tests/fixtures/seed-example.pbtxt".into()], ..Default::default() };
    let loaded = generate::read_catalogs(&sel, None).unwrap();
    let by = |n: &str| loaded.resolved.iter().find(|r| r.name == n).unwrap().benchmark.clone();
    let (base, new) = (by("base-benchmark"), by("new-benchmark"));
    let (bc, nc) = (base.config.clone().unwrap(), new.config.clone().unwrap());
    assert_eq!(bc.model_server.as_ref().unwrap().replicas, Some(1));
    assert_eq!(nc.model_server.as_ref().unwrap().replicas, Some(2));
    // Everything else is the base's: compare with replicas put back.
    let mut n2 = nc.clone();
    n2.model_server.as_mut().unwrap().replicas = Some(1);
    assert_eq!(n2, bc);
    let ms = nc.model_server.unwrap();
    assert!(matches!(&ms.r#type, Some(model_server::Type::Vllm(v)) if v.tensor_parallelism.as_deref() == Some("1")));
    assert!(matches!(nc.load_balancer.unwrap().r#type, Some(load_balancer::Type::Gateway(_))));
    assert_eq!(new.base_benchmark_name.as_deref(), Some("base-benchmark"));
    let diags = validate::validate_all(&loaded.catalog, &loaded.resolved, &loaded.hardware, validate::RUN_ID_LEN);
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn the_shipped_catalogs_are_valid() {
    let sel = FileSelection { catalog_dir: "catalog".into(), ..Default::default() };
    let loaded = generate::read_catalogs(&sel, None).unwrap();
    assert!(loaded.resolved.len() >= 10);
    let diags = validate::validate_all(&loaded.catalog, &loaded.resolved, &loaded.hardware, validate::RUN_ID_LEN);
    assert!(diags.is_empty(), "{diags}");
    // The hardware table in catalog/ is not read as a catalog of benchmarks.
    assert!(loaded.catalog.files.iter().all(|f| !f.path.ends_with("hardware.pbtxt")));
}

const GOOD: &str = r#"name: "a"
  config {
    model_server {
      accelerator: "nvidia-l4"
      vllm { model: "meta-llama/Llama-2-7b-hf" }
    }
  }"#;

#[test]
fn parse_errors_of_every_file_are_reported_together() {
    let e = errors(&[("a.pbtxt", "benchmarks {\n  nme: \"x\"\n}\n"), ("b.pbtxt", "benchmarks {\n  name: \"y\"\n")]);
    assert_eq!(
        e,
        "error: cat/a.pbtxt:2:3: not a valid Benchmarks text-format message: field 'nme' not found for message 'benchmark.proto.Benchmark'\n\
         error: cat/b.pbtxt:3:1: not a valid Benchmarks text-format message: expected '}' or a field name, but reached end of input\n\
         2 errors"
    );
}

#[test]
fn unknown_base_names_the_reference_and_suggests_a_close_name() {
    let e = errors(&[(
        "c.pbtxt",
        &format!("benchmarks {{ {GOOD} }}\nbenchmarks {{\n  name: \"b\"\n  base_benchmark_name: \"aa\"\n}}\n"),
    )]);
    assert_eq!(
        e,
        "error: cat/c.pbtxt:10:3: benchmarks[1].base_benchmark_name (benchmark \"b\"): base benchmark \"aa\" is not defined in the selected catalog files\n  \
         cat/c.pbtxt:1:14: note: did you mean \"a\"?\n\
         1 error"
    );
}

#[test]
fn cycles_list_every_link() {
    let text = "benchmarks { name: \"x\" base_benchmark_name: \"y\" }\nbenchmarks { name: \"y\" base_benchmark_name: \"z\" }\nbenchmarks { name: \"z\" base_benchmark_name: \"x\" }\n";
    let e = errors(&[("c.pbtxt", text)]);
    // Reported once, whichever member it is found from.
    assert_eq!(
        e,
        "error: cat/c.pbtxt:1:24: benchmarks[0].base_benchmark_name (benchmark \"x\"): inheritance cycle: x → y → z → x\n  \
         cat/c.pbtxt:2:24: note: \"y\" extends \"z\"\n  \
         cat/c.pbtxt:3:24: note: \"z\" extends \"x\"\n\
         1 error"
    );
    let self_cycle = errors(&[("c.pbtxt", "benchmarks { name: \"s\" base_benchmark_name: \"s\" }")]);
    assert_eq!(
        self_cycle,
        "error: cat/c.pbtxt:1:24: benchmarks[0].base_benchmark_name (benchmark \"s\"): inheritance cycle: s → s\n1 error"
    );
}

#[test]
fn duplicate_names_across_files_name_both_places() {
    let e = errors(&[
        ("a.pbtxt", &format!("benchmarks {{ {GOOD} }}")),
        ("b.pbtxt", &format!("\n\nbenchmarks {{ {GOOD} }}")),
    ]);
    assert_eq!(
        e,
        "error: cat/b.pbtxt:3:14: benchmarks[0].name: duplicate benchmark name \"a\"\n  \
         cat/a.pbtxt:1:14: note: first defined here\n\
         1 error"
    );
}

#[test]
fn several_validation_errors_at_once_with_paths_and_inheritance_notes() {
    let text = r#"benchmarks {
  name: "base"
  config {
    model_server {
      image: "Vllm/openai:latest"
      accelerator: "nvidia-l4"
      replicas: 0
      vllm { model: "meta-llama/Llama-2-7b-hf" tensor_parallelism: "two" }
    }
    benchmark_tool { load { rates { request_rates: [1, -2, 0] } } }
  }
}
benchmarks {
  name: "Child_1"
  base_benchmark_name: "base"
}
"#;
    let e = errors(&[("c.pbtxt", text)]);
    let expected = [
        "error: cat/c.pbtxt:5:7: benchmarks[0].config.model_server.image (benchmark \"base\"): \"Vllm/openai:latest\" is not a valid image reference ([registry[:port]/]path[:tag][@sha256:<64 hex>], path in lower case)",
        "error: cat/c.pbtxt:5:7: benchmarks[0].config.model_server.image (benchmark \"Child_1\"): \"Vllm/openai:latest\" is not a valid image reference ([registry[:port]/]path[:tag][@sha256:<64 hex>], path in lower case)\n  cat/c.pbtxt:14:3: note: inherited from \"base\" by \"Child_1\"",
        "error: cat/c.pbtxt:7:7: benchmarks[0].config.model_server.replicas (benchmark \"Child_1\"): expected a positive integer, got 0\n  cat/c.pbtxt:14:3: note: inherited from \"base\" by \"Child_1\"",
        "error: cat/c.pbtxt:14:3: benchmarks[1].name (benchmark \"Child_1\"): \"Child_1\" is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit): it names the benchmark's namespace",
        "error: cat/c.pbtxt:10:56: benchmarks[0].config.benchmark_tool.load.rates.request_rates[1] (benchmark \"base\"): rates must be > 0 (inf = all at once), got -2",
        "error: cat/c.pbtxt:10:60: benchmarks[0].config.benchmark_tool.load.rates.request_rates[2] (benchmark \"base\"): rates must be > 0 (inf = all at once), got 0",
    ];
    for x in expected {
        assert!(e.contains(x), "missing:\n{x}\nin:\n{e}");
    }
    // The base's own errors say benchmarks[0] too.
    assert!(e.contains("error: cat/c.pbtxt:7:7: benchmarks[0].config.model_server.replicas (benchmark \"base\"): expected a positive integer, got 0"), "{e}");
    assert!(e.contains("benchmarks[0].config.model_server.vllm.tensor_parallelism (benchmark \"base\"): expected the tensor parallel size written as a positive integer string such as \"1\", got \"two\""), "{e}");
    assert!(e.ends_with("11 errors"), "{e}");
}

#[test]
fn the_namespace_limit_says_by_how_much() {
    let name = "a".repeat(60);
    let e = errors(&[("c.pbtxt", &format!("benchmarks {{ {} }}", GOOD.replace("\"a\"", &format!("\"{name}\""))))]);
    assert_eq!(
        e,
        format!(
            "error: cat/c.pbtxt:1:14: benchmarks[0].name (benchmark \"{name}\"): the namespace \"{name}-<run_id>\" would be 69 characters with a 8-character run id, 6 over the limit of 63: shorten the name by 6\n1 error"
        )
    );
}

#[test]
fn missing_rates_need_a_known_model_and_accelerator() {
    let text = GOOD.replace("nvidia-l4", "nvidia-tesla-k80");
    let e = errors(&[("c.pbtxt", &format!("benchmarks {{ {text} }}"))]);
    assert!(
        e.starts_with("error: cat/c.pbtxt:2:3: benchmarks[0].config.benchmark_tool (benchmark \"a\"): no request rates given and the hardware table (<built-in>/catalog/hardware.pbtxt) has no profile for meta-llama/Llama-2-7b-hf@nvidia-tesla-k80 to generate them: set benchmark_tool.lpg.request_rates or benchmark_tool.load.rates, or use benchmark_tool.load.sweep; known pairs: meta-llama/Llama-2-7b-hf@nvidia-l4, "),
        "{e}"
    );
    // With rates, the pair needs no profile.
    let with_rates = text.replace("  }\n  }", "  }\n    benchmark_tool { lpg { request_rates: \"1,2\" } }\n  }");
    assert_eq!(errors(&[("c.pbtxt", &format!("benchmarks {{ {with_rates} }}"))]), "ok");
}

#[test]
fn required_fields_and_server_kinds() {
    let e = errors(&[(
        "c.pbtxt",
        "benchmarks { name: \"a\" }\nbenchmarks { name: \"b\" config { model_server { replicas: 1 } } }\nbenchmarks { name: \"c\" config { model_server { external { url: \"ftp://x\" } } load_balancer { gateway { envoy { lb_policy: \"Fastest\" } } } benchmark_tool { load { rates { request_rates: 1 } } } } }",
    )]);
    for x in [
        "error: cat/c.pbtxt:1:1: benchmarks[0].config (benchmark \"a\"): required: model_server, load_balancer and benchmark_tool",
        "error: cat/c.pbtxt:2:33: benchmarks[1].config.model_server (benchmark \"b\"): required: one of vllm, sglang, tgi, triton, jetstream, simulator, external",
        "benchmarks[2].config.model_server.external.url (benchmark \"c\"): \"ftp://x\" is not an http(s) URL with a host",
        "benchmarks[2].config.load_balancer.gateway (benchmark \"c\"): a gateway needs model server pods to route to",
        "benchmarks[2].config.load_balancer.gateway.envoy.lb_policy (benchmark \"c\"): expected RoundRobin, LeastRequest or Random, got \"Fastest\"",
    ] {
        assert!(e.contains(x), "missing:\n{x}\nin:\n{e}");
    }
}

#[test]
fn a_false_override_survives_inheritance() {
    let sel = FileSelection { paths: vec!["catalog/benchmarks.pbtxt".into()], ..Default::default() };
    let loaded = generate::read_catalogs(&sel, None).unwrap();
    let fd = |n: &str| {
        let cfg = loaded.resolved.iter().find(|r| r.name == n).unwrap().benchmark.config.clone().unwrap();
        match cfg.load_balancer.unwrap().r#type.unwrap() {
            load_balancer::Type::Gateway(g) => g.full_duplex_streaming_enabled,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(fd("llama2-7b-h100-r8-epp"), Some(true));
    assert_eq!(fd("llama2-7b-h100-r8-epp-no-stream"), Some(false), "the original tool lost this false");
}

#[test]
fn a_file_of_another_message_type_is_an_error_not_silently_skipped() {
    let e = errors(&[("c.pbtxt", "# proto-message: Benchmark\nname: \"x\"\n")]);
    assert_eq!(
        e,
        "error: cat/c.pbtxt:1:3: the header says this file holds a Benchmark message; catalogs hold Benchmarks (or, for catalog/hardware.pbtxt, a HardwareTable)\n1 error"
    );
}

#[test]
fn a_simulator_needs_a_known_profile_even_with_explicit_rates() {
    let text = "benchmarks { name: \"s\" config { model_server { accelerator: \"nvidia-k80\" simulator { model: \"meta-llama/Llama-2-7b-hf\" } } benchmark_tool { load { rates { request_rates: 1 } } } } }";
    let e = errors(&[("c.pbtxt", text)]);
    assert!(
        e.starts_with("error: cat/c.pbtxt:1:48: benchmarks[0].config.model_server.accelerator (benchmark \"s\"): the simulator needs a hardware profile and the table (<built-in>/catalog/hardware.pbtxt) has none for meta-llama/Llama-2-7b-hf@nvidia-k80; known: "),
        "{e}"
    );
}

#[test]
fn load_workers_out_of_range_or_above_the_users_are_refused_at_their_line() {
    let with_load = |load: &str| {
        let text =
            GOOD.replace("  }\n  }", &format!("  }}\n    benchmark_tool {{ load {{\n      {load}\n    }} }}\n  }}"));
        errors(&[("c.pbtxt", &format!("benchmarks {{ {text} }}"))])
    };
    let e = with_load("rates { request_rates: [1] } workers: 0");
    assert_eq!(
        e,
        "error: cat/c.pbtxt:8:36: benchmarks[0].config.benchmark_tool.load.workers (benchmark \"a\"): expected 1…1024 load workers, got 0\n1 error"
    );
    let e = with_load("rates { request_rates: [1] } workers: 2000");
    assert!(e.contains("load.workers (benchmark \"a\"): expected 1…1024 load workers, got 2000"), "{e}");
    let e = with_load("concurrency { users: [8, 2] } workers: 4");
    assert!(
        e.starts_with("error: cat/c.pbtxt:8:37: benchmarks[0].config.benchmark_tool.load.workers (benchmark \"a\"): concurrency.users 2 is fewer than workers 4: a closed loop needs at least one user per worker"),
        "{e}"
    );
    assert_eq!(with_load("concurrency { users: [8] } workers: 4"), "ok");
    assert_eq!(with_load("rates { request_rates: [1] } workers: 3"), "ok");
}
