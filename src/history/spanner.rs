//! The shared store: a Cloud Spanner database (`spanner://projects/P/instances/I/databases/D`),
//! the store the original tool's authors named for results. Through `gcloud-spanner` (gRPC):
//! Google's usual credentials, or `SPANNER_EMULATOR_HOST` for the emulator.
//!
//! - The tables are [`super::schema`]'s in GoogleSQL, children interleaved in their parents
//!   (`ON DELETE CASCADE`): deleting a run's row deletes all of it.
//! - A run is written as mutations in one read-write transaction (the client retries aborts):
//!   its `runs` row deleted, then every row inserted, so a reader sees it whole or not at all.
//! - Queries run in a single-use read-only transaction, where Spanner refuses DML: `history sql`
//!   cannot write.
//! - Against the emulator (and only there) a missing instance or database is created, so tests
//!   and a local trial need no set-up; a real database is created by its owner (README).

use std::time::Duration;

use gcloud_gax::grpc::Code;
use gcloud_googleapis::spanner::{
    admin::{
        database::v1::{CreateDatabaseRequest, UpdateDatabaseDdlRequest},
        instance::v1::{CreateInstanceRequest, Instance},
    },
    v1::{Type as SpannerType, TypeCode, struct_type::Field},
};
use gcloud_spanner::{
    admin::{AdminClientConfig, client::Client as AdminClient},
    client::{ChannelConfig, Client, ClientConfig},
    key::Key,
    mutation::{delete, insert_or_update},
    row::{self, TryFromValue},
    statement::{Statement, ToKind},
};
use prost_types::value::Kind;

use super::{
    HistoryError, Rows,
    rows::{RunRows, Value},
    schema::{self, Dialect, SCHEMA_INFO},
};

/// A Spanner database: `projects/P/instances/I/databases/D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Project.
    pub project: String,
    /// Instance.
    pub instance: String,
    /// Database.
    pub database: String,
}

impl Database {
    /// Parses `projects/P/instances/I/databases/D`.
    pub fn parse(s: &str) -> Option<Database> {
        let parts: Vec<&str> = s.trim_end_matches('/').split('/').collect();
        match parts.as_slice() {
            ["projects", p, "instances", i, "databases", d] if [p, i, d].iter().all(|x| !x.is_empty()) => {
                Some(Database { project: (*p).into(), instance: (*i).into(), database: (*d).into() })
            }
            _ => None,
        }
    }

    /// `projects/P/instances/I`.
    pub fn instance_path(&self) -> String {
        format!("projects/{}/instances/{}", self.project, self.instance)
    }

    /// `projects/P/instances/I/databases/D`.
    pub fn path(&self) -> String {
        format!("{}/databases/{}", self.instance_path(), self.database)
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spanner://{}", self.path())
    }
}

/// How long to wait to connect, and for one call.
const CONNECT: Duration = Duration::from_secs(10);
const CALL: Duration = Duration::from_secs(60);

/// Spanner's limit of mutated cells per commit is 80 000; a run larger than this is written in
/// several commits (the first deletes the old rows).
const CELLS_PER_COMMIT: usize = 60_000;

/// An open Spanner history.
pub struct SpannerStore {
    db: Database,
    client: Client,
}

impl SpannerStore {
    /// Connects, creates the instance and database on an emulator when missing, and migrates.
    pub async fn open(db: Database) -> Result<SpannerStore, HistoryError> {
        let fail = |m: String| HistoryError::Store { store: db.to_string(), message: m };
        let emulator = std::env::var("SPANNER_EMULATOR_HOST").ok().filter(|h| !h.is_empty());
        let admin_config = AdminClientConfig { connect_timeout: CONNECT, timeout: CALL, ..Default::default() };
        let admin_config = admin_config.with_auth().await.map_err(|e| fail(format!("credentials: {e}")))?;
        let admin = AdminClient::new(admin_config).await.map_err(|e| fail(unreachable(&e.to_string(), &emulator)))?;
        if emulator.is_some() {
            create_on_emulator(&admin, &db).await.map_err(fail)?;
        }
        let mut config = ClientConfig {
            channel_config: ChannelConfig {
                num_channels: 1,
                connect_timeout: CONNECT,
                timeout: CALL,
                ..Default::default()
            },
            ..Default::default()
        };
        config.session_config.min_opened = 1;
        config.session_config.max_opened = 16;
        let config = config.with_auth().await.map_err(|e| fail(format!("credentials: {e}")))?;
        let client = Client::new(db.path(), config).await.map_err(|e| fail(unreachable(&e.to_string(), &emulator)))?;
        let store = SpannerStore { db, client };
        store.migrate(&admin).await?;
        Ok(store)
    }

    fn error(&self, e: impl std::fmt::Display) -> HistoryError {
        HistoryError::Store { store: self.db.to_string(), message: e.to_string() }
    }

