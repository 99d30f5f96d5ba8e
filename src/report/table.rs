//! The summary tables on a terminal (comfy-table): the brief one `inferbench run` and
//! `inferbench load` print when they end, and the full one of `inferbench report` (per benchmark ×
//! stage: achieved QPS, TTFT/TPOT/ITL/e2e p50/p90/p99, tokens/s, goodput, errors, whether the
//! client kept up). The cell
//! formatters are shared with the HTML page, so a number reads the same everywhere.

use comfy_table::{CellAlignment, Table, presets::UTF8_BORDERS_ONLY};

use super::model::Run;
use crate::schema::{Counts, Distribution, StageResult};

/// One row of the brief table.
pub struct Row<'a> {
    /// Benchmark name (empty for `inferbench load`).
    pub benchmark: &'a str,
    /// The stage, or a note when the benchmark has no results.
    pub stage: Result<&'a StageResult, String>,
}

/// The brief table: one row per stage, what was offered and what came back.
pub fn brief(rows: &[Row<'_>]) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    let with_benchmark = rows.iter().any(|r| !r.benchmark.is_empty());
    let mut header =
        vec!["stage", "sent", "ok", "ok req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "e2e p50", "goodput"];
    if with_benchmark {
        header.insert(0, "benchmark");
    }
    t.set_header(header);
    for r in rows {
        let mut cells: Vec<String> = if with_benchmark { vec![r.benchmark.to_owned()] } else { vec![] };
        match &r.stage {
            Err(note) => cells.push(note.clone()),
            Ok(s) => {
                let c = s.counts.clone().unwrap_or_default();
                // Not measured (nothing succeeded, or not streamed: no TTFT): "-", never 0.
                let ms = |d: Option<Distribution>, p99: bool| match d.filter(|d| d.count > 0) {
                    Some(d) => format!("{:.1} ms", if p99 { d.p99 } else { d.p50 }),
                    None => "-".into(),
                };
                cells.extend([
                    s.name.clone(),
                    c.sent.to_string(),
                    c.succeeded.to_string(),
                    num(s.throughput.map_or(f64::NAN, |t| t.requests_per_second), 2),
                    num(s.throughput.map_or(f64::NAN, |t| t.output_tokens_per_second), 0),
                    ms(s.ttft_ms, false),
                    ms(s.ttft_ms, true),
                    ms(s.tpot_ms, false),
                    ms(s.e2e_ms, false),
                    goodput(s),
                ]);
            }
        }
        t.add_row(cells);
    }
    t.to_string()
}

/// The full table of a run: every benchmark × stage, and a row for each benchmark without
/// results saying why.
pub fn full(run: &Run) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header([
        "benchmark",
        "stage",
        "state",
        "offered",
        "QPS",
        "TTFT ms p50/p90/p99",
        "TPOT ms p50/p90/p99",
        "ITL ms p50/p90/p99",
        "e2e ms p50/p90/p99",
        "out tok/s",
        "goodput",
        "errors",
        "client",
        "load delivered",
    ]);
    for b in &run.benchmarks {
        if b.stages().is_empty() {
            let why = b.why().unwrap_or_default();
            t.add_row(vec![b.name.clone(), "-".into(), b.state_label().into(), why]);
            continue;
        }
        for s in b.stages() {
            t.add_row(vec![
                b.name.clone(),
                s.name.clone(),
                b.state_label().into(),
                offered(s),
                num(achieved_qps(s), 2),
                triple(s.ttft_ms.as_ref()),
                triple(s.tpot_ms.as_ref()),
                triple(s.itl_ms.as_ref()),
                triple(s.e2e_ms.as_ref()),
                num(s.throughput.map_or(f64::NAN, |t| t.output_tokens_per_second), 0),
                goodput(s),
                errors(s.counts.as_ref()),
                client(s),
                delivered(s),
            ]);
        }
    }
    for i in 4..=10 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}

/// Requests sent per second of the window (what the client achieved of the offered load).
pub fn achieved_qps(s: &StageResult) -> f64 {
    s.offered.as_ref().and_then(|o| o.achieved_rate).unwrap_or(f64::NAN)
}

/// `v` with `decimals` decimals; "-" when unknown (NaN).
pub fn num(v: f64, decimals: usize) -> String {
    if v.is_nan() { "-".into() } else { format!("{v:.decimals$}") }
}

/// A latency in ms with the decimals its size deserves (three significant digits or so).
pub fn ms(v: f64) -> String {
    let decimals = match v.abs() {
        x if x < 10.0 => 2,
        x if x < 1000.0 => 1,
        _ => 0,
    };
    num(v, decimals)
}

/// "p50 / p90 / p99" of a latency distribution, "-" when there is none.
pub fn triple(d: Option<&Distribution>) -> String {
    match d.filter(|d| d.count > 0) {
        None => "-".into(),
        Some(d) => format!("{} / {} / {}", ms(d.p50), ms(d.p90), ms(d.p99)),
    }
}

/// What was offered: a rate, "all at once", or closed-loop users.
pub fn offered(s: &StageResult) -> String {
    let o = s.offered.clone().unwrap_or_default();
    if o.users > 0 {
        format!("{} users", o.users)
    } else if o.requested_rate.is_infinite() {
        "all at once".into()
    } else {
        format!("{} req/s", o.requested_rate)
    }
}

/// The goodput fraction, or "-" when no SLO threshold was set.
pub fn goodput(s: &StageResult) -> String {
    match &s.goodput {
        Some(g) if g.ttft_ms > 0.0 || g.tpot_ms > 0.0 || g.e2e_ms > 0.0 => format!("{:.0} %", g.fraction * 100.0),
        _ => "-".into(),
    }
}

/// The load verdict in a word or two: "yes", "no: rate, lag" (the failed checks), "-" for results
/// from before the verdict.
pub fn delivered(s: &StageResult) -> String {
    match &s.verdict {
        None => "-".into(),
        Some(v) if v.delivered => "yes".into(),
        Some(v) => {
            let failed: Vec<&str> = v.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
            format!("no: {}", failed.join(", "))
        }
    }
}

/// Whether the client kept up: its schedule lag p99, CPU and the host's steal ("lag p99 0.15 ms,
/// CPU 78 % of 1 core"); a latency is trusted only when the client that measured it was not late.
pub fn client(s: &StageResult) -> String {
    let lag = s.schedule_lag_ms.filter(|d| d.count > 0).map(|d| format!("lag p99 {} ms", ms(d.p99)));
    let cpu = Some(client_cpu(s)).filter(|c| !c.is_empty());
    let parts: Vec<String> = lag.into_iter().chain(cpu).collect();
    if parts.is_empty() { "-".into() } else { parts.join(", ") }
}

/// The client's CPU use over the stage ("CPU 78 % of 1 core"), and the host's steal when it is
/// more than 1 % of the stage (", host steal 0.23 s"): why a client fell behind, if it did. Empty
/// for results from before these were measured.
pub fn client_cpu(s: &StageResult) -> String {
    let o = s.offered.clone().unwrap_or_default();
    let duration = s.duration_seconds;
    if o.client_cores == 0 || duration <= 0.0 {
        return String::new();
    }
    let cores = if o.client_cores == 1 { "1 core".to_owned() } else { format!("{} cores", o.client_cores) };
    let busy = 100.0 * o.client_cpu_seconds / (duration * f64::from(o.client_cores));
    let steal = if o.host_steal_seconds >= 0.01 * duration {
        format!(", host steal {:.2} s", o.host_steal_seconds)
    } else {
        String::new()
    };
    format!("CPU {busy:.0} % of {cores}{steal}")
}

/// The workers of a stage shared by several (`LoadSpec.workers`): each one's part, so one that
/// lagged, failed or died shows though the stage's figures are merged. Empty for one process.
pub fn workers_table(s: &StageResult) -> String {
    if s.workers.is_empty() {
        return String::new();
    }
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(["stage", "worker", "sent", "failed", "req/s", "lag p99", "client CPU", "dropped", "start", "load"]);
    for w in &s.workers {
        if w.missing {
            t.add_row(vec![s.name.clone(), w.index.to_string(), "missing: did not report this stage".into()]);
            continue;
        }
        t.add_row(vec![
            s.name.clone(),
            w.index.to_string(),
            w.sent.to_string(),
            w.failed.to_string(),
            num(w.achieved_rate.unwrap_or(f64::NAN), 2),
            w.schedule_lag_p99_ms.map_or("-".into(), ms),
            format!("{:.2} s", w.client_cpu_seconds),
            w.dropped.to_string(),
            format!("+{:.2} ms", w.start_offset_ms),
            if w.delivered { "delivered".into() } else { "NOT delivered".into() },
        ]);
    }
    for i in 2..=8 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let skew = worker_start_skew_ms(s).map_or(String::new(), |k| format!("\nstart skew between workers: {k:.2} ms"));
    let partial = s.partial.as_ref().map_or(String::new(), |p| format!("\n{}", p.reason));
    format!("{t}{skew}{partial}")
}

/// The spread of the workers' starts (the latest's offset less the earliest's), ms.
pub fn worker_start_skew_ms(s: &StageResult) -> Option<f64> {
    let offsets: Vec<f64> = s.workers.iter().filter(|w| !w.missing).map(|w| w.start_offset_ms).collect();
    let (lo, hi) = offsets.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    (offsets.len() > 1).then_some(hi - lo)
}

/// Failed requests and their kinds: "3 (http_5xx 2, timeout 1)".
pub fn errors(c: Option<&Counts>) -> String {
    let Some(c) = c else { return "-".into() };
    if c.failed == 0 {
        return "0".into();
    }
    format!("{} ({})", c.failed, error_kinds(c))
}

/// "http_5xx 2, timeout 1", kinds in name order.
pub fn error_kinds(c: &Counts) -> String {
    let mut kinds: Vec<(&String, &u64)> = c.errors.iter().filter(|(_, n)| **n > 0).collect();
    kinds.sort();
    kinds.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Offered;

    fn stage(lag_p99: Option<f64>, cpu: f64, cores: u32, steal: f64) -> StageResult {
        StageResult {
            duration_seconds: 10.0,
            schedule_lag_ms: lag_p99.map(|p99| Distribution { count: 5, p99, ..Default::default() }),
            offered: Some(Offered {
                client_cpu_seconds: cpu,
                client_cores: cores,
                host_steal_seconds: steal,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_client_cell_says_lag_cpu_and_steal_only_when_it_matters() {
        // 7.8 s of CPU over 10 s on one core; steal under 1 % of the stage is left out.
        assert_eq!(client(&stage(Some(0.153), 7.8, 1, 0.09)), "lag p99 0.15 ms, CPU 78 % of 1 core");
        // 3 s over 10 s on 2 cores is 15 %; 0.25 s of steal is 2.5 % of the stage.
        assert_eq!(
            client(&stage(Some(12.34), 3.0, 2, 0.25)),
            "lag p99 12.3 ms, CPU 15 % of 2 cores, host steal 0.25 s"
        );
        // Results from before CPU was measured: the lag alone; nothing measured at all: "-".
        assert_eq!(client(&stage(Some(1.0), 0.0, 0, 0.0)), "lag p99 1.00 ms");
        assert_eq!(client(&stage(None, 0.0, 0, 0.0)), "-");
        assert_eq!(client_cpu(&stage(None, 7.8, 1, 0.0)), "CPU 78 % of 1 core");
    }
}
