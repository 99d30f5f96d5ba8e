//! The history's tables, described once: both stores create them from this description (each in
//! its own dialect), the row builder fills them in this column order, `inferbench history schema`
//! prints them, and the README documents them. A new column or table is a new migration: a
//! database stamped with a newer version than [`VERSION`] is refused, never written.

/// A column's type, as each store spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Text (UTF-8).
    Text,
    /// A 64-bit integer (booleans are 0/1).
    Int,
    /// A 64-bit float (`Infinity` for an all-at-once rate).
    Float,
}

/// The dialect a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (the embedded store).
    Sqlite,
    /// Cloud Spanner's GoogleSQL.
    Spanner,
}

/// A column: name, type, what it holds.
pub type Column = (&'static str, Type, &'static str);

/// A table.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// What a row is.
    pub doc: &'static str,
    /// Its columns, the key's first.
    pub columns: &'static [Column],
    /// How many leading columns form the primary key.
    pub key: usize,
    /// The table whose key prefixes this one's (Spanner interleaves it there).
    pub parent: Option<&'static str>,
}

impl Table {
    /// The column names, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|c| c.0)
    }

    /// The `CREATE TABLE` statement in `dialect`.
    pub fn ddl(&self, dialect: Dialect) -> String {
        let key: Vec<&str> = self.columns[..self.key].iter().map(|c| c.0).collect();
        let cols: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, ty, _))| {
                format!("{name} {}{}", ty.sql(dialect), if i < self.key { " NOT NULL" } else { "" })
            })
            .collect();
        match dialect {
            Dialect::Sqlite => {
                format!("CREATE TABLE {} ({}, PRIMARY KEY ({}))", self.name, cols.join(", "), key.join(", "))
            }
            Dialect::Spanner => {
                let interleave =
                    self.parent.map(|p| format!(", INTERLEAVE IN PARENT {p} ON DELETE CASCADE")).unwrap_or_default();
                format!("CREATE TABLE {} ({}) PRIMARY KEY ({}){interleave}", self.name, cols.join(", "), key.join(", "))
            }
        }
    }
}

impl Type {
    /// The column type in `dialect`.
    fn sql(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (Dialect::Sqlite, Type::Text) => "TEXT",
            (Dialect::Sqlite, Type::Int) => "INTEGER",
            (Dialect::Sqlite, Type::Float) => "REAL",
            (Dialect::Spanner, Type::Text) => "STRING(MAX)",
            (Dialect::Spanner, Type::Int) => "INT64",
            (Dialect::Spanner, Type::Float) => "FLOAT64",
        }
    }
}

/// The schema version this inferbench writes and reads. 2 added the load verdict to `stages`
/// ([`ADDED_IN_2`]).
pub const VERSION: i64 = 2;

/// The columns schema 2 added, at the end of their table: (table, column).
pub const ADDED_IN_2: &[(&str, &str)] =
    &[("stages", "users_ran"), ("stages", "load_delivered"), ("stages", "load_reasons")];

/// The table holding the schema version (one row).
pub const SCHEMA_INFO: Table = Table {
    name: "schema_info",
    doc: "The schema version of this database and the inferbench that last migrated it (one row, id 1).",
    columns: &[
        ("id", Type::Int, "always 1"),
        ("version", Type::Int, "schema version"),
        ("written_by", Type::Text, "inferbench version that created or migrated it"),
    ],
    key: 1,
    parent: None,
};

use Type::{Float, Int, Text};

