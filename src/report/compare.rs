//! `--compare OTHER_RUN`: this run against a baseline, side by side, for benchmarks of the same
//! name and their stages of the same name (e.g. before and after a model-server upgrade).
//!
//! Each figure is shown with its 95 % confidence interval, and a difference is flagged only when
//! the two runs' intervals do not overlap — it exceeds run-to-run noise (the rule and its
//! reasons are in [`super::stats`]). Latency percentiles get their intervals from the per-request
//! records (`requests.jsonl.zst`): the whole sample, not just a mean or a percentile. Throughputs
//! and error rates get theirs from the counts in `summary.json`. A stage without records (an LPG
//! file of an older run, records turned off) or with too few requests to bound a percentile (a
//! p99 of 40 requests) is shown unflagged, with the reason.

use std::collections::BTreeMap;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::{
    ReportError,
    model::{Bench, Run},
    records::{self, StageSamples},
    stats::{self, Interval, Z95},
};
use crate::schema::{Distribution, StageResult};

/// The comparison of a run with a baseline.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The baseline run's id.
    pub baseline_id: String,
    /// The baseline run's folder.
    pub baseline_dir: std::path::PathBuf,
    /// Stages found in both, in this run's order.
    pub stages: Vec<StageDelta>,
    /// Benchmarks with results only in this run.
    pub only_here: Vec<String>,
    /// Benchmarks with results only in the baseline.
    pub only_baseline: Vec<String>,
    /// Stages of common benchmarks found on one side only: (benchmark, stage, "this run" or "baseline").
    pub unmatched_stages: Vec<(String, String, &'static str)>,
}

/// One stage in both runs.
#[derive(Debug, Clone)]
pub struct StageDelta {
    /// Benchmark.
    pub benchmark: String,
    /// Stage.
    pub stage: String,
    /// Each figure compared.
    pub metrics: Vec<MetricDelta>,
}

/// One figure in both runs.
#[derive(Debug, Clone)]
pub struct MetricDelta {
    /// "TTFT p50", "req/s", ….
    pub metric: &'static str,
    /// Unit of the values ("ms", "req/s", "tok/s", "%").
    pub unit: &'static str,
    /// The baseline's value and interval.
    pub baseline: Interval,
    /// This run's.
    pub this: Interval,
    /// The verdict.
    pub verdict: Verdict,
}

impl MetricDelta {
    /// This run minus the baseline.
    pub fn delta(&self) -> f64 {
        self.this.value - self.baseline.value
    }

    /// The change relative to the baseline (NaN when the baseline is 0).
    pub fn relative(&self) -> f64 {
        if self.baseline.value == 0.0 { f64::NAN } else { self.delta() / self.baseline.value }
    }
}

/// Whether a difference exceeds noise, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Better beyond noise.
    Better,
    /// Worse beyond noise.
    Worse,
    /// The intervals overlap.
    Noise,
    /// Cannot be told, and why.
    NotAssessed(&'static str),
}

impl Verdict {
    /// A word for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "WORSE",
            Verdict::Noise => "within noise",
            Verdict::NotAssessed(why) => why,
        }
    }

    /// Flagged: beyond noise either way.
    pub fn flagged(&self) -> bool {
        matches!(self, Verdict::Better | Verdict::Worse)
    }
}

fn verdict(baseline: &Interval, this: &Interval, lower_is_better: bool) -> Verdict {
    let (up, down) = (baseline.below(this), this.below(baseline));
    match (up, down) {
        (true, _) => {
            if lower_is_better {
                Verdict::Worse
            } else {
                Verdict::Better
            }
        }
        (_, true) => {
            if lower_is_better {
                Verdict::Better
            } else {
                Verdict::Worse
            }
        }
        _ if baseline.bounded() && this.bounded() => Verdict::Noise,
        _ => Verdict::NotAssessed("too few requests to bound it"),
    }
}

