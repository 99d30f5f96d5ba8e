//! What templates see: plain values computed here from a planned benchmark, so the server-kind
//! logic (arguments, probes, defaults) is Rust that is tested, and templates only lay out YAML.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    plan::Planned,
    schema::{
        self, envoy, gateway, load_balancer,
        manifest::{BENCHMARK_LABEL, MANAGED_BY, RUN_ID_LABEL},
        model_server,
    },
};

/// Settings of the render that do not come from the catalog.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Image holding the inferbench binary (load engine and simulator pods).
    pub image: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { image: default_image() }
    }
}

/// `inferbench:{version}`.
pub fn default_image() -> String {
    format!("inferbench:{}", env!("CARGO_PKG_VERSION"))
}

/// The whole template context.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    /// Benchmark name.
    pub name: String,
    /// Namespace (`{name}-{run_id}`).
    pub namespace: String,
    /// Run id.
    pub run_id: String,
    /// Labels for every object.
    pub labels: BTreeMap<String, String>,
    /// The model server; `None` for an external one (nothing deployed).
    pub model_server: Option<ModelServerCtx>,
    /// A plain Service in front of the model server, when that is the load balancer.
    pub service: Option<ServiceCtx>,
    /// The inference gateway, when that is the load balancer.
    pub gateway: Option<GatewayCtx>,
    /// The load engine Job.
    pub load: LoadCtx,
    /// The resolved benchmark as JSON (proto field names), for custom templates.
    pub benchmark: serde_json::Value,
}

/// The model server Deployment.
#[derive(Debug, Clone, Serialize)]
pub struct ModelServerCtx {
    /// Kind name (`vllm`, `simulator`, ...).
    pub kind: String,
    /// Model id.
    pub model: String,
    /// Container image.
    pub image: String,
    /// Container command (empty: the image's entrypoint).
    pub command: Vec<String>,
    /// Container arguments.
    pub args: Vec<String>,
    /// Plain environment variables.
    pub env: Vec<EnvCtx>,
    /// Secret holding the Hugging Face token, exposed as HF_TOKEN and HUGGING_FACE_HUB_TOKEN.
    pub hf_secret: Option<SecretCtx>,
    /// Pods.
    pub replicas: u32,
    /// Container port.
    pub port: u16,
    /// HTTP readiness path; `None`: a TCP probe.
    pub health_path: Option<String>,
    /// Startup probe failures allowed at 10 s each (startup timeout / 10).
    pub startup_failure_threshold: u32,
    /// Node selector (key, value), if any.
    pub node_selector: Option<(String, String)>,
    /// Extended resource name and count, if any.
    pub accelerator: Option<(String, u32)>,
    /// CPU request/limit.
    pub cpu: Option<String>,
    /// Memory request/limit.
    pub memory: Option<String>,
    /// Size of /dev/shm.
    pub shm_size: Option<String>,
}

/// One environment variable.
#[derive(Debug, Clone, Serialize)]
pub struct EnvCtx {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A Secret key reference.
#[derive(Debug, Clone, Serialize)]
pub struct SecretCtx {
    /// Secret name.
    pub name: String,
    /// Key.
    pub key: String,
}

/// The plain Service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCtx {
    /// Service name.
    pub name: String,
    /// Service port.
    pub port: u16,
    /// ClusterIP, NodePort or LoadBalancer.
    pub service_type: String,
}

/// The inference gateway.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayCtx {
    /// "envoy" or "gke".
    pub provider: String,
    /// GatewayClass name.
    pub class_name: String,
    /// True when the GatewayClass is ours to create (envoy without a given class).
    pub create_class: bool,
    /// Listener port.
    pub port: u16,
    /// Endpoint picker, when routing through an InferencePool.
    pub epp: Option<EppCtx>,
    /// Envoy load-balancing policy, when routing to the Service instead.
    pub lb_policy: Option<String>,
    /// Full-duplex streaming between proxy and picker.
    pub full_duplex_streaming: bool,
    /// InferenceModels: (object name, served model name).
    pub models: Vec<(String, String)>,
}

