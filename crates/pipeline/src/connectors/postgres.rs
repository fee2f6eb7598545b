//! `postgres` sink: upserts into `table`, exactly once.
//!
//! Each batch is one PostgreSQL transaction that also moves the sink's offsets in
//! `strom_sink_offsets (sink, topic, partition, next_offset)`: it locks the sink's offset
//! rows, skips records below them (already written by an earlier attempt, or by another
//! instance before a rebalance), upserts the rest and stores the new offsets. The Kafka
//! offset commit that follows is only a hint; PostgreSQL's offsets decide.
//!
//! Two table shapes:
//! - a table that exists: each JSON field fills the column of its name
//!   (`jsonb_populate_recordset`), conflicts on `key` (columns, comma-separated; default
//!   the primary key) update every other column;
//! - a table that does not exist is created as `(id TEXT PRIMARY KEY, key TEXT, value
//!   JSONB, updated_at TIMESTAMPTZ)`, `id` being [`SinkRecord::document_id`].
//!
//! A record the database refuses (a value of the wrong type, a constraint) goes to the
//! dead-letter topic with PostgreSQL's message; a lost connection makes the batch go
//! again. `url` (or `STROM_SINK_POSTGRES_URL`) defaults to
//! `postgresql://postgres@127.0.0.1:5432/postgres`; connections are plain TCP.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;
use tokio_postgres::{Client, NoTls};

use super::{setting_or_env, Rejected, SinkRecord, WriteResult};
use crate::compile::field;
use crate::spec::Sink;

/// How records map to the table.
#[derive(Debug, Clone)]
enum Shape {
    /// `(id, key, value, updated_at)`, created by the sink.
    KeyValue,
    /// The table's own columns, filled from fields of the same names.
    Columns {
        columns: Vec<String>,
        conflict: Vec<String>,
    },
}

/// A connected PostgreSQL sink.
pub struct PostgresSink {
    url: String,
    name: String,
    table: String,
    key: Option<String>,
    client: Option<Client>,
    shape: Option<Shape>,
}

/// `"name"` with inner quotes doubled.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name, possibly `schema.table`, quoted part by part.
fn qualified(name: &str) -> String {
    name.split('.').map(ident).collect::<Vec<_>>().join(".")
}

