-- claim.lua: take a job's processing lease if it is free (JobStore.claim).
-- A finished job answers 'done'; one out of attempts is failed here ('exhausted'); a
-- 'processing' job whose lease ran out is taken over (its status does not change).
--
-- KEYS[1] job: the job's hash (thumbnails:job:<id>)
-- KEYS[2] outbox: hash job id -> event JSON not yet accepted by the broker
-- KEYS[3] outbox due: sorted set job id -> when to (re)send
-- KEYS[4] watch: sorted set unfinished job id -> when the sweep looks again
-- KEYS[5] events: the stream of job state changes (changed.lua)
-- ARGV[1] job id
-- ARGV[2] lease token: this worker's, random
-- ARGV[3] now: epoch seconds
-- ARGV[4] lease until: epoch seconds
-- ARGV[5] max attempts: how many claims a job gets
-- ARGV[6] retention: seconds a finished job is kept (0: forever)
-- Returns {outcome, the job's hash as a flat list}: outcome claimed, done, busy, missing or
-- exhausted (thumbnails.core.jobs.ClaimOutcome); missing and busy return an empty list.
--#include changed.lua
--#include settle.lua
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return {'missing', {}} end
if s == 'succeeded' or s == 'failed' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return {'done', redis.call('HGETALL', KEYS[1])}
end
if s == 'deleted' then return {'missing', {}} end
local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
if s == 'processing' and lease_until > tonumber(ARGV[3]) then return {'busy', {}} end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error_code', 'too_many_attempts',
    'error_message', 'gave up after ' .. attempts .. ' attempts', 'finished_at', ARGV[3],
    'lease_token', '', 'lease_until', '0')
  redis.call('ZREM', KEYS[4], ARGV[1])
  settle(KEYS[1], tonumber(ARGV[6]))
  changed(ARGV[1], 'failed')
  return {'exhausted', redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'status', 'processing', 'lease_token', ARGV[2],
  'lease_until', ARGV[4], 'attempts', attempts + 1)
if s ~= 'processing' then changed(ARGV[1], 'processing') end  -- a takeover changes no status
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])  -- the sweep looks again when the lease ends
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
return {'claimed', redis.call('HGETALL', KEYS[1])}
