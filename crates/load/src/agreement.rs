//! Agreement with the server's own clock and counters, on every run: each stage's mean TTFT and
//! e2e beside the server's histograms over the same window, and its request and token totals
//! beside the server's counters. Rules and tolerances: `ServerAgreement` in `proto/results.proto`.
//! No figure is measured here: both sides are already in the stage's result (the client's
//! aggregates, and `server_metrics` summarised by [`crate::scrape`]).

use inferbench_schema::{AgreementFigure, ServerAgreement, ServerSeries, StageResult};

/// Default allowance of the client's means over the server's, ms.
pub const DEFAULT_ALLOWANCE_MS: f64 = 30.0;
/// How far below the server's mean the client's may be (scrape timing), ms.
const BELOW_SLACK_MS: f64 = 1.0;

/// The server's metric for each figure, by server (first found wins).
const TTFT: &[&str] = &["vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"];
const E2E: &[&str] = &["vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds"];
const REQUESTS: &[&str] = &["vllm:request_success_total", "sglang:num_requests_total"];
const PROMPT: &[&str] = &["vllm:prompt_tokens_total", "sglang:prompt_tokens_total"];
const GENERATED: &[&str] = &["vllm:generation_tokens_total", "sglang:generation_tokens_total"];

/// The agreement of `r` (its `server_metrics` filled in) with the server; `whole` when its window
/// saw only its own requests (no warm-up), so that totals compare. None when the server's
/// metrics hold none of the figures.
pub fn agreement(r: &StageResult, whole: bool, allowance_ms: f64) -> Option<ServerAgreement> {
    let series =
        |names: &[&str]| -> Option<ServerSeries> { names.iter().find_map(|n| r.server_metrics.get(*n)).cloned() };
    let mut figures = vec![];
    let mut disagreements = vec![];
    for (name, client, server) in [
        ("ttft_mean_ms", r.ttft_ms.filter(|d| d.count > 0).map(|d| d.mean), series(TTFT)),
        ("e2e_mean_ms", r.e2e_ms.filter(|d| d.count > 0).map(|d| d.mean), series(E2E)),
    ] {
        let (Some(c), Some(s)) = (client, server.map(|s| s.mean * 1e3)) else { continue };
        let agrees = c >= s - BELOW_SLACK_MS && c - s <= allowance_ms;
        if !agrees {
            let what = if c < s { "below" } else { "above" };
            disagreements.push(format!(
                "{name}: the client's {c:.2} ms is {what} the server's own {s:.2} ms (allowed: {:.0} ms below to {allowance_ms:.0} ms above)",
                -BELOW_SLACK_MS
            ));
        }
        figures.push(AgreementFigure { name: name.into(), client: c, server: s, agrees });
    }
    let counts = r.counts.clone().unwrap_or_default();
    if whole && counts.failed == 0 && counts.sent > 0 {
        let window = r.duration_seconds;
        let total = |per_s: f64| (per_s * window).round();
        let t = r.throughput.unwrap_or_default();
        for (name, client, server) in [
            ("requests", counts.succeeded as f64, series(REQUESTS)),
            ("input_tokens", total(t.input_tokens_per_second), series(PROMPT)),
            ("output_tokens", total(t.output_tokens_per_second), series(GENERATED)),
        ] {
            let Some(s) = server.and_then(|s| s.total) else { continue };
            let agrees = (client - s).abs() < 0.5;
            if !agrees {
                disagreements.push(format!("{name}: the client counted {client:.0}, the server {s:.0}"));
            }
            figures.push(AgreementFigure { name: name.into(), client, server: s, agrees });
        }
    }
    if figures.is_empty() {
        return None;
    }
    Some(ServerAgreement { agrees: disagreements.is_empty(), disagreements, allowance_ms, figures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_schema::{Counts, Distribution, Throughput};

    fn series(mean: f64, total: Option<f64>) -> ServerSeries {
        ServerSeries { kind: "histogram".into(), mean, total, samples: 1, ..Default::default() }
    }

    fn stage(ttft_ms: f64, server_ttft_s: f64, server_tokens: f64) -> StageResult {
        StageResult {
            duration_seconds: 2.0,
            counts: Some(Counts { sent: 10, succeeded: 10, ..Default::default() }),
            throughput: Some(Throughput { output_tokens_per_second: 50.0, ..Default::default() }),
            ttft_ms: Some(Distribution { count: 10, mean: ttft_ms, ..Default::default() }),
            server_metrics: [
                ("vllm:time_to_first_token_seconds".to_owned(), series(server_ttft_s, Some(10.0))),
                ("vllm:generation_tokens_total".to_owned(), series(0.0, Some(server_tokens))),
                ("vllm:request_success_total".to_owned(), series(0.0, Some(10.0))),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_client_a_little_above_the_server_agrees() {
        let a = agreement(&stage(14.0, 0.012, 100.0), true, 30.0).unwrap();
        assert!(a.agrees, "{a:?}");
        let names: Vec<&str> = a.figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ttft_mean_ms", "requests", "output_tokens"]);
        assert_eq!((a.figures[2].client, a.figures[2].server), (100.0, 100.0));
    }

    #[test]
    fn below_the_server_far_above_it_or_other_totals_disagree() {
        let a = agreement(&stage(10.0, 0.012, 100.0), true, 30.0).unwrap();
        assert!(!a.agrees && a.disagreements[0].contains("is below the server's own 12.00 ms"), "{a:?}");
        let a = agreement(&stage(95.0, 0.012, 100.0), true, 30.0).unwrap();
        assert!(a.disagreements[0].contains("95.00 ms is above"), "{a:?}");
        let a = agreement(&stage(14.0, 0.012, 160.0), true, 30.0).unwrap();
        assert_eq!(a.disagreements, ["output_tokens: the client counted 100, the server 160"]);
        // With a warm-up, the server also counted requests the client left out: totals not compared.
        let a = agreement(&stage(14.0, 0.012, 160.0), false, 30.0).unwrap();
        assert!(a.agrees && a.figures.len() == 1, "{a:?}");
        assert!(agreement(&StageResult::default(), true, 30.0).is_none(), "no server metrics: nothing to say");
    }
}
