"""A lease that holds while its worker lives: renew it from a thread while the job runs."""

from __future__ import annotations

import contextvars
import logging
import threading
from types import TracebackType

from thumbnails.errors import ThumbnailsError
from thumbnails.jobs import JobStore

log = logging.getLogger(__name__)
RENEWALS_PER_LEASE = 3  # a renewal may fail twice (a Redis blip) before the lease runs out


class Heartbeat:
    """While in a `with` block, extend the worker's lease every LEASE_SECONDS / 3 (one Lua
    check-and-extend: only while this worker still holds this attempt's lease). `lost` turns
    True once a renewal is refused: the job was taken over, finished, deleted, or is past its
    deadline. A worker that dies stops renewing, and its lease runs out as before."""

    def __init__(self, jobs: JobStore, job_id: str, token: str, lease_seconds: float,
                 deadline_seconds: float) -> None:
        self.jobs, self.job_id, self.token = jobs, job_id, token
        self.lease_seconds, self.deadline_seconds = lease_seconds, deadline_seconds
        self.lost = False
        self._stop = threading.Event()
        # Run in a copy of this context: its log lines carry the job's ids.
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(self._run,), name=f"lease-{job_id[:8]}",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self.lease_seconds / RENEWALS_PER_LEASE
        while not self._stop.wait(interval):
            try:
                if not self.jobs.renew(self.job_id, self.token, self.lease_seconds,
                                       self.deadline_seconds):
                    self.lost = True
                    log.warning("job %s: lease lost while processing", self.job_id)
                    return
            except ThumbnailsError as exc:  # Redis down: try again; the lease may still hold
                log.warning("job %s: lease not renewed: %s", self.job_id, exc)
