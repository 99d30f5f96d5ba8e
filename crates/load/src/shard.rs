//! One worker's part of a stage, losslessly: its [`StageAggregate`] (every histogram in
//! HdrHistogram's V2 format, compressed, base64; every counter) and when it started. Workers write
//! one per stage into `shards.json` beside their `summary.json`; [`crate::merge`] adds them up into
//! the stage one process would have measured — histograms added bucket for bucket, so the merged
//! percentiles are exact, not averages of percentiles.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer as _, V2DeflateSerializer},
};
use serde::{Deserialize, Serialize};

use super::recorder::{ErrorKind, Slo, StageAggregate, TokenSource};

/// The file of a worker's shards, beside its summary.json.
pub const SHARDS: &str = "shards.json";

/// A worker's stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageShard {
    /// The stage's name.
    pub name: String,
    /// This worker (0-based) and how many shared the stage.
    pub worker: u32,
    /// Workers in all.
    pub workers: u32,
    /// The instant the stage was to start on (Unix ns), when one was given.
    pub start_given_ns: Option<i128>,
    /// When this worker's stage began, after the instant given (µs; negative: early). Its part in
    /// the workers' start skew.
    pub start_offset_us: i64,
    /// Arrivals the whole schedule offered in the stage (all workers'), when it is a schedule.
    pub planned_arrivals: Option<u64>,
    /// Requests it sent in the warm-up (not in the aggregates).
    pub warmup: u64,
    /// Its aggregates.
    pub aggregate: AggregateState,
}

/// A [`StageAggregate`] as data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AggregateState {
    /// Histograms by field, V2 deflate, base64.
    pub histograms: BTreeMap<String, String>,
    /// Counters by field.
    pub counters: BTreeMap<String, u64>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// The first failure of each kind, in words.
    #[serde(default)]
    pub first_errors: BTreeMap<String, String>,
    /// Token count sources.
    pub sources: BTreeMap<String, u64>,
    /// Output tokens per whole second from the stage start.
    pub per_second: Vec<u64>,
    /// The first intended send (µs from the stage start).
    pub first_intended_us: Option<u64>,
    /// The last end (µs from the stage start).
    pub last_end_us: u64,
}

