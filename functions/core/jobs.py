"""Job records in Redis: typed records, atomic state changes, the job index and the event outbox."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum, StrEnum
from typing import Any, ParamSpec, TypeVar

import redis

from . import luascripts
from .errors import RedisUnavailable
from .renditions import Request
from .statuses import TERMINAL, JobStatus

P = ParamSpec("P")
R = TypeVar("R")

# \Z, not $: "$" also matches before a final newline, and "<uuid>\n" is no job id.
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

# Redis key names: the one place they are defined.
PREFIX = "thumbnails"
INDEX_KEY = f"{PREFIX}:jobs"  # sorted set, all scores 0, members "<created µs, 20 digits>:<job id>"
OUTBOX_KEY = f"{PREFIX}:outbox"  # hash job id -> event JSON not yet accepted by the broker
OUTBOX_DUE_KEY = f"{PREFIX}:outbox:due"  # sorted set job id -> when to (re)send
WATCH_KEY = f"{PREFIX}:jobs:watch"  # sorted set unfinished job id -> when the sweep looks again
PENDING_UPLOADS_KEY = f"{PREFIX}:uploads"  # sorted set job id -> when its original was stored
SWEEP_SLOT_KEY = f"{PREFIX}:sweep:requested"  # exists (with a TTL) while a requested sweep's
#                                              interval runs: POST /sweep
READY_PROBE_KEY = f"{PREFIX}:ready"  # written by every readiness probe; expires in 10 s
IDEMPOTENCY_TTL = 24 * 3600  # how long an Idempotency-Key names its job
TOMBSTONE_TTL = 24 * 3600  # how long a deleted job's tombstone refuses a late finish or re-create
DELETED = "deleted"  # the status field of a tombstone (never shown: get() answers None)
# Stream of every job state change (fields job_id, status), XADDed by the Lua scripts in the
# same step that changes the status (lua/changed.lua, which also caps its length): long polls
# and GET /events read it (thumbnails.core.changes). The one key every job touches: on Redis
# Cluster it would become one stream per hash slot range.
EVENTS_KEY = f"{PREFIX}:events"


def job_key(job_id: str) -> str:
    """Redis key of one job's hash."""
    return f"{PREFIX}:job:{job_id}"


def idempotency_key(client_key: str, client: str = "") -> str:
    """Redis key naming the job of a client's Idempotency-Key (hashed: any text is safe),
    scoped to the API key's client when keys are on (another client's key is another key)."""
    scoped = f"{client}\n{client_key}" if client else client_key
    return f"{PREFIX}:idempotency:{hashlib.sha256(scoped.encode()).hexdigest()}"


def client_index_key(client: str) -> str:
    """Redis key of one API client's job index (members as INDEX_KEY's)."""
    return f"{INDEX_KEY}:client:{client}"


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this worker holds the lease now
    DONE = "done"  # already succeeded or failed: nothing to do
    BUSY = "busy"  # another worker holds an unexpired lease
    MISSING = "missing"  # no such job
    EXHAUSTED = "exhausted"  # out of attempts: the script marked it failed


