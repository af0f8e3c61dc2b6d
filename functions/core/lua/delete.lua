-- delete.lua: delete a job (JobStore.delete). Its record becomes a small tombstone (status
-- 'deleted', which every other script treats as gone or refuses) that expires after its
-- TTL, so a resize still running cannot finish it and a redelivered event
-- cannot re-create it. The index entry stays until the job's objects are gone (forget.lua).
--
-- KEYS[1] job: the job's hash
-- KEYS[2] watch: sorted set unfinished job id -> when the sweep looks again
-- KEYS[3] outbox: hash job id -> event JSON not yet accepted by the broker
-- KEYS[4] outbox due: sorted set job id -> when to (re)send
-- KEYS[5] pending uploads: sorted set job id -> when its original was stored
-- ARGV[1] job id
-- ARGV[2] now: epoch seconds
-- ARGV[3] tombstone TTL: seconds
-- Returns 0 if there is no such job (or it was already deleted and forgotten), 1 otherwise.
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return 0 end
if s == 'deleted' then
  if redis.call('HGET', KEYS[1], 'forgotten') == '1' then return 0 end
  return 1
end
local created = redis.call('HGET', KEYS[1], 'created_at') or '0'
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'deleted', 'created_at', created, 'deleted_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
