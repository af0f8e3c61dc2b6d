"""Send outbox events to the broker off the request path, and re-send the ones not accepted
(from the sweep, thumbnails.core.sweep, which the same thread runs on a timer)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import urllib3

from . import events, logs, metrics
from .errors import ThumbnailsError
from .jobs import JobStore

log = logging.getLogger(__name__)
BATCH = 50  # outbox entries taken per round trip to Redis


class OutboxSender:
    """Posts due outbox events to the sink; acknowledges those the broker accepts."""

    def __init__(self, jobs: JobStore, sink_url: str, retry_after: float, timeout: float) -> None:
        self.jobs = jobs
        self.sink_url = sink_url
        self.retry_after = retry_after
        self.timeout = timeout
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=timeout), retries=False, maxsize=4)

    def send_due(self) -> int:
        """Send every event that is due now; return how many the broker accepted."""
        accepted = 0
        while True:
            due = self.jobs.outbox_due(self.retry_after, BATCH)
            for job_id, body in due:
                accepted += self.send(job_id, body, attempt="retry")
            if len(due) < BATCH:
                return accepted

    def send(self, job_id: str, body: bytes, attempt: str = "first") -> int:
        """Post one outbox event; 1 if the broker accepted it (and it left the outbox).
        attempt: "first" right after the upload, "retry" from the sweep (for the metrics)."""
        with logs.bound(job_id=job_id, event_id=None, correlation_id=None):
            return self._send(job_id, body, attempt)

    def _send(self, job_id: str, body: bytes, attempt: str) -> int:
        try:
            event = events.from_json(body)
            logs.bind(event_id=event.get_id(), correlation_id=logs.correlation_of_event(event))
            headers, payload = events.to_http(event)
            response = self.http.request("POST", self.sink_url, body=payload, headers=headers)
        except (urllib3.exceptions.HTTPError, ThumbnailsError) as exc:
            metrics.OUTBOX_SENDS.labels(attempt, "error").inc()
            log.warning("job %s: event not sent to %s: %s", job_id, self.sink_url, exc)
            return 0
        if response.status // 100 != 2:
            metrics.OUTBOX_SENDS.labels(attempt, "rejected").inc()
            log.warning("job %s event %s: broker answered %s", job_id, event.get_id(),
                        response.status)
            return 0
        metrics.OUTBOX_SENDS.labels(attempt, "accepted").inc()
        self.jobs.outbox_ack(job_id)
        log.debug("job %s event %s: accepted by the broker", job_id, event.get_id())
        return 1


class OutboxThread:
    """A daemon thread that sends new events at once and runs the sweep on a timer."""

    def __init__(self, sender: OutboxSender, sweep: Callable[[], object], interval: float) -> None:
        self.sender = sender
        self.sweep = sweep
        self.interval = interval
        self._fresh: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        """Start the thread (call in the serving process, after any fork)."""
        self._thread.start()

    def send_soon(self, job_id: str, event_json: bytes) -> None:
        """An event just written to the outbox: send it now, off the request path."""
        self._fresh.put((job_id, event_json))

    def stop(self) -> None:
        """Stop after the event in hand; unsent events stay in the outbox for a sweep."""
        if not self._thread.is_alive():  # never started (or already stopped)
            return
        self._fresh.put(None)
        self._thread.join(timeout=self.interval + self.sender.timeout)

    def _run(self) -> None:
        next_sweep = time.monotonic() + self.interval
        while True:
            try:
                item = self._fresh.get(timeout=max(0.0, next_sweep - time.monotonic()))
            except queue.Empty:
                item = ("", b"")
            if item is None:
                return
            try:
                if item[0]:
                    self.sender.send(*item)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.interval
                    self.sweep()
            except ThumbnailsError as exc:  # Redis down: the sweep tries again later
                log.warning("outbox round failed: %s", exc)
            except Exception:
                log.exception("outbox round failed")
