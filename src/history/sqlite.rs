//! The embedded store: one SQLite file (`output/history.db` by default), created on first use.
//! WAL journal and a busy timeout let two runs that end together both write: each run is
//! replaced in one `BEGIN IMMEDIATE` transaction, so a reader sees a run whole or not at all, and
//! a crash mid-write leaves the previous state.

use std::{path::PathBuf, time::Duration};

use rusqlite::{Connection, OpenFlags, types::ValueRef};

use super::{
    HistoryError, Rows,
    rows::{RunRows, Value},
    schema::{self, Dialect, SCHEMA_INFO, TABLES},
};

/// How long a writer waits for another one to finish.
const BUSY: Duration = Duration::from_secs(60);

/// An open SQLite history.
pub struct SqliteStore {
    path: PathBuf,
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating it and its folder when `create`) and migrates the history at `path`.
    pub fn open(path: PathBuf, create: bool) -> Result<SqliteStore, HistoryError> {
        let fail = |m: String| HistoryError::Store { store: path.display().to_string(), message: m };
        if !path.exists() {
            if !create {
                return Err(fail(
                    "no history here yet: runs are recorded at their end (inferbench run, inferbench load --output-dir), or imported with inferbench history import RUN_DIR".into(),
                ));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create its folder: {e}")))?;
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| fail(e.to_string()))?;
        let mut store = SqliteStore { path, conn };
        store.setup().map_err(|e| store.error(e))?;
        store.migrate()?;
        Ok(store)
    }

    fn error(&self, e: rusqlite::Error) -> HistoryError {
        sql_error(&self.path, e)
    }

    fn setup(&mut self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY)?;
        // WAL: readers never block the writer; the mode is kept in the file.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }

    /// The schema version found (0 for a new database), migrated to [`schema::VERSION`].
    pub fn migrate(&mut self) -> Result<i64, HistoryError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| sql_error(&self.path, e))?;
        let found = version(&tx).map_err(|e| sql_error(&self.path, e))?;
        if found > schema::VERSION {
            return Err(HistoryError::Newer { store: self.path.display().to_string(), found });
        }
        if found < schema::VERSION {
            let run = || -> rusqlite::Result<()> {
                for ddl in schema::migrations(found, Dialect::Sqlite) {
                    tx.execute(&ddl, [])?;
                }
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO {} (id, version, written_by) VALUES (1, ?1, ?2)",
                        SCHEMA_INFO.name
                    ),
                    rusqlite::params![schema::VERSION, env!("CARGO_PKG_VERSION")],
                )?;
                Ok(())
            };
            run().map_err(|e| sql_error(&self.path, e))?;
        }
        tx.commit().map_err(|e| sql_error(&self.path, e))?;
        Ok(found)
    }

    /// Replaces each run of `runs` with its rows, all in one transaction: an import lands whole
    /// or not at all.
    pub fn write(&mut self, runs: &[RunRows]) -> Result<(), HistoryError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| sql_error(&self.path, e))?;
        let run = || -> rusqlite::Result<()> {
            let mut deletes = vec![];
            let mut inserts = vec![];
            for t in TABLES {
                deletes.push(tx.prepare(&format!("DELETE FROM {} WHERE run_id = ?1", t.name))?);
                let cols: Vec<&str> = t.column_names().collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                inserts.push(tx.prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    t.name,
                    cols.join(", "),
                    marks.join(", ")
                ))?);
            }
            for rows in runs {
                for delete in deletes.iter_mut().rev() {
                    delete.execute([&rows.run_id])?;
                }
                for ((_, table_rows), insert) in rows.tables.iter().zip(&mut inserts) {
                    for row in table_rows {
                        insert.execute(rusqlite::params_from_iter(row.iter().map(borrowed)))?;
                    }
                }
            }
            Ok(())
        };
        run().map_err(|e| sql_error(&self.path, e))?;
        tx.commit().map_err(|e| sql_error(&self.path, e))
    }

    /// Runs `sql` with its `@name` parameters; read-only when `read_only` (SQLite's `query_only`:
    /// any write is refused).
    pub fn query(&self, sql: &str, params: &[(&str, Value)], read_only: bool) -> Result<Rows, HistoryError> {
        let fail = |e| sql_error(&self.path, e);
        if read_only {
            self.conn.pragma_update(None, "query_only", true).map_err(fail)?;
        }
        let out = (|| -> rusqlite::Result<Rows> {
            let mut stmt = self.conn.prepare(sql)?;
            for (name, value) in params {
                if let Some(i) = stmt.parameter_index(&format!("@{name}"))? {
                    stmt.raw_bind_parameter(i, to_sql(value))?;
                }
            }
            let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
            let n = columns.len();
            let mut rows = vec![];
            let mut it = stmt.raw_query();
            while let Some(r) = it.next()? {
                let mut row = Vec::with_capacity(n);
                for i in 0..n {
                    row.push(match r.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(x) => Value::Int(x),
                        ValueRef::Real(x) => Value::Float(x),
                        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Value::Text(hex::encode(b)),
                    });
                }
                rows.push(row);
            }
            Ok(Rows { columns, rows })
        })();
        if read_only {
            let _ = self.conn.pragma_update(None, "query_only", false);
        }
        out.map_err(fail)
    }
}

/// An SQLite error of the history at `path`, in words a user can act on.
fn sql_error(path: &std::path::Path, e: rusqlite::Error) -> HistoryError {
    let message = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "not an SQLite database (damaged, or another kind of file): move it away, or pass another --history"
                .to_owned()
        }
        _ => e.to_string(),
    };
    HistoryError::Store { store: path.display().to_string(), message }
}

/// The schema version recorded (0: no schema yet).
fn version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [SCHEMA_INFO.name],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(0);
    }
    conn.query_row(&format!("SELECT COALESCE(MAX(version), 0) FROM {}", SCHEMA_INFO.name), [], |r| r.get(0))
}

/// A value bound without copying its text.
fn borrowed(v: &Value) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    ToSqlOutput::Borrowed(match v {
        Value::Null => ValueRef::Null,
        Value::Int(x) => ValueRef::Integer(*x),
        Value::Float(x) => ValueRef::Real(*x),
        Value::Text(s) => ValueRef::Text(s.as_bytes()),
    })
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Int(x) => V::Integer(*x),
        Value::Float(x) => V::Real(*x),
        Value::Text(s) => V::Text(s.clone()),
    }
}
