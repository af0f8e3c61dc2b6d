-- Fragment (--#include changed.lua): changed(id, status) adds one entry (fields job_id,
-- status) to the stream of job state changes, thumbnails:events (thumbnails.core.jobs.EVENTS_KEY),
-- which long polls and GET /events read (thumbnails.core.changes). Every script that changes a
-- job's status includes it, passes the events stream as its LAST key, and calls changed() in
-- the step that changes the status: no change is missed.
-- The stream is capped near EVENTS_MAXLEN entries (about 100 B each): at 100 jobs a second
-- (3 changes each) that keeps about 5 minutes for Last-Event-ID resumption.
local EVENTS_MAXLEN = 100000
local function changed(id, status)
  redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'job_id', id,
    'status', status)
end
