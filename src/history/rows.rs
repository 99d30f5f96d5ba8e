//! A run as rows of the history's tables: what a store writes, built once from the run as the
//! report reads it ([`crate::report::model::Run`]), so the history holds the same numbers the
//! report shows. Nothing is re-invented: the stage columns are `summary.json`'s `StageResult`, the
//! config fields its resolved `benchmark.pbtxt`, the figures the report's comparison figures.

use std::collections::BTreeMap;

use prost_reflect::{DynamicMessage, Kind, MapKey, Value as Field};

use super::schema::{TABLES, Table};
use crate::{
    report::{
        ReportError,
        compare::{self, Figure},
        model::{Bench, ResultsKind, Run},
    },
    schema::{Distribution, StageResult},
};

/// A value of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL: not known or not measured.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
}

impl Value {
    /// Text, or NULL when empty.
    fn text_or_null(s: impl Into<String>) -> Value {
        let s = s.into();
        if s.is_empty() { Value::Null } else { Value::Text(s) }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(n: u32) -> Value {
        Value::Int(i64::from(n))
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}
impl From<f64> for Value {
    /// NaN (a percentile an older tool's file does not hold) is NULL: not measured. SQLite would
    /// make it NULL anyway; Spanner would keep it, and the two stores would disagree.
    fn from(x: f64) -> Value {
        if x.is_nan() { Value::Null } else { Value::Float(x) }
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// What kind of folder a run came from (the `runs.kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// A run folder of `inferbench run`.
    Run,
    /// The output folder of a stand-alone `inferbench load`.
    Load,
    /// A run folder of the original tool (latency-profile-generator files).
    Lpg,
}

impl RunKind {
    fn word(self) -> &'static str {
        match self {
            RunKind::Run => "run",
            RunKind::Load => "load",
            RunKind::Lpg => "lpg",
        }
    }
}

/// One run's rows, table by table in [`TABLES`] order (parents first).
#[derive(Debug, Clone)]
pub struct RunRows {
    /// Its id.
    pub run_id: String,
    /// Rows of each table, each in the table's column order.
    pub tables: Vec<(&'static Table, Vec<Vec<Value>>)>,
}

impl RunRows {
    /// Rows of `table`.
    pub fn of(&self, table: &str) -> &[Vec<Value>] {
        self.tables.iter().find(|(t, _)| t.name == table).map_or(&[], |(_, r)| r.as_slice())
    }

    fn push(&mut self, table: &str, row: Vec<Value>) {
        let (t, rows) = self.tables.iter_mut().find(|(t, _)| t.name == table).expect("a table of TABLES");
        debug_assert_eq!(row.len(), t.columns.len(), "{table}");
        rows.push(row);
    }
}

/// The distributions of a stage, by their `summary.json` names.
pub fn distributions(s: &StageResult) -> [(&'static str, Option<Distribution>); 14] {
    [
        ("ttft_ms", s.ttft_ms),
        ("first_byte_ms", s.first_byte_ms),
        ("e2e_ms", s.e2e_ms),
        ("tpot_ms", s.tpot_ms),
        ("ntpot_ms", s.ntpot_ms),
        ("itl_ms", s.itl_ms),
        ("itl_chunk_ms", s.itl_chunk_ms),
        ("schedule_lag_ms", s.schedule_lag_ms),
        ("ttft_from_intended_ms", s.ttft_from_intended_ms),
        ("e2e_from_intended_ms", s.e2e_from_intended_ms),
        ("per_token_ms", s.per_token_ms),
        ("input_tokens", s.input_tokens),
        ("dataset_input_tokens", s.dataset_input_tokens),
        ("output_tokens", s.output_tokens),
    ]
}

/// The rows of `run`, a folder of `kind`, run on `host` when known.
pub fn rows(run: &Run, kind: RunKind, host: Option<&str>) -> Result<RunRows, ReportError> {
    let mut out = RunRows { run_id: run.id.clone(), tables: TABLES.iter().map(|t| (t, vec![])).collect() };
    let id = || Value::from(run.id.as_str());
    let infos = || run.benchmarks.iter().filter_map(|b| b.results.as_ref()?.info.as_ref());
    let started = run
        .created_at
        .clone()
        .or_else(|| infos().map(|i| i.started_at.clone()).filter(|s| !s.is_empty()).min())
        .or_else(|| folder_time(run));
    let ended = run.benchmarks.iter().filter_map(|b| b.finished_at.clone()).max().or_else(|| run.updated_at.clone());
    let (started, ended) = (started.map(|s| utc(&s)), ended.map(|s| utc(&s)));
    let tool_version = run.tool_version.clone().or_else(|| infos().map(|i| i.tool_version.clone()).next());
    out.push(
        "runs",
        vec![
            id(),
            started.into(),
            ended.into(),
            Value::text_or_null(tool_version.unwrap_or_default()),
            Value::text_or_null(run.catalogs.join("\n")),
            host.map(str::to_owned).into(),
            kind.word().into(),
            run.dir.display().to_string().into(),
        ],
    );
    for b in &run.benchmarks {
        bench(&mut out, &run.id, b)?;
    }
    Ok(out)
}

/// An RFC 3339 time in UTC with microseconds (`2026-12-07T06:13:59.883161Z`): one width, so the
/// stores order runs by comparing text. A time that does not parse is kept as it is.
pub fn utc(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    time::OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(FORMAT).ok())
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// An LPG run has no recorded start: its newest result file's time stands in.
fn folder_time(run: &Run) -> Option<String> {
    let newest = run
        .benchmarks
        .iter()
        .filter_map(|b| b.results.as_ref())
        .flat_map(|r| r.files.iter())
        .filter_map(|f| f.metadata().ok()?.modified().ok())
        .max()?;
    let t = time::OffsetDateTime::from(newest);
    t.format(&time::format_description::well_known::Rfc3339).ok().map(|s| utc(&s))
}

fn bench(out: &mut RunRows, run_id: &str, b: &Bench) -> Result<(), ReportError> {
    let info = b.results.as_ref().and_then(|r| r.info.as_ref());
    let fields = match (&b.config, info) {
        (Some(text), _) => config_fields(text, "Benchmark", "config", ""),
        (None, Some(i)) if !i.load_spec.is_empty() => {
            config_fields(&i.load_spec, "LoadSpec", "", "benchmark_tool.load.")
        }
        _ => BTreeMap::new(),
    };
    let get = |p: &str| fields.get(p).cloned();
    let server_kind = ["vllm", "sglang", "tgi", "triton", "jetstream", "simulator", "external"].into_iter().find(|k| {
        fields.keys().any(|p| p == &format!("model_server.{k}") || p.starts_with(&format!("model_server.{k}.")))
    });
    let model = server_kind
        .and_then(|k| get(&format!("model_server.{k}.model")))
        .or_else(|| info.map(|i| i.models.join(",")).filter(|m| !m.is_empty()));
    let replicas = server_kind
        .filter(|k| *k != "external")
        .map(|_| get("model_server.replicas").and_then(|r| r.parse::<i64>().ok()).unwrap_or(1));
    let base = b.base.as_ref().map(|b| b.name.clone());
    let k = |s: &str| -> Vec<Value> { vec![run_id.into(), b.name.as_str().into(), s.into()] };
    out.push(
        "benchmarks",
        vec![
            run_id.into(),
            b.name.as_str().into(),
            base.into(),
            b.state_label().into(),
            model.into(),
            get("model_server.accelerator").into(),
            replicas.into(),
            server_kind.into(),
            get("model_server.image").into(),
            info.map(|i| i.url.clone()).filter(|u| !u.is_empty()).into(),
            info.map(|i| i.api.clone()).filter(|a| !a.is_empty()).into(),
            b.config.clone().into(),
            b.started_at.clone().into(),
            b.finished_at.clone().into(),
            b.seconds.into(),
            b.reason.clone().into(),
        ],
    );
    for (path, value) in &fields {
        out.push(
            "config_fields",
            vec![run_id.into(), b.name.as_str().into(), path.as_str().into(), value.as_str().into()],
        );
    }
    let records = match b.results.as_ref().map(|r| r.kind) {
        Some(ResultsKind::Complete | ResultsKind::Failed) => compare::samples(b)?,
        _ => None,
    };
    for (i, s) in b.stages().iter().enumerate() {
        stage(out, k(&s.name), i, s);
        for (kind, n) in s.counts.as_ref().map(|c| c.errors.clone()).unwrap_or_default() {
            let mut row = k(&s.name);
            row.extend([kind.into(), n.into()]);
            out.push("stage_errors", row);
        }
        for (metric, d) in distributions(s) {
            let Some(d) = d.filter(|d| d.count > 0) else { continue };
            let mut row = k(&s.name);
            row.push(metric.into());
            row.push(d.count.into());
            row.extend(
                [
                    d.mean, d.min, d.p0_1, d.p1, d.p5, d.p10, d.p25, d.p50, d.p75, d.p90, d.p95, d.p99, d.p999, d.max,
                    d.stddev,
                ]
                .map(Value::from),
            );
            out.push("distributions", row);
        }
        for (name, m) in &s.server_metrics {
            let mut row = k(&s.name);
            row.extend([
                name.as_str().into(),
                m.kind.as_str().into(),
                m.mean.into(),
                m.min.into(),
                m.max.into(),
                m.last.into(),
                m.samples.into(),
                m.total.into(),
            ]);
            out.push("server_metrics", row);
        }
        let samples = records.as_ref().and_then(|r| r.get(&s.name));
        for f in compare::figures(s, samples) {
            out.push("figures", figure_row(k(&s.name), &f));
        }
    }
    Ok(())
}

fn figure_row(mut row: Vec<Value>, f: &Figure) -> Vec<Value> {
    row.extend([
        f.metric.into(),
        f.unit.into(),
        f.interval.value.into(),
        f.interval.lo.into(),
        f.interval.hi.into(),
        Value::Int(i64::from(f.lower_is_better)),
        f.unassessable.into(),
    ]);
    row
}

fn stage(out: &mut RunRows, mut row: Vec<Value>, index: usize, s: &StageResult) {
    let o = s.offered.clone().unwrap_or_default();
    let c = s.counts.clone().unwrap_or_default();
    let t = s.throughput.unwrap_or_default();
    let g = s.goodput.unwrap_or_default();
    let measured = s.throughput.is_some();
    let when = |x: f64| if measured { Value::from(x) } else { Value::Null };
    row.extend([
        Value::Int(i64::try_from(index).unwrap_or(i64::MAX)),
        Value::text_or_null(o.process.clone()),
        o.requested_rate.into(),
        o.users.into(),
        o.achieved_rate.into(),
        s.duration_seconds.into(),
        c.sent.into(),
        c.succeeded.into(),
        c.failed.into(),
        c.warmup.into(),
        o.dropped.into(),
        o.late.into(),
        o.delayed_by_concurrency_cap.into(),
        o.client_cpu_seconds.into(),
        o.client_cores.into(),
        o.host_steal_seconds.into(),
        when(t.requests_per_second),
        when(t.input_tokens_per_second),
        when(t.output_tokens_per_second),
        when(t.max_output_tokens_per_second),
        s.goodput.map(|_| g.good_requests).into(),
        s.goodput.map(|_| g.good_requests_per_second).into(),
        s.goodput.map(|_| g.fraction).into(),
        s.cached_prompt_tokens.into(),
        c.prompt_token_mismatches.into(),
        c.output_length_mismatches.into(),
        if o.users > 0 { o.users_ran.into() } else { Value::Null },
        s.verdict.as_ref().map(|v| i64::from(v.delivered)).into(),
        s.verdict.as_ref().filter(|v| !v.delivered).map(|v| v.reasons.join("\n")).into(),
    ]);
    out.push("stages", row);
}

/// Every field set in `text` (a `message` in protobuf text format), flattened to path = value:
/// of the sub-message `under` when given (paths relative to it), each path after `prefix`. A
/// config that does not parse gives none (its text is still stored whole).
pub fn config_fields(text: &str, message: &str, under: &str, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(msg) = DynamicMessage::parse_text_format(crate::schema::message(message), text) else { return out };
    let root = if under.is_empty() {
        Some(msg)
    } else {
        msg.get_field_by_name(under).and_then(|v| v.as_message().cloned()).filter(|_| msg.has_field_by_name(under))
    };
    if let Some(root) = root {
        flatten(&root, prefix.trim_end_matches('.'), &mut out);
    }
    out
}

fn flatten(msg: &DynamicMessage, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (field, value) in msg.fields() {
        let path = if prefix.is_empty() { field.name().to_owned() } else { format!("{prefix}.{}", field.name()) };
        leaf(&field.kind(), value, path, out);
    }
    if msg.fields().next().is_none() && !prefix.is_empty() {
        // A message set but empty (`simulator {}`) still says which case was chosen.
        out.insert(prefix.to_owned(), "{}".to_owned());
    }
}

fn leaf(kind: &Kind, value: &Field, path: String, out: &mut BTreeMap<String, String>) {
    match value {
        Field::Message(m) => flatten(m, &path, out),
        Field::List(items) => {
            for (i, item) in items.iter().enumerate() {
                leaf(kind, item, format!("{path}[{i}]"), out);
            }
        }
        Field::Map(map) => {
            let value_kind = kind.as_message().map(|m| m.map_entry_value_field().kind());
            for (key, item) in map {
                let key = match key {
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                    MapKey::String(s) => s.clone(),
                };
                leaf(value_kind.as_ref().unwrap_or(kind), item, format!("{path}[{key}]"), out);
            }
        }
        Field::EnumNumber(n) => {
            let name = kind.as_enum().and_then(|e| e.get_value(*n)).map_or(n.to_string(), |v| v.name().to_owned());
            out.insert(path, name);
        }
        Field::Bool(b) => {
            out.insert(path, b.to_string());
        }
        Field::I32(n) => {
            out.insert(path, n.to_string());
        }
        Field::I64(n) => {
            out.insert(path, n.to_string());
        }
        Field::U32(n) => {
            out.insert(path, n.to_string());
        }
        Field::U64(n) => {
            out.insert(path, n.to_string());
        }
        Field::F32(x) => {
            out.insert(path, x.to_string());
        }
        Field::F64(x) => {
            out.insert(path, x.to_string());
        }
        Field::String(s) => {
            out.insert(path, s.clone());
        }
        Field::Bytes(b) => {
            out.insert(path, hex::encode(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_one_width() {
        assert_eq!(utc("2026-12-07T06:13:59.883161797Z"), "2026-12-07T06:13:59.883161Z");
        assert_eq!(utc("2026-12-07T08:13:59+02:00"), "2026-12-07T06:13:59.000000Z");
        assert_eq!(utc("yesterday"), "yesterday");
    }

    #[test]
    fn a_config_flattens_to_paths() {
        let text = r#"name: "b" config { model_server { replicas: 8 accelerator: "nvidia-l4" simulator { } }
            benchmark_tool { load { models: "m" models: "n" rates { request_rates: 4 } } } }"#;
        let f = config_fields(text, "Benchmark", "config", "");
        assert_eq!(f.get("model_server.replicas").map(String::as_str), Some("8"));
        assert_eq!(f.get("model_server.simulator").map(String::as_str), Some("{}"));
        assert_eq!(f.get("benchmark_tool.load.models[1]").map(String::as_str), Some("n"));
        assert_eq!(f.get("benchmark_tool.load.rates.request_rates[0]").map(String::as_str), Some("4"));
        assert!(!f.contains_key("name"), "only the config");
        assert!(config_fields("not { text", "Benchmark", "config", "").is_empty());
        let load = config_fields(r#"models: "m" api: OPENAI_CHAT_COMPLETIONS"#, "LoadSpec", "", "benchmark_tool.load.");
        assert_eq!(load.get("benchmark_tool.load.models[0]").map(String::as_str), Some("m"));
    }
}
