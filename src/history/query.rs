//! The questions `inferbench history` answers, as SQL both stores accept (plain joins, `@name`
//! parameters, no dialect functions): `list`, `trend`, `check`, and the rows behind the report's
//! history section. Column names in a query come from [`super::schema`], never from the user.

use std::collections::BTreeMap;

use super::{
    HistoryError, Rows, Store, Value,
    schema::{Type, table},
};
use crate::report::{
    compare::{self, Comparison, Figure, StageDelta},
    model::HistoryPoint,
    stats::Interval,
};

/// Filters of `history list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Benchmark names matching this.
    pub name: Option<regex::Regex>,
    /// Exact model.
    pub model: Option<String>,
    /// Exact accelerator.
    pub accelerator: Option<String>,
    /// Exact server kind.
    pub server: Option<String>,
    /// Config fields: path = value (all must hold).
    pub fields: Vec<(String, String)>,
    /// Runs started at or after this (RFC 3339 or a prefix: `2026-12-01`).
    pub since: Option<String>,
    /// Runs started before this.
    pub until: Option<String>,
}

/// `history list`: runs and benchmarks, oldest first.
pub async fn list(store: &Store, f: &ListFilter) -> Result<Rows, HistoryError> {
    let mut sql =
        "SELECT r.started_at, r.run_id, b.benchmark, b.state, b.model, b.accelerator, b.server_kind, b.replicas, \
         (SELECT COUNT(*) FROM stages s WHERE s.run_id = b.run_id AND s.benchmark = b.benchmark) AS stages \
         FROM runs r JOIN benchmarks b ON b.run_id = r.run_id WHERE 1 = 1"
            .to_owned();
    let mut params: Vec<(String, Value)> = vec![];
    for (column, value) in [("b.model", &f.model), ("b.accelerator", &f.accelerator), ("b.server_kind", &f.server)] {
        if let Some(v) = value {
            let p = format!("p{}", params.len());
            sql.push_str(&format!(" AND {column} = @{p}"));
            params.push((p, v.as_str().into()));
        }
    }
    if let Some(since) = &f.since {
        sql.push_str(" AND r.started_at >= @since");
        params.push(("since".into(), since.as_str().into()));
    }
    if let Some(until) = &f.until {
        sql.push_str(" AND r.started_at < @until");
        params.push(("until".into(), until.as_str().into()));
    }
    for (path, value) in &f.fields {
        let (p, v) = (format!("p{}", params.len()), format!("p{}", params.len() + 1));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM config_fields c WHERE c.run_id = b.run_id AND c.benchmark = b.benchmark AND c.path = @{p} AND c.value = @{v})"
        ));
        params.push((p, path.as_str().into()));
        params.push((v, value.as_str().into()));
    }
    sql.push_str(" ORDER BY r.started_at, r.run_id, b.benchmark");
    let named: Vec<(&str, Value)> = params.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let mut rows = store.query(&sql, &named, true).await?;
    if let Some(re) = &f.name {
        rows.rows.retain(|r| matches!(&r[2], Value::Text(n) if re.is_match(n)));
    }
    Ok(rows)
}

