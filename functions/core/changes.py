"""Job state changes as they happen: one listener thread per process reads the events
stream (thumbnails.core.jobs.EVENTS_KEY, XADDed by the scripts that change a job's status) and
wakes the long polls and Server-Sent Event streams waiting in that process."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from .jobs import EVENTS_KEY, Job, redis_errors
from .probeworker import when_stopping
from .statuses import TERMINAL

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60  # the largest `wait` a long poll takes (GET /jobs/{id}?wait=S)
KEEPALIVE_SECONDS = 15  # an SSE comment line this often keeps proxies from closing the stream
RETRY_MS = 1000  # SSE `retry:` the client waits before it reconnects
READ_BLOCK_MS = 5000  # the listener's XREAD BLOCK
READ_BATCH = 1000  # entries per stream read


@dataclass(frozen=True)
class Change:
    """One stream entry: `id` is the Redis stream id (`<ms>-<seq>`), the SSE event id."""

    id: str
    job_id: str
    status: str

    def sse(self) -> str:
        """The entry as one Server-Sent Event (`id:`, `event: job`, JSON `data:`)."""
        data = json.dumps({"job_id": self.job_id, "status": self.status,
                           "at": int(self.id.split("-", 1)[0]) / 1000})
        return f"id: {self.id}\nevent: job\ndata: {data}\n\n"


# Sent first when resuming from an id the stream no longer keeps: changes may be missing,
# so the client reads the jobs again (GET /jobs, GET /jobs/{id}).
RESET = 'event: reset\ndata: {"reason": "changes after Last-Event-ID are no longer kept"}\n\n'


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _changes(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Change]:
    return [Change(entry_id.decode(), fields[b"job_id"].decode(), fields[b"status"].decode())
            for entry_id, fields in entries]


class ChangeHub:
    """The per-process listener (started lazily, again after a fork) and its waiters."""

    def __init__(self, client: redis.Redis) -> None:
        # Its own client: XREAD BLOCK needs a socket timeout above READ_BLOCK_MS.
        self.redis = client
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._watchers: dict[str, set[threading.Event]] = {}
        self._generation = 0  # how many stream reads brought entries
        self._pid = 0
        self._last_id = "0-0"
        self.closed = False  # the process stops: waiting requests answer now

    @redis_errors
    def start(self) -> None:
        """Start this process's listener unless it runs; its first read starts at the
        stream's end as it is now, so every change after this call reaches the waiters."""
        with self._lock:
            if self._pid == os.getpid():
                return
            newest = self.redis.xrevrange(EVENTS_KEY, count=1)
            self._last_id = newest[0][0].decode() if newest else "0-0"
            self._pid = os.getpid()
            self.closed = False
            threading.Thread(target=self._listen, name="changes", daemon=True).start()
        when_stopping(self.close)

    def close(self) -> None:
        """Wake every waiter for good: long polls answer, streams end (process shutdown)."""
        with self._cond:
            self.closed = True
            for events in self._watchers.values():
                for event in events:
                    event.set()
            self._cond.notify_all()

    def _listen(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            try:
                read = self.redis.xread({EVENTS_KEY: self._last_id}, count=READ_BATCH,
                                        block=READ_BLOCK_MS)
                if read:
                    self._deliver(_changes(read[0][1]))
            except redis.RedisError as exc:
                log.warning("reading job changes failed, retrying: %s", exc)
                time.sleep(1)  # a pause between reconnections, not a wait for state
            except Exception:  # never let the one listener die: waiters would only time out
                log.exception("job changes listener failed, going on")
                time.sleep(1)

    def _deliver(self, changes: list[Change]) -> None:
        with self._cond:
            self._last_id = changes[-1].id
            self._generation += 1
            for change in changes:
                if change.status in TERMINAL:
                    for event in self._watchers.get(change.job_id, ()):
                        event.set()
            self._cond.notify_all()

    @contextmanager
    def watching(self, job_id: str) -> Iterator[threading.Event]:
        """An Event set when the job reaches succeeded or failed after this point (read the
        job after entering, so a change between the read and the wait is not missed)."""
        self.start()
        event = threading.Event()
        with self._lock:
            self._watchers.setdefault(job_id, set()).add(event)
            if self.closed:
                event.set()
        try:
            yield event
        finally:
            with self._lock:
                waiting = self._watchers.get(job_id, set())
                waiting.discard(event)
                if not waiting:
                    self._watchers.pop(job_id, None)

    def wait_finished(self, job_id: str, seconds: float, read: Callable[[], Job | None]
                      ) -> Job | None:
        """Long poll: the job from `read` as soon as it is succeeded or failed, or after
        `seconds` as it is then (None: no such job). Raises RedisUnavailable."""
        with self.watching(job_id) as finished:
            job = read()
            if job is None or job.status.terminal:
                return job
            finished.wait(seconds)
        return read()

    def generation(self) -> int:
        """A number that grows whenever the listener read new changes."""
        with self._lock:
            return self._generation

    def wait_newer(self, generation: int, seconds: float) -> int:
        """Block until the listener reads changes past `generation`, at most `seconds`;
        the generation now."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != generation or self.closed, seconds)
            return self._generation

    @redis_errors
    def since(self, last_id: str, count: int = READ_BATCH) -> list[Change]:
        """Stream entries after `last_id` (exclusive), oldest first, at most `count`."""
        return _changes(self.redis.xrange(EVENTS_KEY, min=f"({last_id}", count=count))

    @redis_errors
    def missed_after(self, last_id: str) -> bool:
        """Whether changes after `last_id` may be gone: the stream was trimmed and its
        oldest entry is newer than `last_id` (a client away longer than the stream keeps)."""
        try:
            info = self.redis.xinfo_stream(EVENTS_KEY)
        except redis.ResponseError:  # no stream yet: nothing was ever trimmed
            return False
        first = info.get("first-entry")
        if not first or int(info.get("entries-added", 0)) <= int(info["length"]):
            return False
        return _id_key(last_id) < _id_key(first[0].decode())

    @redis_errors
    def newest_id(self) -> str:
        """The id of the stream's newest entry ("0-0" when empty)."""
        newest = self.redis.xrevrange(EVENTS_KEY, count=1)
        return newest[0][0].decode() if newest else "0-0"

    def stream(self, last_id: str | None, job_ids: frozenset[str], seconds: float,
               keepalive: float = KEEPALIVE_SECONDS) -> Iterator[str]:
        """Server-Sent Events text for `seconds`: `retry:` and the `id:` it starts from,
        then each change after `last_id` (None: from now) whose job is in `job_ids` (empty:
        all), a `: keep-alive` comment after `keepalive` quiet seconds, and last the `id:`
        it got to. Resuming from an id older than the stream keeps (EVENTS_MAXLEN in
        lua/changed.lua) sends a `reset` event first, then starts at its oldest entry.
        Raises RedisUnavailable."""
        self.start()
        generation = self.generation()
        cursor = self.newest_id() if last_id is None else last_id
        deadline = time.monotonic() + seconds
        # An `id:` without data sets the client's last event id (HTML Living Standard,
        # 9.2.6: dispatch sets it before it drops an empty event): a reconnection resumes
        # here, not at its own "now", even when no event of its filter came.
        yield f"retry: {RETRY_MS}\nid: {cursor}\n\n"
        if last_id is not None and self.missed_after(last_id):
            yield RESET
        quiet_since = time.monotonic()
        while True:
            changes = self.since(cursor)
            for change in changes:
                if not job_ids or change.job_id in job_ids:
                    yield change.sse()
                    quiet_since = time.monotonic()
            if changes:
                cursor = changes[-1].id
                if len(changes) == READ_BATCH:
                    continue  # more waiting: read on before blocking
            now = time.monotonic()
            if now >= deadline or self.closed:
                yield f"id: {cursor}\n\n"  # past the changes the filter left out
                return
            if now - quiet_since >= keepalive:
                yield ": keep-alive\n\n"
                quiet_since = now
            generation = self.wait_newer(
                generation, min(deadline, quiet_since + keepalive) - time.monotonic())


def hub_client(redis_url: str, timeout: float) -> redis.Redis:
    """A Redis client for a ChangeHub: socket reads outlast an XREAD BLOCK by `timeout`."""
    return redis.Redis.from_url(redis_url, socket_timeout=READ_BLOCK_MS / 1000 + timeout,
                                socket_connect_timeout=timeout, health_check_interval=30)
