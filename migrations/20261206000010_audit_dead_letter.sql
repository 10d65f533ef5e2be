-- Audit events PostgreSQL rejected as data (not an outage): the batch they
-- came in is split until the rejected event stands alone, the rest is
-- written, and the event lands here with the error instead of being
-- retried forever or logged with its content. See docs/audit.md.
--
-- payload is the event as the consumer received it (JSON text; TEXT, not
-- JSONB, because the reason it is here may be that jsonb refused it).
CREATE TABLE sync_events_dead_letter (
  id BIGSERIAL PRIMARY KEY,
  session_id UUID NOT NULL,
  version BIGINT NOT NULL,
  event_type TEXT NOT NULL,
  error TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  payload TEXT NOT NULL,
  failed_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_sync_events_dead_letter_session
  ON sync_events_dead_letter (session_id, version);
