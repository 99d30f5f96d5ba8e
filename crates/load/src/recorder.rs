//! What is measured of each request, and the per-stage aggregates of `proto/results.proto`.
//!
//! A finished request arrives as an [`Outcome`]: a compact [`RequestRecord`] (kept for
//! `requests.jsonl.zst`; 64 bytes, so 10⁷ requests fit in well under a gigabyte) plus its chunk
//! arrival times, which feed the inter-token histograms and are then dropped. Aggregates live in
//! HdrHistograms (microseconds, 3 significant digits), never in a growing list of responses.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use inferbench_schema::{Counts, Distribution, Goodput, Offered, StageResult, Throughput};

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ErrorKind {
    /// No connection.
    Connect,
    /// The request timeout passed.
    Timeout,
    /// 429 Too Many Requests.
    Http429,
    /// Another 4xx.
    Http4xx,
    /// A 5xx.
    Http5xx,
    /// The stream ended before its end marker / the body was cut.
    StreamCut,
    /// A chunk or body that is not what the API sends.
    Parse,
    /// The server reported an error inside a successful (200) stream or body.
    ServerError,
    /// A successful answer without a single output token.
    Empty,
    /// Cut when the run was stopped (Ctrl-C) before its answer was complete.
    Cancelled,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Http429,
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::StreamCut,
        ErrorKind::Parse,
        ErrorKind::ServerError,
        ErrorKind::Empty,
        ErrorKind::Cancelled,
    ];

    /// The key in `Counts.errors`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http429 => "http_429",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::StreamCut => "stream_cut",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Parse => "parse",
            ErrorKind::Empty => "empty",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// The kind of an HTTP error status.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            429 => ErrorKind::Http429,
            500.. => ErrorKind::Http5xx,
            _ => ErrorKind::Http4xx,
        }
    }
}

/// Where an output token count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenSource {
    /// `usage.completion_tokens` (or the API's own total, e.g. TGI's `generated_tokens`).
    Usage,
    /// The tokenizer over the text.
    Tokenizer,
    /// Counted per streamed chunk (the API's per-event count, or one per chunk).
    Chunks,
    /// Words of a whole body (no usage, no stream, no tokenizer: an estimate).
    Words,
}

impl TokenSource {
    /// The key in `Counts.token_count_source`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Usage => "usage",
            TokenSource::Tokenizer => "tokenizer",
            TokenSource::Chunks => "chunks",
            TokenSource::Words => "words",
        }
    }
}

/// Marks an absent time in a [`RequestRecord`].
pub const NONE_US: u32 = u32::MAX;

/// One request, compactly. Times are microseconds: `intended_us` and `sent_us` from the stage
/// start, the others after `sent_us` ([`NONE_US`] when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    /// Intended send time.
    pub intended_us: u64,
    /// Actual send time.
    pub sent_us: u64,
    /// First response bytes, after sent.
    pub first_byte_us: u32,
    /// First content chunk, after sent.
    pub first_token_us: u32,
    /// Last content chunk, after sent.
    pub last_token_us: u32,
    /// Response complete, after sent.
    pub end_us: u32,
    /// Prompt tokens: the server's count (usage), else the dataset's.
    pub input_tokens: u32,
    /// The prompt's tokens as the dataset counted them (0: not known, e.g. a later turn).
    pub dataset_input_tokens: u32,
    /// Output tokens (see `token_source`).
    pub output_tokens: u32,
    /// Prompt tokens the server had cached.
    pub cached_tokens: u32,
    /// Content chunks received.
    pub chunks: u32,
    /// Index of the model in the spec's list.
    pub model: u16,
    /// HTTP status (0: none).
    pub status: u16,
    /// Failure, if any.
    pub error: Option<ErrorKind>,
    /// Where `output_tokens` came from.
    pub token_source: TokenSource,
    /// The server counted the prompt otherwise than the tokenizer (see `Counts` in results.proto).
    pub prompt_mismatch: bool,
    /// The server's output length is not the one asked for (see `Counts` in results.proto).
    pub length_mismatch: bool,
    /// The answer was streamed: its first token's arrival was seen (else TTFT, TPOT and ITL are
    /// not measured: the whole answer arrives at once).
    pub streamed: bool,
    /// Waited for a concurrency slot.
    pub waited_for_slot: bool,
    /// A conversation's later turn: sent when the previous answer was in, not on the schedule
    /// (the load verdict tests the schedule on first turns only).
    pub later_turn: bool,
}

