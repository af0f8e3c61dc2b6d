-- recover.lua: the sweep over unfinished jobs the watch list says are due (JobStore.recover).
-- A job past its deadline fails (timed_out); one still queued, or whose worker's lease ran
-- out, has its event put back in the outbox. A job whose lease ran out stays 'processing'
-- (a job never moves backwards): the next claim takes it over. (It reads job keys it is not
-- handed: fine on one Redis, not on Redis Cluster.)
--
-- KEYS[1] watch: sorted set unfinished job id -> when the sweep looks again
-- KEYS[2] outbox: hash job id -> event JSON not yet accepted by the broker
-- KEYS[3] outbox due: sorted set job id -> when to (re)send
-- KEYS[4] events: the stream of job state changes (changed.lua)
-- ARGV[1] now: epoch seconds
-- ARGV[2] when to look again: epoch seconds
-- ARGV[3] deadline: epoch seconds; jobs created before it are failed
-- ARGV[4] batch size: how many watch entries one call takes
-- ARGV[5] job key prefix: a job's hash is this followed by its id
-- ARGV[6] retention: seconds a finished job is kept (0: forever)
-- Returns a list with 'requeued' or 'timed_out' for each job it acted on.
--#include changed.lua
--#include settle.lua
local now = tonumber(ARGV[1])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0,
                               tonumber(ARGV[4]))) do
  local key = ARGV[5] .. id
  local s = redis.call('HGET', key, 'status')
  local lease_until = tonumber(redis.call('HGET', key, 'lease_until') or '0')
  if not s or s == 'succeeded' or s == 'failed' or s == 'deleted' then
    redis.call('ZREM', KEYS[1], id)
  elseif s == 'processing' and lease_until > now then
    redis.call('ZADD', KEYS[1], lease_until, id)
  elseif tonumber(redis.call('HGET', key, 'created_at') or '0') < tonumber(ARGV[3]) then
    redis.call('HSET', key, 'status', 'failed', 'error_code', 'timed_out',
      'error_message', 'not finished within the job deadline', 'finished_at', ARGV[1],
      'lease_token', '', 'lease_until', '0')
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    settle(key, tonumber(ARGV[6]))
    changed(id, 'failed')
    table.insert(out, 'timed_out')
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    local event = redis.call('HGET', key, 'event')
    if event then
      redis.call('HSET', KEYS[2], id, event)
      redis.call('ZADD', KEYS[3], ARGV[1], id)
      table.insert(out, 'requeued')
    end
  end
end
return out
