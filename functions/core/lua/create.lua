-- create.lua: create a job (JobStore.create), unless its Idempotency-Key already names one
-- (then return that job's id). An Idempotency-Key naming a job that was deleted or expired
-- names this one.
--
-- KEYS[1] job: the job's hash
-- KEYS[2] index: sorted set of every job, members "<created µs, 20 digits>:<job id>"
-- KEYS[3] watch: sorted set unfinished job id -> when the sweep looks again
-- KEYS[4] pending uploads: sorted set job id -> when its original was stored
-- KEYS[5] outbox: hash job id -> event JSON not yet accepted by the broker
-- KEYS[6] outbox due: sorted set job id -> when to (re)send
-- KEYS[7] idempotency: the string naming the job of the client's Idempotency-Key
-- KEYS[8] client index: the index of the job's API client (written when the job has a
--         `client` field)
-- KEYS[9] events: the stream of job state changes (changed.lua)
-- ARGV[1] job id
-- ARGV[2] index member: the job's entry in KEYS[2] (and KEYS[8])
-- ARGV[3] when the sweep first looks: epoch seconds
-- ARGV[4] event JSON ('' none)
-- ARGV[5] when the sweep sends the event: epoch seconds ('' no outbox entry)
-- ARGV[6] idempotency TTL: seconds ('' no Idempotency-Key)
-- ARGV[7] '1' to write nothing if the job exists (then its id is returned; a tombstone
--         counts), else '0'
-- ARGV[8] job key prefix: a job's hash is this followed by its id
-- ARGV[9..] field, value, field, value...: the job's hash
-- Returns the id of the job that is already there, or false (nil) if this one was written.
--#include changed.lua
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return ARGV[1] end
if ARGV[6] ~= '' then
  local existing = redis.call('GET', KEYS[7])
  if existing then
    local s = redis.call('HGET', ARGV[8] .. existing, 'status')
    if s and s ~= 'deleted' then return existing end
  end
  redis.call('SET', KEYS[7], ARGV[1], 'EX', tonumber(ARGV[6]))
end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'event', ARGV[4]) end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
local client = redis.call('HGET', KEYS[1], 'client')
if client and client ~= '' then redis.call('ZADD', KEYS[8], 0, ARGV[2]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
  redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
end
changed(ARGV[1], redis.call('HGET', KEYS[1], 'status'))
return false
