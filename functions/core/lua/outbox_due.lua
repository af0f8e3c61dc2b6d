-- outbox_due.lua: outbox entries due now (JobStore.outbox_due): return them and push their
-- due time out, so one sender takes each.
--
-- KEYS[1] outbox: hash job id -> event JSON not yet accepted by the broker
-- KEYS[2] outbox due: sorted set job id -> when to (re)send
-- ARGV[1] now: epoch seconds
-- ARGV[2] next send: epoch seconds, when an entry returned now is due again
-- ARGV[3] batch size: at most this many entries
-- Returns {job id, event JSON, job id, event JSON...}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[1], id)
  if body then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    table.insert(out, id)
    table.insert(out, body)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