/// A finished request: its record and its content chunks (arrival after sent, µs; tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The record.
    pub record: RequestRecord,
    /// Content chunks in arrival order.
    pub chunks: Vec<(u32, u32)>,
}

/// Service-level objectives for goodput (ms; None: not set).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slo {
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Time per output token, excluding the first.
    pub tpot_ms: Option<f64>,
    /// End-to-end latency.
    pub e2e_ms: Option<f64>,
}

/// Largest value tracked: an hour in µs (larger values are recorded as this).
const MAX_TRACKED: u64 = 3_600_000_000;

/// A fixed-range histogram: no resizing (allocation) while recording.
pub(crate) fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED, 3).expect("valid bounds")
}

/// Aggregates of one stage.
#[derive(Debug, Clone)]
pub struct StageAggregate {
    pub(crate) ttft: Histogram<u64>,
    pub(crate) first_byte: Histogram<u64>,
    pub(crate) e2e: Histogram<u64>,
    pub(crate) tpot: Histogram<u64>,
    pub(crate) ntpot: Histogram<u64>,
    pub(crate) per_token: Histogram<u64>,
    pub(crate) itl: Histogram<u64>,
    pub(crate) itl_chunk: Histogram<u64>,
    pub(crate) lag: Histogram<u64>,
    pub(crate) ttft_intended: Histogram<u64>,
    pub(crate) e2e_intended: Histogram<u64>,
    pub(crate) input_tokens: Histogram<u64>,
    pub(crate) dataset_input_tokens: Histogram<u64>,
    pub(crate) output_tokens: Histogram<u64>,
    pub(crate) sent: u64,
    pub(crate) succeeded: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// The first failure of each kind, in words.
    pub(crate) first_errors: BTreeMap<&'static str, String>,
    pub(crate) sources: BTreeMap<&'static str, u64>,
    pub(crate) prompt_mismatches: u64,
    pub(crate) length_mismatches: u64,
    pub(crate) delayed: u64,
    pub(crate) late: u64,
    pub(crate) good: u64,
    pub(crate) cached: u64,
    pub(crate) input_total: u64,
    pub(crate) output_total: u64,
    /// Output tokens per whole second of the window (by token arrival).
    pub(crate) per_second: Vec<u64>,
    pub(crate) first_intended_us: Option<u64>,
    pub(crate) last_end_us: u64,
    pub(crate) slo: Slo,
}

