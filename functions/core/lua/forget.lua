-- forget.lua: the job's objects are gone (JobStore.forget): drop its index entry, mark its
-- tombstone (if any) so a second DELETE answers 404, and delete a finished record that has
-- no expiry of its own (one that finished before retention was configured).
--
-- KEYS[1] job: the job's hash
-- KEYS[2] index: sorted set of every job, members "<created µs, 20 digits>:<job id>"
-- ARGV[1] index member: the job's entry in KEYS[2]
-- Returns 1.
redis.call('ZREM', KEYS[2], ARGV[1])
local s = redis.call('HGET', KEYS[1], 'status')
if s == 'deleted' then
  redis.call('HSET', KEYS[1], 'forgotten', '1')
elseif s == 'succeeded' or s == 'failed' then
  redis.call('DEL', KEYS[1])
end
return 1
