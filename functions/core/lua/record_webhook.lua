-- record_webhook.lua: note one webhook delivery on a job that still exists, never
-- re-creating a deleted one (JobStore.record_webhook).
--
-- KEYS[1] job: the job's hash
-- ARGV[1] outcome: delivered, failed, refused or gave_up
-- ARGV[2] HTTP status: the receiver's answer (0: none)
-- ARGV[3] error: text, at most 500 characters
-- ARGV[4] time: epoch seconds
-- Returns 1 if noted, 0 if the job is gone or deleted.
local s = redis.call('HGET', KEYS[1], 'status')
if not s or s == 'deleted' then return 0 end  -- gone, or a tombstone (DELETED)
redis.call('HINCRBY', KEYS[1], 'webhook_attempts', 1)
redis.call('HSET', KEYS[1], 'webhook_outcome', ARGV[1], 'webhook_response', ARGV[2],
  'webhook_error', ARGV[3], 'webhook_at', ARGV[4])
return 1