/// The run-keyed tables, parents first. Every one's key starts with `run_id`: a run is replaced
/// whole by deleting its rows from each and writing them again.
pub const TABLES: &[Table] = &[
    Table {
        name: "runs",
        doc: "One run: an `inferbench run` (a run folder), an `inferbench load --output-dir`, or an imported folder.",
        columns: &[
            (
                "run_id",
                Text,
                "the run id (a run folder's name; for a stand-alone load, its metadata's run_id or `load-` and its start)",
            ),
            ("started_at", Text, "RFC 3339 UTC: when the run was created (run.json) or its load started"),
            ("ended_at", Text, "RFC 3339 UTC: when its last benchmark finished (or run.json was last written)"),
            ("tool_version", Text, "the inferbench version that ran it (empty for the original tool's runs)"),
            ("catalog_files", Text, "the catalog files it read, one per line"),
            ("host", Text, "the machine that ran it, when known"),
            ("kind", Text, "`run` (a run folder), `load` (a stand-alone load) or `lpg` (the original tool's files)"),
            ("folder", Text, "where its folder was when recorded"),
        ],
        key: 1,
        parent: None,
    },
    Table {
        name: "benchmarks",
        doc: "One benchmark of a run, whatever became of it.",
        columns: &[
            ("run_id", Text, "its run"),
            ("benchmark", Text, "its name"),
            ("base", Text, "its base benchmark"),
            ("state", Text, "done, failed, skipped, pending, running, or `no results`"),
            ("model", Text, "the model served (the server's `model`, else the load's models, comma-separated)"),
            ("accelerator", Text, "model_server.accelerator"),
            ("replicas", Int, "model_server.replicas (1 when unset)"),
            ("server_kind", Text, "vllm, sglang, tgi, triton, jetstream, simulator or external"),
            ("server_image", Text, "model_server.image when set"),
            ("url", Text, "the URL the load engine sent to"),
            ("api", Text, "the API it spoke (LoadSpec.Api)"),
            ("config_text", Text, "the resolved config (benchmark.pbtxt), protobuf text format"),
            ("started_at", Text, "RFC 3339: when its last attempt started"),
            ("finished_at", Text, "RFC 3339: when its last attempt finished"),
            ("seconds", Float, "seconds its last attempt took"),
            ("reason", Text, "why it failed or was skipped"),
        ],
        key: 2,
        parent: Some("runs"),
    },
    Table {
        name: "config_fields",
        doc: "Every field set in a benchmark's resolved config, flattened: `model_server.replicas` = `8`, `benchmark_tool.load.rates.request_rates[0]` = `4`.",
        columns: &[
            ("run_id", Text, "its run"),
            ("benchmark", Text, "its benchmark"),
            ("path", Text, "the field's path from BenchmarkConfig (lists as [i], maps as [key])"),
            ("value", Text, "its value as text (enums by name, booleans true/false)"),
        ],
        key: 3,
        parent: Some("benchmarks"),
    },
    Table {
        name: "stages",
        doc: "One load stage of a benchmark (a rate, a stage, a user count, a sweep probe): summary.json's StageResult.",
        columns: &[
            ("run_id", Text, "its run"),
            ("benchmark", Text, "its benchmark"),
            ("stage", Text, "its name: rate-4, stage-2, users-16, …"),
            ("stage_index", Int, "its place in the run order (0-based)"),
            ("process", Text, "the arrival process: poisson, constant, gamma(…), closed-loop"),
            ("requested_rate", Float, "requested arrival rate, req/s (0 closed loop, Infinity all at once)"),
            ("users", Int, "closed loop: virtual users"),
            ("achieved_rate", Float, "requests sent / window"),
            ("duration_seconds", Float, "the measurement window"),
            ("sent", Int, "requests sent"),
            ("succeeded", Int, "requests that succeeded"),
            ("failed", Int, "requests that failed"),
            ("warmup", Int, "requests excluded as warm-up"),
            ("dropped", Int, "arrivals never sent"),
            ("late", Int, "arrivals sent > 1 ms late"),
            ("delayed_by_concurrency_cap", Int, "arrivals that waited for a concurrency slot"),
            ("client_cpu_seconds", Float, "CPU the client used"),
            ("client_cores", Int, "cores the client could use"),
            ("host_steal_seconds", Float, "time the hypervisor took from the machine"),
            ("requests_per_second", Float, "successful requests / window"),
            ("input_tokens_per_second", Float, "prompt tokens of successful requests / window"),
            ("output_tokens_per_second", Float, "output tokens of successful requests / window"),
            ("max_output_tokens_per_second", Float, "highest output tokens in one second"),
            ("good_requests", Int, "goodput: requests meeting every threshold"),
            ("good_requests_per_second", Float, "goodput: good requests / window"),
            ("goodput_fraction", Float, "goodput: good requests / sent"),
            ("cached_prompt_tokens", Int, "prompt tokens the server reported cached"),
            ("prompt_token_mismatches", Int, "prompt check failures (see results.proto)"),
            ("output_length_mismatches", Int, "length check failures (see results.proto)"),
            ("users_ran", Int, "closed loop: users that completed a request"),
            ("load_delivered", Int, "1: the client delivered the configured load, 0: not (see LoadVerdict)"),
            ("load_reasons", Text, "why not, one line per failed check"),
        ],
        key: 3,
        parent: Some("benchmarks"),
    },
    Table {
        name: "stage_errors",
        doc: "Failed requests of a stage by kind (connect, timeout, http_429, http_5xx, …).",
        columns: &[
            ("run_id", Text, "its run"),
            ("benchmark", Text, "its benchmark"),
            ("stage", Text, "its stage"),
            ("kind", Text, "the error kind"),
            ("count", Int, "requests that failed so"),
        ],
        key: 4,
        parent: Some("stages"),
    },
    Table {
        name: "distributions",
        doc: "Every distribution of a stage (results.proto defines each): ttft_ms, tpot_ms, itl_ms, itl_chunk_ms, e2e_ms, ntpot_ms, first_byte_ms, schedule_lag_ms, ttft_from_intended_ms, e2e_from_intended_ms, per_token_ms, input_tokens, dataset_input_tokens, output_tokens.",
        columns: &[
            ("run_id", Text, "its run"),
            ("benchmark", Text, "its benchmark"),
            ("stage", Text, "its stage"),
            ("metric", Text, "the distribution's name in summary.json"),
            ("count", Int, "samples"),
            ("mean", Float, "mean"),
            ("min", Float, "minimum"),
            ("p0_1", Float, "0.1th percentile"),
            ("p1", Float, "1st percentile"),
            ("p5", Float, "5th percentile"),
            ("p10", Float, "10th percentile"),
            ("p25", Float, "25th percentile"),
            ("p50", Float, "median"),
            ("p75", Float, "75th percentile"),
            ("p90", Float, "90th percentile"),
            ("p95", Float, "95th percentile"),
            ("p99", Float, "99th percentile"),
            ("p999", Float, "99.9th percentile"),
            ("max", Float, "maximum"),
            ("stddev", Float, "standard deviation"),
        ],
        key: 4,
        parent: Some("stages"),
    },
    Table {
        name: "server_metrics",
        doc: "The model server's scraped metrics summarised over a stage (summary.json's server_metrics).",
        columns: &[
            ("run_id", Text, "its run"),
            ("benchmark", Text, "its benchmark"),
            ("stage", Text, "its stage"),
            ("name", Text, "the metric (vllm:num_requests_running, …)"),
            ("kind", Text, "gauge or counter (counters as rates per second)"),
            ("mean", Float, "mean over the stage"),
            ("min", Float, "minimum"),
            ("max", Float, "maximum"),
            ("last", Float, "last value"),
            ("samples", Int, "scrapes"),
            ("total", Float, "a counter's increase over the stage (absent for gauges)"),
        ],
        key: 4,
        parent: Some("stages"),
    },
    Table {
        name: "figures",
        doc: "What `history check` compares: each stage's headline figures with their 95 % confidence intervals (latency percentiles bounded from the per-request records; throughput as Poisson counts; errors as a Wilson interval).",
        columns: &[
            ("run_id", Text, "its run"),
            ("benchmark", Text, "its benchmark"),
            ("stage", Text, "its stage"),
            ("metric", Text, "TTFT p50, TTFT p99, TPOT p50, TPOT p99, e2e p50, e2e p99, req/s, out tok/s, errors"),
            ("unit", Text, "ms, req/s, tok/s or %"),
            ("value", Float, "the figure"),
            ("lo", Float, "its interval's lower bound (NULL: the data cannot bound it)"),
            ("hi", Float, "its interval's upper bound (NULL: the data cannot bound it)"),
            ("lower_is_better", Int, "1 for latencies and errors"),
            ("unassessable", Text, "why it cannot be compared (no per-request records)"),
        ],
        key: 4,
        parent: Some("stages"),
    },
];

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().chain([&SCHEMA_INFO]).find(|t| t.name == name)
}

