//! `inferbench run --platform kube` against a real Kubernetes control plane (etcd, kube-apiserver,
//! controller-manager, scheduler: `scripts/local-cluster.sh`, started on first use and shared by
//! these tests) and the node emulator (`inferbench dev node`, started by this test binary and
//! ended with it), as a user runs it: a child process.
//!
//! The node runs vLLM images as a real vLLM (`--real-vllm`) from fixed paths under
//! `.cache/kube-test-real-vllm/` that only the real-vLLM test fills (symbolic links to what
//! `scripts/real-vllm install` installs), so the other tests never need vLLM installed.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, MutexGuard, OnceLock, mpsc},
};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{Api, api::PostParams};

use crate::common::run::{BIN, Run, text};

struct Cluster {
    kubeconfig: PathBuf,
}

/// The tests' own cluster (its own state dir, so a developer's cluster is never touched) and one
/// node emulator for this process.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let state = root.join(".cache/local-cluster-test");
        let up = Command::new("bash")
            .arg(root.join("scripts/local-cluster.sh"))
            .arg("up")
            .env("LOCAL_CLUSTER_DIR", &state)
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/local-cluster.sh runs");
        assert!(up.status.success(), "scripts/local-cluster.sh up failed (see above)");
        let kubeconfig = String::from_utf8_lossy(&up.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("export KUBECONFIG=").map(|p| PathBuf::from(p.trim_matches(['\'', '"']))))
            .expect("`up` prints export KUBECONFIG=…");
        start_node(&kubeconfig, &state.join("node"), &real_vllm_links());
        Cluster { kubeconfig }
    })
}

/// Where the node looks for the real vLLM: (the `vllm` program, the model folder); symbolic
/// links the real-vLLM test makes.
fn real_vllm_links() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kube-test-real-vllm");
    (dir.join("vllm"), dir.join("model"))
}

/// Starts the node emulator from a thread that never ends: the child carries PR_SET_PDEATHSIG,
/// which fires when its *spawning thread* exits, so it goes exactly when this test process does.
fn start_node(kubeconfig: &Path, state: &Path, (vllm, model): &(PathBuf, PathBuf)) {
    let (tx, rx) = mpsc::channel();
    let (kubeconfig, state, vllm, model) = (kubeconfig.to_owned(), state.to_owned(), vllm.clone(), model.clone());
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(BIN);
        cmd.args(["dev", "node", "--name", "inferbench-test-node", "--gpus", "16"])
            .args(["--label", "cloud.google.com/gke-accelerator=nvidia-l4"])
            .arg("--state-dir")
            .arg(&state)
            .arg("--real-vllm")
            .arg(&model)
            .env("INFERBENCH_VLLM", &vllm)
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("the node emulator starts");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                tx.send(Err(format!("the node emulator exited: {:?}", child.wait()))).ok();
                return;
            }
            if line.contains(" ready: kubelet endpoint") {
                tx.send(Ok(())).ok();
                break;
            }
        }
        // Keep draining its stderr (so it never blocks), echoing it for failing tests.
        for l in err.lines().map_while(Result::ok) {
            eprintln!("node: {l}");
        }
        // Its stderr closed: it exited (reaped here; the tests using it will fail and say so).
        let _ = child.wait();
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("the node thread reports").expect("the node emulator is ready");
}

fn client() -> (tokio::runtime::Runtime, kube::Client) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kubeconfig = cluster().kubeconfig.clone();
    let client = rt.block_on(inferbench::platform::kube::client_for(&kubeconfig)).unwrap();
    (rt, client)
}

/// A simulator benchmark small enough for a test.
fn sim_benchmark(name: &str, extra_model_server: &str, load: &str) -> String {
    format!(
        r#"benchmarks {{
  name: "{name}"
  config {{
    model_server {{
      accelerator: "nvidia-l4"
      simulator {{ model: "meta-llama/Llama-2-7b-hf" time_scale: 0.01 seed: 1 }}
      {extra_model_server}
    }}
    load_balancer {{ k8s_service {{}} }}
    benchmark_tool {{ load {{ dataset {{ synthetic {{ input {{ mean: 32 }} output {{ mean: 8 }} }} }} {load} }} }}
  }}
}}
"#
    )
}

/// A TGI model server (the node simulates its image), which references the Hugging Face token.
fn tgi_benchmark(name: &str, extra_model_server: &str, load: &str) -> String {
    sim_benchmark(name, extra_model_server, load).replace(
        "simulator { model: \"meta-llama/Llama-2-7b-hf\" time_scale: 0.01 seed: 1 }",
        "tgi { model: \"meta-llama/Llama-2-7b-hf\" }",
    )
}

/// Held by the tests that depend on whether Secret `hf-token` exists in `default`.
fn hf_token_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates (or replaces) the Secret `name` in `default` with `data`.
fn put_default_secret(name: &str, data: &[(&str, &str)]) {
    use kube::api::{Patch, PatchParams};
    let (rt, client) = client();
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let secret =
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    let _ = rt.block_on(api.delete(name, &Default::default()));
    rt.block_on(api.patch(name, &PatchParams::apply("inferbench-test").force(), &Patch::Apply(&secret))).unwrap();
}

fn delete_default_secret(name: &str) {
    let (rt, client) = client();
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let _ = rt.block_on(api.delete(name, &Default::default()));
}

/// The live processes (pid, environment) of the pod `pod`'s containers: every process whose
/// environment says POD_NAME=pod (children inherit it).
fn processes_of_pod(pod: &str) -> Vec<(u32, BTreeMap<String, String>)> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(raw) = std::fs::read(e.path().join("environ")) else { continue };
        let env: BTreeMap<String, String> = raw
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .is_ok_and(|st| st.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')));
        if env.get("POD_NAME").map(String::as_str) == Some(pod) && !zombie {
            out.push((pid, env));
        }
    }
    out
}

