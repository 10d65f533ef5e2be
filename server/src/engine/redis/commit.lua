-- commit.lua: compare-and-commit, all or nothing, for one or more sessions.
-- For each commit: compares the stored CAS token, writes the new state with
-- its TTL, moves the deadline index entry, appends the audit event,
-- publishes the update. Commits are applied in order, each on its own (one
-- commit's refusal does not affect the next); the batch exists only so
-- concurrent commits share one round trip (see batch.rs). In a cluster a
-- batch holds one bucket's commits: all its keys share the bucket hash tag
-- {b<k>} (one slot).
--
-- Commit i (from 0) uses KEYS[3i+1 .. 3i+3] and ARGV[9i+1 .. 9i+9]:
-- KEYS +1  state key          sk:{b<k>}:s:<uuid>
-- KEYS +2  deadline index     sk:{b<k>}:d   (zset: member "<uuid>:<version>", score deadline ms)
-- KEYS +3  audit outbox       sk:{b<k>}:o   (stream)
-- ARGV +1  expected CAS token "<version>.<incarnation>" (the stored value's prefix)
-- ARGV +2  new stored value   "<version>.<incarnation>|<session json>"
-- ARGV +3  TTL in ms (> 0)
-- ARGV +4  old deadline member "<uuid>:<old version>" (removed if present)
-- ARGV +5  new deadline member "<uuid>:<new version>"
-- ARGV +6  new deadline ms, or "" when the session has no running deadline
-- ARGV +7  audit event JSON, or "" when there is no audit row
-- ARGV +8  update channel     sk:{b<k>}:u:<uuid>
-- ARGV +9  encoded update, or "" when nothing is published
--
-- The outbox is never trimmed here: the audit consumer deletes entries
-- once they are in PostgreSQL, so an unread event is never cut.
--
-- Returns one reply per commit, in order: 1 committed, -1 session not
-- found, or, when the token differs, the stored value itself: the caller
-- retries from it without another read. The token is the stored value's
-- prefix: a short GETRANGE, no JSON parsing.
local function commit(k, a)
  local head = redis.call('GETRANGE', KEYS[k + 1], 0, 31)
  if head == '' then
    return -1
  end
  if string.match(head, '^([^|]*)|') ~= ARGV[a + 1] then
    return redis.call('GET', KEYS[k + 1])
  end
  redis.call('SET', KEYS[k + 1], ARGV[a + 2], 'PX', ARGV[a + 3])
  redis.call('ZREM', KEYS[k + 2], ARGV[a + 4])
  if ARGV[a + 6] ~= '' then
    redis.call('ZADD', KEYS[k + 2], ARGV[a + 6], ARGV[a + 5])
  end
  if ARGV[a + 7] ~= '' then
    redis.call('XADD', KEYS[k + 3], '*', 'e', ARGV[a + 7])
  end
  if ARGV[a + 9] ~= '' then
    redis.call('SPUBLISH', ARGV[a + 8], ARGV[a + 9])
  end
  return 1
end

local replies = {}
for i = 0, #KEYS / 3 - 1 do
  replies[i + 1] = commit(3 * i, 9 * i)
end
return replies
