-- Who made each change (API.md "Authentication and authorization"):
-- {"kind": "api_key" | "token" | "server" | "anonymous", "name"?, "sub"?, "role"?}.
-- Nullable without a default, so adding it rewrites no existing row (a
-- metadata-only change in PostgreSQL); rows written before it read as null.
ALTER TABLE sync_events ADD COLUMN IF NOT EXISTS actor JSONB;