/// The histograms of an aggregate, by name.
fn histograms(a: &mut StageAggregate) -> [(&'static str, &mut Histogram<u64>); 14] {
    [
        ("ttft", &mut a.ttft),
        ("first_byte", &mut a.first_byte),
        ("e2e", &mut a.e2e),
        ("tpot", &mut a.tpot),
        ("ntpot", &mut a.ntpot),
        ("per_token", &mut a.per_token),
        ("itl", &mut a.itl),
        ("itl_chunk", &mut a.itl_chunk),
        ("lag", &mut a.lag),
        ("ttft_intended", &mut a.ttft_intended),
        ("e2e_intended", &mut a.e2e_intended),
        ("input_tokens", &mut a.input_tokens),
        ("dataset_input_tokens", &mut a.dataset_input_tokens),
        ("output_tokens", &mut a.output_tokens),
    ]
}

/// The counters of an aggregate, by name.
fn counters(a: &mut StageAggregate) -> [(&'static str, &mut u64); 10] {
    [
        ("sent", &mut a.sent),
        ("succeeded", &mut a.succeeded),
        ("prompt_mismatches", &mut a.prompt_mismatches),
        ("length_mismatches", &mut a.length_mismatches),
        ("delayed", &mut a.delayed),
        ("late", &mut a.late),
        ("good", &mut a.good),
        ("cached", &mut a.cached),
        ("input_total", &mut a.input_total),
        ("output_total", &mut a.output_total),
    ]
}

/// A name of a closed set as the `&'static str` the aggregate keys by.
fn known(names: impl IntoIterator<Item = &'static str>, name: &str) -> Result<&'static str, String> {
    names.into_iter().find(|n| *n == name).ok_or_else(|| format!("unknown name {name:?}"))
}

const SOURCES: [TokenSource; 4] = [TokenSource::Usage, TokenSource::Tokenizer, TokenSource::Chunks, TokenSource::Words];

impl AggregateState {
    /// `a`, losslessly.
    pub fn of(a: &StageAggregate) -> AggregateState {
        let mut a = a.clone();
        let mut out = AggregateState {
            histograms: BTreeMap::new(),
            counters: BTreeMap::new(),
            errors: a.errors.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            first_errors: a.first_errors.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            sources: a.sources.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            per_second: a.per_second.clone(),
            first_intended_us: a.first_intended_us,
            last_end_us: a.last_end_us,
        };
        for (name, h) in histograms(&mut a) {
            let mut bytes = vec![];
            V2DeflateSerializer::new().serialize(h, &mut bytes).expect("a histogram serialises into memory");
            out.histograms.insert(name.to_owned(), base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        for (name, c) in counters(&mut a) {
            out.counters.insert(name.to_owned(), *c);
        }
        out
    }

    /// The aggregate again, with goodput thresholds `slo` (they are the spec's, the same for
    /// every worker). Errors name the field that does not read.
    pub fn aggregate(&self, slo: Slo) -> Result<StageAggregate, String> {
        let mut a = StageAggregate::new(slo);
        for (name, h) in histograms(&mut a) {
            let Some(text) = self.histograms.get(name) else { continue };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("histogram {name}: not base64: {e}"))?;
            let read: Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| format!("histogram {name}: not HdrHistogram V2: {e:?}"))?;
            h.add(&read).map_err(|e| format!("histogram {name}: {e:?}"))?;
        }
        for (name, c) in counters(&mut a) {
            *c = self.counters.get(name).copied().unwrap_or(0);
        }
        for (k, v) in &self.errors {
            a.errors.insert(known(ErrorKind::ALL.map(ErrorKind::as_str), k)?, *v);
        }
        for (k, v) in &self.first_errors {
            a.first_errors.insert(known(ErrorKind::ALL.map(ErrorKind::as_str), k)?, v.clone());
        }
        for (k, v) in &self.sources {
            a.sources.insert(known(SOURCES.map(TokenSource::as_str), k)?, *v);
        }
        a.per_second.clone_from(&self.per_second);
        a.first_intended_us = self.first_intended_us;
        a.last_end_us = self.last_end_us;
        Ok(a)
    }
}

impl StageAggregate {
    /// Adds `other` (another worker's part of the same stage, timed from the same start): counts
    /// summed, histograms added, the window the union of both.
    pub fn merge(&mut self, other: &StageAggregate) {
        let mut other = other.clone();
        for ((_, h), (_, o)) in histograms(self).into_iter().zip(histograms(&mut other)) {
            h.add(&*o).expect("histograms of the same bounds");
        }
        for ((_, c), (_, o)) in counters(self).into_iter().zip(counters(&mut other)) {
            *c += *o;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in &other.first_errors {
            self.first_errors.entry(k).or_insert_with(|| v.clone());
        }
        for (k, v) in &other.sources {
            *self.sources.entry(k).or_default() += v;
        }
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (s, o) in self.per_second.iter_mut().zip(&other.per_second) {
            *s += o;
        }
        self.first_intended_us = match (self.first_intended_us, other.first_intended_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end_us = self.last_end_us.max(other.last_end_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{Outcome, tests::example};

    fn outcome(i: u64) -> Outcome {
        let mut o = example();
        o.record.intended_us = i * 1000;
        o.record.sent_us = i * 1000 + i % 7;
        o.record.end_us = 5_000 + (i * 7919 % 90_000) as u32;
        o.record.first_token_us = 1_000 + (i * 104_729 % 20_000) as u32;
        o.record.output_tokens = 1 + (i % 300) as u32;
        if i.is_multiple_of(13) {
            o.record.error = Some(ErrorKind::Http5xx);
        }
        o
    }

    #[test]
    fn shards_read_back_losslessly_and_merge_into_what_one_aggregate_of_all_requests_measures() {
        let slo = Slo { ttft_ms: Some(10.0), ..Slo::default() };
        let mut whole = StageAggregate::new(slo);
        let mut parts: Vec<StageAggregate> = (0..3).map(|_| StageAggregate::new(slo)).collect();
        for i in 0..5_000 {
            let (o, part) = (outcome(i), &mut parts[(i % 3) as usize]);
            if let Some(kind) = o.record.error {
                whole.note_error(kind, "HTTP 500: boom");
                part.note_error(kind, "HTTP 500: boom");
            }
            whole.record(&o);
            part.record(&o);
        }
        let json = serde_json::to_string(&AggregateState::of(&parts[1])).unwrap();
        let read: AggregateState = serde_json::from_str(&json).unwrap();
        assert_eq!(
            read.aggregate(slo).unwrap().finish("s", Default::default()),
            parts[1].finish("s", Default::default())
        );
        let mut merged = read.aggregate(slo).unwrap();
        merged.merge(&parts[0]);
        merged.merge(&parts[2]);
        let (m, w) = (merged.finish("s", Default::default()), whole.finish("s", Default::default()));
        assert_eq!(m, w, "exact: every percentile, count and rate");
        let c = m.counts.unwrap();
        assert!(c.errors["http_5xx"] > 0);
        assert_eq!(c.first_errors["http_5xx"], "HTTP 500: boom", "the words survive the shard and the merge");
    }

    #[test]
    fn a_shard_that_does_not_read_says_which_histogram() {
        let mut s = AggregateState::of(&StageAggregate::new(Slo::default()));
        s.histograms.insert("ttft".into(), "not base64!".into());
        let e = s.aggregate(Slo::default()).unwrap_err();
        assert!(e.starts_with("histogram ttft: not base64"), "{e}");
    }
}
