-- SyncKairos audit trail: the seed ARCHITECTURE.md schema, plus what
-- exactly-once delivery needs. PostgreSQL is written by the audit consumer
-- only (never on the hot path); see docs/audit.md.
--
-- Deviations from the seed, and why:
--   * participant_id / group_id are TEXT: participant ids are client strings.
--   * durations are BIGINT milliseconds (the service does i64 arithmetic).
--   * sync_events.version is the session version the change produced; the
--     unique index on (session_id, version) makes redelivery a no-op.
--     Deletions carry version 0 and are keyed by (session_id, timestamp).
--   * sync_sessions keeps the latest known state of each session: status
--     (final once terminal), totals, and last_version, which orders upserts.

CREATE TYPE sync_mode AS ENUM (
  'per_participant',
  'per_cycle',
  'per_group',
  'global',
  'count_up'
);

CREATE TYPE sync_status AS ENUM (
  'pending',
  'running',
  'paused',
  'expired',
  'completed',
  'cancelled'
);

CREATE TABLE sync_sessions (
  session_id UUID PRIMARY KEY,
  sync_mode sync_mode NOT NULL,
  total_time_ms BIGINT,
  time_per_cycle_ms BIGINT,
  increment_ms BIGINT DEFAULT 0,
  max_time_ms BIGINT,
  action_on_timeout JSONB,
  auto_advance BOOLEAN,

  -- Audit timestamps
  created_at TIMESTAMPTZ DEFAULT NOW(),
  started_at TIMESTAMPTZ,
  completed_at TIMESTAMPTZ,
  deleted_at TIMESTAMPTZ,

  -- Latest known state (final once the status is terminal)
  final_status sync_status,
  participant_count INTEGER,
  total_cycles BIGINT,
  last_version BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),

  -- Metadata
  metadata JSONB
);

CREATE INDEX idx_sync_sessions_created ON sync_sessions (created_at DESC);

CREATE TABLE sync_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id UUID NOT NULL,
  version BIGINT NOT NULL CHECK (version >= 0),

  -- Event details
  event_type VARCHAR(50) NOT NULL CHECK (event_type IN (
    'session_created', 'session_started', 'cycle_switched', 'session_paused',
    'session_resumed', 'participant_expired', 'session_completed',
    'session_cancelled', 'session_deleted')),
  participant_id TEXT,
  group_id TEXT,

  -- Time snapshot
  time_remaining_ms BIGINT,
  time_elapsed_ms BIGINT,
  timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),

  -- Full state snapshot (null for deletions)
  state_snapshot JSONB,

  -- Additional data
  metadata JSONB,
  written_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Exactly-once: one row per committed version of a session...
CREATE UNIQUE INDEX uq_sync_events_session_version
  ON sync_events (session_id, version) WHERE version > 0;
-- ...and one row per deletion (deletions have no version of their own).
CREATE UNIQUE INDEX uq_sync_events_session_deleted
  ON sync_events (session_id, timestamp) WHERE version = 0;

CREATE INDEX idx_sync_events_session ON sync_events (session_id, timestamp DESC);
CREATE INDEX idx_sync_events_type ON sync_events (event_type);