/// The latency figures compared: (name, summary distribution, its sample in the records, quantile).
type Latency = (&'static str, fn(&StageResult) -> Option<Distribution>, fn(&StageSamples) -> &[f64], f64);
const LATENCIES: &[Latency] = &[
    ("TTFT p50", |s| s.ttft_ms, |r| &r.ttft, 0.50),
    ("TTFT p99", |s| s.ttft_ms, |r| &r.ttft, 0.99),
    ("TPOT p50", |s| s.tpot_ms, |r| &r.tpot, 0.50),
    ("TPOT p99", |s| s.tpot_ms, |r| &r.tpot, 0.99),
    ("e2e p50", |s| s.e2e_ms, |r| &r.e2e, 0.50),
    ("e2e p99", |s| s.e2e_ms, |r| &r.e2e, 0.99),
];

/// Every figure a comparison can hold, in table order: (name, unit, lower is better).
pub const FIGURES: &[(&str, &str, bool)] = &[
    ("TTFT p50", "ms", true),
    ("TTFT p99", "ms", true),
    ("TPOT p50", "ms", true),
    ("TPOT p99", "ms", true),
    ("e2e p50", "ms", true),
    ("e2e p99", "ms", true),
    ("req/s", "req/s", false),
    ("out tok/s", "tok/s", false),
    ("errors", "%", true),
];

/// Why a figure carries no interval although it has a value.
pub const NO_RECORDS: &str = "no per-request records";

/// One figure of one stage with its 95 % interval: what a comparison pairs with the same figure
/// of the baseline. Computed from a stage's summary and records here, or read back from the
/// results history (which stores exactly these), so both compare by one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// One of [`FIGURES`]' names.
    pub metric: &'static str,
    /// Its unit.
    pub unit: &'static str,
    /// Whether lower is better (latencies, errors).
    pub lower_is_better: bool,
    /// The value and its interval.
    pub interval: Interval,
    /// Why it cannot be assessed whatever the other side holds ([`NO_RECORDS`]).
    pub unassessable: Option<&'static str>,
}

impl Figure {
    /// The figure named `metric` (one of [`FIGURES`]), `None` for a name this version does not know.
    pub fn known(metric: &str, interval: Interval, unassessable: Option<&str>) -> Option<Figure> {
        let &(metric, unit, lower_is_better) = FIGURES.iter().find(|f| f.0 == metric)?;
        let unassessable = unassessable.map(|_| NO_RECORDS);
        Some(Figure { metric, unit, lower_is_better, interval, unassessable })
    }
}

/// Compares `this` run with `baseline`.
pub fn compare(this: &Run, baseline: &Run) -> Result<Comparison, ReportError> {
    let mut out = Comparison {
        baseline_id: baseline.id.clone(),
        baseline_dir: baseline.dir.clone(),
        stages: vec![],
        only_here: vec![],
        only_baseline: vec![],
        unmatched_stages: vec![],
    };
    for b in this.benchmarks.iter().filter(|b| !b.stages().is_empty()) {
        let Some(other) = baseline.bench(&b.name).filter(|o| !o.stages().is_empty()) else {
            out.only_here.push(b.name.clone());
            continue;
        };
        let (mine, theirs) = (samples(b)?, samples(other)?);
        for s in b.stages() {
            let Some(o) = other.stages().iter().find(|o| o.name == s.name) else {
                out.unmatched_stages.push((b.name.clone(), s.name.clone(), "this run"));
                continue;
            };
            let metrics = pair(
                &figures(s, mine.as_ref().and_then(|m| m.get(&s.name))),
                &figures(o, theirs.as_ref().and_then(|m| m.get(&o.name))),
            );
            out.stages.push(StageDelta { benchmark: b.name.clone(), stage: s.name.clone(), metrics });
        }
        for o in other.stages().iter().filter(|o| !b.stages().iter().any(|s| s.name == o.name)) {
            out.unmatched_stages.push((b.name.clone(), o.name.clone(), "baseline"));
        }
    }
    out.only_baseline = baseline
        .benchmarks
        .iter()
        .filter(|o| !o.stages().is_empty() && this.bench(&o.name).is_none_or(|b| b.stages().is_empty()))
        .map(|o| o.name.clone())
        .collect();
    Ok(out)
}

/// A benchmark's per-request samples by stage (`None` without records).
pub fn samples(b: &Bench) -> Result<Option<BTreeMap<String, StageSamples>>, ReportError> {
    b.results.as_ref().and_then(|r| r.records.as_deref()).map(records::read).transpose()
}

/// A stage's figures with their intervals: latency percentiles bounded from its records (the
/// values are the summary's), throughputs from its counts, the error rate as a proportion.
pub fn figures(s: &StageResult, records: Option<&StageSamples>) -> Vec<Figure> {
    let mut out = vec![];
    for (metric, dist, sample, q) in LATENCIES {
        let Some(d) = dist(s).filter(|d| d.count > 0) else { continue };
        let value = if *q == 0.5 { d.p50 } else { d.p99 };
        let i = records.and_then(|r| stats::quantile(sample(r), *q, Z95));
        let interval = Interval { value, lo: i.and_then(|i| i.lo), hi: i.and_then(|i| i.hi) };
        out.extend(Figure::known(metric, interval, records.is_none().then_some(NO_RECORDS)));
    }
    let c = s.counts.clone().unwrap_or_default();
    let rps = stats::poisson_rate(c.succeeded, s.duration_seconds, Z95)
        .map(|i| Interval { value: s.throughput.map_or(i.value, |t| t.requests_per_second), ..i });
    let tok = s.throughput.and_then(|t| stats::scaled_by_count(t.output_tokens_per_second, c.succeeded, Z95));
    let pct =
        |i: Interval| Interval { value: i.value * 100.0, lo: i.lo.map(|x| x * 100.0), hi: i.hi.map(|x| x * 100.0) };
    let errors = stats::proportion(c.failed, c.sent, Z95).map(pct);
    for (metric, interval) in [("req/s", rps), ("out tok/s", tok), ("errors", errors)] {
        out.extend(interval.and_then(|i| Figure::known(metric, i, None)));
    }
    out
}

