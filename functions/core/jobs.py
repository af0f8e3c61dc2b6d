"""Job records in Redis: typed records, atomic state changes, the job index and the event outbox."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any, ParamSpec, TypeVar

import redis

from .errors import RedisUnavailable

P = ParamSpec("P")
R = TypeVar("R")

JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Redis key names: the one place they are defined.
PREFIX = "thumbnails"
INDEX_KEY = f"{PREFIX}:jobs"  # sorted set, all scores 0, members "<created µs, 20 digits>:<job id>"
OUTBOX_KEY = f"{PREFIX}:outbox"  # hash job id -> event JSON not yet accepted by the broker
OUTBOX_DUE_KEY = f"{PREFIX}:outbox:due"  # sorted set job id -> when to (re)send


def job_key(job_id: str) -> str:
    """Redis key of one job's hash."""
    return f"{PREFIX}:job:{job_id}"


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this worker holds the lease now
    DONE = "done"  # already succeeded or failed: nothing to do
    BUSY = "busy"  # another worker holds an unexpired lease
    MISSING = "missing"  # no such job
    EXHAUSTED = "exhausted"  # out of attempts: the script marked it failed


@dataclass
class Job:
    """One job's record, stored as a Redis hash of strings."""

    job_id: str
    status: JobStatus = JobStatus.QUEUED
    created_at: float = 0.0
    bucket: str = ""
    original_key: str = ""
    original_bytes: int = 0
    source_format: str = ""
    source_width: int = 0
    source_height: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""
    event_source: str = ""
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    processing_time_ms: int | None = None
    thumbnail_key: str = ""
    content_type: str = ""
    thumbnail_width: int = 0
    thumbnail_height: int = 0
    thumbnail_bytes: int = 0
    etag: str = ""
    error_code: str = ""
    error_message: str = ""
    stage_fetch_ms: float | None = None
    stage_decode_ms: float | None = None
    stage_encode_ms: float | None = None
    stage_store_ms: float | None = None

    def to_redis(self) -> dict[str, str]:
        """The hash fields to write; None values are left out."""
        return dict(_pairs(asdict(self)))

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> Job:
        """Parse a Redis hash written by to_redis (unknown fields are ignored)."""
        text = {k.decode(): v.decode() for k, v in raw.items()}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in text or text[f.name] == "":
                continue
            value = text[f.name]
            kind = str(f.type)
            if f.name == "status":
                values[f.name] = JobStatus(value)
            elif f.name == "options":
                values[f.name] = json.loads(value)
            elif kind.startswith("int"):
                values[f.name] = int(float(value))
            elif kind.startswith("float"):
                values[f.name] = float(value)
            else:
                values[f.name] = value
        return cls(**values)


def redis_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn connection-level Redis failures into RedisUnavailable (503)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            raise RedisUnavailable(f"Redis is unavailable: {exc}") from exc

    return wrapper



# KEYS: job, outbox, outbox due. ARGV: job id, token, now, lease until, max attempts.
_CLAIM = """
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return {'missing', {}} end
if s == 'succeeded' or s == 'failed' then return {'done', redis.call('HGETALL', KEYS[1])} end
local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
if s == 'processing' and lease_until > tonumber(ARGV[3]) then return {'busy', {}} end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error_code', 'too_many_attempts',
    'error_message', 'gave up after ' .. attempts .. ' attempts', 'finished_at', ARGV[3],
    'lease_token', '', 'lease_until', '0')
  return {'exhausted', redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'status', 'processing', 'lease_token', ARGV[2],
  'lease_until', ARGV[4], 'attempts', attempts + 1)
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
return {'claimed', redis.call('HGETALL', KEYS[1])}
"""

# Finish a job this worker holds. KEYS: job. ARGV: token, status, then field/value pairs.
_FINISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'lease_token', '', 'lease_until', '0')
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# Fail a job that is not finished, whoever holds it (dead letters). KEYS: job. ARGV: pairs.
_FAIL_UNFINISHED = """
local s = redis.call('HGET', KEYS[1], 'status')
if not s or s == 'succeeded' or s == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'lease_token', '', 'lease_until', '0')
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# Give a lease back early (dependency outage): the next delivery may claim at once.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', '0')
return 1
"""

# Outbox entries due now: return them and push their due time out, so one sender takes each.
_OUTBOX_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[1], id)
  if body then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    table.insert(out, id)
    table.insert(out, body)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
