//! `redis` and `redis-geo` sinks: one pipelined round trip per batch.
//!
//! - `redis`: `key_pattern` (`rec:{user_id}`) names the key; `mode: string` (default)
//!   SETs the JSON value, `mode: hash` HSETs each top-level field (objects and arrays as
//!   JSON); `ttl` sets an expiry on the key.
//! - `redis-geo`: GEOADD of the record's position (`longitude_field`/`latitude_field`,
//!   default `longitude`/`latitude`) into the key (`drivers:{region}`) as `member`
//!   (a pattern, default `{driver_id}` when the record has one, else `{key}`); the key
//!   expires after `ttl` (default 5 minutes) without updates, so a region nobody reports
//!   from empties itself.
//!
//! Every command overwrites, so a replayed batch leaves the same data. `url` (or
//! `STROM_SINK_REDIS_URL` / `STROM_SINK_REDIS_GEO_URL`) defaults to
//! `redis://127.0.0.1:6379`.

use redis::aio::MultiplexedConnection;
use serde_json::Value as Json;

use super::{fill, setting_or_env, Rejected, SinkRecord, WriteResult};
use crate::compile::field;
use crate::spec::Sink;

/// How records become Redis commands.
#[derive(Debug, Clone)]
enum Mode {
    /// SET key json [EX ttl].
    String,
    /// HSET key field value … [EXPIRE key ttl].
    Hash,
    /// GEOADD key lon lat member; EXPIRE key ttl.
    Geo {
        member: Option<String>,
        lon: String,
        lat: String,
    },
}

/// A connected Redis sink.
pub struct RedisSink {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    key_pattern: String,
    ttl_s: Option<u64>,
    mode: Mode,
}

impl RedisSink {
    /// Reads the settings and connects.
    pub async fn connect(
        sink: &Sink,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let url =
            setting_or_env(sink, "url", env, Some("redis://127.0.0.1:6379")).unwrap_or_default();
        let client =
            redis::Client::open(url.as_str()).map_err(|e| format!("redis url {url:?}: {e}"))?;
        let geo = sink.kind == "redis-geo";
        let default_ttl = if geo { 300_000 } else { 0 };
        let ttl_ms = super::duration_ms(sink, "ttl", default_ttl)?;
        let mode = if geo {
            Mode::Geo {
                member: sink.setting("member").map(str::to_string),
                lon: sink
                    .setting("longitude_field")
                    .unwrap_or("longitude")
                    .to_string(),
                lat: sink
                    .setting("latitude_field")
                    .unwrap_or("latitude")
                    .to_string(),
            }
        } else {
            match sink.setting("mode").unwrap_or("string") {
                "string" => Mode::String,
                "hash" => Mode::Hash,
                other => return Err(format!("redis mode {other:?}: use string or hash")),
            }
        };
        let mut s = RedisSink {
            client,
            conn: None,
            key_pattern: sink.setting("key_pattern").unwrap_or("{key}").to_string(),
            ttl_s: (ttl_ms > 0).then(|| (ttl_ms as u64).div_ceil(1000)),
            mode,
        };
        // A target that is down at start is retried like any outage.
        if let Err(e) = s.reconnect().await {
            tracing::warn!(error = %e, "redis sink: not connected yet");
        }
        Ok(s)
    }

    /// Opens a fresh connection.
    pub async fn reconnect(&mut self) -> Result<(), String> {
        self.conn = None;
        let conn = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("redis: {e}"))?;
        self.conn = Some(conn);
        Ok(())
    }

    /// The commands of one record, or why it cannot be written.
    fn commands(&self, r: &SinkRecord, pipe: &mut redis::Pipeline) -> Result<(), String> {
        let key = fill(&self.key_pattern, &r.key, &r.value)?;
        match &self.mode {
            Mode::String => {
                let cmd = pipe.cmd("SET").arg(&key).arg(r.value.to_string());
                if let Some(ttl) = self.ttl_s {
                    cmd.arg("EX").arg(ttl);
                }
                cmd.ignore();
                return Ok(());
            }
            Mode::Hash => {
                let Some(obj) = r.value.as_object().filter(|o| !o.is_empty()) else {
                    return Err("hash mode needs a JSON object with fields".into());
                };
                let cmd = pipe.cmd("HSET").arg(&key);
                for (f, v) in obj {
                    match v {
                        Json::String(s) => cmd.arg(f).arg(s),
                        other => cmd.arg(f).arg(other.to_string()),
                    };
                }
                cmd.ignore();
            }
            Mode::Geo { member, lon, lat } => {
                let coordinate = |f: &str| field(&r.value, f).and_then(Json::as_f64);
                let (Some(x), Some(y)) = (coordinate(lon), coordinate(lat)) else {
                    return Err(format!("the record has no numeric {lon:?} and {lat:?}"));
                };
                if !(-180.0..=180.0).contains(&x) || !(-85.051_128_78..=85.051_128_78).contains(&y)
                {
                    return Err(format!("({x}, {y}) is outside Redis' GEO range"));
                }
                let member = match member {
                    Some(p) => fill(p, &r.key, &r.value)?,
                    None => match r.value.get("driver_id") {
                        Some(Json::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => r.key.clone(),
                    },
                };
                pipe.cmd("GEOADD")
                    .arg(&key)
                    .arg(x)
                    .arg(y)
                    .arg(member)
                    .ignore();
            }
        }
        if let Some(ttl) = self.ttl_s {
            pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
        }
        Ok(())
    }

    /// Writes the batch in one pipeline; a command the server refuses (a key of another
    /// type) makes the batch go again record by record to find the records to reject.
    pub async fn write(&mut self, batch: &[SinkRecord]) -> WriteResult {
        if self.conn.is_none() {
            self.reconnect().await?;
        }
        let mut rejected = Vec::new();
        let mut pipe = redis::pipe();
        let mut written = Vec::new();
        for (index, r) in batch.iter().enumerate() {
            match self.commands(r, &mut pipe) {
                Ok(()) => written.push(index),
                Err(reason) => rejected.push(Rejected { index, reason }),
            }
        }
        if written.is_empty() {
            return Ok(rejected);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err("redis: not connected".into());
        };
        match pipe.query_async::<()>(conn).await {
            Ok(()) => Ok(rejected),
            Err(e) if is_refusal(&e) => {
                for index in written {
                    let mut one = redis::pipe();
                    self.commands(&batch[index], &mut one)?;
                    let Some(conn) = self.conn.as_mut() else {
                        return Err("redis: not connected".into());
                    };
                    match one.query_async::<()>(conn).await {
                        Ok(()) => {}
                        Err(e) if is_refusal(&e) => rejected.push(Rejected {
                            index,
                            reason: format!("redis refused: {e}"),
                        }),
                        Err(e) => return Err(self.broken(e)),
                    }
                }
                rejected.sort_by_key(|r| r.index);
                Ok(rejected)
            }
            Err(e) => Err(self.broken(e)),
        }
    }

    fn broken(&mut self, e: redis::RedisError) -> String {
        self.conn = None;
        format!("redis: {e}")
    }
}

/// The server answered with an error about the data (a wrong type), not a failure to
/// reach it.
fn is_refusal(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout())
        && matches!(
            e.kind(),
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
        )
}
