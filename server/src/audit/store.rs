//! The PostgreSQL side of the audit trail: one transaction per batch
//! (events + session upserts), idempotent by the unique keys of the schema,
//! and the cursor-paginated history read.

use super::{AuditConfig, AuditError};
use crate::domain::Actor;
use crate::engine::AuditEvent;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What one batch did: new rows, and rows skipped because they were stored
/// already (redelivery after a crash or a lost acknowledgement).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows inserted into `sync_events`.
    pub inserted: u64,
    /// Events whose unique key was already present.
    pub duplicates: u64,
}

/// One row of a session's history as `GET /v1/sessions/{id}/events` returns it
/// (`AuditEvent` in the contract and the OpenAPI document).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEvent)]
pub struct HistoryEvent {
    /// Row id.
    pub id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// The session version this change produced (0 for a deletion).
    pub version: u64,
    /// Seed event type (`session_created`, `cycle_switched`, …, `session_deleted`).
    pub event_type: String,
    /// The participant concerned.
    pub participant_id: Option<String>,
    /// That participant's group (per_group).
    pub group_id: Option<String>,
    /// The concerned participant's remaining bank after the change.
    pub time_remaining_ms: Option<i64>,
    /// Time charged by this change.
    pub time_elapsed_ms: Option<i64>,
    /// Commit time, epoch milliseconds.
    pub at_ms: i64,
    /// Commit time, RFC 3339.
    pub timestamp: String,
    /// The state after the change (null for deletions).
    #[schema(value_type = Option<Object>)]
    pub state: serde_json::Value,
    /// Who made the change; null for events recorded before actors were.
    pub actor: Option<Actor>,
}

/// One page of history; pass `next_cursor` back to get the next one
/// (`EventsPage` in the OpenAPI document).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = EventsPage)]
pub struct HistoryPage {
    /// Events in version order (a deletion comes after every version).
    pub data: Vec<HistoryEvent>,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The audit database: a connection pool plus the statements the audit
/// trail needs. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct AuditStore {
    pool: PgPool,
}

const INSERT_EVENTS: &str = "\
INSERT INTO sync_events (session_id, version, event_type, participant_id, group_id,
                         time_remaining_ms, time_elapsed_ms, timestamp, state_snapshot, actor)
SELECT s, v, t, p, g, r, e, ts, st::jsonb, a::jsonb
FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[],
            $6::int8[], $7::int8[], $8::timestamptz[], $9::text[], $10::text[])
     AS u(s, v, t, p, g, r, e, ts, st, a)
ON CONFLICT DO NOTHING";

// One row per session: the latest state seen wins (ordered by version, so
// redelivered or out-of-order batches never move a session backwards).
const UPSERT_SESSIONS: &str = "\
INSERT INTO sync_sessions AS x (session_id, sync_mode, total_time_ms, time_per_cycle_ms,
    increment_ms, max_time_ms, action_on_timeout, auto_advance, created_at, started_at,
    completed_at, final_status, participant_count, total_cycles, last_version, updated_at,
    metadata)
SELECT sid, mode::sync_mode, total, per_cycle, COALESCE(incr, 0), maxt, action::jsonb, auto,
       COALESCE(created, ts), started, completed, status::sync_status, pcount, cycles, v, ts,
       meta::jsonb
FROM UNNEST($1::uuid[], $2::int8[], $3::timestamptz[], $4::text[], $5::int8[], $6::int8[],
            $7::int8[], $8::int8[], $9::text[], $10::bool[], $11::timestamptz[],
            $12::timestamptz[], $13::timestamptz[], $14::text[], $15::int4[], $16::int8[],
            $17::text[])
     AS u(sid, v, ts, mode, total, per_cycle, incr, maxt, action, auto, created, started,
          completed, status, pcount, cycles, meta)
ON CONFLICT (session_id) DO UPDATE SET
    sync_mode = EXCLUDED.sync_mode,
    total_time_ms = EXCLUDED.total_time_ms,
    time_per_cycle_ms = EXCLUDED.time_per_cycle_ms,
    increment_ms = EXCLUDED.increment_ms,
    max_time_ms = EXCLUDED.max_time_ms,
    action_on_timeout = EXCLUDED.action_on_timeout,
    auto_advance = EXCLUDED.auto_advance,
    created_at = EXCLUDED.created_at,
    started_at = COALESCE(EXCLUDED.started_at, x.started_at),
    completed_at = COALESCE(EXCLUDED.completed_at, x.completed_at),
    final_status = EXCLUDED.final_status,
    participant_count = EXCLUDED.participant_count,
    total_cycles = EXCLUDED.total_cycles,
    last_version = EXCLUDED.last_version,
    updated_at = GREATEST(x.updated_at, EXCLUDED.updated_at),
    metadata = EXCLUDED.metadata