    /// Reads the schema version; applies the missing migrations. Two processes migrating at once:
    /// the loser's DDL fails on names that exist, and it reads the version again.
    async fn migrate(&self, admin: &AdminClient) -> Result<(), HistoryError> {
        let found = self.version().await?;
        if found > schema::VERSION {
            return Err(HistoryError::Newer { store: self.db.to_string(), found });
        }
        if found == schema::VERSION {
            return Ok(());
        }
        let statements = schema::migrations(found, Dialect::Spanner);
        let request = UpdateDatabaseDdlRequest { database: self.db.path(), statements, ..Default::default() };
        let applied = match admin.database().update_database_ddl(request, None).await {
            Ok(mut op) => op.wait(None).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            if self.version().await? == schema::VERSION {
                return Ok(());
            }
            return Err(self.error(format!("creating the tables: {}", e.message())));
        }
        let m = insert_or_update(
            SCHEMA_INFO.name,
            &["id", "version", "written_by"],
            &[&1i64, &schema::VERSION, &env!("CARGO_PKG_VERSION").to_owned()],
        );
        self.client.apply(vec![m]).await.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The schema version recorded (0: no tables yet).
    async fn version(&self) -> Result<i64, HistoryError> {
        let sql = format!("SELECT MAX(version) FROM {}", SCHEMA_INFO.name);
        match self.query(&sql, &[]).await {
            Ok(rows) => Ok(match rows.rows.first().and_then(|r| r.first()) {
                Some(Value::Int(v)) => *v,
                _ => 0,
            }),
            Err(HistoryError::Store { message, .. }) if message.contains("Table not found") => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Replaces run `rows.run_id`: its old rows deleted (the interleaved children with them) and
    /// the new ones inserted, in one commit when it fits Spanner's mutation limit.
    pub async fn write(&self, rows: &RunRows) -> Result<(), HistoryError> {
        let mut commits: Vec<Vec<gcloud_googleapis::spanner::v1::Mutation>> =
            vec![vec![delete("runs", Key::new(&rows.run_id.clone()))]];
        let mut cells = 1;
        for (table, table_rows) in &rows.tables {
            let cols: Vec<&str> = table.column_names().collect();
            for row in table_rows {
                if cells + cols.len() > CELLS_PER_COMMIT {
                    commits.push(vec![]);
                    cells = 0;
                }
                let values: Vec<Cell<'_>> = row.iter().map(Cell).collect();
                let refs: Vec<&dyn ToKind> = values.iter().map(|v| v as &dyn ToKind).collect();
                commits.last_mut().expect("one at least").push(insert_or_update(table.name, &cols, &refs));
                cells += cols.len();
            }
        }
        for ms in commits {
            self.client.apply(ms).await.map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Runs `sql` with its `@name` parameters in a single-use read-only transaction.
    pub async fn query(&self, sql: &str, params: &[(&str, Value)]) -> Result<Rows, HistoryError> {
        let mut stmt = Statement::new(sql);
        for (name, value) in params {
            match value {
                Value::Null => stmt.add_param(name, &None::<String>),
                Value::Int(x) => stmt.add_param(name, x),
                Value::Float(x) => stmt.add_param(name, x),
                Value::Text(s) => stmt.add_param(name, s),
            }
        }
        let mut tx = self.client.single().await.map_err(|e| self.error(status_text(&e)))?;
        let mut it = tx.query(stmt).await.map_err(|e| self.error(e.message()))?;
        let mut rows = vec![];
        while let Some(row) = it.next().await.map_err(|e| self.error(e.message()))? {
            let fields = it.columns_metadata().clone();
            let mut out = Vec::with_capacity(fields.len());
            for (i, field) in fields.iter().enumerate() {
                let raw = row.column::<Raw>(i).map_err(|e| self.error(e))?;
                out.push(value_of(&raw.0, field.r#type.as_ref()));
            }
            rows.push(out);
        }
        let columns = it.columns_metadata().iter().map(|f| f.name.clone()).collect();
        Ok(Rows { columns, rows })
    }
}

/// A gRPC error's message alone (its code's description is noise on a terminal).
fn status_text(e: &gcloud_spanner::client::Error) -> String {
    match e {
        gcloud_spanner::client::Error::GRPC(s) => s.message().to_owned(),
        e => e.to_string(),
    }
}

/// A connection failure, with what to check.
fn unreachable(e: &str, emulator: &Option<String>) -> String {
    match emulator {
        Some(host) => format!("cannot reach the Spanner emulator at SPANNER_EMULATOR_HOST={host}: {e}"),
        None => format!(
            "cannot reach Cloud Spanner: {e} (credentials: Google's usual ones; an emulator: SPANNER_EMULATOR_HOST)"
        ),
    }
}

/// The instance and database, made on an emulator when missing (its state lives in memory).
async fn create_on_emulator(admin: &AdminClient, db: &Database) -> Result<(), String> {
    let instance = CreateInstanceRequest {
        parent: format!("projects/{}", db.project),
        instance_id: db.instance.clone(),
        instance: Some(Instance {
            name: db.instance_path(),
            config: format!("projects/{}/instanceConfigs/emulator-config", db.project),
            display_name: db.instance.clone(),
            node_count: 1,
            ..Default::default()
        }),
    };
    let made = match admin.instance().create_instance(instance, None).await {
        Ok(mut op) => op.wait(None).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match made {
        Err(e) if e.code() != Code::AlreadyExists => {
            return Err(format!("creating the emulator's instance: {}", e.message()));
        }
        _ => {}
    }
    let database = CreateDatabaseRequest {
        parent: db.instance_path(),
        create_statement: format!("CREATE DATABASE `{}`", db.database),
        ..Default::default()
    };
    let made = match admin.database().create_database(database, None).await {
        Ok(mut op) => op.wait(None).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match made {
        Err(e) if e.code() != Code::AlreadyExists => Err(format!("creating the emulator's database: {}", e.message())),
        _ => Ok(()),
    }
}

/// A value as a mutation cell. Non-finite floats go as Spanner spells them ("Infinity").
struct Cell<'a>(&'a Value);

impl ToKind for Cell<'_> {
    fn to_kind(&self) -> Kind {
        match self.0 {
            Value::Null => Kind::NullValue(0),
            Value::Int(x) => Kind::StringValue(x.to_string()),
            Value::Float(x) if x.is_nan() => Kind::StringValue("NaN".into()),
            Value::Float(x) if x.is_infinite() => {
                Kind::StringValue(if *x > 0.0 { "Infinity" } else { "-Infinity" }.into())
            }
            Value::Float(x) => Kind::NumberValue(*x),
            Value::Text(s) => Kind::StringValue(s.clone()),
        }
    }

    /// Mutations carry no types (the columns have them); never used for a parameter.
    fn get_type() -> SpannerType {
        SpannerType { code: TypeCode::String.into(), ..Default::default() }
    }
}

/// A result cell as it came.
struct Raw(prost_types::Value);

impl TryFromValue for Raw {
    fn try_from(v: &prost_types::Value, _f: &Field) -> Result<Self, row::Error> {
        Ok(Raw(v.clone()))
    }
}

/// A result cell as a [`Value`]: INT64 and BOOL as integers, FLOAT64 as a float, the rest as text.
fn value_of(v: &prost_types::Value, ty: Option<&SpannerType>) -> Value {
    let code = ty.and_then(|t| TypeCode::try_from(t.code).ok()).unwrap_or(TypeCode::Unspecified);
    match (&v.kind, code) {
        (None | Some(Kind::NullValue(_)), _) => Value::Null,
        (Some(Kind::StringValue(s)), TypeCode::Int64) => s.parse().map_or_else(|_| Value::Text(s.clone()), Value::Int),
        (Some(Kind::StringValue(s)), TypeCode::Float64 | TypeCode::Float32) => match s.as_str() {
            "Infinity" => Value::Float(f64::INFINITY),
            "-Infinity" => Value::Float(f64::NEG_INFINITY),
            "NaN" => Value::Float(f64::NAN),
            s => s.parse().map_or_else(|_| Value::Text(s.to_owned()), Value::Float),
        },
        (Some(Kind::StringValue(s)), _) => Value::Text(s.clone()),
        (Some(Kind::NumberValue(x)), _) => Value::Float(*x),
        (Some(Kind::BoolValue(b)), _) => Value::Int(i64::from(*b)),
        (Some(Kind::ListValue(l)), _) => {
            let items: Vec<String> = l.values.iter().map(|v| super::query::cell(&value_of(v, None))).collect();
            Value::Text(format!("[{}]", items.join(", ")))
        }
        (Some(Kind::StructValue(s)), _) => Value::Text(format!("{:?}", s.fields)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let d = Database::parse("projects/p/instances/i/databases/d").unwrap();
        assert_eq!(d.to_string(), "spanner://projects/p/instances/i/databases/d");
        assert!(Database::parse("projects/p/instances/i").is_none());
        assert!(Database::parse("projects//instances/i/databases/d").is_none());
        assert!(Database::parse("project/p/instances/i/databases/d").is_none());
    }

    #[test]
    fn cells_both_ways() {
        let int = SpannerType { code: TypeCode::Int64.into(), ..Default::default() };
        let float = SpannerType { code: TypeCode::Float64.into(), ..Default::default() };
        for (v, ty) in [(Value::Int(-3), &int), (Value::Float(f64::INFINITY), &float), (Value::Float(0.25), &float)] {
            let back = value_of(&prost_types::Value { kind: Some(Cell(&v).to_kind()) }, Some(ty));
            assert_eq!(back, v);
        }
        assert_eq!(value_of(&prost_types::Value { kind: Some(Cell(&Value::Null).to_kind()) }, Some(&int)), Value::Null);
    }
}
