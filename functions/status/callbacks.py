"""Deliver a finished job's result to its callback_url: the handler of the Trigger on
thumbnail.generated and thumbnail.failed (no Flask here)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import urllib3
from cloudevents.core.base import BaseCloudEvent

from thumbnails.core import events, logs, metrics, webhooks
from thumbnails.core.errors import InvalidEvent, WebhookFailed
from thumbnails.core.jobs import JOB_ID, Job
from thumbnails.core.services import Services

log = logging.getLogger(__name__)


def _job_of(services: Services, event: BaseCloudEvent) -> Job | None:
    """The finished job a thumbnail event is about, if it has a callback_url to call."""
    types = services.event_types
    if event.get_type() not in (types.thumbnail_generated, types.thumbnail_failed):
        raise InvalidEvent(f"webhooks take {types.thumbnail_generated} or "
                           f"{types.thumbnail_failed}, not {event.get_type()}")
    job_id = events.data_of(event).get("job_id")
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise InvalidEvent("data.job_id must be a job id (a lowercase UUID)")
    logs.bind(job_id=job_id, event_id=event.get_id())
    job = services.jobs.get(job_id)
    if job is None or not job.callback_url or not job.status.terminal:
        return None
    return job


def deliver(services: Services, event: BaseCloudEvent,
            document: Callable[[Job], dict[str, Any]]) -> str:
    """POST the job's document (as GET /jobs/{id} shows it), signed, to its callback_url.
    The body and the signature come from the job's record, never from the event, so a forged
    event can at most repeat the true result to the job's own receiver. The webhook-id is the
    event's id (the same on every re-send of the reply), for the receiver to drop repeats.

    Returns the outcome: "none" (no callback), "delivered", "refused" (the address is not
    allowed: retrying cannot help, so no error). Raises WebhookFailed (502, so the broker
    retries with the Trigger's backoff) when the receiver gives no 2xx answer, and
    InvalidEvent (400) for an event that is not a finished job's."""
    job = _job_of(services, event)
    if job is None:
        return "none"
    config = services.config
    allowed = webhooks.AllowedHosts.parse(config.webhook_allowed_hosts)
    try:
        address = webhooks.resolve(job.callback_url, allowed)
    except webhooks.CallbackRefused as exc:
        _note(services, job, "refused", error=exc.message)
        return "refused"
    body = webhooks.payload(event.get_type(), document(job))
    headers = webhooks.signed_headers(config.webhook_secret, event.get_id(), body)
    try:
        status = webhooks.post(job.callback_url, address, body, headers,
                               config.dependency_timeout_seconds)
    except urllib3.exceptions.HTTPError as exc:
        _note(services, job, "failed", error=str(exc))
        raise WebhookFailed(f"job {job.job_id}: callback not reached: {exc}") from exc
    if status // 100 != 2:
        _note(services, job, "failed", status)
        raise WebhookFailed(f"job {job.job_id}: callback answered {status}")
    _note(services, job, "delivered", status)
    return "delivered"


def gave_up(services: Services, event: BaseCloudEvent) -> str:
    """The broker's dead letter for a webhook: its retries ran out. Note it on the job."""
    job = _job_of(services, event)
    if job is None:
        return "none"
    _note(services, job, "gave_up", error="the broker's retries ran out")
    return "gave_up"


def _note(services: Services, job: Job, outcome: str, response: int = 0,
          error: str = "") -> None:
    metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
    services.jobs.record_webhook(job.job_id, outcome, response, error)
    level = logging.INFO if outcome == "delivered" else logging.WARNING
    log.log(level, "job %s: webhook %s%s%s", job.job_id, outcome,
            f" ({response})" if response else "", f": {error}" if error else "")
