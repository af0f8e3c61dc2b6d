"""Process one image.uploaded event: claim the job, make the thumbnail, record the outcome."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import replace
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from thumbnails import events, imaging, logs, metrics
from thumbnails.errors import (
    BadRequest,
    DependencyUnavailable,
    ForgedEvent,
    InvalidEvent,
    InvalidImage,
    JobBusy,
    ObjectNotFound,
    UnsupportedMediaType,
)
from thumbnails.jobs import JOB_ID, ClaimOutcome, Job, JobStatus
from thumbnails.links import job_links
from thumbnails.services import Services
from thumbnails.storage import incoming_key_ok, thumbnail_key

log = logging.getLogger(__name__)


def handle_uploaded(services: Services, event: BaseCloudEvent) -> BaseCloudEvent:
    """Do the work an image.uploaded event asks for (at most once per job); return the reply."""
    uploaded = services.event_types.image_uploaded
    if event.get_type() != uploaded:
        raise InvalidEvent(f"resize takes {uploaded}, not {event.get_type()}")
    data = events.data_of(event)
    job_id = _job_id(event, data)
    # Every later line about this job carries its ids; the upload request's correlation id
    # comes with the event (else the delivery request's stays).
    logs.bind(job_id=job_id, event_id=event.get_id(),
              correlation_id=logs.correlation_of_event(event) or logs.current("correlation_id"))
    token = uuid.uuid4().hex
    outcome, job = _claim(services, job_id, token)
    if outcome is ClaimOutcome.MISSING:
        if "job_id" in data:  # ids are the service's to hand out, never a sender's
            raise ForgedEvent(f"no job {job_id}: only upload's own events name a job id")
        _create_job(services, event, data, job_id)  # another producer's object
        outcome, job = _claim(services, job_id, token)
    if outcome is ClaimOutcome.EXHAUSTED:  # the claim script failed it just now
        metrics.JOBS_FINISHED.labels("failed", "too_many_attempts").inc()
    if outcome is ClaimOutcome.BUSY:
        raise JobBusy(f"job {job_id} is being processed by another worker")
    if outcome is ClaimOutcome.CLAIMED:
        assert job is not None
        job = _process(services, job, token)
    else:
        log.info("job %s event %s: already finished (%s)", job_id, event.get_id(),
                 outcome.value)
    if job is None or not job.status.terminal:
        raise InvalidEvent(f"job {job_id} vanished")  # deleted under our feet
    return reply_event(services, job, logs.current("correlation_id"))


def _claim(services: Services, job_id: str, token: str) -> tuple[ClaimOutcome, Job | None]:
    config = services.config
    return services.jobs.claim(job_id, token, config.lease_seconds, config.max_attempts)


def _job_id(event: BaseCloudEvent, data: dict[str, Any]) -> str:
    """The event's job id; for another producer's event, one derived from (source, id)."""
    job_id = data.get("job_id")
    if job_id is None:
        # The same event always maps to the same job, so a redelivery finds it again.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event.get_source()}#{event.get_id()}"))
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise InvalidEvent("data.job_id must be a job id (a lowercase UUID)")
    return job_id


def _create_job(services: Services, event: BaseCloudEvent, data: dict[str, Any],
                job_id: str) -> None:
    """A job for an object another producer put in the store (unless one appeared meanwhile)."""
    key, bucket = data.get("key"), data.get("bucket", services.store.bucket)
    if not isinstance(key, str) or not key or bucket != services.store.bucket:
        raise InvalidEvent(f"data.key must name an object in bucket {services.store.bucket!r}")
    prefix = services.config.incoming_prefix
    if not incoming_key_ok(key, prefix):  # never another job's original or thumbnail
        raise ForgedEvent(f"data.key must name an object under {prefix!r} in plain segments")
    try:
        options = imaging.ThumbnailOptions.parse(
            {k: str(v) for k, v in (data.get("options") or {}).items()},
            services.config.max_dimension)
    except (BadRequest, AttributeError) as exc:
        raise InvalidEvent(f"data.options: {exc}") from exc
    if not services.store.exists(key):
        raise InvalidEvent(f"object {key!r} is not in bucket {services.store.bucket!r}")
    job = Job(job_id=job_id, created_at=time.time(), bucket=bucket, original_key=key,
              options=options.to_dict(), event_id=event.get_id(),
              event_source=event.get_source())
    check_at = job.created_at + services.config.requeue_after_seconds
    if services.jobs.create_if_absent(job, events.to_json(event), check_at):
        metrics.JOBS_SUBMITTED.labels("event").inc()
        log.info("job %s created for event %s from %s", job_id, event.get_id(),
                 event.get_source())


def _process(services: Services, job: Job, token: str) -> Job:
    """Fetch, resize, encode, store; finish the job (returned); release the lease on an outage."""
    job_id = job.job_id
    started = time.perf_counter()
    try:
        original = services.store.get(job.original_key)
        fetched = time.perf_counter()
        options = imaging.ThumbnailOptions.parse(
            {k: str(v) for k, v in job.options.items()}, services.config.max_dimension)
        thumb = imaging.make_thumbnail(original, options, services.limits)
        stored_at = time.perf_counter()
        key = thumbnail_key(job_id, options.extension)
        services.store.put(key, thumb.data, thumb.content_type)
    except (InvalidImage, UnsupportedMediaType, ObjectNotFound) as exc:
        log.info("job %s failed: %s: %s", job_id, exc.code, exc.message)
        return _finish(services, job, token, JobStatus.FAILED, started,
                       error_code=exc.code, error_message=exc.message)
    except DependencyUnavailable:
        services.jobs.release(job_id, token)
        raise
    done = time.perf_counter()
    for stage, seconds in (("fetch", fetched - started), ("decode", thumb.decode_ms / 1000),
                           ("encode", thumb.encode_ms / 1000), ("store", done - stored_at)):
        metrics.STAGE_DURATION.labels(stage).observe(seconds)
    metrics.IMAGE_BYTES.labels("out").inc(len(thumb.data))
    log.info("job %s succeeded: %dx%d %s in %.1f ms", job_id, thumb.width, thumb.height,
             thumb.content_type, (done - started) * 1000)
    return _finish(
        services, job, token, JobStatus.SUCCEEDED, started,
        thumbnail_key=key, content_type=thumb.content_type,
        thumbnail_width=thumb.width, thumbnail_height=thumb.height,
        thumbnail_bytes=len(thumb.data), etag=hashlib.sha256(thumb.data).hexdigest()[:32],
        source_format=thumb.source.format, source_width=thumb.source.width,
        source_height=thumb.source.height,
        stage_fetch_ms=_ms(fetched - started), stage_decode_ms=round(thumb.decode_ms, 3),
        stage_encode_ms=round(thumb.encode_ms, 3), stage_store_ms=_ms(done - stored_at),
    )


def _finish(services: Services, job: Job, token: str, status: JobStatus, started: float,
            **values: Any) -> Job:
    values["finished_at"] = time.time()
    values["processing_time_ms"] = round((time.perf_counter() - started) * 1000)
    if not services.jobs.finish(job.job_id, token, status, **values):
        # The lease ran out and another worker took the job over: its result stands.
        raise JobBusy(f"job {job.job_id}: lease lost while processing")
    metrics.JOBS_FINISHED.labels(status.value, values.get("error_code", "")).inc()
    return replace(job, status=status, **values)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def reply_event(services: Services, job: Job,
                correlation_id: str | None = None) -> BaseCloudEvent:
    """thumbnail.generated or thumbnail.failed for a finished job (same id on every re-send),
    with the correlation id of the event that asked for it."""
    links = job_links(services.config.status_base_url, job.job_id)
    data: dict[str, Any] = {"job_id": job.job_id, "status": job.status.value, "links": links}
    if job.status is JobStatus.SUCCEEDED:
        event_type = services.event_types.thumbnail_generated
        data["thumbnail"] = {
            "bucket": job.bucket, "key": job.thumbnail_key, "content_type": job.content_type,
            "width": job.thumbnail_width, "height": job.thumbnail_height,
            "size": job.thumbnail_bytes,
        }
    else:
        event_type = services.event_types.thumbnail_failed
        data["error"] = {"code": job.error_code, "message": job.error_message}
    return events.new_event(
        event_type, events.RESIZE_SOURCE, data,
        event_id=events.reply_id(job.job_id, event_type), subject=job.job_id,
        extensions={events.CORRELATION_ID: correlation_id} if correlation_id else None)


# The last delivery's status (knativeerrorcode) when it says a dependency or the function
# was unavailable, not that the event is bad: the job is left to the sweep's re-emits until
# JOB_DEADLINE_SECONDS (409: another worker holds the lease; "": no answer at all).
OUTAGE_STATUSES = frozenset({"", "408", "409", "429", "502", "503", "504"})


def handle_dead_letter(services: Services, event: BaseCloudEvent) -> bool:
    """The broker gave up on an event: fail its job with the broker's reason, unless the last
    status says an outage (OUTAGE_STATUSES). Only the job's own recorded event may end it
    (same type, id and source): anything else is ForgedEvent and changes nothing."""
    logs.bind(event_id=event.get_id(),
              correlation_id=logs.correlation_of_event(event) or logs.current("correlation_id"))
    if event.get_type() != services.event_types.image_uploaded:
        raise ForgedEvent(f"a dead letter carries a {services.event_types.image_uploaded} "
                          f"event, not {event.get_type()}")
    job_id = _job_id(event, events.data_of(event))
    logs.bind(job_id=job_id)
    job = services.jobs.get(job_id)
    if job is None:
        log.warning("dead letter %s for unknown job %s: dropped", event.get_id(), job_id)
        return False
    if (event.get_id(), event.get_source()) != (job.event_id, job.event_source):
        raise ForgedEvent(f"job {job_id} was not started by event {event.get_id()!r} from "
                          f"{event.get_source()!r}")
    code = _extension(event, "knativeerrorcode")
    dest = _extension(event, "knativeerrordest")
    if code in OUTAGE_STATUSES:
        # An outage (or a live worker's lease) outlasted the broker's retries: the job and its
        # original are intact; the sweep re-emits it until it finishes or its deadline.
        log.warning("job %s event %s: dead-lettered after status %s: left to the sweep",
                    job_id, event.get_id(), code or "none")
        return False
    changed = services.jobs.fail_unfinished(
        job_id, error_code="delivery_failed", finished_at=time.time(),
        error_message=f"the broker gave up delivering to {dest or 'resize'} (last status {code})")
    if changed:
        metrics.JOBS_FINISHED.labels("failed", "delivery_failed").inc()
    log.warning("job %s event %s: dead-lettered (code %s, dest %s)%s", job_id, event.get_id(),
                code, dest, "" if changed else "; job already finished")
    return changed


def _extension(event: BaseCloudEvent, name: str) -> str:
    try:
        return str(event.get_extension(name) or "")
    except (KeyError, AttributeError):
        return ""
