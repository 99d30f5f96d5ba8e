//! Validation of resolved benchmarks: every rule a benchmark must meet before it is rendered.
//!
//! Runs after inheritance, so an inherited bad value is reported where it is written (in the base)
//! with a note naming the benchmark that inherited it. All problems are collected, never just the
//! first.

use std::sync::LazyLock;

use regex::Regex;

use super::{Catalog, Diagnostic, Diagnostics, Origins, Resolved};
use crate::schema::hardware::HardwareTable;
use crate::schema::{
    self, BenchmarkTool, Dataset, LoadBalancer, LoadSpec, ModelServer, benchmark_tool, envoy, gateway, load_balancer,
    load_spec, model_server,
};

/// Longest Kubernetes namespace name.
pub const MAX_NAMESPACE_LEN: usize = 63;

/// Length of generated run ids (8 hex characters, as the original tool).
pub const RUN_ID_LEN: usize = 8;

/// Validates every concrete (non-abstract) benchmark. `run_id_len` is the length of the run id the
/// namespaces will carry.
pub fn validate_all(catalog: &Catalog, resolved: &[Resolved], hw: &HardwareTable, run_id_len: usize) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let mut origins = Origins::default();
    for r in resolved.iter().filter(|r| !r.is_abstract()) {
        diags.0.extend(check(catalog, r, hw, run_id_len, &mut origins).0);
    }
    diags
}

/// Validates one resolved benchmark.
pub fn validate(catalog: &Catalog, r: &Resolved, hw: &HardwareTable, run_id_len: usize) -> Diagnostics {
    check(catalog, r, hw, run_id_len, &mut Origins::default())
}

fn check(catalog: &Catalog, r: &Resolved, hw: &HardwareTable, run_id_len: usize, origins: &mut Origins) -> Diagnostics {
    let mut c = Checker { catalog, r, origins, diags: Diagnostics::default() };
    c.name(run_id_len);
    match &r.benchmark.config {
        None => c.err("config", "required: model_server, load_balancer and benchmark_tool"),
        Some(cfg) => {
            let ms = cfg.model_server.clone().unwrap_or_default();
            if cfg.model_server.is_none() {
                c.err("config.model_server", "required: what serves the model");
            } else {
                c.model_server(&ms);
                c.simulator_profile(&ms, hw);
            }
            if let Some(lb) = &cfg.load_balancer {
                c.load_balancer(lb, &ms);
            }
            c.benchmark_tool(cfg.benchmark_tool.as_ref(), &ms, hw);
        }
    }
    c.diags
}

struct Checker<'a> {
    catalog: &'a Catalog,
    r: &'a Resolved,
    origins: &'a mut Origins,
    diags: Diagnostics,
}

static DNS_LABEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("regex"));
static DNS_SUBDOMAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("regex"));
static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$").expect("regex"));
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
        .expect("regex")
});
static DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$").expect("regex"));
/// An image reference, per the grammar of distribution/reference: `[host[:port]/]path[:tag][@digest]`.
static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    // A first component is a registry host only with a '.', a port, or as "localhost" (as docker).
    let label = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
    let host = format!(r"(?:(?:localhost|{label}(?:\.{label})+)(?::[0-9]+)?/|{label}:[0-9]+/)?");
    let comp = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let tag = r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?";
    let digest = r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?";
    Regex::new(&format!("^{host}{comp}(?:/{comp})*{tag}{digest}$")).expect("regex")
});

/// Checks an image reference; `Err` says what is wrong.
fn check_image(image: &str) -> Result<(), String> {
    if image.len() > 255 {
        return Err(format!("image reference is {} characters, more than 255", image.len()));
    }
    if !IMAGE.is_match(image) {
        return Err(format!(
            "\"{image}\" is not a valid image reference ([registry[:port]/]path[:tag][@sha256:<64 hex>], path in lower case)"
        ));
    }
    if let Some((_, d)) = image.split_once("@sha256:")
        && d.len() != 64
    {
        return Err(format!("\"{image}\": a sha256 digest has 64 hex characters, this one has {}", d.len()));
    }
    Ok(())
}

