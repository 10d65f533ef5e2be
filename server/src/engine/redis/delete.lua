-- delete.lua: remove a session, its deadline index entry, record and
-- publish the deletion. All keys share the bucket hash tag {b<k>}.
--
-- KEYS[1]  state key          sk:{b<k>}:s:<uuid>
-- KEYS[2]  deadline index     sk:{b<k>}:d
-- KEYS[3]  audit outbox       sk:{b<k>}:o
-- ARGV[1]  session id (uuid)
-- ARGV[2]  audit event JSON, or "" when there is no audit row
-- ARGV[3]  update channel     sk:{b<k>}:u:<uuid>
-- ARGV[4]  encoded deletion update, or "" when nothing is published
--
-- The outbox is not trimmed here (see commit.lua).
--
-- Returns 1 when the session existed, 0 when it was absent.
local head = redis.call('GETRANGE', KEYS[1], 0, 31)
if head == '' then
  return 0
end
redis.call('DEL', KEYS[1])
local v = string.match(head, '^(%d+)[.|]')
if v then
  redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. v)
end
if ARGV[2] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'e', ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('SPUBLISH', ARGV[3], ARGV[4])
end
return 1