/// A `--metric` of `trend`, resolved to a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// A numeric column of `stages` (`requests_per_second`, `achieved_rate`, …).
    Stage(&'static str),
    /// A statistic of a distribution: (`ttft_ms`, `p99`).
    Distribution(String, &'static str),
}

/// Parses `ttft_p99`, `e2e_ms_mean`, `output_tokens_p50`, `requests_per_second`, ….
pub fn metric(name: &str) -> Result<Metric, HistoryError> {
    let stages = table("stages").expect("a table");
    if let Some(c) = stages.columns[3..].iter().find(|c| c.0 == name && c.1 != Type::Text && c.0 != "stage_index") {
        return Ok(Metric::Stage(c.0));
    }
    let dists = table("distributions").expect("a table");
    let stats: Vec<&'static str> = dists.columns[5..].iter().map(|c| c.0).collect();
    let dist_names: Vec<&str> =
        crate::history::rows::distributions(&Default::default()).iter().map(|(n, _)| *n).collect();
    for stat in &stats {
        let Some(d) = name.strip_suffix(&format!("_{stat}")) else { continue };
        for candidate in [d.to_owned(), format!("{d}_ms")] {
            if dist_names.contains(&candidate.as_str()) {
                return Ok(Metric::Distribution(candidate, stat));
            }
        }
    }
    let stage_cols: Vec<&str> =
        stages.columns[3..].iter().filter(|c| c.1 != Type::Text && c.0 != "stage_index").map(|c| c.0).collect();
    Err(HistoryError::Question(format!(
        "unknown metric `{name}`: give DISTRIBUTION_STATISTIC (distributions: {}; statistics: {}; e.g. ttft_p99, e2e_mean) or a stage figure ({})",
        dist_names.iter().map(|d| d.trim_end_matches("_ms")).collect::<Vec<_>>().join(", "),
        stats.join(", "),
        stage_cols.join(", ")
    )))
}

/// `history trend`: `metric` of `benchmark`'s stages (all, or `stage`) over its runs, oldest
/// first: (started_at, run_id, stage, value).
pub async fn trend(store: &Store, benchmark: &str, m: &Metric, stage: Option<&str>) -> Result<Rows, HistoryError> {
    let stage_filter = if stage.is_some() { " AND s.stage = @stage" } else { "" };
    let sql = match m {
        Metric::Stage(col) => format!(
            "SELECT r.started_at, r.run_id, s.stage, s.{col} AS value FROM stages s JOIN runs r ON r.run_id = s.run_id \
             WHERE s.benchmark = @benchmark{stage_filter} ORDER BY r.started_at, r.run_id, s.stage_index"
        ),
        Metric::Distribution(_, stat) => format!(
            "SELECT r.started_at, r.run_id, s.stage, d.{stat} AS value FROM distributions d \
             JOIN stages s ON s.run_id = d.run_id AND s.benchmark = d.benchmark AND s.stage = d.stage \
             JOIN runs r ON r.run_id = d.run_id \
             WHERE d.benchmark = @benchmark AND d.metric = @metric{stage_filter} ORDER BY r.started_at, r.run_id, s.stage_index"
        ),
    };
    let mut params: Vec<(&str, Value)> = vec![("benchmark", benchmark.into())];
    if let Metric::Distribution(d, _) = m {
        params.push(("metric", d.as_str().into()));
    }
    if let Some(s) = stage {
        params.push(("stage", s.into()));
    }
    store.query(&sql, &params, true).await
}

/// A run as the history knows it.
#[derive(Debug, Clone)]
pub struct RunRef {
    /// Its id.
    pub run_id: String,
    /// When it started.
    pub started_at: String,
    /// Its folder when recorded.
    pub folder: String,
}

/// The run `run_id`, if recorded.
pub async fn run(store: &Store, run_id: &str) -> Result<Option<RunRef>, HistoryError> {
    let rows = store
        .query("SELECT run_id, started_at, folder FROM runs WHERE run_id = @run", &[("run", run_id.into())], true)
        .await?;
    Ok(rows.rows.first().map(|r| RunRef { run_id: text(&r[0]), started_at: text(&r[1]), folder: text(&r[2]) }))
}

/// The newest run started no later than `this` that measured one of its benchmarks.
pub async fn latest_before(store: &Store, this: &RunRef) -> Result<Option<RunRef>, HistoryError> {
    let rows = store
        .query(
            "SELECT r.run_id, r.started_at, r.folder FROM runs r WHERE r.run_id <> @run AND r.started_at <= @started \
             AND EXISTS (SELECT 1 FROM figures f WHERE f.run_id = r.run_id \
               AND f.benchmark IN (SELECT g.benchmark FROM figures g WHERE g.run_id = @run)) \
             ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1",
            &[("run", this.run_id.as_str().into()), ("started", this.started_at.as_str().into())],
            true,
        )
        .await?;
    Ok(rows.rows.first().map(|r| RunRef { run_id: text(&r[0]), started_at: text(&r[1]), folder: text(&r[2]) }))
}

/// The stages of run `run_id` whose client did not deliver the configured load (their verdict):
/// (benchmark, stage, reasons), in run order. Their latencies are not those of the load asked for.
pub async fn undelivered(store: &Store, run_id: &str) -> Result<Vec<(String, String, String)>, HistoryError> {
    let rows = store
        .query(
            "SELECT s.benchmark, s.stage, s.load_reasons FROM stages s \
             WHERE s.run_id = @run AND s.load_delivered = 0 ORDER BY s.benchmark, s.stage_index",
            &[("run", run_id.into())],
            true,
        )
        .await?;
    Ok(rows.rows.iter().map(|r| (text(&r[0]), text(&r[1]), text(&r[2]))).collect())
}

/// A stage's figures as recorded: (benchmark, stage) → figures, in run order.
async fn figures(store: &Store, run_id: &str) -> Result<Vec<((String, String), Vec<Figure>)>, HistoryError> {
    let rows = store
        .query(
            "SELECT f.benchmark, f.stage, f.metric, f.value, f.lo, f.hi, f.unassessable FROM figures f \
             JOIN stages s ON s.run_id = f.run_id AND s.benchmark = f.benchmark AND s.stage = f.stage \
             WHERE f.run_id = @run ORDER BY f.benchmark, s.stage_index",
            &[("run", run_id.into())],
            true,
        )
        .await?;
    let mut out: Vec<((String, String), Vec<Figure>)> = vec![];
    for r in rows.rows {
        let key = (text(&r[0]), text(&r[1]));
        let interval = Interval { value: num(&r[3]).unwrap_or(f64::NAN), lo: num(&r[4]), hi: num(&r[5]) };
        let unassessable = match &r[6] {
            Value::Text(t) => Some(t.as_str()),
            _ => None,
        };
        let Some(f) = Figure::known(&text(&r[2]), interval, unassessable) else { continue };
        match out.last_mut() {
            Some((k, v)) if *k == key => v.push(f),
            _ => out.push((key, vec![f])),
        }
    }
    // Figures in the report's order within a stage, whatever order the store returned.
    let rank = |f: &Figure| compare::FIGURES.iter().position(|g| g.0 == f.metric);
    for (_, v) in &mut out {
        v.sort_by_key(rank);
    }
    Ok(out)
}

/// `history check`: every benchmark × stage of `this` compared with `baseline` by the report's
/// rule (confidence intervals that do not overlap).
pub async fn check(store: &Store, this: &RunRef, baseline: &RunRef) -> Result<Comparison, HistoryError> {
    let (mine, theirs) = (figures(store, &this.run_id).await?, figures(store, &baseline.run_id).await?);
    let theirs_map: BTreeMap<&(String, String), &Vec<Figure>> = theirs.iter().map(|(k, v)| (k, v)).collect();
    let benches = |v: &[((String, String), Vec<Figure>)]| -> Vec<String> {
        let mut b: Vec<String> = v.iter().map(|((b, _), _)| b.clone()).collect();
        b.dedup();
        b
    };
    let (my_benches, their_benches) = (benches(&mine), benches(&theirs));
    let mut out = Comparison {
        baseline_id: baseline.run_id.clone(),
        baseline_dir: baseline.folder.clone().into(),
        stages: vec![],
        only_here: my_benches.iter().filter(|b| !their_benches.contains(b)).cloned().collect(),
        only_baseline: their_benches.iter().filter(|b| !my_benches.contains(b)).cloned().collect(),
        unmatched_stages: vec![],
    };
    for (key, figs) in &mine {
        match theirs_map.get(key) {
            Some(other) => out.stages.push(StageDelta {
                benchmark: key.0.clone(),
                stage: key.1.clone(),
                metrics: compare::pair(figs, other),
            }),
            None if their_benches.contains(&key.0) => {
                out.unmatched_stages.push((key.0.clone(), key.1.clone(), "this run"));
            }
            None => {}
        }
    }
    Ok(out)
}

/// The report's history section for `benchmarks` of run `run_id`: their headline figures in
/// every recorded run that started no later than it.
pub async fn report_points(
    store: &Store,
    run_id: &str,
    benchmarks: &[String],
) -> Result<Vec<HistoryPoint>, HistoryError> {
    let Some(this) = run(store, run_id).await? else { return Ok(vec![]) };
    let mut out = vec![];
    for b in benchmarks {
        let rows = store
            .query(
                "SELECT r.run_id, r.started_at, f.stage, f.metric, f.value FROM figures f \
                 JOIN runs r ON r.run_id = f.run_id \
                 JOIN stages s ON s.run_id = f.run_id AND s.benchmark = f.benchmark AND s.stage = f.stage \
                 WHERE f.benchmark = @benchmark AND r.started_at <= @started \
                 ORDER BY r.started_at, r.run_id, s.stage_index",
                &[("benchmark", b.as_str().into()), ("started", this.started_at.as_str().into())],
                true,
            )
            .await?;
        for r in rows.rows {
            let Some(metric) = compare::FIGURES.iter().find(|f| Value::Text(f.0.to_owned()) == r[3]).map(|f| f.0)
            else {
                continue;
            };
            out.push(HistoryPoint {
                benchmark: b.clone(),
                run_id: text(&r[0]),
                started_at: text(&r[1]),
                stage: text(&r[2]),
                metric,
                value: num(&r[4]).unwrap_or(f64::NAN),
            });
        }
    }
    Ok(out)
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(t) => t.clone(),
        Value::Int(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Null => String::new(),
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Int(n) => Some(*n as f64),
        _ => None,
    }
}

/// Rows as a terminal table (NULL as `-`, floats to 4 significant places).
pub fn table_text(rows: &Rows) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(rows.columns.clone());
    for r in &rows.rows {
        t.add_row(r.iter().map(cell).collect::<Vec<_>>());
    }
    t.to_string()
}