@dataclass(frozen=True)
class RenditionRecord:
    """One stored rendition of a job that asked for several (see thumbnails.core.renditions)."""

    name: str
    key: str  # object key in the job's bucket
    content_type: str
    width: int  # pixels
    height: int
    size: int  # bytes
    etag: str

    def describe(self, url: str) -> dict[str, Any]:
        """What the job's JSON and thumbnail.generated say about it, with its status URL."""
        return {"name": self.name, "content_type": self.content_type, "width": self.width,
                "height": self.height, "size": self.size, "url": url}


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
    options: Request = field(default_factory=Request)  # what it asks for, typed
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
    # Renditions made, in the order asked; the first also fills the thumbnail_* fields above.
    renditions: list[RenditionRecord] = field(default_factory=list)
    error_code: str = ""
    error_message: str = ""
    client: str = ""  # the API client that created it (web.client_of); "" keys off or an event
    request_digest: str = ""  # its upload's fingerprint, for Idempotency-Key replays
    stage_fetch_ms: float | None = None
    stage_decode_ms: float | None = None
    stage_encode_ms: float | None = None
    stage_store_ms: float | None = None
    # where the result is POSTed when the job ends (thumbnails.core.webhooks)
    callback_url: str = ""
    # The webhook's deliveries so far (never the job's own state): how many attempts, the
    # outcome of the last (delivered, failed, refused, gave_up), its HTTP status (0: none),
    # error text and time.
    webhook_attempts: int = 0
    webhook_outcome: str = ""
    webhook_response: int = 0
    webhook_error: str = ""
    webhook_at: float | None = None

    def to_redis(self) -> dict[str, str]:
        """The hash fields to write; None values are left out."""
        return dict(_pairs({f.name: getattr(self, f.name) for f in fields(self)}))

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes], job_id: str | None = None) -> Job:
        """Parse a Redis hash written by to_redis (unknown fields are ignored); `job_id` for a
        finished job's hash, which no longer repeats the id its key holds."""
        text = {k.decode(): v.decode() for k, v in raw.items()}
        values: dict[str, Any] = {"job_id": job_id} if job_id else {}
        for f in fields(cls):
            if f.name not in text or text[f.name] == "":
                continue
            value = text[f.name]
            kind = str(f.type)
            if f.name == "status":
                values[f.name] = JobStatus(value)
            elif f.name == "options":
                values[f.name] = Request.from_dict(json.loads(value))
            elif f.name == "renditions":
                values[f.name] = [RenditionRecord(**item) for item in json.loads(value)]
            elif kind.startswith("int"):
                values[f.name] = int(float(value))
            elif kind.startswith("float"):
                values[f.name] = float(value)
            else:
                values[f.name] = value
        return cls(**values)


