-- fail_unfinished.lua: fail a job that is not finished, whoever holds it (dead letters,
-- JobStore.fail_unfinished).
--
-- KEYS[1] job: the job's hash
-- KEYS[2] watch: sorted set unfinished job id -> when the sweep looks again
-- KEYS[3] outbox: hash job id -> event JSON not yet accepted by the broker
-- KEYS[4] outbox due: sorted set job id -> when to (re)send
-- KEYS[5] events: the stream of job state changes (changed.lua)
-- ARGV[1] job id
-- ARGV[2] retention: seconds a finished job is kept (0: forever)
-- ARGV[3..] field, value, field, value...: what else the job's hash records
-- Returns 1 if the job changed, 0 if it was gone, deleted or finished already.
--#include changed.lua
--#include settle.lua
local s = redis.call('HGET', KEYS[1], 'status')
if not s or s == 'succeeded' or s == 'failed' or s == 'deleted' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed')
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
settle(KEYS[1], tonumber(ARGV[2]))
changed(ARGV[1], 'failed')
return 1