/// Asserts that `needle` is in no file under `dir` (zstd files decompressed).
/// Waits until process `pid` (not ours) has exited, or `within` passes: its pidfd becomes readable
/// when it exits (Linux 5.3+); a process already gone returns at once.
fn wait_for_exit(pid: u32, within: std::time::Duration) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as libc::c_int;
    if fd < 0 {
        return; // gone already
    }
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd; the descriptor is ours and closed after.
    unsafe {
        libc::poll(&mut p, 1, within.as_millis().min(i32::MAX as u128) as libc::c_int);
        libc::close(fd);
    }
}

fn assert_nowhere_under(dir: &Path, needle: &str) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            assert_nowhere_under(&path, needle);
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if path.extension().is_some_and(|x| x == "zst") {
            bytes = zstd::decode_all(&bytes[..]).unwrap();
        }
        let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "the secret value is written in {}", path.display());
    }
}

/// The model server pods of namespace `ns`.
fn model_server_pods(ns: &str) -> Vec<Pod> {
    let (rt, client) = client();
    let pods: Api<Pod> = Api::namespaced(client, ns);
    rt.block_on(pods.list(&kube::api::ListParams::default().labels("app=model-server"))).unwrap().items
}

/// A run of `catalog` on the Kubernetes platform of the test cluster.
fn kube_run(catalog: &str) -> Run {
    Run::new(catalog).with(&["--platform", "kube"], &[("KUBECONFIG", cluster().kubeconfig.clone().into())])
}

/// Namespaces whose name ends with `-{run_id}`.
fn namespaces_of(run_id: &str) -> Vec<String> {
    let (rt, client) = client();
    let api: Api<Namespace> = Api::all(client);
    let list = rt.block_on(api.list(&Default::default())).unwrap();
    list.items.into_iter().filter_map(|n| n.metadata.name).filter(|n| n.ends_with(&format!("-{run_id}"))).collect()
}

fn delete_namespace(name: &str) {
    let (rt, client) = client();
    let api: Api<Namespace> = Api::all(client);
    let _ = rt.block_on(api.delete(name, &Default::default()));
}

#[test]
fn two_benchmarks_run_in_pods_and_leave_nothing_behind() {
    let mut catalog = sim_benchmark("k1", "", "num_prompts: 20 rates { request_rates: [40] }");
    catalog.push_str(&sim_benchmark("k2", "", "num_prompts: 10 rates { request_rates: [20, 40] }"));
    let r = kube_run(&catalog);
    let o = r.run(&["--parallelism", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    for (name, stages) in [("k1", 1), ("k2", 2)] {
        let dir = r.bench_dir(name).join("results");
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
        let st = summary["stages"].as_array().unwrap();
        assert_eq!(st.len(), stages, "{summary}");
        for s in st {
            assert_eq!(s["counts"]["sent"], s["counts"]["succeeded"], "{s}");
        }
        // Downloaded through the API with the pod's checksums, which travel along.
        let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
        assert!(sums.contains("summary.json") && sums.contains("requests.jsonl.zst"), "{sums}");
        let runtime: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("runtime.json")).unwrap()).unwrap();
        assert_eq!(runtime["platform"], "kube");
        assert!(runtime["url"].as_str().unwrap().starts_with("http://127.1."), "the Service's ClusterIP: {runtime}");
        assert_eq!(runtime["model_server_pods"][0]["node"], "inferbench-test-node", "{runtime}");
        let kube: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("kube.json")).unwrap()).unwrap();
        assert_eq!(kube["job"], "complete", "the released load Job completes: {kube}");
        assert_eq!(r.run_json()["benchmarks"][name]["state"], "done");
    }
    assert!(namespaces_of(&r.run_id()).is_empty(), "namespaces left: {:?}", namespaces_of(&r.run_id()));
}

#[test]
fn skip_tear_down_leaves_the_namespace() {
    let r = kube_run(&sim_benchmark("kept", "", "num_prompts: 5 rates { request_rates: [40] }"));
    let o = r.run(&["--skip-tear-down"]);
    assert!(o.status.success(), "{}", text(&o));
    let ns = format!("kept-{}", r.run_id());
    assert_eq!(namespaces_of(&r.run_id()), std::slice::from_ref(&ns));
    // The model server still runs there.
    let (rt, client) = client();
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let list = rt.block_on(pods.list(&kube::api::ListParams::default().labels("app=model-server"))).unwrap();
    assert_eq!(list.items.len(), 1);
    // The emulator's exec (no client auth; loopback) runs only `inferbench results` on a volume.
    let pod = list.items[0].metadata.name.clone().unwrap();
    let ap = kube::api::AttachParams::default().stdout(true).stderr(true);
    for cmd in [
        vec!["sh", "-c", "id"],
        vec!["inferbench", "results", "pack", "/etc"],
        vec!["inferbench", "dev", "fill", "/tmp/x"],
    ] {
        let r = rt.block_on(pods.exec(&pod, cmd.clone(), &ap));
        assert!(r.is_err(), "{cmd:?} was run");
    }
    delete_namespace(&ns);
}

