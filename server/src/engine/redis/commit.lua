-- commit.lua: compare-and-commit, all or nothing.
-- Compares the stored CAS token, writes the new state with its TTL, moves the
-- deadline index entry, appends the audit event, publishes the update.
-- All keys share the session's bucket hash tag {b<k>} (one cluster slot).
--
-- KEYS[1]  state key          sk:{b<k>}:s:<uuid>
-- KEYS[2]  deadline index     sk:{b<k>}:d   (zset: member "<uuid>:<version>", score deadline ms)
-- KEYS[3]  audit outbox       sk:{b<k>}:o   (stream)
-- ARGV[1]  expected CAS token "<version>.<incarnation>" (the stored value's prefix)
-- ARGV[2]  new stored value   "<version>.<incarnation>|<session json>"
-- ARGV[3]  TTL in ms (> 0)
-- ARGV[4]  old deadline member "<uuid>:<old version>" (removed if present)
-- ARGV[5]  new deadline member "<uuid>:<new version>"
-- ARGV[6]  new deadline ms, or "" when the session has no running deadline
-- ARGV[7]  audit event JSON, or "" when there is no audit row
-- ARGV[8]  outbox MAXLEN (approximate trim)
-- ARGV[9]  update channel     sk:{b<k>}:u:<uuid>
-- ARGV[10] encoded update, or "" when nothing is published
--
-- Returns 1 committed, -1 session not found, or, when the token differs,
-- the stored value itself: the caller retries from it without another read.
-- The token is the stored value's prefix: a short GETRANGE, no JSON parsing.
local head = redis.call('GETRANGE', KEYS[1], 0, 31)
if head == '' then
  return -1
end
if string.match(head, '^([^|]*)|') ~= ARGV[1] then
  return redis.call('GET', KEYS[1])
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[4])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
end
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'e', ARGV[7])
end
if ARGV[10] ~= '' then
  redis.call('SPUBLISH', ARGV[9], ARGV[10])
end
return 1
