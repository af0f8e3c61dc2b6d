-- Fragment (--#include settle.lua): settle(key, retention).
-- Trim a job that just finished to what status needs (no stored event, no lease, no job id:
-- its key names it, no empty fields: Job.from_redis reads a missing field as empty), and let
-- it expire. Rewriting the hash (not HDEL) lets Redis store it compactly again, as a listpack:
-- Redis never converts a hash back from a hashtable. retention: seconds, 0 = keep forever.
local function settle(key, retention)
  local all = redis.call('HGETALL', key)
  local keep = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if all[i + 1] ~= '' and f ~= 'event' and f ~= 'lease_token' and f ~= 'lease_until'
        and f ~= 'job_id' then
      keep[#keep + 1] = f
      keep[#keep + 1] = all[i + 1]
    end
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(keep))
  if retention > 0 then redis.call('EXPIRE', key, retention) end
end
