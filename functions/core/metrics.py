"""Prometheus metrics of the functions, and GET /metrics.

Under gunicorn every worker is a process of its own: prometheus_client's multiprocess mode
keeps each process's values in a file of PROMETHEUS_MULTIPROC_DIR (set by
thumbnails.core.serving before any worker imports prometheus_client) and /metrics, whichever
worker answers it, adds up the files of all of them, dead workers' included. Without that
directory (a Flask test client, one process) the values live in this process.

Each metric is counted once, where its event happens: a job's terminal status where the
transition is made (resize's finish or fail, a dead letter, the sweep's timeouts).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .errors import ThumbnailsError

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name, not a setting

HTTP_REQUESTS = Counter(
    "thumbnails_http_requests_total",
    "HTTP requests answered, by function, route (URL rule), method and status code.",
    ["function", "route", "method", "status"])
HTTP_DURATION = Histogram(
    "thumbnails_http_request_duration_seconds",
    "Time from a request's start to its answer, by function, route and method.",
    ["function", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
JOBS_SUBMITTED = Counter(
    "thumbnails_jobs_submitted_total",
    "Jobs created: source=upload for POST /jobs (not Idempotency-Key replays), "
    "source=event for another producer's image.uploaded event, "
    "source=bucket_notification for a new object MinIO notified upload of.",
    ["source"])
JOBS_FINISHED = Counter(
    "thumbnails_jobs_finished_total",
    "Jobs that reached a terminal status, by status and error code (empty on success).",
    ["status", "error_code"])
WEBHOOK_DELIVERIES = Counter(
    "thumbnails_webhook_deliveries_total",
    "Webhook delivery attempts to jobs' callback_url, by outcome: delivered (2xx), failed "
    "(no answer or another status; the broker retries), refused (the address is not "
    "allowed), gave_up (the broker's retries ran out: its dead letter).",
    ["outcome"])
STAGE_DURATION = Histogram(
    "thumbnails_stage_duration_seconds",
    "Time resize spends on each stage of a successful job: fetch, decode_resize, encode, "
    "store (the names of the debug view's stages_ms).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
             30.0))
SWEEP_JOBS = Counter(
    "thumbnails_sweep_jobs_total",
    "What the sweep did to jobs: action=requeued (a stale job's event put back in the outbox "
    "to be sent again), timed_out (failed past JOB_DEADLINE_SECONDS), orphan_deleted (an "
    "original without a job record deleted).",
    ["action"])
JOBS_DELETED = Counter(
    "thumbnails_jobs_deleted_total",
    "Jobs removed with their original and thumbnails: reason=request (DELETE /jobs/{id}) or "
    "retention (the sweep, RETENTION_SECONDS after they finished).",
    ["reason"])
SWEEP_TEMP_FILES = Counter(
    "thumbnails_sweep_temp_files_removed_total",
    "Temporary files a killed process left in the filesystem store, removed by the sweep.")
OUTBOX_SENDS = Counter(
    "thumbnails_outbox_sends_total",
    "image.uploaded events posted to the broker: attempt=first (right after the upload) or "
    "retry (a re-send by the sweep); result=accepted, rejected (a non-2xx answer) or error "
    "(no answer).",
    ["attempt", "result"])
IMAGE_BYTES = Counter(
    "thumbnails_image_bytes_total",
    "Image bytes: direction=in for originals accepted by upload, direction=out for "
    "thumbnails stored by resize.",
    ["direction"])

WAITING = Gauge(
    "thumbnails_waiting_requests",
    "Requests status holds open now: kind=long_poll (GET /jobs/{id}?wait=S waiting for its "
    "job) or stream (GET /events).",
    ["kind"], multiprocess_mode="livesum")


class _InProcess(Collector):
    """This process's default registry, for a scrape registry of our own."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class OutboxDepth(Collector):
    """thumbnails_outbox_depth, read from Redis (HLEN) when scraped; left out if Redis fails."""

    def __init__(self, jobs: object) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        try:
            depth = self.jobs.outbox_depth()  # type: ignore[attr-defined]
        except ThumbnailsError as exc:
            log.warning("outbox depth not collected: %s", exc)
            return
        yield GaugeMetricFamily("thumbnails_outbox_depth",
                                "image.uploaded events the broker has not accepted yet.",
                                value=depth)


def multiprocess_dir() -> str | None:
    """The multiprocess directory this process writes to, if any."""
    return os.environ.get(MULTIPROC_ENV) or None


def scrape_registry() -> CollectorRegistry:
    """A registry that /metrics renders: every worker's values (or this process's)."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_InProcess())
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of a registry and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
