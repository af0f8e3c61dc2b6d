-- release.lua: give a lease back early (dependency outage, JobStore.release): the next
-- delivery may claim at once, and the attempt does not count (the image was never the
-- problem).
--
-- KEYS[1] job: the job's hash
-- ARGV[1] lease token: the one claim.lua stored
-- Returns 1 if released, 0 if the lease was not this token's.
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', '0', 'lease_token', '')
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
end
return 1