#[test]
fn a_server_that_never_becomes_ready_times_out_with_diagnostics() {
    // A vLLM server (the emulator stands in for its image) asking for more GPUs than the node
    // has: the scheduler never places it.
    let catalog = sim_benchmark("greedy", "", "num_prompts: 5 rates { request_rates: [40] }").replace(
        "simulator { model: \"meta-llama/Llama-2-7b-hf\" time_scale: 0.01 seed: 1 }",
        "vllm { model: \"meta-llama/Llama-2-7b-hf\" tensor_parallelism: \"64\" }",
    );
    assert!(catalog.contains("vllm"), "{catalog}");
    // With no Hugging Face token in `default`: a warning, repeated in the reason (a gated model's
    // server fails without it).
    let _hf = hf_token_lock();
    delete_default_secret("hf-token");
    let r = kube_run(&catalog);
    let o = r.run(&["--ready-timeout", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let reason = r.run_json()["benchmarks"]["greedy"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("did not become ready") && reason.contains("not done after 3 s"), "{reason}");
    assert!(reason.contains("\nnote: no Secret hf-token in namespace default"), "{reason}");
    assert!(reason.contains("Insufficient nvidia.com/gpu"), "the scheduler's reason is shown: {reason}");
    let saved = std::fs::read_to_string(r.bench_dir("greedy").join("diagnostics/deploy.txt")).unwrap();
    assert!(saved.contains("FailedScheduling") && saved.contains("PodScheduled false"), "{saved}");
    assert!(namespaces_of(&r.run_id()).is_empty(), "a failed deploy tears down what it created");
}

#[test]
fn a_crashing_server_is_reported_with_its_last_log_lines() {
    // An argument the simulator does not know: it exits at start, again and again.
    let catalog =
        sim_benchmark("crashy", "extra_args: [\"--no-such-flag\"]", "num_prompts: 5 rates { request_rates: [40] }");
    let r = kube_run(&catalog);
    let o = r.run(&["--ready-timeout", "120"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let reason = r.run_json()["benchmarks"]["crashy"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("crash-looping") && reason.contains("last exit code 2"), "{reason}");
    assert!(reason.contains("last log lines") && reason.contains("--no-such-flag"), "{reason}");
    assert!(namespaces_of(&r.run_id()).is_empty());
}

#[test]
fn an_image_that_cannot_be_pulled_fails_at_once_with_the_kubelet_reason() {
    let r = kube_run(&sim_benchmark("badimage", "", "num_prompts: 5 rates { request_rates: [40] }"));
    // Far longer than the test takes: the failure must come from the pod's state, not the clock.
    let o = r.run(&["--ready-timeout", "600", "--image", "Not A Valid/image"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let reason = r.run_json()["benchmarks"]["badimage"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("cannot start: InvalidImageName") && !reason.contains("not done after"), "{reason}");
    assert!(namespaces_of(&r.run_id()).is_empty());
}

#[test]
fn a_load_engine_that_fails_is_reported_with_its_last_log_lines() {
    let catalog = sim_benchmark(
        "badload",
        "",
        "tokenizer: \"nobody/no-such-tokenizer\" num_prompts: 5 rates { request_rates: [40] }",
    );
    let r = kube_run(&catalog);
    let o = r.run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let reason = r.run_json()["benchmarks"]["badload"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("exited with code 1 before its results were ready"), "{reason}");
    assert!(reason.contains("nobody/no-such-tokenizer"), "its last log lines say why: {reason}");
    assert!(r.bench_dir("badload").join("diagnostics/load.txt").is_file());
    assert!(namespaces_of(&r.run_id()).is_empty());
}

#[test]
fn a_foreign_namespace_with_the_same_name_is_refused() {
    let r = kube_run(&sim_benchmark("foreign", "", "num_prompts: 5 rates { request_rates: [40] }"));
    // Snapshots first, to learn the namespace's name; then someone else's namespace takes it.
    let o = r.run(&["--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let ns = format!("foreign-{}", r.run_id());
    let (rt, client) = client();
    let api: Api<Namespace> = Api::all(client);
    let theirs: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    rt.block_on(api.create(&PostParams::default(), &theirs)).unwrap();
    let o = r.run(&["--run-id", &r.run_id()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let reason = r.run_json()["benchmarks"]["foreign"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("not managed by inferbench") && reason.contains("refusing"), "{reason}");
    let still = rt.block_on(api.get(&ns)).unwrap();
    assert!(still.metadata.deletion_timestamp.is_none(), "their namespace is untouched");
    delete_namespace(&ns);
}

/// Spawns a run and reads its stdout until a line contains `needle`.
fn spawn_until(r: &Run, args: &[&str], needle: &str) -> std::process::Child {
    let mut child = r.cmd(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the run ended before {needle:?}:\n{all}");
        all.push_str(&line);
        if line.contains(needle) {
            break;
        }
    }
    // Keep draining stdout so the run never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    child
}

#[test]
fn ctrl_c_tears_down_what_the_run_created() {
    // Two stages: the first one's line shows while the second (20 s) runs — stages are followed
    // live from the load pod's log — and Ctrl-C comes then.
    let r = kube_run(&sim_benchmark("stopped", "", "num_prompts: 10 rates { request_rates: [40, 0.5] }"));
    let mut child = spawn_until(&r, &[], "[stopped] rate-40");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(namespaces_of(&r.run_id()).is_empty(), "left: {:?}", namespaces_of(&r.run_id()));
    assert!(!r.bench_dir("stopped").join("results").exists());
}

#[test]
fn a_run_killed_mid_way_resumes_from_a_clean_namespace() {
    let r = kube_run(&sim_benchmark("resumed", "", "num_prompts: 20 rates { request_rates: [10] }"));
    let mut child = spawn_until(&r, &[], "[resumed] ready at");
    child.kill().unwrap(); // SIGKILL: no tear-down, the namespace stays
    child.wait().unwrap();
    let id = r.run_id();
    assert_eq!(namespaces_of(&id), [format!("resumed-{id}")]);
    let o = r.run(&["--run-id", &id]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("deleting the namespace left by an earlier attempt of this run"), "{}", text(&o));
    assert_eq!(r.run_json()["benchmarks"]["resumed"]["state"], "done");
    assert!(r.bench_dir("resumed").join("results/summary.json").is_file());
    assert!(namespaces_of(&id).is_empty());
}

/// Minimal CRDs for the kinds the gateway manifests use (schemas open: the check is that the
/// API server accepts the objects as the cluster will serve them).
fn install_gateway_crds() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let (rt, client) = client();
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let kinds = [
        ("gateway.networking.k8s.io", "v1", "GatewayClass", "gatewayclasses", "Cluster"),
        ("gateway.networking.k8s.io", "v1", "Gateway", "gateways", "Namespaced"),
        ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", "Namespaced"),
        ("inference.networking.x-k8s.io", "v1alpha2", "InferencePool", "inferencepools", "Namespaced"),
        ("inference.networking.x-k8s.io", "v1alpha2", "InferenceModel", "inferencemodels", "Namespaced"),
        ("gateway.envoyproxy.io", "v1alpha1", "Backend", "backends", "Namespaced"),
        ("gateway.envoyproxy.io", "v1alpha1", "EnvoyExtensionPolicy", "envoyextensionpolicies", "Namespaced"),
        ("gateway.envoyproxy.io", "v1alpha1", "EnvoyPatchPolicy", "envoypatchpolicies", "Namespaced"),
        ("gateway.envoyproxy.io", "v1alpha1", "BackendTrafficPolicy", "backendtrafficpolicies", "Namespaced"),
    ];
    for (group, version, kind, plural, scope) in kinds {
        let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
            // Groups under k8s.io are protected: their CRDs must say where the API was approved.
            "metadata": {"name": format!("{plural}.{group}"),
                "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/1538"}},
            "spec": {"group": group, "scope": scope,
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                "versions": [{"name": version, "served": true, "storage": true, "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap();
        match rt.block_on(api.create(&PostParams::default(), &crd)) {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("CRD {kind}: {e}"),
        }
        let name = format!("{plural}.{group}");
        let established = kube::runtime::wait::conditions::is_crd_established();
        rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                kube::runtime::wait::await_condition(api.clone(), &name, established),
            )
            .await
        })
        .unwrap()
        .unwrap();
    }
}

#[test]
fn gateway_manifests_are_accepted_by_the_api_server_with_their_crds() {
    install_gateway_crds();
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["run", "--benchmarks", "benchmarks", "--benchmark-name-regex", "llama2-7b-h100-r8-epp"])
        .args(["--platform", "kube", "--server-dry-run", "--output", out.path().to_str().unwrap()])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env_remove("INFERBENCH_RUN_ID")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("[llama2-7b-h100-r8-epp]") && t.contains("objects accepted by the API server (dry run)"), "{t}");
    // Nothing stays: the namespace made for the check is gone.
    let run_id = std::fs::read_dir(out.path()).unwrap().next().unwrap().unwrap().file_name();
    assert!(namespaces_of(run_id.to_str().unwrap()).is_empty());
}

#[test]
fn more_than_100_mb_of_results_arrive_intact_through_the_api() {
    use inferbench::platform::kube::fetch;
    let (rt, client) = client();
    let ns = format!("fetch-{}", std::process::id());
    let nsapi: Api<Namespace> = Api::all(client.clone());
    let labels = serde_json::json!({"app.kubernetes.io/managed-by": "inferbench", "inferbench/run-id": "fetchtest"});
    let n: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns, "labels": labels}})).unwrap();
    rt.block_on(nsapi.create(&PostParams::default(), &n)).unwrap();
    let bytes: u64 = 105 * 1024 * 1024;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "filler", "labels": {"app": "load-engine"}},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": fetch::CONTAINER, "image": "inferbench:test",
            "args": ["dev", "fill", "/results", "--bytes", bytes.to_string()],
            "readinessProbe": {"exec": {"command": ["inferbench", "results", "check", "/results"]}, "periodSeconds": 1},
            "volumeMounts": [{"name": "results", "mountPath": "/results"}]}],
            "volumes": [{"name": "results", "emptyDir": {}}]}
    }))
    .unwrap();
    // A pod is refused until the namespace's service account has its token (Deployments and
    // Jobs retry by themselves; a bare pod does not).
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let has_token = |s: Option<&k8s_openapi::api::core::v1::ServiceAccount>| {
        s.is_some_and(|s| s.secrets.as_ref().is_some_and(|v| !v.is_empty()))
    };
    rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            kube::runtime::wait::await_condition(sa, "default", has_token),
        )
        .await
    })
    .unwrap()
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    rt.block_on(pods.create(&PostParams::default(), &pod)).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let sealed = rt.block_on(inferbench::platform::kube::wait::load_sealed(
        &client,
        &ns,
        std::time::Duration::from_secs(120),
        &stop,
    ));
    assert!(sealed.is_ok(), "the filler pod became ready");
    let staging = tempfile::tempdir().unwrap();
    let dest = staging.path().join("results");
    std::fs::create_dir(&dest).unwrap();
    let t0 = std::time::Instant::now();
    let got = rt.block_on(fetch::fetch(&pods, "filler", "/results", &dest)).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("fetched {} bytes in {secs:.2} s: {:.0} MB/s", got.bytes, got.bytes as f64 / secs / 1e6);
    assert!(got.bytes > bytes, "the tar carries the whole blob: {}", got.bytes);
    assert_eq!(got.files, 1);
    assert_eq!(std::fs::metadata(dest.join("blob")).unwrap().len(), bytes);
    // Verified against the pod's SHA256SUMS while unpacking; released, the pod ends.
    rt.block_on(fetch::release(&pods, "filler", "/results")).unwrap();
    let done = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            kube::runtime::wait::await_condition(pods.clone(), "filler", |p: Option<&Pod>| {
                p.and_then(|p| p.status.as_ref()?.phase.as_deref()) == Some("Succeeded")
            }),
        )
        .await
    });
    assert!(matches!(done, Ok(Ok(_))), "the released pod exits 0");
    let _ = rt.block_on(nsapi.delete(&ns, &Default::default()));
}

