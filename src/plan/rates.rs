//! Auto-generated request rates (seed 003, feature 5): a benchmark that says nothing of how load is
//! offered gets the hardware table's rates for its model × accelerator, scaled to its deployment.
//!
//! rate = base × replicas × tensor_parallelism / the profile's tensor_parallelism. Unlike the original tool, rates are *not* divided
//! by the number of models: the load engine sends one stream and picks a model per request, so
//! dividing under-loaded multi-model benchmarks by that factor.

use crate::{
    schema::hardware::HardwareTable,
    schema::{LoadSpec, ModelServer, RateList, load_spec},
};

/// Where a benchmark's rates come from, for the plan printout.
#[derive(Debug, Clone, PartialEq)]
pub enum RatesOrigin {
    /// The catalog says how load is offered.
    Catalog,
    /// Generated from the hardware table.
    Generated {
        /// model@accelerator.
        profile: String,
        /// The base rates × this factor.
        factor: f64,
    },
}

/// Fills `spec.pattern` from the table when the catalog left it empty. Validation has already
/// reported benchmarks that need a profile the table lacks; for those this leaves the spec as is.
pub fn fill(spec: &mut LoadSpec, ms: &ModelServer, hw: &HardwareTable) -> RatesOrigin {
    if spec.pattern.is_some() {
        return RatesOrigin::Catalog;
    }
    let (model, accel) = (ms.model().unwrap_or_default(), ms.accelerator.as_deref().unwrap_or_default());
    let Some(profile) = hw.find(model, accel) else {
        return RatesOrigin::Catalog;
    };
    let tp0 = f64::from(profile.tensor_parallelism.unwrap_or(1).max(1));
    let factor = f64::from(ms.replica_count()) * f64::from(ms.tensor_parallelism()) / tp0;
    let request_rates = profile.base_rates.iter().map(|r| r * factor).collect();
    spec.pattern = Some(load_spec::Pattern::Rates(RateList { request_rates }));
    RatesOrigin::Generated { profile: format!("{model}@{accel}"), factor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Vllm, model_server};

    fn vllm(model: &str, accel: &str, replicas: i32, tp: &str) -> ModelServer {
        ModelServer {
            accelerator: Some(accel.into()),
            replicas: Some(replicas),
            r#type: Some(model_server::Type::Vllm(Vllm {
                model: Some(model.into()),
                tensor_parallelism: Some(tp.into()),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn rates_scale_with_replicas_and_tensor_parallelism_not_models() {
        let hw = HardwareTable::builtin();
        let mut spec = LoadSpec { models: vec!["a".into(), "b".into()], ..Default::default() };
        let origin = fill(&mut spec, &vllm("meta-llama/Llama-2-7b-hf", "nvidia-h100-80gb", 8, "1"), &hw);
        assert_eq!(
            origin,
            RatesOrigin::Generated { profile: "meta-llama/Llama-2-7b-hf@nvidia-h100-80gb".into(), factor: 8.0 }
        );
        match spec.pattern {
            // The original tool's r8-svc-vllmv1 example: 80, 160, ... 800 (not halved for 2 models).
            Some(load_spec::Pattern::Rates(r)) => {
                assert_eq!(r.request_rates, [80.0, 160.0, 240.0, 320.0, 480.0, 560.0, 640.0, 720.0, 800.0]);
            }
            other => panic!("{other:?}"),
        }
        let mut spec = LoadSpec::default();
        fill(&mut spec, &vllm("google/gemma-2-27b", "nvidia-h100-80gb", 1, "2"), &hw);
        assert!(matches!(spec.pattern, Some(load_spec::Pattern::Rates(r)) if r.request_rates[0] == 4.0));
        // A profile measured at TP 4 scales by TP / 4: TP 8 doubles its rates.
        let mut spec = LoadSpec::default();
        let origin = fill(&mut spec, &vllm("meta-llama/Llama-3.1-70B-Instruct", "nvidia-h100-80gb", 1, "8"), &hw);
        assert!(matches!(origin, RatesOrigin::Generated { factor, .. } if factor == 2.0), "{origin:?}");
    }

    #[test]
    fn explicit_patterns_and_unknown_pairs_are_left_alone() {
        let hw = HardwareTable::builtin();
        let mut spec = LoadSpec {
            pattern: Some(load_spec::Pattern::Rates(RateList { request_rates: vec![3.0] })),
            ..Default::default()
        };
        assert_eq!(fill(&mut spec, &vllm("meta-llama/Llama-2-7b-hf", "nvidia-l4", 1, "1"), &hw), RatesOrigin::Catalog);
        let mut spec = LoadSpec::default();
        assert_eq!(fill(&mut spec, &vllm("x", "nvidia-l4", 1, "1"), &hw), RatesOrigin::Catalog);
        assert!(spec.pattern.is_none());
    }
}