/// The endpoint picker.
#[derive(Debug, Clone, Serialize)]
pub struct EppCtx {
    /// Image.
    pub image: String,
    /// Metrics refresh interval.
    pub refresh_metrics_interval: String,
}

/// The load engine Job.
#[derive(Debug, Clone, Serialize)]
pub struct LoadCtx {
    /// Image with the inferbench binary.
    pub image: String,
    /// The LoadSpec in text format (the ConfigMap's `load.pbtxt`).
    pub spec_text: String,
    /// How the platform finds the target: "service", "gateway" or "external".
    pub target_kind: String,
    /// Service or Gateway name, or the external URL.
    pub target_name: String,
    /// Port on the target.
    pub target_port: u16,
    /// Upper bound on the Job's run time (load time + margin), seconds.
    pub active_deadline_seconds: u64,
    /// Load workers (`LoadSpec.workers`): one Job each.
    pub workers: u32,
}

/// Default images per server kind. Unpinned tags are the user's to pin: the snapshot records
/// exactly which reference was used.
fn default_server_image(kind: &str, inferbench_image: &str) -> String {
    match kind {
        "vllm" => "vllm/vllm-openai:latest".into(),
        "sglang" => "lmsysorg/sglang:latest".into(),
        "tgi" => "ghcr.io/huggingface/text-generation-inference:latest".into(),
        _ => inferbench_image.into(),
    }
}

/// The default endpoint picker image.
pub const DEFAULT_EPP_IMAGE: &str = "registry.k8s.io/gateway-api-inference-extension/epp:v0.3.0";

/// A DNS-1123 label from any text (model ids contain '/', '.', upper case): lower-cased,
/// other characters to '-', at most 63 characters.
pub fn dns_label(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-');
    let out = if out.len() > 63 { out[..63].trim_end_matches('-') } else { out };
    if out.is_empty() { "model".into() } else { out.to_owned() }
}

fn u16_or(v: Option<i32>, default: u16) -> u16 {
    v.and_then(|p| u16::try_from(p).ok()).unwrap_or(default)
}

/// Builds the context of one planned benchmark.
pub fn build(p: &Planned, run_id: &str, opts: &RenderOptions) -> Context {
    let cfg = p.resolved.benchmark.config.clone().unwrap_or_default();
    let ms = cfg.model_server.clone().unwrap_or_default();
    let labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), "inferbench".to_owned()),
        (RUN_ID_LABEL.to_owned(), run_id.to_owned()),
        (BENCHMARK_LABEL.to_owned(), p.name.clone()),
    ]);
    let model_server = model_server_ctx(&ms, opts);
    let server_port = model_server.as_ref().map_or(8000, |m| m.port);
    let lb = cfg.load_balancer.as_ref().and_then(|l| l.r#type.clone());
    let (mut service, mut gateway) = (None, None);
    let external = match &ms.r#type {
        Some(model_server::Type::External(e)) => e.url.clone(),
        _ => None,
    };
    match lb {
        _ if external.is_some() => {}
        Some(load_balancer::Type::Gateway(g)) => gateway = Some(gateway_ctx(&g, &p.namespace, &p.load.models)),
        Some(load_balancer::Type::K8sService(s)) => {
            service = Some(ServiceCtx {
                name: "model-server-service".into(),
                port: u16_or(s.port, 8081),
                service_type: s.service_type.clone().unwrap_or_else(|| "ClusterIP".into()),
            });
        }
        None => {
            service =
                Some(ServiceCtx { name: "model-server-service".into(), port: 8081, service_type: "ClusterIP".into() });
        }
    }
    // The gateway with a plain Envoy policy routes to the Service, so it needs one too.
    if gateway.as_ref().is_some_and(|g| g.lb_policy.is_some()) {
        service = Some(ServiceCtx {
            name: "model-server-service".into(),
            port: server_port,
            service_type: "ClusterIP".into(),
        });
    }
    let (target_kind, target_name, target_port) = match (&external, &gateway, &service) {
        (Some(url), _, _) => ("external", url.clone(), 0),
        (None, Some(g), _) => ("gateway", "inference-gateway".to_owned(), g.port),
        (None, None, Some(s)) => ("service", s.name.clone(), s.port),
        (None, None, None) => ("service", "model-server-service".to_owned(), 8081),
    };
    let tool_image = match cfg.benchmark_tool.as_ref() {
        Some(t) if matches!(t.r#type, Some(schema::benchmark_tool::Type::Load(_))) => t.image.clone(),
        _ => None, // an LPG image cannot run the embedded engine
    };
    let load = LoadCtx {
        image: tool_image.unwrap_or_else(|| opts.image.clone()),
        spec_text: crate::schema::text::to_text(&prost_reflect::ReflectMessage::transcode_to_dynamic(&p.load)),
        target_kind: target_kind.into(),
        target_name,
        target_port,
        active_deadline_seconds: deadline(&p.load),
        workers: p.load.workers.unwrap_or(1).max(1),
    };
    let benchmark = {
        let opts = prost_reflect::SerializeOptions::new().use_proto_field_name(true);
        p.resolved.message.serialize_with_options(serde_json::value::Serializer, &opts).unwrap_or_default()
    };
    Context {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        run_id: run_id.into(),
        labels,
        model_server,
        service,
        gateway,
        load,
        benchmark,
    }
}