/// The statements that take a database from schema `from` to [`VERSION`], in order.
pub fn migrations(from: i64, dialect: Dialect) -> Vec<String> {
    let mut out = vec![];
    if from < 1 {
        out.push(SCHEMA_INFO.ddl(dialect));
        out.extend(TABLES.iter().map(|t| t.ddl(dialect)));
        return out;
    }
    if from < 2 {
        for (table, column) in ADDED_IN_2 {
            let ty = TABLES
                .iter()
                .find(|t| t.name == *table)
                .and_then(|t| t.columns.iter().find(|c| c.0 == *column))
                .map(|c| c.1.sql(dialect))
                .expect("a column of the schema");
            out.push(format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"));
        }
    }
    out
}

/// `inferbench history schema`: every table, its columns and what they hold.
pub fn describe() -> String {
    let mut out = format!("history schema version {VERSION}\n");
    for t in TABLES {
        let key: Vec<&str> = t.columns[..t.key].iter().map(|c| c.0).collect();
        out.push_str(&format!("\n{} (key: {}): {}\n", t.name, key.join(", "), t.doc));
        for (name, ty, doc) in t.columns {
            let ty = match ty {
                Type::Text => "text",
                Type::Int => "int",
                Type::Float => "float",
            };
            out.push_str(&format!("  {name:<30} {ty:<6} {doc}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_child_table_starts_with_its_parents_key() {
        for t in TABLES {
            assert_eq!(t.columns[0].0, "run_id", "{}", t.name);
            if let Some(p) = t.parent {
                let p = table(p).unwrap();
                assert!(t.key > p.key, "{}", t.name);
                let names_types = |c: &[Column]| c.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>();
                assert_eq!(
                    names_types(&t.columns[..p.key]),
                    names_types(&p.columns[..p.key]),
                    "{} under {}",
                    t.name,
                    p.name
                );
            }
        }
    }

    #[test]
    fn ddl_in_both_dialects() {
        let t = table("stage_errors").unwrap();
        assert_eq!(
            t.ddl(Dialect::Sqlite),
            "CREATE TABLE stage_errors (run_id TEXT NOT NULL, benchmark TEXT NOT NULL, stage TEXT NOT NULL, kind TEXT NOT NULL, count INTEGER, PRIMARY KEY (run_id, benchmark, stage, kind))"
        );
        assert_eq!(
            t.ddl(Dialect::Spanner),
            "CREATE TABLE stage_errors (run_id STRING(MAX) NOT NULL, benchmark STRING(MAX) NOT NULL, stage STRING(MAX) NOT NULL, kind STRING(MAX) NOT NULL, count INT64) PRIMARY KEY (run_id, benchmark, stage, kind), INTERLEAVE IN PARENT stages ON DELETE CASCADE"
        );
        assert_eq!(migrations(0, Dialect::Sqlite).len(), TABLES.len() + 1);
        assert_eq!(
            migrations(1, Dialect::Spanner),
            [
                "ALTER TABLE stages ADD COLUMN users_ran INT64",
                "ALTER TABLE stages ADD COLUMN load_delivered INT64",
                "ALTER TABLE stages ADD COLUMN load_reasons STRING(MAX)"
            ]
        );
        assert!(migrations(VERSION, Dialect::Spanner).is_empty());
    }
}
