-- finish.lua: move a job this worker holds to a terminal status (JobStore.finish). Refused
-- once it lost the lease, or the job was deleted (a tombstone's status is 'deleted').
--
-- KEYS[1] job: the job's hash
-- KEYS[2] watch: sorted set unfinished job id -> when the sweep looks again
-- KEYS[3] events: the stream of job state changes (changed.lua)
-- ARGV[1] job id
-- ARGV[2] lease token: the one claim.lua stored
-- ARGV[3] status: succeeded or failed
-- ARGV[4] retention: seconds a finished job is kept (0: forever)
-- ARGV[5..] field, value, field, value...: what else the job's hash records
-- Returns 1 if finished, 0 if refused.
--#include changed.lua
--#include settle.lua
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
settle(KEYS[1], tonumber(ARGV[4]))
changed(ARGV[1], ARGV[3])
return 1
