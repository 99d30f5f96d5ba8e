//! `inferbench sim` as a process: started with the arguments the rendered simulator pod carries,
//! with a vLLM Deployment's arguments, and with a bad profile.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

const BIN: &str = env!("CARGO_BIN_EXE_inferbench");

/// Starts the binary and returns it with the URL from its "serving … on URL" line.
fn start(args: &[String]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("inferbench sim: serving "), "{line}");
    let url = line.trim().rsplit(" on ").next().unwrap().to_owned();
    (child, url)
}

/// SIGTERM, as Kubernetes stops a pod: the simulator exits 0.
fn stop(mut child: Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
    assert!(child.wait().unwrap().success());
}

/// The container arguments of the simulator Deployment in a rendered snapshot.
fn rendered_sim_args() -> Vec<String> {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["generate", "--benchmarks", "quickstart", "--run-id", "simcli01", "--output"])
        .arg(out.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text =
        std::fs::read_to_string(out.path().join("simcli01/quickstart-sim-simcli01/manifests/10-model-server.yaml"))
            .unwrap();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap();
        if v["kind"] == "Deployment" {
            let args = &v["spec"]["template"]["spec"]["containers"][0]["args"];
            return args.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
        }
    }
    panic!("no Deployment in {text}");
}

#[tokio::test]
async fn the_rendered_simulator_pod_arguments_start_a_working_simulator() {
    let mut args = rendered_sim_args();
    assert_eq!(args[0], "sim");
    // Listen on loopback and any free port instead of 0.0.0.0:8000.
    for a in &mut args {
        if a == "0.0.0.0" {
            *a = "127.0.0.1".into();
        } else if a == "8000" {
            *a = "0".into();
        }
    }
    let (child, url) = start(&args);
    assert_eq!(reqwest::get(format!("{url}/health")).await.unwrap().status(), 200);
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/completions"))
        .json(&serde_json::json!({"model": "meta-llama/Llama-2-7b-hf", "prompt": "hi", "max_tokens": 3, "ignore_eos": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 3);
    stop(child);
}

#[tokio::test]
async fn a_vllm_deployments_arguments_work_unchanged() {
    let args: Vec<String> = [
        "sim",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--tensor-parallel-size",
        "2",
        "--max-num-seqs",
        "2048",
        "--max-model-len",
        "4096",
        "--gpu-memory-utilization",
        "0.9",
        "--enable-prefix-caching",
        "--enable-lora",
        "--max-loras",
        "2",
        "--max-lora-rank",
        "8",
        "--lora-modules",
        "sql=/adapters/sql",
        "chat=/adapters/chat",
        "--zero-latency",
    ]
    .map(String::from)
    .to_vec();
    let (child, url) = start(&args);
    let models: serde_json::Value = reqwest::get(format!("{url}/v1/models")).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["meta-llama/Llama-3.1-8B-Instruct", "sql", "chat"]);
    assert_eq!(models["data"][0]["max_model_len"], 4096);
    stop(child);
}

#[test]
fn an_unknown_profile_is_a_clear_error() {
    let o = Command::new(BIN).args(["sim", "--profile", "my/model@gpu-x", "--port", "0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("has no profile my/model@gpu-x; known: ") && e.contains("meta-llama/Llama-2-7b-hf@nvidia-l4"),
        "{e}"
    );
}