/// Parses a positive integer written as a string (the original tool's string-typed numbers).
fn positive_int(s: &str) -> Option<u64> {
    s.trim().parse::<u64>().ok().filter(|&n| n > 0)
}

impl Checker<'_> {
    fn err(&mut self, rel: &str, msg: impl Into<String>) {
        let (loc, path, owner) = self.catalog.origin(self.r.entry, rel, self.origins);
        let mut d = Diagnostic::new(msg).at(loc).path(path).benchmark(&self.r.name);
        if owner != self.r.name {
            let here = self.catalog.entry(&self.r.name).and_then(|e| e.location("name"));
            d = d.note(here, format!("inherited from \"{owner}\" by \"{}\"", self.r.name));
        }
        self.diags.push(d);
    }

    fn name(&mut self, run_id_len: usize) {
        let name = &self.r.name;
        if !DNS_LABEL.is_match(name) {
            self.err(
                "name",
                format!("\"{name}\" is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit): it names the benchmark's namespace"),
            );
        }
        let ns_len = name.chars().count() + 1 + run_id_len;
        if ns_len > MAX_NAMESPACE_LEN {
            let over = ns_len - MAX_NAMESPACE_LEN;
            self.err(
                "name",
                format!(
                    "the namespace \"{name}-<run_id>\" would be {ns_len} characters with a {run_id_len}-character run id, {over} over the limit of {MAX_NAMESPACE_LEN}: shorten the name by {over}"
                ),
            );
        }
    }

    fn image(&mut self, rel: &str, image: Option<&str>) {
        if let Some(i) = image
            && let Err(e) = check_image(i)
        {
            self.err(rel, e);
        }
    }

    fn port(&mut self, rel: &str, port: Option<i32>) {
        if let Some(p) = port
            && !(1..=65535).contains(&p)
        {
            self.err(rel, format!("a port is 1..65535, got {p}"));
        }
    }

    fn positive_i32(&mut self, rel: &str, v: Option<i32>) {
        if let Some(n) = v
            && n <= 0
        {
            self.err(rel, format!("expected a positive integer, got {n}"));
        }
    }

    fn positive_f64(&mut self, rel: &str, v: Option<f64>) {
        if let Some(x) = v
            && !(x.is_finite() && x > 0.0)
        {
            self.err(rel, format!("expected a number > 0, got {x}"));
        }
    }

    fn string_int(&mut self, rel: &str, v: Option<&str>, what: &str) {
        if let Some(s) = v
            && positive_int(s).is_none()
        {
            self.err(rel, format!("expected {what} written as a positive integer string such as \"1\", got \"{s}\""));
        }
    }

    fn required_model(&mut self, rel: &str, model: Option<&str>) {
        if model.is_none_or(str::is_empty) {
            self.err(rel, "required: the model id (e.g. \"meta-llama/Llama-2-7b-hf\")");
        }
    }

    fn model_server(&mut self, ms: &ModelServer) {
        const P: &str = "config.model_server";
        self.image(&format!("{P}.image"), ms.image.as_deref());
        self.positive_i32(&format!("{P}.replicas"), ms.replicas);
        if let Some(n) = ms.accelerator_count
            && n < 0
        {
            self.err(&format!("{P}.accelerator_count"), format!("expected 0 or more, got {n}"));
        }
        self.port(&format!("{P}.port"), ms.port);
        self.positive_i32(&format!("{P}.startup_timeout_seconds"), ms.startup_timeout_seconds);
        if let Some(res) = &ms.resources {
            for (f, v) in [("cpu", &res.cpu), ("memory", &res.memory), ("shm_size", &res.shm_size)] {
                if let Some(q) = v
                    && !QUANTITY.is_match(q)
                {
                    self.err(
                        &format!("{P}.resources.{f}"),
                        format!("\"{q}\" is not a Kubernetes quantity (e.g. \"8\", \"500m\", \"64Gi\")"),
                    );
                }
            }
        }
        if let Some(s) = &ms.hf_token_secret
            && let Some(n) = &s.name
            && !DNS_SUBDOMAIN.is_match(n)
        {
            self.err(&format!("{P}.hf_token_secret.name"), format!("\"{n}\" is not a valid Secret name"));
        }
        for (i, e) in ms.env.iter().enumerate() {
            if !ENV_NAME.is_match(e.name()) {
                self.err(
                    &format!("{P}.env[{i}].name"),
                    format!("\"{}\" is not a valid environment variable name", e.name()),
                );
            }
        }
        let needs_accelerator = !matches!(ms.r#type, Some(model_server::Type::External(_)) | None);
        let sim_profile = matches!(&ms.r#type, Some(model_server::Type::Simulator(s)) if s.profile.is_some());
        if needs_accelerator && !sim_profile && ms.accelerator.as_deref().is_none_or(str::is_empty) {
            self.err(
                &format!("{P}.accelerator"),
                "required: the accelerator type (e.g. \"nvidia-h100-80gb\"); it selects nodes and the hardware profile",
            );
        }
        use model_server::Type;
        match &ms.r#type {
            None => self.err(P, "required: one of vllm, sglang, tgi, triton, jetstream, simulator, external"),
            Some(Type::Vllm(v)) => {
                let p = format!("{P}.vllm");
                self.required_model(&format!("{p}.model"), v.model.as_deref());
                self.string_int(
                    &format!("{p}.tensor_parallelism"),
                    v.tensor_parallelism.as_deref(),
                    "the tensor parallel size",
                );
                self.string_int(&format!("{p}.max_loras"), v.max_loras.as_deref(), "the maximum number of LoRAs");
                self.string_int(&format!("{p}.lora_rank"), v.lora_rank.as_deref(), "the maximum LoRA rank");
                if let Some(v1) = &v.v1
                    && v1 != "0"
                    && v1 != "1"
                {
                    self.err(
                        &format!("{p}.v1"),
                        format!("expected \"0\" (V0 engine) or \"1\" (V1 engine), got \"{v1}\""),
                    );
                }
                self.positive_i32(&format!("{p}.max_model_len"), v.max_model_len);
                self.positive_i32(&format!("{p}.max_num_seqs"), v.max_num_seqs);
                if let Some(u) = v.gpu_memory_utilization
                    && !(u > 0.0 && u <= 1.0)
                {
                    self.err(&format!("{p}.gpu_memory_utilization"), format!("expected a fraction in (0, 1], got {u}"));
                }
                for (i, a) in v.lora_adapters.iter().enumerate() {
                    if a.name().is_empty() || a.path().is_empty() {
                        self.err(&format!("{p}.lora_adapters[{i}]"), "a LoRA adapter needs a name and a path");
                    }
                }
            }
            Some(Type::Sglang(v)) => {
                self.required_model(&format!("{P}.sglang.model"), v.model.as_deref());
                self.positive_i32(&format!("{P}.sglang.tensor_parallelism"), v.tensor_parallelism);
                self.positive_i32(&format!("{P}.sglang.max_model_len"), v.max_model_len);
            }
            Some(Type::Tgi(v)) => {
                self.required_model(&format!("{P}.tgi.model"), v.model.as_deref());
                self.positive_i32(&format!("{P}.tgi.tensor_parallelism"), v.tensor_parallelism);
                self.positive_i32(&format!("{P}.tgi.max_total_tokens"), v.max_total_tokens);
                self.positive_i32(&format!("{P}.tgi.max_batch_prefill_tokens"), v.max_batch_prefill_tokens);
            }
            Some(Type::Triton(v)) => {
                self.required_model(&format!("{P}.triton.model"), v.model.as_deref());
                self.positive_i32(&format!("{P}.triton.tensor_parallelism"), v.tensor_parallelism);
                if ms.image.is_none() {
                    self.err(
                        &format!("{P}.image"),
                        "required for triton: the Triton / TensorRT-LLM image with your engine",
                    );
                }
            }
            Some(Type::Jetstream(v)) => {
                self.required_model(&format!("{P}.jetstream.model"), v.model.as_deref());
                self.positive_i32(&format!("{P}.jetstream.tensor_parallelism"), v.tensor_parallelism);
                if ms.image.is_none() {
                    self.err(&format!("{P}.image"), "required for jetstream: the JetStream server image");
                }
            }
            Some(Type::Simulator(v)) => {
                self.required_model(&format!("{P}.simulator.model"), v.model.as_deref());
                self.positive_i32(&format!("{P}.simulator.tensor_parallelism"), v.tensor_parallelism);
                self.positive_f64(&format!("{P}.simulator.time_scale"), v.time_scale);
                self.positive_i32(&format!("{P}.simulator.max_num_seqs"), v.max_num_seqs);
                if let Some(p) = &v.profile
                    && !p.contains('@')
                {
                    self.err(&format!("{P}.simulator.profile"), format!("expected \"MODEL@ACCELERATOR\", got \"{p}\""));
                }
            }
            Some(Type::External(v)) => match v.url.as_deref() {
                None | Some("") => {
                    self.err(&format!("{P}.external.url"), "required: the base URL of the running server")
                }
                Some(u) => match url::Url::parse(u) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                    Ok(_) => {
                        self.err(&format!("{P}.external.url"), format!("\"{u}\" is not an http(s) URL with a host"))
                    }
                    Err(e) => self.err(&format!("{P}.external.url"), format!("\"{u}\" is not a URL: {e}")),
                },
            },
        }
    }

    /// The simulator takes its latency model from the hardware table, whatever the rates.
    fn simulator_profile(&mut self, ms: &ModelServer, hw: &HardwareTable) {
        let Some(model_server::Type::Simulator(s)) = &ms.r#type else { return };
        let profile = s.profile.clone().unwrap_or_else(|| {
            format!("{}@{}", s.model.as_deref().unwrap_or_default(), ms.accelerator.as_deref().unwrap_or_default())
        });
        let Some((model, accel)) = profile.rsplit_once('@') else { return }; // reported by model_server()
        if !model.is_empty() && !accel.is_empty() && hw.find(model, accel).is_none() {
            let rel = if s.profile.is_some() {
                "config.model_server.simulator.profile"
            } else {
                "config.model_server.accelerator"
            };
            self.err(
                rel,
                format!(
                    "the simulator needs a hardware profile and the table ({}) has none for {profile}; known: {}",
                    hw.source,
                    hw.known_pairs().join(", ")
                ),
            );
        }
    }

    fn load_balancer(&mut self, lb: &LoadBalancer, ms: &ModelServer) {
        const P: &str = "config.load_balancer";
        match &lb.r#type {
            None => {}
            Some(load_balancer::Type::K8sService(s)) => {
                self.port(&format!("{P}.k8s_service.port"), s.port);
                if let Some(t) = &s.service_type
                    && !matches!(t.as_str(), "ClusterIP" | "LoadBalancer" | "NodePort")
                {
                    self.err(
                        &format!("{P}.k8s_service.service_type"),
                        format!("expected ClusterIP, NodePort or LoadBalancer, got \"{t}\""),
                    );
                }
            }
            Some(load_balancer::Type::Gateway(g)) => {
                let p = format!("{P}.gateway");
                if matches!(ms.r#type, Some(model_server::Type::External(_))) {
                    self.err(&p, "a gateway needs model server pods to route to; an external model server has none (use k8s_service or no load_balancer)");
                }
                self.port(&format!("{p}.port"), g.port);
                if let Some(c) = &g.gateway_class_name
                    && !DNS_SUBDOMAIN.is_match(c)
                {
                    self.err(&format!("{p}.gateway_class_name"), format!("\"{c}\" is not a valid GatewayClass name"));
                }
                match &g.r#type {
                    None => self.err(&p, "required: envoy or gke_gateway"),
                    Some(gateway::Type::Envoy(e)) => match &e.r#type {
                        None => self.err(&format!("{p}.envoy"), "required: epp (endpoint picker) or lb_policy"),
                        Some(envoy::Type::Epp(epp)) => self.epp(&format!("{p}.envoy.epp"), epp),
                        Some(envoy::Type::LbPolicy(pol)) => {
                            if !matches!(pol.as_str(), "RoundRobin" | "LeastRequest" | "Random") {
                                self.err(
                                    &format!("{p}.envoy.lb_policy"),
                                    format!("expected RoundRobin, LeastRequest or Random, got \"{pol}\""),
                                );
                            }
                        }
                    },
                    Some(gateway::Type::GkeGateway(gke)) => match &gke.epp {
                        None => self.err(&format!("{p}.gke_gateway.epp"), "required: the endpoint picker"),
                        Some(epp) => self.epp(&format!("{p}.gke_gateway.epp"), epp),
                    },
                }
            }
        }
    }

    fn epp(&mut self, p: &str, epp: &schema::Epp) {
        self.image(&format!("{p}.image"), epp.image.as_deref());
        if let Some(d) = &epp.refresh_metrics_interval
            && !DURATION.is_match(d)
        {
            self.err(&format!("{p}.refresh_metrics_interval"), format!("\"{d}\" is not a duration such as \"50ms\""));
        }
    }

    fn benchmark_tool(&mut self, tool: Option<&BenchmarkTool>, ms: &ModelServer, hw: &HardwareTable) {
        const P: &str = "config.benchmark_tool";
        let mut has_rates = false;
        if let Some(t) = tool {
            if let Some(benchmark_tool::Type::Load(_)) = t.r#type {
                self.image(&format!("{P}.image"), t.image.as_deref());
            }
            match &t.r#type {
                None => {}
                Some(benchmark_tool::Type::Lpg(l)) => {
                    let p = format!("{P}.lpg");
                    if let Some(rates) = l.request_rates.as_deref().filter(|s| !s.trim().is_empty()) {
                        has_rates = true;
                        for r in rates.split(',') {
                            match r.trim().parse::<f64>() {
                                Ok(x) if x.is_finite() && x >= 0.0 => {}
                                _ => self.err(&format!("{p}.request_rates"), format!("expected comma-separated rates ≥ 0 (0 = all at once), got \"{}\" in \"{rates}\"", r.trim())),
                            }
                        }
                    }
                    self.string_int(
                        &format!("{p}.benchmark_time_seconds"),
                        l.benchmark_time_seconds.as_deref(),
                        "seconds per rate",
                    );
                    self.string_int(&format!("{p}.output_length"), l.output_length.as_deref(), "the output length");
                    if let Some(w) = &l.warmup_seconds
                        && w.trim().parse::<u64>().is_err()
                    {
                        self.err(
                            &format!("{p}.warmup_seconds"),
                            format!("expected a whole number of seconds, got \"{w}\""),
                        );
                    }
                    if let Some(port) = l.port.as_deref().filter(|s| !s.is_empty())
                        && !port.parse::<u16>().is_ok_and(|p| p > 0)
                    {
                        self.err(
                            &format!("{p}.port"),
                            format!("expected a port number written as a string such as \"8081\", got \"{port}\""),
                        );
                    }
                    if let Some(models) = &l.models
                        && models.split(',').any(|m| m.trim().is_empty())
                    {
                        self.err(
                            &format!("{p}.models"),
                            format!("expected comma-separated model names, got \"{models}\""),
                        );
                    }
                }
                Some(benchmark_tool::Type::Load(l)) => has_rates = self.load_spec(&format!("{P}.load"), l),
            }
        }
        if !has_rates {
            let (model, accel) = (ms.model().unwrap_or_default(), ms.accelerator.as_deref().unwrap_or_default());
            if hw.find(model, accel).is_none() && ms.r#type.is_some() {
                self.err(
                    P,
                    format!(
                        "no request rates given and the hardware table ({}) has no profile for {model}@{accel} to generate them: set benchmark_tool.lpg.request_rates or benchmark_tool.load.rates, or use benchmark_tool.load.sweep; known pairs: {}",
                        hw.source,
                        hw.known_pairs().join(", ")
                    ),
                );
            }
        }
    }

    /// Checks a LoadSpec; returns whether it says how load is offered (so no rates are generated).
    fn load_spec(&mut self, p: &str, l: &LoadSpec) -> bool {
        if let Some(u) = l.url.as_deref().filter(|u| !u.is_empty())
            && url::Url::parse(u).is_err()
        {
            self.err(&format!("{p}.url"), format!("\"{u}\" is not a URL"));
        }
        if let Some(e) = &l.endpoint
            && !e.starts_with('/')
        {
            self.err(&format!("{p}.endpoint"), format!("expected a path starting with '/', got \"{e}\""));
        }
        if !l.traffic_split.is_empty() {
            if l.traffic_split.len() != l.models.len() {
                self.err(
                    &format!("{p}.traffic_split"),
                    format!(
                        "has {} shares for {} models: one share per entry of models",
                        l.traffic_split.len(),
                        l.models.len()
                    ),
                );
            }
            let sum: f64 = l.traffic_split.iter().sum();
            if l.traffic_split.iter().any(|s| !(s.is_finite() && *s >= 0.0)) || (sum - 1.0).abs() > 1e-6 {
                self.err(&format!("{p}.traffic_split"), format!("shares must be ≥ 0 and sum to 1, they sum to {sum}"));
            }
        }
        self.positive_f64(&format!("{p}.request_timeout_seconds"), l.request_timeout_seconds);
        self.positive_f64(&format!("{p}.duration_seconds"), l.duration_seconds);
        self.positive_f64(&format!("{p}.burstiness"), l.burstiness);
        if let Some(w) = l.warmup_seconds
            && !(w.is_finite() && w >= 0.0)
        {
            self.err(&format!("{p}.warmup_seconds"), format!("expected seconds ≥ 0, got {w}"));
        }
        if l.max_concurrency == Some(0) {
            self.err(&format!("{p}.max_concurrency"), "expected a cap > 0 (leave unset for no cap)");
        }
        let workers = l.workers.unwrap_or(1);
        if !(1..=crate::load::stages::MAX_WORKERS).contains(&workers) {
            self.err(
                &format!("{p}.workers"),
                format!("expected 1…{} load workers, got {workers}", crate::load::stages::MAX_WORKERS),
            );
        } else if let Err(why) = crate::load::stages::check_workers(l) {
            self.err(&format!("{p}.workers"), why);
        }
        if let Some(s) = &l.slo {
            self.positive_f64(&format!("{p}.slo.ttft_ms"), s.ttft_ms);
            self.positive_f64(&format!("{p}.slo.tpot_ms"), s.tpot_ms);
            self.positive_f64(&format!("{p}.slo.e2e_ms"), s.e2e_ms);
        }
        if let Some(m) = &l.server_metrics {
            self.positive_f64(&format!("{p}.server_metrics.interval_seconds"), m.interval_seconds);
        }
        if let Some(d) = &l.dataset {
            self.dataset(&format!("{p}.dataset"), d);
        }
        match &l.pattern {
            None => false,
            Some(load_spec::Pattern::Rates(r)) => {
                if r.request_rates.is_empty() {
                    self.err(&format!("{p}.rates.request_rates"), "required: at least one rate (req/s)");
                }
                for (i, x) in r.request_rates.iter().enumerate() {
                    if x.is_nan() || *x <= 0.0 {
                        self.err(
                            &format!("{p}.rates.request_rates[{i}]"),
                            format!("rates must be > 0 (inf = all at once), got {x}"),
                        );
                    } else if x.is_infinite() && l.num_prompts.unwrap_or(0) == 0 {
                        self.err(
                            &format!("{p}.rates.request_rates[{i}]"),
                            "an infinite rate sends a stage's requests all at once: set num_prompts to say how many",
                        );
                    }
                }
                true
            }
            Some(load_spec::Pattern::Stages(s)) => {
                if s.stages.is_empty() {
                    self.err(&format!("{p}.stages.stages"), "required: at least one stage");
                }
                for (i, st) in s.stages.iter().enumerate() {
                    let q = format!("{p}.stages.stages[{i}]");
                    match st.rate {
                        None => self.err(&q, "required: rate"),
                        Some(x) if !(x.is_finite() && x > 0.0) => {
                            self.err(&format!("{q}.rate"), format!("rates must be > 0, got {x}"))
                        }
                        _ => {}
                    }
                    match st.duration_seconds {
                        None => self.err(&q, "required: duration_seconds"),
                        Some(x) if !(x.is_finite() && x > 0.0) => {
                            self.err(&format!("{q}.duration_seconds"), format!("expected seconds > 0, got {x}"))
                        }
                        _ => {}
                    }
                }
                true
            }
            Some(load_spec::Pattern::Concurrency(c)) => {
                if c.users.is_empty() {
                    self.err(&format!("{p}.concurrency.users"), "required: at least one number of virtual users");
                }
                for (i, u) in c.users.iter().enumerate() {
                    if *u == 0 {
                        self.err(&format!("{p}.concurrency.users[{i}]"), "expected a number of users > 0");
                    }
                }
                true
            }
            Some(load_spec::Pattern::Sweep(s)) => {
                if s.num_rates == Some(0) {
                    self.err(&format!("{p}.sweep.num_rates"), "expected a number of rates > 0");
                }
                if s.probe_concurrency == Some(0) {
                    self.err(&format!("{p}.sweep.probe_concurrency"), "expected a number of users > 0");
                }
                self.positive_f64(&format!("{p}.sweep.probe_seconds"), s.probe_seconds);
                self.positive_f64(&format!("{p}.sweep.max_fraction"), s.max_fraction);
                true
            }
        }
    }

    fn dataset(&mut self, p: &str, d: &Dataset) {
        use schema::dataset::Source;
        if d.max_input_length == Some(0) {
            self.err(&format!("{p}.max_input_length"), "expected a token count > 0");
        }
        if d.max_output_length == Some(0) {
            self.err(&format!("{p}.max_output_length"), "expected a token count > 0");
        }
        let len = |c: &mut Self, q: String, l: &Option<schema::LengthDistribution>| {
            if let Some(l) = l {
                if l.mean.unwrap_or(0) == 0 {
                    c.err(&q, "required: a mean token count > 0");
                }
                if let (Some(lo), Some(hi)) = (l.min, l.max)
                    && lo > hi
                {
                    c.err(&q, format!("min {lo} is above max {hi}"));
                }
            }
        };
        match &d.source {
            Some(Source::Sharegpt(s) | Source::Jsonl(s) | Source::Ipex(s) | Source::Conversations(s))
                if s.is_empty() =>
            {
                self.err(p, "the dataset source needs a path");
            }
            Some(Source::Synthetic(s)) => {
                if s.input.is_none() {
                    self.err(&format!("{p}.synthetic.input"), "required: input token lengths");
                }
                len(self, format!("{p}.synthetic.input"), &s.input);
                len(self, format!("{p}.synthetic.output"), &s.output);
            }
            Some(Source::SharedPrefix(s)) => {
                for (f, v) in [
                    ("num_groups", s.num_groups),
                    ("prompts_per_group", s.prompts_per_group),
                    ("prefix_length", s.prefix_length),
                ] {
                    if v.unwrap_or(0) == 0 {
                        self.err(&format!("{p}.shared_prefix.{f}"), "required: a value > 0");
                    }
                }
            }
            Some(Source::MultiTurn(m)) => {
                len(self, format!("{p}.multi_turn.input"), &m.input);
                len(self, format!("{p}.multi_turn.output"), &m.output);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "vllm/vllm-openai:v0.8.1",
            "vllm/vllm-openai@sha256:8672d9356d4f4474695fd69ef56531d9e482517da3b31feb9c975689332a4fb0",
            "us-central1-docker.pkg.dev/k8s-staging-images/gateway-api-inference-extension/epp:v0.1.0",
            "localhost:5000/inferbench:0.1.0",
            "busybox",
        ] {
            assert_eq!(check_image(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Vllm/openai",
            "vllm/openai:",
            "vllm//openai",
            "vllm/openai@sha256:abc",
            "a b",
            "vllm/openai:tag@sha256:12",
        ] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }
}
