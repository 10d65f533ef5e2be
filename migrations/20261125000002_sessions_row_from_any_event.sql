-- A deletion can be written before (or concurrently with) the batch that
-- carries the session's last state: two writers commit batches in parallel.
-- The deletion then upserts a placeholder row keyed by session_id, so both
-- transactions meet on the primary key and neither update is lost; the
-- state columns fill in when the state arrives. sync_mode is therefore NULL
-- until the first state of a session has been written.
ALTER TABLE sync_sessions ALTER COLUMN sync_mode DROP NOT NULL;