/// A kubeconfig for a service account bound to nothing but deploy/rbac.yaml's roles (its
/// ClusterRole, and its Role in `default` for the Hugging Face token).
fn least_privilege_kubeconfig(dir: &Path) -> PathBuf {
    use k8s_openapi::api::{
        core::v1::{Secret, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    };
    use kube::api::{Patch, PatchParams};
    use serde::Deserialize as _;
    let (rt, client) = client();
    let pp = PatchParams::apply("inferbench-test").force();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml")).unwrap();
    let mut kinds = vec![];
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let obj = serde_yaml_ng::Value::deserialize(doc).unwrap();
        let kind = obj["kind"].as_str().unwrap().to_owned();
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        match kind.as_str() {
            "ClusterRole" => {
                let api: Api<ClusterRole> = Api::all(client.clone());
                rt.block_on(api.patch(&name, &pp, &Patch::Apply(&obj))).unwrap();
            }
            "Role" => {
                let ns = obj["metadata"]["namespace"].as_str().unwrap();
                let api: Api<Role> = Api::namespaced(client.clone(), ns);
                rt.block_on(api.patch(&name, &pp, &Patch::Apply(&obj))).unwrap();
            }
            other => panic!("deploy/rbac.yaml: unexpected kind {other}"),
        }
        kinds.push((kind, name));
    }
    assert_eq!(
        kinds,
        [("ClusterRole".to_owned(), "inferbench".to_owned()), ("Role".to_owned(), "inferbench-hf-token".to_owned())]
    );
    let ns = "inferbench-rbac-test";
    let nsapi: Api<Namespace> = Api::all(client.clone());
    rt.block_on(nsapi.patch(
        ns,
        &pp,
        &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
    ))
    .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}});
    rt.block_on(sas.patch("runner", &pp, &Patch::Apply(&sa))).unwrap();
    let binding = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "inferbench-test-runner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "inferbench"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}]});
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    rt.block_on(bindings.patch("inferbench-test-runner", &pp, &Patch::Apply(&binding))).unwrap();
    let binding = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "inferbench-test-runner-hf-token", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "inferbench-hf-token"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}]});
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "default");
    rt.block_on(bindings.patch("inferbench-test-runner-hf-token", &pp, &Patch::Apply(&binding))).unwrap();
    // Kubernetes 1.20 mints a token Secret per service account.
    let has_token = |s: Option<&ServiceAccount>| s.is_some_and(|s| s.secrets.as_ref().is_some_and(|v| !v.is_empty()));
    let sa = rt
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                kube::runtime::wait::await_condition(sas, "runner", has_token),
            )
            .await
        })
        .unwrap()
        .unwrap()
        .unwrap();
    let secret_name = sa.secrets.unwrap()[0].name.clone().unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, ns);
    let secret = rt.block_on(secrets.get(&secret_name)).unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let mut kc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&cluster().kubeconfig).unwrap()).unwrap();
    kc["users"][0]["user"] = serde_yaml_ng::to_value(serde_json::json!({"token": token})).unwrap();
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    path
}