"""


def index_member(created_at: float, job_id: str) -> str:
    """Index entries sort by creation time, then id, as plain strings."""
    return f"{int(created_at * 1_000_000):020d}:{job_id}"


class JobStore:
    """Job records, index and outbox on one Redis connection pool."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._fail_unfinished = client.register_script(_FAIL_UNFINISHED)
        self._release = client.register_script(_RELEASE)
        self._outbox_due = client.register_script(_OUTBOX_DUE)

    @redis_errors
    def create(self, job: Job, event_json: bytes | None = None, send_by: float = 0.0) -> None:
        """Write the job, its index entry and (if given) its outbox event in one transaction;
        a sweep sends the event from `send_by` on unless it has been acknowledged by then."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(job_key(job.job_id), mapping=job.to_redis())
        pipe.zadd(INDEX_KEY, {index_member(job.created_at, job.job_id): 0})
        if event_json is not None:
            pipe.hset(OUTBOX_KEY, job.job_id, event_json)
            pipe.zadd(OUTBOX_DUE_KEY, {job.job_id: send_by or job.created_at})
        pipe.execute()

    @redis_errors
    def create_if_absent(self, job: Job) -> bool:
        """Create a job unless one with this id exists; True if this call created it."""
        if not self.redis.hsetnx(job_key(job.job_id), "job_id", job.job_id):
            return False
        self.create(job)
        return True

    @redis_errors
    def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown (or the id is malformed)."""
        if not JOB_ID.match(job_id):
            return None
        raw = self.redis.hgetall(job_key(job_id))
        return Job.from_redis(raw) if raw and b"status" in raw else None

    @redis_errors
    def claim(
        self, job_id: str, token: str, lease_seconds: float, max_attempts: int
    ) -> tuple[ClaimOutcome, Job | None]:
        """Atomically take the job's processing lease if it is free; the record as it is now."""
        now = time.time()
        outcome, flat = self._claim(
            keys=[job_key(job_id), OUTBOX_KEY, OUTBOX_DUE_KEY],
            args=[job_id, token, repr(now), repr(now + lease_seconds), max_attempts],
        )
        record = dict(zip(flat[::2], flat[1::2], strict=True))
        return ClaimOutcome(outcome.decode()), Job.from_redis(record) if record else None

    @redis_errors
    def finish(self, job_id: str, token: str, status: JobStatus, **values: Any) -> bool:
        """Move a job this worker holds to a terminal status; False if the lease was lost."""
        return bool(self._finish(keys=[job_key(job_id)], args=[token, status.value,
                                                                *_flat(values)]))

    @redis_errors
    def fail_unfinished(self, job_id: str, **values: Any) -> bool:
        """Fail a job whoever holds it, unless it already finished; True if it changed."""
        return bool(self._fail_unfinished(keys=[job_key(job_id)], args=_flat(values)))

    @redis_errors
    def release(self, job_id: str, token: str) -> None:
        """Give the lease back so a redelivery can claim the job at once."""
        self._release(keys=[job_key(job_id)], args=[token])

    @redis_errors
    def page(self, limit: int, cursor: str | None = None) -> tuple[list[tuple[str, str]], str]:
        """Newest first: [(job id, status)] and the cursor of the next page ('' at the end)."""
        upper = f"({cursor}" if cursor else "+"
        members = [m.decode() for m in self.redis.zrevrangebylex(
            INDEX_KEY, upper, "-", start=0, num=limit + 1)]
        page, more = members[:limit], len(members) > limit
        ids = [m.split(":", 1)[1] for m in page]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(job_key(job_id), "status")
        statuses = pipe.execute()
        jobs = [(job_id, s.decode()) for job_id, s in zip(ids, statuses, strict=True) if s]
        return jobs, (page[-1] if more else "")

    @redis_errors
    def outbox_due(self, retry_after: float, batch: int) -> list[tuple[str, bytes]]:
        """Outbox events due now; each is pushed retry_after seconds out until acknowledged."""
        now = time.time()
        flat = self._outbox_due(keys=[OUTBOX_KEY, OUTBOX_DUE_KEY],
                                args=[repr(now), repr(now + retry_after), batch])
        return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]

    @redis_errors
    def outbox_ack(self, job_id: str) -> None:
        """The broker accepted the job's event: drop it from the outbox."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(OUTBOX_KEY, job_id)
        pipe.zrem(OUTBOX_DUE_KEY, job_id)
        pipe.execute()

    @redis_errors
    def outbox_depth(self) -> int:
        """How many events wait for the broker."""
        return int(self.redis.hlen(OUTBOX_KEY))

    @redis_errors
    def ping(self) -> None:
        """RedisUnavailable unless Redis answers."""
        self.redis.ping()


def _pairs(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, text) for each value that is set, as a job hash stores it."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            yield name, json.dumps(value, sort_keys=True)
        elif isinstance(value, Enum):
            yield name, value.value
        else:
            yield name, str(value)


def _flat(values: dict[str, Any]) -> list[str]:
    """Field/value pairs as one list of script arguments."""
    return [text for pair in _pairs(values) for text in pair]