/// Generous upper bound of the load's wall time: stages × (duration + warm-up) + 50 % + 10 min.
fn deadline(l: &schema::LoadSpec) -> u64 {
    use schema::load_spec::Pattern;
    let per = l.duration_seconds() + l.warmup_seconds();
    let total = match &l.pattern {
        Some(Pattern::Rates(r)) => per * r.request_rates.len() as f64,
        Some(Pattern::Stages(s)) => s.stages.iter().map(schema::Stage::duration_seconds).sum(),
        Some(Pattern::Concurrency(c)) => per * c.users.len() as f64,
        Some(Pattern::Sweep(s)) => s.probe_seconds() + per * f64::from(s.num_rates()),
        None => per,
    };
    // Load time with slack, ten minutes to start (image pull, dataset), and half an hour for the
    // sealed results to be fetched from the holding pod (the kube platform's download).
    (total * 1.5) as u64 + 600 + 1800
}

fn model_server_ctx(ms: &schema::ModelServer, opts: &RenderOptions) -> Option<ModelServerCtx> {
    use model_server::Type;
    let kind = ms.kind_name()?;
    if kind == "external" {
        return None;
    }
    let model = ms.model().unwrap_or_default().to_owned();
    let port = u16_or(ms.port, 8000);
    let tp = ms.tensor_parallelism();
    let (mut command, mut args, mut env, mut health): (Vec<String>, Vec<String>, Vec<EnvCtx>, Option<&str>) =
        (vec![], vec![], vec![], Some("/health"));
    let s = |v: &str| v.to_owned();
    let mut uses_hf = true;
    match ms.r#type.as_ref()? {
        Type::Vllm(v) => {
            command = vec![s("python3"), s("-m"), s("vllm.entrypoints.openai.api_server")];
            args = vec![s("--host"), s("0.0.0.0"), s("--port"), port.to_string(), s("--model"), model.clone()];
            args.extend([s("--tensor-parallel-size"), tp.to_string()]);
            args.extend([s("--max-num-seqs"), v.max_num_seqs.unwrap_or(2048).to_string()]);
            args.extend([s("--max-model-len"), v.max_model_len.unwrap_or(4096).to_string()]);
            if let Some(u) = v.gpu_memory_utilization {
                args.extend([s("--gpu-memory-utilization"), u.to_string()]);
            }
            match v.enable_prefix_caching {
                Some(true) => args.push(s("--enable-prefix-caching")),
                Some(false) => args.push(s("--no-enable-prefix-caching")),
                None => {}
            }
            if v.max_loras.is_some() || !v.lora_adapters.is_empty() {
                args.push(s("--enable-lora"));
                if let Some(n) = &v.max_loras {
                    args.extend([s("--max-loras"), n.trim().to_owned()]);
                }
                if let Some(r) = &v.lora_rank {
                    args.extend([s("--max-lora-rank"), r.trim().to_owned()]);
                }
                if !v.lora_adapters.is_empty() {
                    args.push(s("--lora-modules"));
                    args.extend(v.lora_adapters.iter().map(|a| format!("{}={}", a.name(), a.path())));
                }
                env.push(EnvCtx { name: s("VLLM_ALLOW_RUNTIME_LORA_UPDATING"), value: s("true") });
            }
            if let Some(v1) = &v.v1 {
                env.push(EnvCtx { name: s("VLLM_USE_V1"), value: v1.clone() });
            }
        }
        Type::Sglang(v) => {
            command = vec![s("python3"), s("-m"), s("sglang.launch_server")];
            args = vec![s("--host"), s("0.0.0.0"), s("--port"), port.to_string(), s("--model-path"), model.clone()];
            args.extend([s("--tp-size"), tp.to_string()]);
            if let Some(n) = v.max_model_len {
                args.extend([s("--context-length"), n.to_string()]);
            }
        }
        Type::Tgi(v) => {
            args = vec![s("--hostname"), s("0.0.0.0"), s("--port"), port.to_string(), s("--model-id"), model.clone()];
            args.extend([s("--num-shard"), tp.to_string()]);
            if let Some(n) = v.max_total_tokens {
                args.extend([s("--max-total-tokens"), n.to_string()]);
            }
            if let Some(n) = v.max_batch_prefill_tokens {
                args.extend([s("--max-batch-prefill-tokens"), n.to_string()]);
            }
        }
        Type::Triton(v) => {
            command = vec![s("tritonserver")];
            let repo = v.model_repository.clone().unwrap_or_else(|| s("/models"));
            args = vec![format!("--model-repository={repo}"), format!("--http-port={port}")];
            health = Some("/v2/health/ready");
            uses_hf = false;
        }
        Type::Jetstream(_) => {
            health = None;
            uses_hf = false;
        }
        Type::Simulator(v) => {
            let profile = v
                .profile
                .clone()
                .unwrap_or_else(|| format!("{model}@{}", ms.accelerator.as_deref().unwrap_or_default()));
            args =
                vec![s("sim"), s("--host"), s("0.0.0.0"), s("--port"), port.to_string(), s("--model"), model.clone()];
            args.extend([s("--profile"), profile, s("--tensor-parallelism"), tp.to_string()]);
            if let Some(n) = v.max_num_seqs {
                args.extend([s("--max-num-seqs"), n.to_string()]);
            }
            if let Some(t) = v.time_scale {
                args.extend([s("--time-scale"), t.to_string()]);
            }
            if let Some(seed) = v.seed {
                args.extend([s("--seed"), seed.to_string()]);
            }
            uses_hf = false;
        }
        Type::External(_) => return None,
    }
    args.extend(ms.extra_args.iter().cloned());
    env.extend(ms.env.iter().map(|e| EnvCtx { name: e.name().to_owned(), value: e.value().to_owned() }));
    let accelerator = ms.accelerator.clone().unwrap_or_default();
    let simulated = kind == "simulator";
    let resource = ms.accelerator_resource.clone().unwrap_or_else(|| {
        if accelerator.starts_with("nvidia-") {
            s("nvidia.com/gpu")
        } else if accelerator.starts_with("tpu-") {
            s("google.com/tpu")
        } else {
            String::new()
        }
    });
    let count = ms.accelerator_count.and_then(|n| u32::try_from(n).ok()).unwrap_or(tp);
    // The simulator needs no accelerator and may run on any node.
    let accel_req = (!simulated && !resource.is_empty() && count > 0).then(|| (resource.clone(), count));
    let selector_key = ms.node_selector_key.clone().unwrap_or_else(|| {
        if accelerator.starts_with("tpu-") {
            s("cloud.google.com/gke-tpu-accelerator")
        } else {
            s("cloud.google.com/gke-accelerator")
        }
    });
    let node_selector = (!simulated && !accelerator.is_empty() && !selector_key.is_empty())
        .then(|| (selector_key, accelerator.clone()));
    let hf_secret = uses_hf.then(|| {
        let r = ms.hf_token_secret.clone().unwrap_or_default();
        SecretCtx { name: r.name.unwrap_or_else(|| s("hf-token")), key: r.key.unwrap_or_else(|| s("token")) }
    });
    let res = ms.resources.clone().unwrap_or_default();
    let startup = u32::try_from(ms.startup_timeout_seconds.unwrap_or(1800)).unwrap_or(1800);
    Some(ModelServerCtx {
        kind: kind.into(),
        model,
        image: ms.image.clone().unwrap_or_else(|| default_server_image(kind, &opts.image)),
        command,
        args,
        env,
        hf_secret,
        replicas: ms.replica_count(),
        port,
        health_path: health.map(str::to_owned),
        startup_failure_threshold: startup.div_ceil(10).max(1),
        node_selector,
        accelerator: accel_req,
        cpu: res.cpu,
        memory: res.memory,
        shm_size: res.shm_size.or_else(|| (tp > 1 && !simulated).then(|| s("16Gi"))),
    })
}