#[test]
fn the_documented_rbac_is_enough_for_a_run() {
    let _hf = hf_token_lock();
    // A model server that references the Hugging Face token (a TGI image, simulated by the node).
    let r = kube_run(&tgi_benchmark("rbac", "", "num_prompts: 10 rates { request_rates: [40] }"));
    let kubeconfig = least_privilege_kubeconfig(r.dir());
    // Without the Secret in `default`: a warning, and the (public-model) run goes on.
    delete_default_secret("hf-token");
    let o = r.cmd(&[]).env("KUBECONFIG", &kubeconfig).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: ")
            && text(&o).contains("no Secret hf-token in namespace default")
            && text(&o).contains("kubectl create secret generic hf-token -n default --from-literal=token=hf_..."),
        "{}",
        text(&o)
    );
    assert_eq!(r.run_json()["benchmarks"]["rbac"]["state"], "done");
    assert!(namespaces_of(&r.run_id()).is_empty());
    // With it: read from `default` and copied into the benchmark's namespace, with these rights only.
    let token = "hf_rbac_test_value_5c9e";
    put_default_secret("hf-token", &[("token", token)]);
    let r2 = kube_run(&tgi_benchmark("rbac2", "", "num_prompts: 10 rates { request_rates: [40] }"));
    let o = r2.cmd(&[]).env("KUBECONFIG", &kubeconfig).output().unwrap();
    delete_default_secret("hf-token");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("no Secret hf-token") && !text(&o).contains(token), "{}", text(&o));
    assert_eq!(r2.run_json()["benchmarks"]["rbac2"]["state"], "done");
    assert!(namespaces_of(&r2.run_id()).is_empty());
    // And it is no more than that: the account cannot read any other Secret, nor list them.
    let (rt, client) = {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let c = rt.block_on(inferbench::platform::kube::client_for(&kubeconfig)).unwrap();
        (rt, c)
    };
    use k8s_openapi::api::core::v1::Secret;
    let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(e)) if e.code == 403);
    let system: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    assert!(forbidden(rt.block_on(system.list(&Default::default())).map(|_| ())), "kube-system's secrets");
    let default: Api<Secret> = Api::namespaced(client.clone(), "default");
    assert!(forbidden(rt.block_on(default.list(&Default::default())).map(|_| ())), "listing default's secrets");
    assert!(forbidden(rt.block_on(default.get("default-token")).map(|_| ())), "another secret of default");
    let hf = rt.block_on(default.get_opt("hf-token"));
    assert!(matches!(hf, Ok(None)), "hf-token itself is readable (gone now: 404, not 403): {hf:?}");
}

#[test]
fn the_hf_token_in_default_reaches_the_model_server_and_nothing_else() {
    let _hf = hf_token_lock();
    let token = "hf_kube_test_value_0d41f7";
    // A second key, which nothing references: not copied.
    put_default_secret("hf-token", &[("token", token), ("unused", "hf_unused_value_93b2")]);
    let r = kube_run(&tgi_benchmark("hftoken", "", "num_prompts: 5 rates { request_rates: [40] }"));
    let o = r.run(&["--skip-tear-down"]);
    delete_default_secret("hf-token");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(token) && !text(&o).contains("no Secret hf-token"), "{}", text(&o));
    let ns = format!("hftoken-{}", r.run_id());
    // The rendered reference is the implicit default: optional.
    let manifest = std::fs::read_to_string(r.bench_dir("hftoken").join("manifests/10-model-server.yaml")).unwrap();
    assert!(manifest.contains("name: \"hf-token\"") && manifest.contains("optional: true"), "{manifest}");
    // The copy: in the benchmark's namespace, the referenced key only, labelled as the run's.
    let (rt, client) = client();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, &ns);
    let copy = rt.block_on(secrets.get("hf-token")).unwrap();
    let data = copy.data.clone().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["token"]);
    assert_eq!(data["token"].0, token.as_bytes());
    let labels = copy.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "inferbench");
    assert_eq!(labels["inferbench/run-id"], r.run_id());
    assert_eq!(copy.metadata.annotations.unwrap()["inferbench.dev/copied-from"], "default/hf-token");
    // The model server's process has it, as HF_TOKEN and HUGGING_FACE_HUB_TOKEN (the node resolves
    // the secretKeyRef in the pod's own namespace, as a kubelet does).
    let pods = model_server_pods(&ns);
    assert_eq!(pods.len(), 1);
    let procs = processes_of_pod(pods[0].metadata.name.as_deref().unwrap());
    assert!(!procs.is_empty(), "the model server's process runs");
    for (pid, env) in &procs {
        assert_eq!(env.get("HF_TOKEN").map(String::as_str), Some(token), "process {pid}");
        assert_eq!(env.get("HUGGING_FACE_HUB_TOKEN").map(String::as_str), Some(token), "process {pid}");
    }
    // And nowhere in what the run wrote.
    assert_nowhere_under(&r.out(), token);
    delete_namespace(&ns);
}

