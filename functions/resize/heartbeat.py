"""A lease that holds while its worker lives: renew it from a thread while the job runs."""

from __future__ import annotations

import contextvars
import logging
import math
import os
import threading
import time
from types import TracebackType

from thumbnails.core.errors import ThumbnailsError
from thumbnails.core.jobs import JobStore

log = logging.getLogger(__name__)
RENEWALS_PER_LEASE = 3  # a renewal may fail twice (a Redis blip) before the lease runs out
# The renewer looks for due renewals this many times per renewal interval, so a renewal comes
# at most a quarter interval late (the first one 1.25 intervals after the job started).
CHECKS_PER_INTERVAL = 4


class Heartbeat:
    """While in a `with` block, extend the worker's lease every LEASE_SECONDS / 3 (one Lua
    check-and-extend: only while this worker still holds this attempt's lease). `lost` turns
    True once a renewal is refused: the job was taken over, finished, deleted, or is past its
    deadline. A worker that dies stops renewing, and its lease runs out as before.

    The renewals run on one thread per process (the renewer), started with the first job:
    a job costs a set insertion and removal, not a thread of its own to start, wake and
    join."""

    def __init__(self, jobs: JobStore, job_id: str, token: str, lease_seconds: float,
                 deadline_seconds: float) -> None:
        self.jobs, self.job_id, self.token = jobs, job_id, token
        self.lease_seconds, self.deadline_seconds = lease_seconds, deadline_seconds
        self.interval = lease_seconds / RENEWALS_PER_LEASE
        self.due = math.inf  # monotonic time of the next renewal
        self.lost = False
        self.stopped = False
        # Renewals run in a copy of this context: their log lines carry the job's ids.
        self._context = contextvars.copy_context()

    def __enter__(self) -> Heartbeat:
        self.due = time.monotonic() + self.interval
        _renewer().add(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _renewer().discard(self)

    def renew(self) -> bool:
        """Extend the lease once (on the renewer's thread); False once it is lost."""
        return self._context.run(self._renew)

    def _renew(self) -> bool:
        try:
            held = self.jobs.renew(self.job_id, self.token, self.lease_seconds,
                                   self.deadline_seconds)
        except ThumbnailsError as exc:  # Redis down: try again; the lease may still hold
            if not self.stopped:
                log.warning("job %s: lease not renewed: %s", self.job_id, exc)
            return True
        if not held and not self.stopped:  # refused after the job ended is no news
            self.lost = True
            log.warning("job %s: lease lost while processing", self.job_id)
        return held


class Renewer:
    """The thread that renews the leases of this process's running jobs when they are due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._beats: set[Heartbeat] = set()
        self._check_every = math.inf  # seconds between the thread's looks at _beats
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread lives."""
        return self._thread is not None and self._thread.is_alive()

    def renewing(self, beat: Heartbeat) -> bool:
        """Whether the heartbeat's lease is being renewed."""
        with self._lock:
            return beat in self._beats

    def add(self, beat: Heartbeat) -> None:
        """Renew the heartbeat's lease from now on."""
        with self._lock:
            self._beats.add(beat)
            if not self.running:
                self._thread = threading.Thread(target=self._run, name="lease-renewer",
                                                daemon=True)
                self._thread.start()
            elif beat.interval / CHECKS_PER_INTERVAL < self._check_every:
                self._wake.notify()  # a shorter lease than any so far: look sooner

    def discard(self, beat: Heartbeat) -> None:
        """Renew it no more (an answer still on its way changes nothing)."""
        with self._lock:
            beat.stopped = True
            self._beats.discard(beat)

    def _run(self) -> None:
        while True:
            with self._lock:
                # Keep the last period while no job runs, so the next job need not wake us.
                self._check_every = min((b.interval / CHECKS_PER_INTERVAL for b in self._beats),
                                        default=self._check_every)
                self._wake.wait(None if math.isinf(self._check_every) else self._check_every)
                now = time.monotonic()
                due = [b for b in self._beats if b.due <= now]
            for beat in due:
                beat.due = now + beat.interval
                try:
                    if not beat.renew():
                        self.discard(beat)
                except Exception:  # never let one job's surprise stop every job's renewals
                    log.exception("job %s: lease renewal failed", beat.job_id)


_renewers: dict[int, Renewer] = {}


def _renewer() -> Renewer:
    """This process's renewer (a forked child gets a new one: threads do not survive fork)."""
    pid = os.getpid()
    renewer = _renewers.get(pid)
    if renewer is None:
        renewer = _renewers.setdefault(pid, Renewer())
    return renewer