/// Records µs into a histogram (values of 0 are recorded as 1 µs: HdrHistogram's lowest value).
fn rec(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// Sent more than this after the intended time is "late".
pub const LATE_US: u64 = 1_000;

impl StageAggregate {
    /// An empty aggregate with goodput thresholds.
    pub fn new(slo: Slo) -> Self {
        Self {
            ttft: hist(),
            first_byte: hist(),
            e2e: hist(),
            tpot: hist(),
            ntpot: hist(),
            per_token: hist(),
            itl: hist(),
            itl_chunk: hist(),
            lag: hist(),
            ttft_intended: hist(),
            e2e_intended: hist(),
            input_tokens: hist(),
            dataset_input_tokens: hist(),
            output_tokens: hist(),
            sent: 0,
            succeeded: 0,
            errors: BTreeMap::new(),
            first_errors: BTreeMap::new(),
            sources: BTreeMap::new(),
            prompt_mismatches: 0,
            length_mismatches: 0,
            delayed: 0,
            late: 0,
            good: 0,
            cached: 0,
            input_total: 0,
            output_total: 0,
            per_second: Vec::new(),
            first_intended_us: None,
            last_end_us: 0,
            slo,
        }
    }

    /// Keeps `words` as what went wrong with a failed request of `kind`, if it is the first.
    pub fn note_error(&mut self, kind: ErrorKind, words: &str) {
        self.first_errors.entry(kind.as_str()).or_insert_with(|| words.to_owned());
    }

    /// Adds one finished request.
    pub fn record(&mut self, o: &Outcome) {
        let r = &o.record;
        self.sent += 1;
        self.first_intended_us = Some(self.first_intended_us.map_or(r.intended_us, |f| f.min(r.intended_us)));
        let lag = r.sent_us.saturating_sub(r.intended_us);
        rec(&mut self.lag, lag);
        self.late += u64::from(lag > LATE_US);
        self.delayed += u64::from(r.waited_for_slot);
        if r.end_us != NONE_US {
            self.last_end_us = self.last_end_us.max(r.sent_us + u64::from(r.end_us));
        }
        if let Some(e) = r.error {
            *self.errors.entry(e.as_str()).or_default() += 1;
            return;
        }
        self.succeeded += 1;
        *self.sources.entry(r.token_source.as_str()).or_default() += 1;
        self.prompt_mismatches += u64::from(r.prompt_mismatch);
        self.length_mismatches += u64::from(r.length_mismatch);
        self.cached += u64::from(r.cached_tokens);
        self.input_total += u64::from(r.input_tokens);
        self.output_total += u64::from(r.output_tokens);
        rec(&mut self.input_tokens, u64::from(r.input_tokens));
        if r.dataset_input_tokens > 0 {
            rec(&mut self.dataset_input_tokens, u64::from(r.dataset_input_tokens));
        }
        rec(&mut self.output_tokens, u64::from(r.output_tokens));
        let e2e = u64::from(r.end_us);
        rec(&mut self.e2e, e2e);
        rec(&mut self.e2e_intended, e2e + lag);
        if r.first_byte_us != NONE_US {
            rec(&mut self.first_byte, u64::from(r.first_byte_us));
        }
        if r.first_token_us != NONE_US && r.streamed {
            let ttft = u64::from(r.first_token_us);
            rec(&mut self.ttft, ttft);
            rec(&mut self.ttft_intended, ttft + lag);
        }
        if r.output_tokens > 0 {
            rec(&mut self.ntpot, e2e / u64::from(r.output_tokens));
        }
        if let Some(per_token) = e2e.checked_div(u64::from(r.input_tokens) + u64::from(r.output_tokens)) {
            rec(&mut self.per_token, per_token);
        }
        // Chunks that carry tokens (a chunk the token spread gave none joins the next one). An
        // answer not streamed is one chunk at its end: no first token, no gaps to measure.
        let with_tokens: Vec<(u32, u32)> =
            if r.streamed { o.chunks.iter().copied().filter(|c| c.1 > 0).collect() } else { vec![] };
        let tpot = (r.output_tokens > 1 && with_tokens.len() >= 2).then(|| {
            let (first, last) = (with_tokens[0].0, with_tokens[with_tokens.len() - 1].0);
            u64::from(last.saturating_sub(first)) / u64::from(r.output_tokens - 1)
        });
        if let Some(t) = tpot {
            rec(&mut self.tpot, t);
        }
        if let Some(&(_, k)) = with_tokens.first()
            && k > 1
        {
            // The first chunk's tokens after the first arrived with it: gaps of 0.
            self.itl.saturating_record_n(1, u64::from(k - 1));
        }
        for w in with_tokens.windows(2) {
            let (gap, tokens) = (u64::from(w[1].0.saturating_sub(w[0].0)), u64::from(w[1].1));
            rec(&mut self.itl_chunk, gap);
            self.itl.saturating_record_n((gap / tokens).max(1), tokens);
        }
        for &(at, tokens) in &o.chunks {
            let second = ((r.sent_us + u64::from(at)) / 1_000_000) as usize;
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += u64::from(tokens);
        }
        let meets =
            |limit: Option<f64>, us: Option<u64>| limit.is_none_or(|l| us.is_some_and(|v| v as f64 <= l * 1000.0));
        let ttft = (r.first_token_us != NONE_US && r.streamed).then_some(u64::from(r.first_token_us));
        if meets(self.slo.ttft_ms, ttft)
            && meets(self.slo.tpot_ms, tpot.or(Some(0)))
            && meets(self.slo.e2e_ms, Some(e2e))
        {
            self.good += 1;
        }
    }

    /// Median TTFT so far, µs (0 before the first).
    pub fn ttft_p50_us(&self) -> u64 {
        if self.ttft.is_empty() { 0 } else { self.ttft.value_at_quantile(0.5) }
    }

    /// Counts `n` requests cut by a stop `at_us` after the stage start: sent, failed as
    /// "cancelled". The stage's window reaches the stop (it was measuring until then).
    pub fn record_cancelled(&mut self, n: u64, at_us: u64) {
        if n > 0 {
            self.sent += n;
            *self.errors.entry(ErrorKind::Cancelled.as_str()).or_default() += n;
            self.first_intended_us.get_or_insert(0);
            self.last_end_us = self.last_end_us.max(at_us);
        }
    }

    /// The stage's results (`offered` filled in by the caller but for the achieved rate).
    ///
    /// Only what was measured is given: a distribution with no sample, the rates of a stage with
    /// no window (nothing sent) and the goodput of no request are absent, never a 0 that reads as
    /// a measurement.
    pub fn finish(&self, name: &str, mut offered: Offered) -> StageResult {
        let window = self.first_intended_us.map_or(0.0, |f| self.last_end_us.saturating_sub(f) as f64 / 1e6);
        let measured = self.sent > 0 && window > 0.0;
        let per_s = |n: u64| n as f64 / window;
        offered.achieved_rate = measured.then(|| per_s(self.sent));
        offered.delayed_by_concurrency_cap = self.delayed;
        offered.late = self.late;
        let mut errors = std::collections::HashMap::new();
        for (k, v) in &self.errors {
            errors.insert((*k).to_owned(), *v);
        }
        let sources = self.sources.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        StageResult {
            name: name.to_owned(),
            offered: Some(offered),
            duration_seconds: if measured { window } else { 0.0 },
            counts: Some(Counts {
                sent: self.sent,
                succeeded: self.succeeded,
                failed: self.sent - self.succeeded,
                errors,
                token_count_source: sources,
                warmup: 0,
                prompt_token_mismatches: self.prompt_mismatches,
                output_length_mismatches: self.length_mismatches,
                first_errors: self.first_errors.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            }),
            throughput: measured.then(|| Throughput {
                requests_per_second: per_s(self.succeeded),
                input_tokens_per_second: per_s(self.input_total),
                output_tokens_per_second: per_s(self.output_total),
                max_output_tokens_per_second: self.per_second.iter().copied().max().unwrap_or(0) as f64,
            }),
            ttft_ms: dist_ms(&self.ttft),
            first_byte_ms: dist_ms(&self.first_byte),
            e2e_ms: dist_ms(&self.e2e),
            tpot_ms: dist_ms(&self.tpot),
            ntpot_ms: dist_ms(&self.ntpot),
            itl_ms: dist_ms(&self.itl),
            itl_chunk_ms: dist_ms(&self.itl_chunk),
            schedule_lag_ms: dist_ms(&self.lag),
            ttft_from_intended_ms: dist_ms(&self.ttft_intended),
            e2e_from_intended_ms: dist_ms(&self.e2e_intended),
            input_tokens: dist(&self.input_tokens, 1.0),
            dataset_input_tokens: dist(&self.dataset_input_tokens, 1.0),
            output_tokens: dist(&self.output_tokens, 1.0),
            goodput: (self.sent > 0).then(|| Goodput {
                ttft_ms: self.slo.ttft_ms.unwrap_or(0.0),
                tpot_ms: self.slo.tpot_ms.unwrap_or(0.0),
                e2e_ms: self.slo.e2e_ms.unwrap_or(0.0),
                good_requests: self.good,
                good_requests_per_second: if measured { per_s(self.good) } else { 0.0 },
                fraction: self.good as f64 / self.sent as f64,
            }),
            cached_prompt_tokens: self.cached,
            // Judged by the runner, which knows the schedule and what was in flight.
            verdict: None,
            server_agreement: None,
            workers: vec![],
            partial: None,
            server_metrics: Default::default(),
            per_token_ms: dist_ms(&self.per_token),
        }
    }
}

fn dist_ms(h: &Histogram<u64>) -> Option<Distribution> {
    dist(h, 1e-3)
}

/// Percentiles of `h`, each value × `scale`; None when it has no sample.
fn dist(h: &Histogram<u64>, scale: f64) -> Option<Distribution> {
    if h.is_empty() {
        return None;
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 * scale;
    Some(Distribution {
        count: h.len(),
        mean: h.mean() * scale,
        min: h.min() as f64 * scale,
        p50: q(0.50),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max() as f64 * scale,
        stddev: h.stdev() * scale,
        p0_1: q(0.001),
        p1: q(0.01),
        p5: q(0.05),
        p10: q(0.10),
        p25: q(0.25),
        p75: q(0.75),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Sent 2 ms late at 1 s; chunks at +100 ms (1 token), +150 ms (2), +250 ms (1); end +260 ms.
    pub(crate) fn example() -> Outcome {
        Outcome {
            record: RequestRecord {
                intended_us: 1_000_000,
                sent_us: 1_002_000,
                first_byte_us: 40_000,
                first_token_us: 100_000,
                last_token_us: 250_000,
                end_us: 260_000,
                input_tokens: 10,
                dataset_input_tokens: 10,
                output_tokens: 4,
                cached_tokens: 0,
                chunks: 3,
                model: 0,
                status: 200,
                error: None,
                token_source: TokenSource::Usage,
                prompt_mismatch: false,
                length_mismatch: false,
                streamed: true,
                waited_for_slot: false,
                later_turn: false,
            },
            chunks: vec![(100_000, 1), (150_000, 2), (250_000, 1)],
        }
    }

    #[test]
    fn distributions_have_every_percentile_peers_report() {
        let mut h = hist();
        for v in 1..=1000 {
            rec(&mut h, v);
        }
        let d = dist(&h, 1.0).unwrap();
        let got = [d.p0_1, d.p1, d.p5, d.p10, d.p25, d.p50, d.p75, d.p90, d.p95, d.p99, d.p999];
        assert_eq!(got, [1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 750.0, 900.0, 950.0, 990.0, 999.0]);
        assert_eq!((d.min, d.max, d.count), (1.0, 1000.0, 1000));
    }

    #[test]
    fn metric_arithmetic_matches_the_definitions() {
        let mut a = StageAggregate::new(Slo::default());
        a.record(&example());
        let s = a.finish("rate-1", Offered::default());
        // HdrHistogram keeps 3 significant digits: equal within 0.1 %.
        let close = |got: f64, want: f64| assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
        let mean = |d: &Option<Distribution>| d.as_ref().unwrap().mean;
        close(mean(&s.ttft_ms), 100.0);
        close(mean(&s.first_byte_ms), 40.0);
        close(mean(&s.e2e_ms), 260.0);
        close(mean(&s.ntpot_ms), 65.0); // 260 / 4
        close(mean(&s.per_token_ms), 18.571); // 260 / (10 + 4) = 18.571 ms (µs resolution)
        close(mean(&s.tpot_ms), 50.0); // (250 − 100) / 3
        // Per token: the 2-token chunk after 50 ms gives 25, 25; then 100: mean 50 = TPOT.
        let itl = s.itl_ms.unwrap();
        assert_eq!(itl.count, 3);
        close(itl.mean, 50.0);
        close(itl.min, 25.0);
        close(itl.max, 100.0);
        let chunk = s.itl_chunk_ms.unwrap();
        assert_eq!(chunk.count, 2);
        close(chunk.mean, 75.0);
        close(mean(&s.schedule_lag_ms), 2.0);
        close(mean(&s.ttft_from_intended_ms), 102.0);
        close(mean(&s.e2e_from_intended_ms), 262.0);
        // Window: intended 1.000 s → end 1.262 s.
        assert!((s.duration_seconds - 0.262).abs() < 1e-9);
        let t = s.throughput.unwrap();
        assert!((t.output_tokens_per_second - 4.0 / 0.262).abs() < 1e-9);
        assert_eq!(t.max_output_tokens_per_second, 4.0);
        assert_eq!(s.offered.unwrap().late, 1, "2 ms late is late");
    }

    #[test]
    fn failures_are_counted_by_kind_and_goodput_applies_every_threshold() {
        let mut a = StageAggregate::new(Slo { ttft_ms: Some(150.0), tpot_ms: Some(40.0), e2e_ms: None });
        a.record(&example()); // TPOT 50 > 40: not good
        let mut fast = example();
        fast.record.last_token_us = 200_000; // TPOT 33.3
        fast.chunks = vec![(100_000, 1), (150_000, 2), (200_000, 1)];
        a.record(&fast);
        let mut failed = example();
        failed.record.error = Some(ErrorKind::from_status(503));
        a.record(&failed);
        let s = a.finish("x", Offered::default());
        let c = s.counts.unwrap();
        assert_eq!((c.sent, c.succeeded, c.failed), (3, 2, 1));
        assert_eq!(c.errors.get("http_5xx"), Some(&1));
        let g = s.goodput.unwrap();
        assert_eq!(g.good_requests, 1);
        assert!((g.fraction - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_first_chunk_of_several_tokens_and_unstreamed_answers() {
        // First chunk 3 tokens at 100 ms, then 1 token at 200 ms: TPOT (200−100)/3; ITL 0, 0, 100.
        let mut o = example();
        o.chunks = vec![(100_000, 3), (200_000, 1)];
        o.record.last_token_us = 200_000;
        let mut a = StageAggregate::new(Slo::default());
        a.record(&o);
        let s = a.finish("x", Offered::default());
        let itl = s.itl_ms.unwrap();
        assert_eq!(itl.count, 3);
        assert!((itl.max - 100.0).abs() < 0.1 && itl.min <= 0.001, "{itl:?}");
        assert!((s.tpot_ms.unwrap().mean - 33.33).abs() < 0.1);
        // One chunk (not streamed): no TTFT (the whole answer arrives at its end), no TPOT, no
        // ITL: absent, not zero; e2e and NTPOT are measured.
        let mut o = example();
        o.chunks = vec![(260_000, 4)];
        o.record.streamed = false;
        let mut a = StageAggregate::new(Slo { tpot_ms: Some(1.0), ..Slo::default() });
        a.record(&o);
        let s = a.finish("x", Offered::default());
        assert_eq!(
            (s.ttft_ms, s.tpot_ms, s.itl_ms, s.itl_chunk_ms, s.ttft_from_intended_ms),
            (None, None, None, None, None)
        );
        assert_eq!(s.e2e_ms.unwrap().count, 1);
        assert_eq!(s.ntpot_ms.unwrap().count, 1);
        assert_eq!(s.goodput.unwrap().good_requests, 1, "a TPOT threshold does not apply without a TPOT");
    }

    #[test]
    fn nothing_measured_is_absent_and_a_stop_closes_the_window() {
        // Nothing sent: no window, no rates, no goodput, no distribution.
        let s = StageAggregate::new(Slo::default()).finish("x", Offered::default());
        assert_eq!(s.duration_seconds, 0.0);
        assert_eq!(s.offered.as_ref().unwrap().achieved_rate, None);
        assert!(s.throughput.is_none() && s.goodput.is_none() && s.e2e_ms.is_none() && s.schedule_lag_ms.is_none());
        // Every request failed: counts and rates, but no latency.
        let mut a = StageAggregate::new(Slo::default());
        let mut failed = example();
        failed.record.error = Some(ErrorKind::from_status(400));
        a.record(&failed);
        let s = a.finish("x", Offered::default());
        assert!(s.e2e_ms.is_none() && s.ttft_ms.is_none() && s.tpot_ms.is_none());
        assert_eq!(s.throughput.unwrap().requests_per_second, 0.0);
        // Stopped before any answer: the window runs from the stage start to the stop.
        let mut a = StageAggregate::new(Slo::default());
        a.record_cancelled(3, 2_000_000);
        let s = a.finish("x", Offered::default());
        assert_eq!(s.duration_seconds, 2.0);
        assert_eq!(s.offered.unwrap().achieved_rate, Some(1.5));
        assert_eq!(s.counts.unwrap().errors.get("cancelled"), Some(&3));
    }

    #[test]
    fn a_record_is_small() {
        assert!(std::mem::size_of::<RequestRecord>() <= 64, "{}", std::mem::size_of::<RequestRecord>());
    }
}
