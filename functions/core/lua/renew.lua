-- renew.lua: extend the lease of a job this worker still holds (its heartbeat,
-- JobStore.renew). Refused once the lease was taken over or the job finished or was
-- deleted, and past the job deadline (so the sweep can time out a worker that hangs).
--
-- KEYS[1] job: the job's hash
-- KEYS[2] watch: sorted set unfinished job id -> when the sweep looks again
-- ARGV[1] job id
-- ARGV[2] lease token: the one claim.lua stored
-- ARGV[3] lease until: epoch seconds
-- ARGV[4] deadline: epoch seconds; a job created before it is not renewed
-- Returns 1 if renewed, 0 if refused.
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[2] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'created_at') or '0') < tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