WHERE x.last_version < EXCLUDED.last_version";

// Upsert, not UPDATE: when the state batch is being written concurrently,
// both transactions meet on the primary key, so the second sees the first.
const MARK_DELETED: &str = "\
INSERT INTO sync_sessions AS x (session_id, deleted_at, updated_at, last_version)
SELECT sid, ts, ts, 0 FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(sid, ts)
ON CONFLICT (session_id) DO UPDATE SET
    deleted_at = GREATEST(x.deleted_at, EXCLUDED.deleted_at),
    updated_at = GREATEST(x.updated_at, EXCLUDED.updated_at)";

const HISTORY: &str = "\
SELECT id, session_id, version, event_type, participant_id, group_id,
       time_remaining_ms, time_elapsed_ms, timestamp, state_snapshot, actor
FROM sync_events
WHERE session_id = $1
  AND ((version = 0), version, timestamp) > ($2::bool, $3::int8, $4::timestamptz)
ORDER BY (version = 0), version, timestamp
LIMIT $5";

/// The `sync_sessions` columns of one state snapshot, extracted here rather
/// than in SQL so PostgreSQL parses each snapshot only once.
#[derive(Debug, Default)]
struct SessionCols {
    ids: Vec<Uuid>,
    versions: Vec<i64>,
    ts: Vec<DateTime<Utc>>,
    mode: Vec<String>,
    total: Vec<Option<i64>>,
    per_cycle: Vec<Option<i64>>,
    increment: Vec<Option<i64>>,
    max: Vec<Option<i64>>,
    action: Vec<Option<String>>,
    auto: Vec<Option<bool>>,
    created: Vec<Option<DateTime<Utc>>>,
    started: Vec<Option<DateTime<Utc>>>,
    completed: Vec<Option<DateTime<Utc>>>,
    status: Vec<String>,
    participants: Vec<i32>,
    cycles: Vec<i64>,
    metadata: Vec<Option<String>>,
}