# Error codes (the first word of a Redis error reply) that mean "cannot do this now, try
# again later", not "this command is wrong": used memory over maxmemory under noeviction
# (OOM), the last RDB or AOF write failed (MISCONF), a replica (READONLY), the data is still
# loading (LOADING), a script runs too long (BUSY), too few replicas (NOREPLICAS), the
# master is gone (MASTERDOWN), cluster trouble (TRYAGAIN, CLUSTERDOWN). Error prefixes as
# Valkey's and Redis's server.c and cluster.c send them; redis-py strips the code of those it
# maps to a class (OutOfMemoryError, ReadOnlyError...) into exc.status_code.
UNAVAILABLE_CODES = frozenset({"OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "NOREPLICAS",
                               "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})


# The code begins the reply, a script's too ("MISCONF ... script: on @user_script:1."); a
# pipeline's error names it after its command ("Command # 1 (SET a b) of pipeline caused
# error: MISCONF ...").
_ERROR_CODE = re.compile(r"^(?:Command # \d+ .*? of pipeline caused error: )?([A-Z]+)\b")


def unavailable(exc: redis.ResponseError) -> bool:
    """True if this error reply means Redis cannot write now (UNAVAILABLE_CODES)."""
    code = getattr(exc, "status_code", None)
    if code is None:
        match = _ERROR_CODE.match(str(exc))
        code = match.group(1) if match else ""
    return code in UNAVAILABLE_CODES


def redis_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn connection-level Redis failures, and error replies that mean "cannot write now"
    (unavailable), into RedisUnavailable (503 with Retry-After)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            raise RedisUnavailable(f"Redis is unavailable: {exc}") from exc
        except redis.ResponseError as exc:
            if not unavailable(exc):
                raise
            code = getattr(exc, "status_code", None)
            raise RedisUnavailable(
                f"Redis cannot write now: {code + ' ' if code else ''}{exc}") from exc

    return wrapper


def index_member(created_at: float, job_id: str) -> str:
    """Index entries sort by creation time, then id, as plain strings."""
    return f"{int(created_at * 1_000_000):020d}:{job_id}"


class JobStore:
    """Job records, index and outbox on one Redis connection pool. A job that finishes expires
    `retention_seconds` later (0: never). Every change of a job's status is one Lua script
    (lua/<name>.lua, whose header names its KEYS and ARGV: thumbnails.core.luascripts)."""

    def __init__(self, client: redis.Redis, retention_seconds: float = 0) -> None:
        self.redis = client
        self.retention = max(0, round(retention_seconds))  # EXPIRE takes whole seconds
        self._claim = luascripts.register(client, "claim")
        self._finish = luascripts.register(client, "finish")
        self._renew = luascripts.register(client, "renew")
        self._delete = luascripts.register(client, "delete")
        self._forget = luascripts.register(client, "forget")
        self._fail_unfinished = luascripts.register(client, "fail_unfinished")
        self._release = luascripts.register(client, "release")
        self._outbox_due = luascripts.register(client, "outbox_due")
        self._create = luascripts.register(client, "create")
        self._recover = luascripts.register(client, "recover")
        self._record_webhook = luascripts.register(client, "record_webhook")

    @redis_errors
    def create(self, job: Job, event_json: bytes, *, check_at: float,
               send_by: float | None = None, idempotency: str | None = None,
               unless_exists: bool = False) -> str | None:
        """Write the job (keeping its event, for re-emitting), its index and watch entries and,
        with `send_by`, an outbox entry the sweep sends from then on unless acknowledged, all
        atomically. Write nothing and return the id of the job that is already there when an
        Idempotency-Key already names one, or (`unless_exists`) when this job exists."""
        existing = self._create(
            keys=[job_key(job.job_id), INDEX_KEY, WATCH_KEY, PENDING_UPLOADS_KEY, OUTBOX_KEY,
                  OUTBOX_DUE_KEY, idempotency_key(idempotency or "", job.client),
                  client_index_key(job.client), EVENTS_KEY],
            args=[job.job_id, index_member(job.created_at, job.job_id), repr(check_at),
                  event_json, "" if send_by is None else repr(send_by),
                  IDEMPOTENCY_TTL if idempotency else "", "1" if unless_exists else "0",
                  job_key(""), *_flat(job.to_redis())])
        return existing.decode() if existing else None

    def create_if_absent(self, job: Job, event_json: bytes, check_at: float) -> bool:
        """Create a job unless one with this id exists (atomically); True if this call did."""
        return self.create(job, event_json, check_at=check_at, unless_exists=True) is None

    @redis_errors
    def record_webhook(self, job_id: str, outcome: str, response: int = 0,
                       error: str = "") -> bool:
        """Count one webhook delivery attempt and its outcome on the job (False: no such job).
        Only the webhook_* fields change: a delivery never touches the job's status."""
        return bool(self._record_webhook(keys=[job_key(job_id)],
                                         args=[outcome, response, error[:500], repr(time.time())]))

    @redis_errors
    def idempotent_job(self, idempotency: str, client: str = "") -> str | None:
        """The id of the job a client's Idempotency-Key names, if any."""
        found = self.redis.get(idempotency_key(idempotency, client))
        return found.decode() if found else None

    @redis_errors
    def recover(self, requeue_after: float, deadline: float, batch: int = 100) -> dict[str, int]:
        """One pass over unfinished jobs due a look: {"requeued": n, "timed_out": m}."""
        now = time.time()
        counts = {"requeued": 0, "timed_out": 0}
        while True:
            outcomes = self._recover(
                keys=[WATCH_KEY, OUTBOX_KEY, OUTBOX_DUE_KEY, EVENTS_KEY],
                args=[repr(now), repr(now + requeue_after), repr(now - deadline), batch,
                      job_key(""), self.retention])
            for outcome in outcomes:
                counts[outcome.decode()] += 1
            if self.redis.zcount(WATCH_KEY, "-inf", repr(now)) == 0:
                return counts

    @redis_errors
    def note_upload(self, job_id: str) -> None:
        """An original is about to be stored for this job: until the job's record is written,
        the original counts as a possible orphan."""
        self.redis.zadd(PENDING_UPLOADS_KEY, {job_id: time.time()})

    @redis_errors
    def orphaned_uploads(self, older_than: float, batch: int = 100) -> list[str]:
        """Job ids whose original was stored over `older_than` seconds ago without a record."""
        ids = [m.decode() for m in self.redis.zrangebyscore(
            PENDING_UPLOADS_KEY, "-inf", repr(time.time() - older_than), start=0, num=batch)]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(job_key(job_id))
        exists = pipe.execute()
        recorded = [job_id for job_id, found in zip(ids, exists, strict=True) if found]
        if recorded:  # the record's own transaction removes its entry; never both alive
            self.redis.zrem(PENDING_UPLOADS_KEY, *recorded)
        return [job_id for job_id, found in zip(ids, exists, strict=True) if not found]

    @redis_errors
    def forget_upload(self, job_id: str) -> None:
        """The orphaned original is gone."""
        self.redis.zrem(PENDING_UPLOADS_KEY, job_id)

    @redis_errors
    def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown (or the id is malformed)."""
        if not JOB_ID.match(job_id):
            return None
        raw = self.redis.hgetall(job_key(job_id))
        if not raw or raw.get(b"status", DELETED.encode()) == DELETED.encode():
            return None
        return Job.from_redis(raw, job_id)

    @redis_errors
    def claim(
        self, job_id: str, token: str, lease_seconds: float, max_attempts: int
    ) -> tuple[ClaimOutcome, Job | None]:
        """Atomically take the job's processing lease if it is free; the record as it is now."""
        now = time.time()
        outcome, flat = self._claim(
            keys=[job_key(job_id), OUTBOX_KEY, OUTBOX_DUE_KEY, WATCH_KEY, EVENTS_KEY],
            args=[job_id, token, repr(now), repr(now + lease_seconds), max_attempts,
                  self.retention],
        )
        record = dict(zip(flat[::2], flat[1::2], strict=True))
        return (ClaimOutcome(outcome.decode()),
                Job.from_redis(record, job_id) if record else None)

    @redis_errors
    def finish(self, job_id: str, token: str, status: JobStatus, **values: Any) -> bool:
        """Move a job this worker holds to a terminal status; False if the lease was lost."""
        return bool(self._finish(keys=[job_key(job_id), WATCH_KEY, EVENTS_KEY],
                                 args=[job_id, token, status.value, self.retention,
                                       *_flat(values)]))

    @redis_errors
    def renew(self, job_id: str, token: str, lease_seconds: float, deadline: float) -> bool:
        """Extend the lease this worker holds to `lease_seconds` from now; False once it is
        lost (taken over, finished, deleted) or the job is older than `deadline` seconds."""
        now = time.time()
        return bool(self._renew(keys=[job_key(job_id), WATCH_KEY],
                                args=[job_id, token, repr(now + lease_seconds),
                                      repr(now - deadline)]))

    @redis_errors
    def delete(self, job_id: str) -> bool:
        """Turn the job into a tombstone (no worker can finish it, no event re-create it, GET
        answers 404); True if there was a job whose objects must now be deleted (then call
        forget). False if there is none, or it was deleted and forgotten already."""
        if not JOB_ID.match(job_id):
            return False
        return bool(self._delete(
            keys=[job_key(job_id), WATCH_KEY, OUTBOX_KEY, OUTBOX_DUE_KEY, PENDING_UPLOADS_KEY],
            args=[job_id, repr(time.time()), TOMBSTONE_TTL]))

    @redis_errors
    def forget(self, job_id: str, index_entry: str, client: str = "") -> None:
        """The job's objects are gone: drop its index entry (`index_member`), and its API
        client's when known; a second delete() of a tombstone then returns False."""
        self._forget(keys=[job_key(job_id), INDEX_KEY], args=[index_entry])
        if client:
            self.redis.zrem(client_index_key(client), index_entry)

    @redis_errors
    def prune_client_indexes(self, created_before: float, batch: int = 100) -> int:
        """Drop the API clients' index entries of jobs created before `created_before` (epoch
        seconds) whose record is gone (expired, or its tombstone too); how many. The records
        that expired no longer say their client, so each client's index is walked here."""
        upper, removed = "(" + index_member(created_before, ""), 0
        for key in self.redis.scan_iter(match=client_index_key("*"), count=100):
            members = self.redis.zrangebylex(key, "-", upper, start=0, num=batch)
            if not members:
                continue
            pipe = self.redis.pipeline(transaction=False)
            for member in members:
                pipe.exists(job_key(member.decode().split(":", 1)[1]))
            gone = [m for m, there in zip(members, pipe.execute(), strict=True) if not there]
            if gone:
                removed += self.redis.zrem(key, *gone)
        return removed

    @redis_errors
    def index_entry(self, job_id: str) -> str | None:
        """The job's index member (from its record or tombstone), or None if it has none."""
        created = self.redis.hget(job_key(job_id), "created_at")
        return index_member(float(created), job_id) if created is not None else None

    @redis_errors
    def expired(self, created_before: float, batch: int = 100) -> list[tuple[str, str]]:
        """Index entries of jobs created before `created_before` (epoch seconds) whose record
        has expired, is a tombstone, or finished before `created_before` too (a record from
        before retention was configured, with no expiry of its own): [(job id, index member)],
        oldest first, at most `batch` of them (the others are skipped over)."""
        upper = "(" + index_member(created_before, "")
        found: list[tuple[str, str]] = []
        offset = 0
        while len(found) < batch:
            members = [m.decode() for m in self.redis.zrangebylex(
                INDEX_KEY, "-", upper, start=offset, num=batch)]
            if not members:
                return found
            ids = [m.split(":", 1)[1] for m in members]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(job_key(job_id), "status", "finished_at")
            records = pipe.execute()
            found += [(job_id, member) for member, job_id, (status, finished)
                      in zip(members, ids, records, strict=True)
                      if status in (None, DELETED.encode())
                      or (status is not None and status.decode() in TERMINAL
                          and finished is not None
                          and float(finished) < created_before)]
            offset += len(members)
        return found[:batch]

    @redis_errors
    def fail_unfinished(self, job_id: str, **values: Any) -> bool:
        """Fail a job whoever holds it, unless it already finished; True if it changed."""
        return bool(self._fail_unfinished(
            keys=[job_key(job_id), WATCH_KEY, OUTBOX_KEY, OUTBOX_DUE_KEY, EVENTS_KEY],
            args=[job_id, self.retention, *_flat(values)]))

    @redis_errors
    def release(self, job_id: str, token: str) -> None:
        """Give the lease back so a redelivery can claim the job at once."""
        self._release(keys=[job_key(job_id)], args=[token])

    @redis_errors
    def page(self, limit: int, cursor: str | None = None,
             client: str = "") -> tuple[list[tuple[str, str]], str]:
        """Newest first: [(job id, status)] and the cursor of the next page ('' at the end);
        with `client`, only the jobs that API client created."""
        upper = f"({cursor}" if cursor else "+"
        members = [m.decode() for m in self.redis.zrevrangebylex(
            client_index_key(client) if client else INDEX_KEY, upper, "-", start=0,
            num=limit + 1)]
        page, more = members[:limit], len(members) > limit
        ids = [m.split(":", 1)[1] for m in page]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(job_key(job_id), "status")
        statuses = pipe.execute()
        jobs = [(job_id, s.decode()) for job_id, s in zip(ids, statuses, strict=True)
                if s and s != DELETED.encode()]
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
    def take_sweep_slot(self, interval: float) -> float:
        """Take the one slot of requested sweeps for `interval` seconds, shared by every
        process on this Redis (SET NX PX): 0.0 if taken now, else the seconds until it frees.
        interval <= 0: always 0.0."""
        if interval <= 0:
            return 0.0
        if self.redis.set(SWEEP_SLOT_KEY, b"1", nx=True, px=max(1, round(interval * 1000))):
            return 0.0
        left_ms = self.redis.pttl(SWEEP_SLOT_KEY)  # -2: it expired meanwhile
        return max(int(left_ms), 1) / 1000

    @redis_errors
    def ping(self) -> None:
        """RedisUnavailable unless Redis answers and takes a write: a small key that expires
        (PING alone says yes to a Redis that is out of memory or whose disk failed)."""
        self.redis.set(READY_PROBE_KEY, "1", px=10_000)


def _pairs(values: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, text) for each value that is set, as a job hash stores it."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, Request):  # the job's options: what Request.from_dict reads
            value = value.to_dict()
        if isinstance(value, dict):  # compact: short values keep a hash small in Redis
            yield name, json.dumps(value, sort_keys=True, separators=(",", ":"))
        elif isinstance(value, list):
            if not value:  # single-thumbnail jobs' records stay as they were
                continue
            yield name, json.dumps([asdict(v) if is_dataclass(v) and not isinstance(v, type)
                                    else v for v in value], sort_keys=True,
                                   separators=(",", ":"))
        elif isinstance(value, Enum):
            yield name, value.value
        else:
            yield name, str(value)


def _flat(values: dict[str, Any]) -> list[str]:
    """Field/value pairs as one list of script arguments."""
    return [text for pair in _pairs(values) for text in pair]