/// The figures found on both sides, in `this`'s order, each with its verdict.
pub fn pair(this: &[Figure], baseline: &[Figure]) -> Vec<MetricDelta> {
    this.iter()
        .filter_map(|t| {
            let b = baseline.iter().find(|b| b.metric == t.metric)?;
            let verdict = match t.unassessable.or(b.unassessable) {
                Some(why) => Verdict::NotAssessed(why),
                None => verdict(&b.interval, &t.interval, t.lower_is_better),
            };
            Some(MetricDelta { metric: t.metric, unit: t.unit, baseline: b.interval, this: t.interval, verdict })
        })
        .collect()
}

/// A value with its interval: "12.3 [11.9, 12.8]" (an unbounded side is "…").
pub fn with_interval(i: &Interval, unit: &str) -> String {
    let f = |v: f64| if unit == "ms" { super::table::ms(v) } else { super::table::num(v, 2) };
    let side = |v: Option<f64>| v.map_or("…".to_owned(), f);
    format!("{} [{}, {}]", f(i.value), side(i.lo), side(i.hi))
}

/// "+12.3 %" (or the absolute change when the baseline is 0).
pub fn change(m: &MetricDelta) -> String {
    let r = m.relative();
    if r.is_finite() { format!("{:+.1} %", r * 100.0) } else { format!("{:+.2} {}", m.delta(), m.unit) }
}

/// The terminal summary: the flagged differences, and counts of the rest.
pub fn terminal(c: &Comparison) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(["benchmark", "stage", "metric", "baseline", "this run", "change", "verdict"]);
    let all: Vec<(&StageDelta, &MetricDelta)> =
        c.stages.iter().flat_map(|s| s.metrics.iter().map(move |m| (s, m))).collect();
    for (s, m) in all.iter().filter(|(_, m)| m.verdict.flagged()) {
        t.add_row(vec![
            s.benchmark.clone(),
            s.stage.clone(),
            m.metric.into(),
            with_interval(&m.baseline, m.unit),
            with_interval(&m.this, m.unit),
            change(m),
            m.verdict.label().into(),
        ]);
    }
    let count = |f: fn(&Verdict) -> bool| all.iter().filter(|(_, m)| f(&m.verdict)).count();
    let flagged = count(Verdict::flagged);
    let mut out = format!(
        "compared with run {} ({}): {} stage(s) in both; {flagged} difference(s) beyond noise, {} within noise, {} not assessed\n",
        c.baseline_id,
        c.baseline_dir.display(),
        c.stages.len(),
        count(|v| *v == Verdict::Noise),
        count(|v| matches!(v, Verdict::NotAssessed(_))),
    );
    if flagged > 0 {
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if !c.only_here.is_empty() {
        out.push_str(&format!("only in this run: {}\n", c.only_here.join(", ")));
    }
    if !c.only_baseline.is_empty() {
        out.push_str(&format!("only in the baseline: {}\n", c.only_baseline.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(v: f64, lo: f64, hi: f64) -> Interval {
        Interval { value: v, lo: Some(lo), hi: Some(hi) }
    }

    #[test]
    fn verdicts_follow_interval_overlap_and_direction() {
        let base = iv(10.0, 9.0, 11.0);
        assert_eq!(verdict(&base, &iv(20.0, 18.0, 22.0), true), Verdict::Worse, "latency up");
        assert_eq!(verdict(&base, &iv(20.0, 18.0, 22.0), false), Verdict::Better, "throughput up");
        assert_eq!(verdict(&base, &iv(5.0, 4.0, 6.0), true), Verdict::Better);
        assert_eq!(verdict(&base, &iv(10.5, 10.0, 12.0), true), Verdict::Noise);
        let open = Interval { value: 10.5, lo: Some(10.0), hi: None };
        assert!(matches!(verdict(&base, &open, true), Verdict::NotAssessed(_)));
        let far = Interval { value: 50.0, lo: Some(40.0), hi: None };
        assert_eq!(verdict(&base, &far, true), Verdict::Worse, "an open top still clears a bounded baseline");
    }
}