/// One value for a table.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Int(n) => n.to_string(),
        Value::Float(x) if x.is_finite() && x.fract() != 0.0 => {
            let digits = (4 - x.abs().log10().floor() as i32 - 1).clamp(0, 6) as usize;
            format!("{x:.digits$}")
        }
        Value::Float(x) => x.to_string(),
        Value::Text(t) => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_resolve_to_columns() {
        assert_eq!(metric("ttft_p99").unwrap(), Metric::Distribution("ttft_ms".into(), "p99"));
        assert_eq!(metric("e2e_ms_mean").unwrap(), Metric::Distribution("e2e_ms".into(), "mean"));
        assert_eq!(metric("output_tokens_p50").unwrap(), Metric::Distribution("output_tokens".into(), "p50"));
        assert_eq!(metric("ttft_p0_1").unwrap(), Metric::Distribution("ttft_ms".into(), "p0_1"));
        assert_eq!(metric("requests_per_second").unwrap(), Metric::Stage("requests_per_second"));
        let e = metric("ttft_p98").unwrap_err().to_string();
        assert!(e.contains("unknown metric `ttft_p98`") && e.contains("p999") && e.contains("achieved_rate"), "{e}");
        assert!(metric("stage_index").is_err() && metric("process").is_err());
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&Value::Float(12.3456)), "12.35");
        assert_eq!(cell(&Value::Float(0.012345)), "0.01235", "4 significant digits");
        assert_eq!(cell(&Value::Float(4.0)), "4");
        assert_eq!(cell(&Value::Null), "-");
    }
}
