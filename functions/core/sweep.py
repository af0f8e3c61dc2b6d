"""The sweep: the periodic repair round. Re-emit jobs left unfinished, fail the ones past
their deadline, delete orphaned originals, expired jobs and stale temporary files, and send
the outbox events that are due. upload runs it every SWEEP_INTERVAL_SECONDS (its outbox
thread), and a PingSource asks for it in a cluster (POST /sweep)."""

from __future__ import annotations

import logging
import math

from cloudevents.core.base import BaseCloudEvent

from . import events, metrics, retention
from .errors import InvalidEvent, StorageUnavailable, TooManyRequests
from .outbox import OutboxSender
from .services import Services
from .storage import original_key

log = logging.getLogger(__name__)


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
        """A sweep asked for over HTTP (upload's public POST /sweep, which the chart's
        PingSource calls; POST /outbox/sweep is its old path): only for a PingSource's
        event, and at most once per SWEEP_INTERVAL_SECONDS across every upload process (a
        slot in Redis), the rate of one upload process's own timer. So a stranger who
        reaches the route can make the service sweep no more often than that timer does.
        Raises InvalidEvent (400) for any other request and TooManyRequests (429,
        Retry-After: seconds until the slot frees) within the interval.

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
            raise InvalidEvent(f"POST /sweep takes a PingSource's event: type "
                               f"{events.PING_TYPE}, source "
                               "/apis/v1/namespaces/<namespace>/pingsources/<name>")
        interval = self.services.config.sweep_interval_seconds
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
