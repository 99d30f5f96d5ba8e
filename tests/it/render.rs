//! Render: golden manifests for a few catalog entries, and template mistakes caught at generate
//! time with the template's name.

use inferbench::{
    catalog::select::FileSelection,
    generate,
    plan::{Plan, PlanOptions},
    render::{RenderOptions, Renderer},
};

fn plan(paths: &[&str], regex: &str) -> Plan {
    let sel = FileSelection { paths: paths.iter().map(Into::into).collect(), ..Default::default() };
    let loaded = generate::read_catalogs(&sel, None).unwrap();
    let opts = PlanOptions {
        run_id: Some("0a1b2c3d".into()),
        output_root: "/nonexistent/output".into(),
        name_regex: Some(regex.into()),
        overwrite_snapshot: false,
        workers: None,
    };
    generate::plan(&loaded, &opts).unwrap()
}

fn render_one(paths: &[&str], name: &str) -> String {
    let plan = plan(paths, name);
    assert_eq!(plan.benchmarks.len(), 1);
    let r = Renderer::builtin(RenderOptions { image: "inferbench:test".into() }).unwrap();
    let manifests = r.render(&plan.benchmarks[0], &plan.run_id).unwrap();
    manifests.iter().map(|m| format!("### manifests/{}\n{}", m.file, m.text)).collect()
}

#[test]
fn golden_seed_new_benchmark() {
    insta::assert_snapshot!(render_one(&["tests/fixtures/seed-example.pbtxt"], "new-benchmark"));
}

#[test]
fn golden_quickstart_simulator() {
    insta::assert_snapshot!(render_one(&["catalog/quickstart.pbtxt"], "quickstart-sim"));
}

#[test]
fn golden_tensor_parallel_chat_with_resources() {
    insta::assert_snapshot!(render_one(&["catalog/benchmarks.pbtxt"], "llama31-8b-h100-tp2"));
}

#[test]
fn golden_gateway_with_envoy_lb_policy() {
    insta::assert_snapshot!(render_one(&["catalog/benchmarks.pbtxt"], "llama2-7b-h100-r8-least-request"));
}

#[test]
fn every_shipped_benchmark_renders_into_valid_objects() {
    let plan =
        plan(&["catalog/benchmarks.pbtxt", "catalog/quickstart.pbtxt", "tests/fixtures/seed-example.pbtxt"], ".*");
    let r = Renderer::builtin(RenderOptions::default()).unwrap();
    for p in &plan.benchmarks {
        let m = r.render(p, &plan.run_id).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let kinds: Vec<&str> = m.iter().flat_map(|m| m.objects.iter().map(|o| o.kind.as_str())).collect();
        assert!(
            kinds.contains(&"Namespace") && kinds.contains(&"Job") && kinds.contains(&"Deployment"),
            "{}: {kinds:?}",
            p.name
        );
        for o in m.iter().flat_map(|m| &m.objects) {
            if o.kind != "Namespace" && o.kind != "GatewayClass" {
                assert_eq!(o.namespace.as_deref(), Some(p.namespace.as_str()), "{}: {o:?}", p.name);
            }
        }
    }
}

#[test]
fn external_servers_deploy_nothing_and_target_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ext.pbtxt");
    std::fs::write(
        &f,
        r#"benchmarks { name: "ext" config { model_server { external { url: "http://10.1.2.3:8000" model: "m" } } benchmark_tool { load { rates { request_rates: [1] } } } } }"#,
    )
    .unwrap();
    let plan = plan(&[f.to_str().unwrap()], "ext");
    let m = Renderer::builtin(RenderOptions::default()).unwrap().render(&plan.benchmarks[0], &plan.run_id).unwrap();
    let files: Vec<&str> = m.iter().map(|m| m.file.as_str()).collect();
    assert_eq!(files, ["00-namespace.yaml", "30-load-engine.yaml"]);
    assert!(
        m[1].text.contains("inferbench.dev/target-kind: \"external\"") && m[1].text.contains("http://10.1.2.3:8000")
    );
}

#[test]
fn template_mistakes_name_the_template() {
    let plan = plan(&["catalog/quickstart.pbtxt"], "quickstart-sim");
    let opts = RenderOptions::default();
    let syntax =
        Renderer::from_templates(vec![("00-bad.yaml".into(), "a: 1\n{% if x %}\nb: 2\n".into())], opts.clone());
    let e = syntax.err().expect("unclosed if").to_string();
    assert!(e.starts_with("template 00-bad.yaml: ") && e.contains("00-bad.yaml"), "{e}");

    let undefined =
        Renderer::from_templates(vec![("01-undef.yaml".into(), "kind: {{ nope.nothing }}\n".into())], opts.clone())
            .unwrap();
    let e = undefined.render(&plan.benchmarks[0], &plan.run_id).unwrap_err().to_string();
    assert!(e.starts_with("template 01-undef.yaml: ") && e.contains("nope.nothing"), "{e}");

    let bad_yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: {{ namespace }}\ndata: {{ name }}: oops\n";
    let r = Renderer::from_templates(vec![("02-yaml.yaml".into(), bad_yaml.into())], opts.clone()).unwrap();
    let e = r.render(&plan.benchmarks[0], &plan.run_id).unwrap_err().to_string();
    assert!(e.starts_with("template 02-yaml.yaml rendered invalid YAML at line 6"), "{e}");

    let misspelled = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: {{ namespace }}\n  labels:\n{%- for k, v in labels %}\n    {{ k }}: {{ v | q }}\n{%- endfor %}\ndeta:\n  a: b\n";
    let r = Renderer::from_templates(vec![("04-typo.yaml".into(), misspelled.into())], opts.clone()).unwrap();
    let e = r.render(&plan.benchmarks[0], &plan.run_id).unwrap_err().to_string();
    assert!(e.ends_with("(ConfigMap/c): unknown field deta (misspelled?)"), "{e}");

    let bad_type = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: {{ namespace }}\n  labels:\n{%- for k, v in labels %}\n    {{ k }}: {{ v | q }}\n{%- endfor %}\nspec:\n  replicas: many\n";
    let r = Renderer::from_templates(vec![("03-type.yaml".into(), bad_type.into())], opts).unwrap();
    let e = r.render(&plan.benchmarks[0], &plan.run_id).unwrap_err().to_string();
    assert!(
        e.starts_with("template 03-type.yaml, document 1 starting at line 1 of its output (Deployment/d): "),
        "{e}"
    );
}

#[test]
fn the_templates_folder_matches_the_built_in_templates() {
    let plan = plan(&["catalog/benchmarks.pbtxt"], "llama2-7b-h100-r8-epp");
    let builtin =
        Renderer::builtin(RenderOptions::default()).unwrap().render(&plan.benchmarks[0], &plan.run_id).unwrap();
    let from_dir = Renderer::from_dir("templates".as_ref(), RenderOptions::default())
        .unwrap()
        .render(&plan.benchmarks[0], &plan.run_id)
        .unwrap();
    assert_eq!(builtin, from_dir);
}
