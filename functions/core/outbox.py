"""Send outbox events to the broker off the request path, re-send the ones not accepted, and
sweep: re-emit jobs left unfinished, fail the ones past their deadline, delete orphans."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable

import urllib3
from cloudevents.core.base import BaseCloudEvent

from . import events, logs, metrics, retention
from .errors import InvalidEvent, StorageUnavailable, ThumbnailsError, TooManyRequests
from .jobs import JobStore
from .services import Services
from .storage import original_key

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


class Sweeper:
    """The periodic repair round (upload's timer, and a PingSource in a cluster)."""

    def __init__(self, services: Services, sender: OutboxSender | None) -> None:
        self.services = services
        self.sender = sender

    def sweep(self) -> dict[str, int]:
        """Re-emit stale jobs, fail overdue ones, delete orphaned originals, jobs past their
        retention and stale temporary files, send due events."""
        config, jobs = self.services.config, self.services.jobs
        counts = jobs.recover(config.requeue_after_seconds, config.job_deadline_seconds)
        for kind in ("requeued", "timed_out"):
            if counts[kind]:
                metrics.SWEEP_JOBS.labels(kind).inc(counts[kind])
                log.warning("sweep: %d job(s) %s", counts[kind], kind.replace("_", " "))
        if counts["timed_out"]:  # the transition to failed happened here, in the script
            metrics.JOBS_FINISHED.labels("failed", "timed_out").inc(counts["timed_out"])
        counts["orphans_deleted"] = self.delete_orphans()
        counts["expired_deleted"] = retention.sweep_expired(self.services)
        counts["temp_files_removed"] = self.remove_stale_temp()
        counts["sent"] = self.sender.send_due() if self.sender else 0
        counts["pending"] = jobs.outbox_depth()
        return counts

    def requested(self, event: BaseCloudEvent) -> dict[str, int]:
        """A sweep asked for over HTTP (upload's public POST /outbox/sweep, which the chart's
        PingSource calls): only for a PingSource's event, and at most once per
        OUTBOX_RETRY_SECONDS across every upload process (a slot in Redis), the rate of one
        upload process's own timer. So a stranger who reaches the route can make the
        service sweep no more often than that timer does. Raises InvalidEvent (400) for any
        other request and TooManyRequests (429, Retry-After: seconds until the slot frees)
        within the interval.

        Why not a credential: a PingSource sends no HTTP headers of its own (its spec has
        data or dataBase64, contentType and ceOverrides extensions, all in clear text in
        the object and in knative/; knative/eventing knative-v1.22.2
        pkg/apis/sources/v1/ping_types.go), so a token would be no secret to anyone who can
        read the namespace. Knative's OIDC sender identity needs the authentication-oidc
        feature flag (pkg/apis/feature/flag_names.go), and cluster-local visibility applies
        to a whole Service (upload's POST /jobs must stay public). The type and source
        checks keep other callers out (a 400 that says why); the interval is what bounds a
        forged PingSource event."""
        if not events.is_ping(event):
            raise InvalidEvent(f"POST /outbox/sweep takes a PingSource's event: type "
                               f"{events.PING_TYPE}, source "
                               "/apis/v1/namespaces/<namespace>/pingsources/<name>")
        interval = self.services.config.outbox_retry_seconds
        wait = self.services.jobs.take_sweep_slot(interval)
        if wait:
            raise TooManyRequests(f"a sweep was asked for less than {interval:g} s ago",
                                  retry_after=max(1, math.ceil(wait)))
        return self.sweep()

    def remove_stale_temp(self) -> int:
        """Delete temporary files a killed process left in the store (ORPHAN_AFTER_SECONDS)."""
        try:
            removed = self.services.store.remove_stale_temp(
                self.services.config.orphan_after_seconds)
        except StorageUnavailable as exc:  # the rest of the sweep still runs
            log.warning("sweep: temporary files not cleaned: %s", exc)
            return 0
        if removed:
            metrics.SWEEP_TEMP_FILES.inc(removed)
            log.warning("sweep: %d stale temporary file(s) removed", removed)
        return removed

    def delete_orphans(self) -> int:
        """Delete originals whose upload never wrote the job record (it died in between)."""
        jobs, deleted = self.services.jobs, 0
        for job_id in jobs.orphaned_uploads(self.services.config.orphan_after_seconds):
            self.services.store.delete(original_key(job_id))
            jobs.forget_upload(job_id)
            metrics.SWEEP_JOBS.labels("orphan_deleted").inc()
            log.warning("job %s: deleted its orphaned original (no job record)", job_id,
                        extra={"job_id": job_id})
            deleted += 1
        return deleted


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