fn gateway_ctx(g: &schema::Gateway, namespace: &str, models: &[String]) -> GatewayCtx {
    let (provider, epp, lb_policy) = match &g.r#type {
        Some(gateway::Type::GkeGateway(k)) => ("gke", k.epp.clone(), None),
        Some(gateway::Type::Envoy(e)) => match &e.r#type {
            Some(envoy::Type::LbPolicy(p)) => ("envoy", None, Some(p.clone())),
            Some(envoy::Type::Epp(epp)) => ("envoy", Some(epp.clone()), None),
            None => ("envoy", None, None),
        },
        None => ("envoy", None, None),
    };
    let (class_name, create_class) = match (&g.gateway_class_name, provider) {
        (Some(c), _) => (c.clone(), false),
        (None, "gke") => ("gke-l7-regional-external-managed".to_owned(), false),
        // Cluster-scoped, so named per benchmark: parallel benchmarks never share or delete it.
        (None, _) => (namespace.to_owned(), true),
    };
    // One InferenceModel per served model, named by a DNS label; two models whose labels collide
    // (case, punctuation, the 63-character cut) get a hash suffix instead of being dropped.
    let mut used = std::collections::BTreeSet::new();
    let mut inference_models = vec![];
    for m in models {
        if inference_models.iter().any(|(_, seen): &(String, String)| seen == m) {
            continue;
        }
        let mut label = dns_label(m);
        if !used.insert(label.clone()) {
            let hash = &crate::schema::hash::sha256_hex(m.as_bytes())[..8];
            label = format!("{}-{hash}", label[..label.len().min(54)].trim_end_matches('-'));
            used.insert(label.clone());
        }
        inference_models.push((label, m.clone()));
    }
    GatewayCtx {
        provider: provider.into(),
        class_name,
        create_class,
        port: u16_or(g.port, 8081),
        epp: epp.map(|e| EppCtx {
            image: e.image.unwrap_or_else(|| DEFAULT_EPP_IMAGE.into()),
            refresh_metrics_interval: e.refresh_metrics_interval.unwrap_or_else(|| "50ms".into()),
        }),
        lb_policy,
        full_duplex_streaming: g.full_duplex_streaming_enabled.unwrap_or(false),
        models: inference_models,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_model_labels_get_distinct_names() {
        let g = schema::Gateway::default();
        let models = ["Org/Model".to_owned(), "org-model".to_owned(), "Org/Model".to_owned()];
        let ctx = gateway_ctx(&g, "ns", &models);
        assert_eq!(ctx.models.len(), 2);
        assert_eq!(ctx.models[0], ("org-model".to_owned(), "Org/Model".to_owned()));
        assert!(ctx.models[1].0.starts_with("org-model-") && ctx.models[1].0.len() == "org-model-".len() + 8);
        assert_eq!(ctx.models[1].1, "org-model");
    }

    #[test]
    fn model_ids_become_dns_labels() {
        assert_eq!(dns_label("meta-llama/Llama-2-7b-hf"), "meta-llama-llama-2-7b-hf");
        assert_eq!(dns_label("google/gemma-2-27b"), "google-gemma-2-27b");
        assert_eq!(dns_label("--A__b--"), "a-b");
        assert_eq!(dns_label("///"), "model");
        assert_eq!(dns_label(&"x".repeat(80)).len(), 63);
    }
}