impl PostgresSink {
    /// Reads the settings and connects (a database that is down is retried like any
    /// outage).
    pub async fn connect(
        name: &str,
        sink: &Sink,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let url = setting_or_env(
            sink,
            "url",
            env,
            Some("postgresql://postgres@127.0.0.1:5432/postgres"),
        )
        .unwrap_or_default();
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| format!("postgres url: {e}"))?;
        let mut s = PostgresSink {
            url,
            name: name.to_string(),
            table: sink.setting("table").unwrap_or("strom_results").to_string(),
            key: sink.setting("key").map(str::to_string),
            client: None,
            shape: None,
        };
        if let Err(e) = s.reconnect().await {
            tracing::warn!(error = %e, "postgres sink: not connected yet");
        }
        Ok(s)
    }

    /// Opens a fresh connection and learns (or creates) the table.
    pub async fn reconnect(&mut self) -> Result<(), String> {
        self.client = None;
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS strom_sink_offsets (
                    sink TEXT NOT NULL, topic TEXT NOT NULL, partition INT NOT NULL,
                    next_offset BIGINT NOT NULL, PRIMARY KEY (sink, topic, partition))",
            )
            .await
            .map_err(pg)?;
        self.shape = Some(self.learn_shape(&client).await?);
        self.client = Some(client);
        Ok(())
    }

    async fn learn_shape(&self, client: &Client) -> Result<Shape, String> {
        let (schema, table) = match self.table.split_once('.') {
            Some((s, t)) => (Some(s.to_string()), t.to_string()),
            None => (None, self.table.clone()),
        };
        let rows = client
            .query(
                "SELECT c.column_name::text FROM information_schema.columns c
                 WHERE c.table_name = $1 AND c.table_schema = COALESCE($2, current_schema())
                 ORDER BY c.ordinal_position",
                &[&table, &schema],
            )
            .await
            .map_err(pg)?;
        let columns: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if columns.is_empty() {
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (id TEXT PRIMARY KEY, key TEXT NOT NULL,
                     value JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                    qualified(&self.table)
                ))
                .await
                .map_err(pg)?;
            return Ok(Shape::KeyValue);
        }
        let conflict: Vec<String> = match &self.key {
            Some(k) => k.split(',').map(|c| c.trim().to_string()).collect(),
            None => client
                .query(
                    "SELECT a.attname::text FROM pg_index i
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                     WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                    &[&qualified(&self.table)],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| r.get(0))
                .collect(),
        };
        if conflict.is_empty() {
            return Err(format!(
                "postgres table {} has no primary key: give the conflict columns as `key`",
                self.table
            ));
        }
        if let Some(c) = conflict.iter().find(|c| !columns.contains(c)) {
            return Err(format!("postgres table {} has no column {c:?}", self.table));
        }
        Ok(Shape::Columns { columns, conflict })
    }

    /// The upsert statement and the rows of one batch (the last record of each key).
    fn statement(&self, shape: &Shape) -> String {
        let table = qualified(&self.table);
        match shape {
            Shape::KeyValue => format!(
                "INSERT INTO {table} (id, key, value, updated_at)
                 SELECT r->>'id', r->>'key', r->'value', now() FROM jsonb_array_elements($1::jsonb) r
                 ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key, value = EXCLUDED.value,
                 updated_at = EXCLUDED.updated_at"
            ),
            Shape::Columns { columns, conflict } => {
                let cols = columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                let updates: Vec<String> = columns
                    .iter()
                    .filter(|c| !conflict.contains(c))
                    .map(|c| format!("{0} = EXCLUDED.{0}", ident(c)))
                    .collect();
                let action = if updates.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!("UPDATE SET {}", updates.join(", "))
                };
                let conflict = conflict.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                format!(
                    "INSERT INTO {table} ({cols}) SELECT {cols} FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb)
                     ON CONFLICT ({conflict}) DO {action}"
                )
            }
        }
    }

    /// A record as the statement's row, and the key it conflicts on.
    fn row(shape: &Shape, r: &SinkRecord) -> (Json, String) {
        match shape {
            Shape::KeyValue => {
                let id = r.document_id();
                (
                    serde_json::json!({"id": id, "key": r.key, "value": r.value}),
                    id,
                )
            }
            Shape::Columns { conflict, .. } => {
                let key: Vec<String> = conflict
                    .iter()
                    .map(|c| field(&r.value, c).map(Json::to_string).unwrap_or_default())
                    .collect();
                (r.value.clone(), key.join("\u{1f}"))
            }
        }
    }

    /// Writes the batch and its offsets in one transaction; see the module docs.
    pub async fn write(&mut self, batch: &[SinkRecord]) -> WriteResult {
        if self.client.is_none() {
            self.reconnect().await?;
        }
        let Some(shape) = self.shape.clone() else {
            return Err("postgres: not connected".into());
        };
        let statement = self.statement(&shape);
        let Some(client) = self.client.as_mut() else {
            return Err("postgres: not connected".into());
        };
        let topic = batch.first().map(|r| r.topic.clone()).unwrap_or_default();
        let tx = client.transaction().await.map_err(pg)?;
        // Lock this sink's offsets for the partitions of the batch.
        let mut next: HashMap<i32, i64> = HashMap::new();
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for r in batch {
            last.insert(r.partition, r.offset);
        }
        for &partition in last.keys() {
            tx.execute(
                "INSERT INTO strom_sink_offsets VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                &[&self.name, &topic, &partition],
            )
            .await
            .map_err(pg)?;
            let row = tx
                .query_one(
                    "SELECT next_offset FROM strom_sink_offsets
                     WHERE sink = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
                    &[&self.name, &topic, &partition],
                )
                .await
                .map_err(pg)?;
            next.insert(partition, row.get(0));
        }
        // The new records, the last of each key (one upsert may not touch a row twice).
        let fresh: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].offset >= next.get(&batch[i].partition).copied().unwrap_or(0))
            .collect();
        let mut latest: Vec<(Json, usize)> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        for &i in &fresh {
            let (row, key) = Self::row(&shape, &batch[i]);
            match position.get(&key) {
                Some(&p) => latest[p] = (row, i),
                None => {
                    position.insert(key, latest.len());
                    latest.push((row, i));
                }
            }
        }
        let (rows, indexes): (Vec<Json>, Vec<usize>) = latest.into_iter().unzip();
        let rows = Json::Array(rows);
        let mut rejected = Vec::new();
        if !indexes.is_empty() {
            tx.execute("SAVEPOINT batch", &[]).await.map_err(pg)?;
            if let Err(e) = tx.execute(statement.as_str(), &[&rows]).await {
                if !is_refusal(&e) {
                    return Err(pg(e));
                }
                // Find the refused rows one by one.
                tx.execute("ROLLBACK TO SAVEPOINT batch", &[])
                    .await
                    .map_err(pg)?;
                for (row, i) in rows.as_array().into_iter().flatten().zip(&indexes) {
                    tx.execute("SAVEPOINT one", &[]).await.map_err(pg)?;
                    match tx
                        .execute(statement.as_str(), &[&Json::Array(vec![row.clone()])])
                        .await
                    {
                        Ok(_) => tx.execute("RELEASE SAVEPOINT one", &[]).await.map_err(pg)?,
                        Err(e) if is_refusal(&e) => {
                            tx.execute("ROLLBACK TO SAVEPOINT one", &[])
                                .await
                                .map_err(pg)?;
                            rejected.push(Rejected {
                                index: *i,
                                reason: format!("postgres refused: {}", describe(&e)),
                            });
                            0
                        }
                        Err(e) => return Err(pg(e)),
                    };
                }
            }
        }
        for (partition, offset) in &last {
            tx.execute(
                "UPDATE strom_sink_offsets SET next_offset = GREATEST(next_offset, $4)
                 WHERE sink = $1 AND topic = $2 AND partition = $3",
                &[&self.name, &topic, partition, &(offset + 1)],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        rejected.sort_by_key(|r| r.index);
        Ok(rejected)
    }
}

/// The database refused the data (SQLSTATE classes 22, data exception, and 23,
/// integrity constraint), not a failure to reach it.
fn is_refusal(e: &tokio_postgres::Error) -> bool {
    e.code()
        .map(|c| matches!(&c.code()[..2], "22" | "23"))
        .unwrap_or(false)
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn pg(e: tokio_postgres::Error) -> String {
    format!("postgres: {}", describe(&e))
}
