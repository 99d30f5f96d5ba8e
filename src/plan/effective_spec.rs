//! The effective `LoadSpec` of a benchmark: what the load engine will be told, with every default
//! written out so a snapshot says exactly what runs (defaults may change between versions; a
//! snapshot must not).

use crate::schema::{
    self, Api, Arrival, BenchmarkTool, Dataset, LoadSpec, Lpg, ModelServer, Outputs, RateList, ServerMetrics,
    benchmark_tool, dataset, load_spec, model_server,
};

/// The dataset name LPG uses for ShareGPT.
pub const SHAREGPT: &str = "sharegpt_v3_unfiltered_cleaned_split";

/// LPG's `--num-prompts` default, used for its rate 0 ("all at once").
const LPG_NUM_PROMPTS: u64 = 1000;

/// Maps the original tool's latency-profile-generator settings onto a LoadSpec.
pub fn from_lpg(l: &Lpg) -> LoadSpec {
    let mut spec = LoadSpec::default();
    if let Some(models) = l.models.as_deref().filter(|m| !m.trim().is_empty()) {
        spec.models = models.split(',').map(|m| m.trim().to_owned()).collect();
    }
    spec.tokenizer = l.tokenizer.clone().filter(|t| !t.is_empty());
    if let Some(rates) = l.request_rates.as_deref().filter(|r| !r.trim().is_empty()) {
        let rates: Vec<f64> = rates
            .split(',')
            .filter_map(|r| r.trim().parse::<f64>().ok())
            .map(|r| if r == 0.0 { f64::INFINITY } else { r })
            .collect();
        if rates.iter().any(|r| r.is_infinite()) {
            spec.num_prompts = Some(LPG_NUM_PROMPTS);
        }
        spec.pattern = Some(load_spec::Pattern::Rates(RateList { request_rates: rates }));
    }
    spec.duration_seconds = l.benchmark_time_seconds.as_deref().and_then(|s| s.trim().parse().ok());
    spec.warmup_seconds = l.warmup_seconds.as_deref().and_then(|s| s.trim().parse().ok());
    let ds = l.dataset.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| SHAREGPT.to_owned());
    spec.dataset = Some(Dataset {
        source: Some(dataset::Source::Sharegpt(ds)),
        max_input_length: Some(1024),
        max_output_length: l.output_length.as_deref().and_then(|s| s.trim().parse().ok()).or(Some(1024)),
    });
    spec.outputs =
        Some(Outputs { lpg_json: Some(true), file_prefix: Some("benchmark-catalog".into()), ..Default::default() });
    spec
}

/// The API a server kind speaks by default.
pub fn default_api(ms: &ModelServer) -> Api {
    match ms.r#type {
        Some(model_server::Type::Tgi(_)) => Api::TgiGenerate,
        Some(model_server::Type::Triton(_)) => Api::TritonGenerate,
        Some(model_server::Type::Jetstream(_)) => Api::JetstreamGenerate,
        _ => Api::OpenaiCompletions,
    }
}

/// The benchmark's LoadSpec with defaults filled in (rates are left to [`super::rates`]).
pub fn effective(tool: Option<&BenchmarkTool>, ms: &ModelServer) -> LoadSpec {
    let mut spec = match tool.and_then(|t| t.r#type.as_ref()) {
        Some(benchmark_tool::Type::Load(l)) => l.clone(),
        Some(benchmark_tool::Type::Lpg(l)) => from_lpg(l),
        None => LoadSpec::default(),
    };
    if spec.api.is_none() {
        spec.set_api(default_api(ms));
    }
    if spec.models.is_empty()
        && let Some(m) = ms.model()
    {
        spec.models.push(m.to_owned());
    }
    spec.streaming.get_or_insert(true);
    spec.request_timeout_seconds.get_or_insert(600.0);
    spec.duration_seconds.get_or_insert(60.0);
    spec.warmup_seconds.get_or_insert(0.0);
    if spec.arrival.is_none() {
        spec.set_arrival(Arrival::Poisson);
    }
    if spec.arrival() == Arrival::Gamma {
        spec.burstiness.get_or_insert(1.0);
    }
    let sm = spec.server_metrics.get_or_insert_with(ServerMetrics::default);
    sm.enabled.get_or_insert(true);
    sm.interval_seconds.get_or_insert(5.0);
    let out = spec.outputs.get_or_insert_with(Outputs::default);
    out.per_request_records.get_or_insert(true);
    if let Some(schema::load_spec::Pattern::Sweep(s)) = &mut spec.pattern {
        s.num_rates.get_or_insert(10);
        s.probe_concurrency.get_or_insert(256);
        s.probe_seconds.get_or_insert(60.0);
        s.max_fraction.get_or_insert(1.1);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpg_settings_map_onto_a_load_spec() {
        let lpg = Lpg {
            dataset: Some(SHAREGPT.into()),
            models: Some("meta-llama/Llama-2-7b-hf, lora-a".into()),
            ip: Some("to-be-populated-automatically".into()),
            port: Some("8081".into()),
            request_rates: Some("1,2.5,0".into()),
            benchmark_time_seconds: Some("60".into()),
            output_length: Some("2048".into()),
            tokenizer: None,
            warmup_seconds: Some("5".into()),
        };
        let s = from_lpg(&lpg);
        assert_eq!(s.models, ["meta-llama/Llama-2-7b-hf", "lora-a"]);
        match s.pattern {
            Some(load_spec::Pattern::Rates(r)) => {
                assert_eq!(r.request_rates, [1.0, 2.5, f64::INFINITY])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.num_prompts, Some(1000));
        assert_eq!(s.duration_seconds, Some(60.0));
        assert_eq!(s.warmup_seconds, Some(5.0));
        let ds = s.dataset.unwrap();
        assert_eq!(ds.max_output_length, Some(2048));
        assert_eq!(ds.source, Some(dataset::Source::Sharegpt(SHAREGPT.into())));
        assert_eq!(s.url, None, "ip/port are filled in at run time");
    }

    #[test]
    fn defaults_follow_the_server_kind() {
        let ms = ModelServer {
            r#type: Some(model_server::Type::Tgi(schema::Tgi { model: Some("m".into()), ..Default::default() })),
            ..Default::default()
        };
        let s = effective(None, &ms);
        assert_eq!(s.api(), Api::TgiGenerate);
        assert_eq!(s.models, ["m"]);
        assert_eq!((s.streaming, s.duration_seconds, s.arrival()), (Some(true), Some(60.0), Arrival::Poisson));
        assert!(s.pattern.is_none(), "rates are generated separately");
    }
}