#[test]
fn a_named_hf_token_secret_that_is_missing_fails_before_anything_is_created() {
    // Named in the catalog, the token is required: no Secret, or no such key, fails at once.
    let name = format!("hf-token-missing-{}", std::process::id());
    let r = kube_run(&tgi_benchmark(
        "nosecret",
        &format!("hf_token_secret {{ name: \"{name}\" }}"),
        "num_prompts: 5 rates { request_rates: [40] }",
    ));
    let t0 = std::time::Instant::now();
    let o = r.run(&["--ready-timeout", "600"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(t0.elapsed().as_secs() < 60, "it fails at once, not at the timeout");
    let reason = r.run_json()["benchmarks"]["nosecret"]["reason"].as_str().unwrap().to_owned();
    for part in [
        format!("needs Secret {name} (key token) in namespace default"),
        "there is no such Secret".to_owned(),
        format!("kubectl create secret generic {name} -n default --from-literal=token=hf_..."),
    ] {
        assert!(reason.contains(&part), "{part:?} in: {reason}");
    }
    assert!(namespaces_of(&r.run_id()).is_empty(), "nothing was created");
    assert!(!r.bench_dir("nosecret").join("diagnostics").exists());
    let manifest = std::fs::read_to_string(r.bench_dir("nosecret").join("manifests/10-model-server.yaml")).unwrap();
    assert!(manifest.contains("optional: false"), "{manifest}");

    // The Secret is there, but not its key.
    put_default_secret(&name, &[("other", "hf_not_the_key_1f0a")]);
    let r = kube_run(&tgi_benchmark(
        "nokey",
        &format!("hf_token_secret {{ name: \"{name}\" key: \"token\" }}"),
        "num_prompts: 5 rates { request_rates: [40] }",
    ));
    let o = r.run(&[]);
    delete_default_secret(&name);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let reason = r.run_json()["benchmarks"]["nokey"]["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains(&format!("needs key token of Secret {name} in namespace default"))
            && reason.contains("its keys: other")
            && !reason.contains("hf_not_the_key_1f0a"),
        "{reason}"
    );
    assert!(namespaces_of(&r.run_id()).is_empty());
}

/// A run that is interrupted (Ctrl-C: it tears down) if the test ends before it does.
struct Interrupted(std::process::Child);

impl Drop for Interrupted {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
            let _ = self.0.wait();
        }
    }
}

/// `scripts/real-vllm install` (a CPU vLLM and a tiny model; minutes the first time), linked
/// where the test node looks; returns the model folder.
fn install_real_vllm() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new("bash").arg(root.join("scripts/real-vllm")).arg("install").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let tail: Vec<&str> = err.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(
        o.status.success(),
        "the real vLLM could not be installed (`scripts/real-vllm install` exited with {}); this test needs it and does not skip:\n{}",
        o.status,
        tail.join("\n")
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "`scripts/real-vllm install` prints the vllm program and the model folder: {out}");
    let (vllm, model) = (PathBuf::from(lines[0]), PathBuf::from(lines[1]));
    let (vllm_link, model_link) = real_vllm_links();
    std::fs::create_dir_all(vllm_link.parent().unwrap()).unwrap();
    for (target, link) in [(&vllm, &vllm_link), (&model, &model_link)] {
        let tmp = link.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, link).unwrap();
    }
    model
}