impl SessionCols {
    fn push(&mut self, ev: &AuditEvent) {
        let st = &ev.state;
        let int = |k: &str| st.get(k).and_then(|v| v.as_i64());
        let time = |k: &str| {
            st.get(k)
                .and_then(|v| v.as_str())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let json = |k: &str| st.get(k).filter(|v| !v.is_null()).map(|v| v.to_string());
        let word = |k: &str| {
            st.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let parts = st.get("participants").and_then(|p| p.as_array());
        self.ids.push(ev.session_id);
        self.versions
            .push(i64::try_from(ev.version).unwrap_or(i64::MAX));
        self.ts.push(ts(ev.at_ms));
        self.mode.push(word("sync_mode"));
        self.total.push(int("total_time_ms"));
        self.per_cycle.push(int("time_per_cycle_ms"));
        self.increment.push(int("increment_ms"));
        self.max.push(int("max_time_ms"));
        self.action.push(json("action_on_timeout"));
        self.auto
            .push(st.get("auto_advance").and_then(|v| v.as_bool()));
        self.created.push(time("created_at"));
        self.started.push(time("session_started_at"));
        self.completed.push(time("session_completed_at"));
        self.status.push(word("status"));
        self.participants
            .push(parts.map_or(0, |p| i32::try_from(p.len()).unwrap_or(i32::MAX)));
        self.cycles.push(parts.map_or(0, |p| {
            p.iter()
                .filter_map(|x| x.get("cycle_count").and_then(|c| c.as_i64()))
                .sum()
        }));
        self.metadata.push(json("metadata"));
    }
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn group_of(ev: &AuditEvent) -> Option<String> {
    let pid = ev.participant_id.as_deref()?;
    ev.state
        .get("participants")?
        .as_array()?
        .iter()
        .find(|p| p.get("participant_id").and_then(|v| v.as_str()) == Some(pid))?
        .get("group_id")?
        .as_str()
        .map(str::to_string)
}

/// Whether retrying the same statement can succeed later (connection loss,
/// shutdown, deadlock, missing table before migrations...). Data errors
/// (SQLSTATE classes 22 and 23) will fail again however often we retry.
pub fn is_transient(e: &AuditError) -> bool {
    match e {
        AuditError::Database(sqlx::Error::Database(db)) => !matches!(
            db.code().as_deref().map(|c| &c[..c.len().min(2)]),
            Some("22") | Some("23")
        ),
        AuditError::Database(_) | AuditError::Outbox(_) | AuditError::Migrate(_) => true,
        AuditError::BadCursor => false,
    }
}

impl AuditStore {
    /// A pool that connects on first use, so the service starts (and stays
    /// ready) while PostgreSQL is down; writes retry until it is back.
    pub fn connect_lazy(cfg: &AuditConfig) -> Result<Self, AuditError> {
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(cfg.writers as u32 + 1).max(1))
            .acquire_timeout(cfg.connect_timeout)
            .connect_lazy(&cfg.database_url)?;
        Ok(AuditStore { pool })
    }

    /// Wraps an existing pool (tests, tools).
    pub fn from_pool(pool: PgPool) -> Self {
        AuditStore { pool }
    }

    /// The pool, for callers that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether PostgreSQL answers.
    pub async fn ping(&self) -> Result<(), AuditError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Writes a batch in one transaction: every event once (redelivered ones
    /// are skipped by the unique keys), then the per-session rows. Returns
    /// only after COMMIT, so callers may acknowledge the batch's source.
    pub async fn write_batch(&self, events: &[AuditEvent]) -> Result<WriteOutcome, AuditError> {
        if events.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let n = events.len();
        let mut sid = Vec::with_capacity(n);
        let mut ver = Vec::with_capacity(n);
        let mut typ = Vec::with_capacity(n);
        let mut pid = Vec::with_capacity(n);
        let mut gid = Vec::with_capacity(n);
        let mut rem = Vec::with_capacity(n);
        let mut ela = Vec::with_capacity(n);
        let mut at = Vec::with_capacity(n);
        let mut st: Vec<Option<String>> = Vec::with_capacity(n);
        let mut act: Vec<Option<String>> = Vec::with_capacity(n);
        // Latest state per session (by version) and latest deletion.
        let mut latest: BTreeMap<Uuid, &AuditEvent> = BTreeMap::new();
        let mut deleted: BTreeMap<Uuid, i64> = BTreeMap::new();
        // One key order for every writer: concurrent transactions that meet
        // the same keys (redelivery, claims) then wait instead of deadlocking.
        let mut ordered: Vec<&AuditEvent> = events.iter().collect();
        ordered.sort_by_key(|e| (e.session_id, e.version, e.at_ms));
        for ev in ordered {
            sid.push(ev.session_id);
            ver.push(i64::try_from(ev.version).unwrap_or(i64::MAX));
            typ.push(ev.event_type.as_str());
            pid.push(ev.participant_id.clone());
            gid.push(group_of(ev));
            rem.push(ev.time_remaining_ms);
            ela.push(Some(ev.time_elapsed_ms));
            at.push(ts(ev.at_ms));
            st.push((!ev.state.is_null()).then(|| ev.state.to_string()));
            act.push(serde_json::to_string(&ev.actor).ok());
            if ev.version == 0 {
                let e = deleted.entry(ev.session_id).or_insert(ev.at_ms);
                *e = (*e).max(ev.at_ms);
            } else if ev.state.get("sync_mode").is_some_and(|m| m.is_string())
                && ev.state.get("status").is_some_and(|m| m.is_string())
            {
                let e = latest.entry(ev.session_id).or_insert(ev);
                if ev.version > e.version {
                    *e = ev;
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(INSERT_EVENTS)
            .bind(&sid)
            .bind(&ver)
            .bind(&typ)
            .bind(&pid)
            .bind(&gid)
            .bind(&rem)
            .bind(&ela)
            .bind(&at)
            .bind(&st)
            .bind(&act)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if !latest.is_empty() {
            // BTreeMap order = session id order: concurrent writers lock
            // session rows in the same order, which avoids deadlocks.
            let mut c = SessionCols::default();
            for ev in latest.values() {
                c.push(ev);
            }
            sqlx::query(UPSERT_SESSIONS)
                .bind(&c.ids)
                .bind(&c.versions)
                .bind(&c.ts)
                .bind(&c.mode)
                .bind(&c.total)
                .bind(&c.per_cycle)
                .bind(&c.increment)
                .bind(&c.max)
                .bind(&c.action)
                .bind(&c.auto)
                .bind(&c.created)
                .bind(&c.started)
                .bind(&c.completed)
                .bind(&c.status)
                .bind(&c.participants)
                .bind(&c.cycles)
                .bind(&c.metadata)
                .execute(&mut *tx)
                .await?;
        }
        if !deleted.is_empty() {
            let ids: Vec<Uuid> = deleted.keys().copied().collect();
            let tss: Vec<DateTime<Utc>> = deleted.values().map(|ms| ts(*ms)).collect();
            sqlx::query(MARK_DELETED)
                .bind(&ids)
                .bind(&tss)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(WriteOutcome {
            inserted,
            duplicates: n as u64 - inserted,
        })
    }

    /// A page of a session's history, in version order, deletions last.
    /// `cursor` is a `next_cursor` from a previous page; `limit` is clamped
    /// to 1..=1000.
    pub async fn history(
        &self,
        session_id: Uuid,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, AuditError> {
        let limit = limit.clamp(1, 1000);
        let (deleted, version, after) = match cursor {
            None => (false, -1i64, DateTime::<Utc>::UNIX_EPOCH),
            Some(c) => decode_cursor(c)?,
        };
        let rows = sqlx::query(HISTORY)
            .bind(session_id)
            .bind(deleted)
            .bind(version)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut data = Vec::with_capacity(rows.len());
        let mut last_key = None;
        for row in rows.iter().take(limit as usize) {
            let version: i64 = row.try_get("version")?;
            let at: DateTime<Utc> = row.try_get("timestamp")?;
            let state: Option<serde_json::Value> = row.try_get("state_snapshot")?;
            let actor: Option<serde_json::Value> = row.try_get("actor")?;
            last_key = Some((version == 0, version, at));
            data.push(HistoryEvent {
                id: row.try_get("id")?,
                session_id: row.try_get("session_id")?,
                version: u64::try_from(version).unwrap_or(0),
                event_type: row.try_get("event_type")?,
                participant_id: row.try_get("participant_id")?,
                group_id: row.try_get("group_id")?,
                time_remaining_ms: row.try_get("time_remaining_ms")?,
                time_elapsed_ms: row.try_get("time_elapsed_ms")?,
                at_ms: at.timestamp_millis(),
                timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
                state: state.unwrap_or(serde_json::Value::Null),
                actor: actor.and_then(|a| serde_json::from_value(a).ok()),
            });
        }
        let next_cursor = if rows.len() > limit as usize {
            last_key.map(|(d, v, at)| encode_cursor(d, v, at))
        } else {
            None
        };
        Ok(HistoryPage { data, next_cursor })
    }
}

/// Convenience for the API layer: a page of history from a store.
pub async fn history(
    store: &AuditStore,
    session_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> Result<HistoryPage, AuditError> {
    store.history(session_id, cursor, limit).await
}

fn encode_cursor(deleted: bool, version: i64, at: DateTime<Utc>) -> String {
    format!(
        "{}.{}.{}",
        u8::from(deleted),
        version,
        at.timestamp_micros()
    )
}

fn decode_cursor(c: &str) -> Result<(bool, i64, DateTime<Utc>), AuditError> {
    let mut it = c.split('.');
    let (Some(d), Some(v), Some(t), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(AuditError::BadCursor);
    };
    let deleted = match d {
        "0" => false,
        "1" => true,
        _ => return Err(AuditError::BadCursor),
    };
    let version: i64 = v.parse().map_err(|_| AuditError::BadCursor)?;
    let micros: i64 = t.parse().map_err(|_| AuditError::BadCursor)?;
    let at = DateTime::from_timestamp_micros(micros).ok_or(AuditError::BadCursor)?;
    Ok((deleted, version, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let at = ts(1_764_000_000_123);
        let c = encode_cursor(true, 0, at);
        assert_eq!(decode_cursor(&c).expect("own cursor"), (true, 0, at));
        let c = encode_cursor(false, 42, at);
        assert_eq!(decode_cursor(&c).expect("own cursor"), (false, 42, at));
        for bad in ["", "x", "0.1", "2.1.1", "0.a.1", "0.1.1.1", "0.1.b"] {
            assert!(
                matches!(decode_cursor(bad), Err(AuditError::BadCursor)),
                "{bad}"
            );
        }
    }

    #[test]
    fn group_comes_from_the_snapshot() {
        let ev = AuditEvent {
            session_id: Uuid::nil(),
            version: 3,
            event_type: crate::domain::EventKind::CycleSwitched,
            participant_id: Some("b".into()),
            time_remaining_ms: Some(5),
            time_elapsed_ms: 1,
            at_ms: 0,
            state: serde_json::json!({"participants": [
                {"participant_id": "a", "group_id": "red"},
                {"participant_id": "b", "group_id": "blue"}
            ]}),
            actor: crate::domain::Actor::anonymous(),
        };
        assert_eq!(group_of(&ev).as_deref(), Some("blue"));
    }
}
