-- create.lua: store a new session unless a live one has its id.
-- All keys share the session's bucket hash tag {b<k>} (one cluster slot).
--
-- KEYS[1]  state key          sk:{b<k>}:s:<uuid>
-- KEYS[2]  deadline index     sk:{b<k>}:d   (zset: member "<uuid>:<version>", score deadline ms)
-- KEYS[3]  audit outbox       sk:{b<k>}:o   (stream)
-- ARGV[1]  stored value       "<version>.<incarnation>|<session json>"
-- ARGV[2]  TTL in ms (> 0)
-- ARGV[3]  deadline member    "<uuid>:<version>"
-- ARGV[4]  deadline ms, or "" when the session has no running deadline
-- ARGV[5]  audit event JSON, or "" when there is no audit row
-- ARGV[6]  update channel     sk:{b<k>}:u:<uuid>
-- ARGV[7]  encoded update, or "" when nothing is published
--
-- The outbox is not trimmed here (see commit.lua).
--
-- Returns 1 when created, 0 when a live session has the id.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
end
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'e', ARGV[5])
end
if ARGV[7] ~= '' then
  redis.call('SPUBLISH', ARGV[6], ARGV[7])
end
return 1