#[test]
fn a_real_vllm_serves_a_benchmark_through_the_whole_lifecycle() {
    let model = install_real_vllm();
    // Its own Secret name (so the hf-token tests run beside it): named, so required.
    let secret = format!("hf-token-real-vllm-{}", std::process::id());
    let token = "hf_real_vllm_test_value_7a3c";
    put_default_secret(&secret, &[("token", token)]);
    // The catalog's model is a hub name; the node serves the tiny local model under that name, and
    // the load engine counts tokens with that model's own tokenizer (exact prompt counts).
    let catalog = format!(
        r#"benchmarks {{
  name: "realvllm"
  config {{
    model_server {{
      accelerator: "nvidia-l4"
      vllm {{ model: "meta-llama/Llama-2-7b-hf" }}
      hf_token_secret {{ name: "{secret}" }}
    }}
    load_balancer {{ k8s_service {{}} }}
    benchmark_tool {{ load {{
      dataset {{ synthetic {{ input {{ mean: 24 }} output {{ mean: 8 }} }} }}
      tokenizer: "{}"
      rates {{ request_rates: [3] }}
      duration_seconds: 10
      server_metrics {{ interval_seconds: 2 }}
    }} }}
  }}
}}
"#,
        model.display()
    );
    let r = kube_run(&catalog);
    // vLLM answers /health after 70-110 s here; the rendered startup probe allows 1800 s.
    let mut child = Interrupted(spawn_until(&r, &["--ready-timeout", "900"], "[realvllm] ready at"));
    let ns = format!("realvllm-{}", r.run_id());
    let pods = model_server_pods(&ns);
    assert_eq!(pods.len(), 1);
    let pod = pods[0].metadata.name.clone().unwrap();
    let procs = processes_of_pod(&pod);
    // The server, and vLLM's engine process (and whatever else it starts): one process group.
    assert!(
        procs.len() >= 2,
        "vLLM runs as a server and an engine process: {:?}",
        procs.iter().map(|p| p.0).collect::<Vec<_>>()
    );
    // The server is the process the others descend from (not the lowest pid: pids wrap at 32 768
    // here, and a child can have a lower one).
    let pids: Vec<u32> = procs.iter().map(|(pid, _)| *pid).collect();
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
    };
    let roots: Vec<u32> = pids.iter().copied().filter(|pid| parent(*pid).is_none_or(|p| !pids.contains(&p))).collect();
    assert_eq!(roots.len(), 1, "one process the pod's others descend from: {roots:?} of {pids:?}");
    let server = roots[0];
    let cmdline = std::fs::read(format!("/proc/{server}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let served = format!("serve {} ", real_vllm_links().1.display());
    assert!(
        cmdline.contains(&served) && cmdline.contains("--served-model-name meta-llama/Llama-2-7b-hf"),
        "a real vllm serve of the local folder, under the catalog's model name: {cmdline}"
    );
    for (pid, env) in &procs {
        assert_eq!(env.get("HF_TOKEN").map(String::as_str), Some(token), "process {pid}");
    }
    let status = child.0.wait().unwrap();
    delete_default_secret(&secret);
    assert!(status.success(), "the run failed: {}", r.run_json());
    assert_eq!(r.run_json()["benchmarks"]["realvllm"]["state"], "done");
    // Torn down: the namespace, and every process of the pod with it.
    assert!(namespaces_of(&r.run_id()).is_empty(), "left: {:?}", namespaces_of(&r.run_id()));
    // Kubernetes 1.20 force-deletes the server's pod with the namespace (kubernetes#100101: the
    // finished load pod's grace of 0 leaks into the next pod's deletion), so the namespace can be
    // gone a moment before the node has stopped the pod: SIGTERM, a 2-second grace, then SIGKILL to
    // the whole process group, as a kubelet does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for (pid, _) in processes_of_pod(&pod) {
        wait_for_exit(pid, deadline.saturating_duration_since(std::time::Instant::now()));
    }
    let left: Vec<String> = processes_of_pod(&pod)
        .iter()
        .map(|(pid, _)| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!("{pid}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    assert!(left.is_empty(), "processes of the deleted pod still run 20 s after: {left:#?}");
    // The results are the real server's.
    let dir = r.bench_dir("realvllm").join("results");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let stages = summary["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 1, "{summary}");
    let counts = &stages[0]["counts"];
    let succeeded = counts["succeeded"].as_u64().unwrap_or(0);
    assert!(succeeded >= 15, "about 30 requests in 10 s at 3/s: {counts}");
    assert_eq!(counts["sent"], counts["succeeded"], "{counts}");
    assert_eq!(counts["token_count_source"]["usage"].as_u64(), Some(succeeded), "usage counts from vLLM: {counts}");
    assert!(counts["prompt_token_mismatches"].as_u64().unwrap_or(0) == 0, "the tokenizer is the server's: {counts}");
    let metrics = std::fs::read_to_string(dir.join("server_metrics.json")).unwrap();
    assert!(metrics.contains("vllm:"), "vLLM's own metric families were scraped");
    let runtime: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("runtime.json")).unwrap()).unwrap();
    assert_eq!(runtime["model_server_pods"][0]["pod"], pod.as_str(), "{runtime}");
    assert_nowhere_under(&r.out(), token);
}

/// Deletes pod `.0` of `default` when dropped, whether the test passed or not (with a client of
/// its own: one made on another runtime is not driven here).
struct DeletedAtEnd(String);

impl Drop for DeletedAtEnd {
    fn drop(&mut self) {
        let (rt, client) = client();
        let _ = rt.block_on(Api::<Pod>::namespaced(client, "default").delete(&self.0, &Default::default()));
    }
}

#[test]
fn a_dcgm_exporter_on_the_servers_node_is_found_and_summarised_and_the_report_draws_one_timeline() {
    // A DCGM exporter on the node: our simulator, which serves the DCGM families on /metrics,
    // labelled as NVIDIA's GPU operator labels its exporter, on a port named "metrics".
    let (rt, client) = client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let name = format!("dcgm-exporter-{}", std::process::id());
    let exporter: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "nvidia-dcgm-exporter"}},
        // No API token in it (the token controller may not have made one yet on a fresh cluster).
        "spec": {"automountServiceAccountToken": false, "containers": [{
            "name": "exporter", "image": inferbench::render::context::default_image(),
            "args": ["sim", "--port", "9400", "--profile", "meta-llama/Llama-2-7b-hf@nvidia-l4"],
            "ports": [{"name": "metrics", "containerPort": 9400}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": 9400}, "periodSeconds": 1}
        }]}
    }))
    .unwrap();
    // The controller-manager creates `default`'s service account some time after the cluster
    // starts: a pod admitted before then is refused, so it is made here if still missing.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), "default");
    let account = serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}})).unwrap();
    let _ = rt.block_on(accounts.create(&PostParams::default(), &account));
    // Only this test makes such pods: any left by an earlier, failed run goes first.
    let lp = kube::api::ListParams::default().labels("app=nvidia-dcgm-exporter");
    let _ = rt.block_on(pods.delete_collection(&Default::default(), &lp));
    rt.block_on(pods.create(&PostParams::default(), &exporter)).unwrap();
    let _gone = DeletedAtEnd(name.clone());
    // Ready (its address known) before the run looks for it: watched, not polled.
    let ready = |p: Option<&Pod>| {
        let status = p.and_then(|p| p.status.as_ref());
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        ready && status.is_some_and(|s| s.pod_ip.is_some())
    };
    let waited = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            kube::runtime::wait::await_condition(pods.clone(), &name, ready),
        )
        .await
    });
    let pod = waited.expect("the exporter pod became ready within 60 s").unwrap().expect("the pod exists");
    let ip = pod.status.and_then(|s| s.pod_ip).unwrap();
    let r = kube_run(&sim_benchmark(
        "kdcgm",
        "",
        "duration_seconds: 3 rates { request_rates: [20, 40] } server_metrics { interval_seconds: 0.5 }",
    ));
    let o = r.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = r.bench_dir("kdcgm").join("results");
    let url = format!("http://{ip}:9400/metrics");
    let runtime: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("runtime.json")).unwrap()).unwrap();
    assert_eq!(runtime["accelerator_urls"], serde_json::json!([url]), "found on the server's node: {runtime}");
    let scraped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("server_metrics.json")).unwrap()).unwrap();
    assert_eq!(scraped["accelerator_urls"], serde_json::json!([url]), "scraped by the load pod");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    for st in summary["stages"].as_array().unwrap() {
        let m = &st["server_metrics"];
        assert_eq!(m["DCGM_FI_DEV_GPU_UTIL"]["kind"], "gauge", "{m}");
        assert!(m["DCGM_FI_DEV_FB_USED"]["mean"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m.as_object().unwrap().keys().any(|k| k.starts_with("DCGM_FI_DEV_POWER_USAGE{Hostname=")), "{m}");
        assert!(st["verdict"]["checks"].as_array().is_some_and(|c| !c.is_empty()), "a verdict from the pod: {st}");
    }
    let rep = Command::new(BIN).args(["report", r.out().join(r.run_id()).to_str().unwrap()]).output().unwrap();
    assert!(rep.status.success(), "{}", text(&rep));
    let timeline = r.out().join(r.run_id()).join("report/plots/timeline-kdcgm.svg");
    let svg = std::fs::read_to_string(&timeline).unwrap_or_else(|e| panic!("{}: {e}", timeline.display()));
    assert!(svg.contains("DCGM_FI_DEV_GPU_UTIL") && svg.contains("client: requests in flight"), "one timeline");
}

#[test]
fn three_load_worker_pods_send_what_one_process_sends_and_merge_into_one_result() {
    let catalog = sim_benchmark("kw", "", "workers: 3 duration_seconds: 2 rates { request_rates: [30, 60] }");
    let r = kube_run(&catalog);
    let o = r.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = r.bench_dir("kw").join("results");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    for st in summary["stages"].as_array().unwrap() {
        let workers = st["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 3, "{st}");
        let sent: u64 = workers.iter().map(|w| w["sent"].as_u64().unwrap()).sum();
        assert_eq!(st["counts"]["sent"].as_u64().unwrap(), sent, "{st}");
        assert!(st.get("partial").is_none(), "{st}");
        assert!(workers.iter().all(|w| w["start_offset_ms"].as_f64().is_some_and(|s| s >= 0.0)), "{st}");
    }
    for k in 0..3 {
        assert!(dir.join(format!("workers/{k}/SHA256SUMS")).is_file(), "worker {k}'s own results were fetched");
    }
    let kube: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("kube.json")).unwrap()).unwrap();
    assert_eq!(
        (kube["workers"].as_u64(), kube["failed_workers"].as_array().map(Vec::len)),
        (Some(3), Some(0)),
        "{kube}"
    );
    // The same requests as one process on the local platform.
    let local = Run::new(&catalog);
    let o = local.run(&["--workers", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let one = crate::common::results::sent(&local.bench_dir("kw").join("results"));
    assert!(one.len() > 50, "{}", one.len());
    assert_eq!(crate::common::results::sent(&dir), one, "3 pods sent, request for request, what one process sent");
    assert!(namespaces_of(&r.run_id()).is_empty());
}

#[test]
fn a_load_worker_pod_deleted_mid_run_leaves_a_partial_stage_that_says_so() {
    let catalog = sim_benchmark("kwd", "", "workers: 3 duration_seconds: 3 rates { request_rates: [20, 30] }");
    let r = kube_run(&catalog);
    let run_id = "0decade1";
    let child = spawn_until(&r, &["--run-id", run_id], "[kwd] ready at");
    let ns = format!("kwd-{run_id}");
    let (rt, client) = client();
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    // Worker 1's pod, once it has reported its first stage (its log says so): then deleted at once.
    let pod = rt.block_on(async {
        use futures_util::{AsyncBufReadExt as _, StreamExt as _};
        let labels = "app=load-engine,inferbench.dev/load-worker=1";
        let cond = |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref()?.container_statuses.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())))
        };
        let mut events = std::pin::pin!(kube::runtime::watcher(
            pods.clone(),
            kube::runtime::watcher::Config::default().labels(labels)
        ));
        let name = loop {
            if let Some(Ok(kube::runtime::watcher::Event::Apply(p))) = events.next().await
                && cond(Some(&p))
            {
                break p.metadata.name.unwrap();
            }
        };
        let lp = kube::api::LogParams { follow: true, ..Default::default() };
        let mut lines = pods.log_stream(&name, &lp).await.unwrap().lines();
        loop {
            let line = lines.next().await.expect("worker 1's log ended before its first stage").unwrap();
            if inferbench::schema::handoff::parse_stage_log_line(&line).is_some_and(|s| s.name == "rate-20") {
                break;
            }
        }
        pods.delete(&name, &kube::api::DeleteParams::default().grace_period(0)).await.unwrap();
        name
    });
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "the benchmark failed");
    let rec = &r.run_json()["benchmarks"]["kwd"];
    assert_eq!(rec["state"], "failed", "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "a load worker did not finish: partial: 1 of 3 workers did not report this stage (worker 1 (its pod"
        ),
        "{reason}"
    );
    assert!(reason.contains(&pod), "names the pod: {reason}");
    // What the others measured is kept, and says what it lacks: the deleted pod's results went
    // with it (its emptyDir), so every stage lacks worker 1.
    let kept = r.bench_dir("kwd").join("failed-results");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kept.join("summary.json")).unwrap()).unwrap();
    for st in summary["stages"].as_array().unwrap() {
        let partial = &st["partial"];
        assert_eq!(partial["missing_workers"], serde_json::json!([1]), "{st}");
        assert!(partial["unsent_arrivals"].as_u64().unwrap() >= 10, "worker 1's third of ~60–90 arrivals: {partial}");
        assert_eq!(st["workers"][1]["missing"], true);
        assert!(st["workers"][0]["sent"].as_u64().unwrap() > 0 && st["workers"][2]["sent"].as_u64().unwrap() > 0);
        assert!(st.get("server_agreement").is_none(), "a partial stage is not held to the server's counts: {st}");
    }
    assert!(namespaces_of(run_id).is_empty());
}
