"""Process one image.uploaded event: claim the job, make the thumbnail, record the outcome."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import replace
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from thumbnails.core import events, imaging, logs, metrics, renditions, webhooks
from thumbnails.core.errors import (
    BadRequest,
    DependencyUnavailable,
    ForgedEvent,
    InvalidEvent,
    InvalidImage,
    JobBusy,
    ObjectNotFound,
    ThumbnailsError,
    UnsupportedMediaType,
)
from thumbnails.core.jobs import JOB_ID, ClaimOutcome, Job, JobStatus, RenditionRecord
from thumbnails.core.links import job_links, rendition_link
from thumbnails.core.services import Services
from thumbnails.core.storage import incoming_key_ok, thumbnail_key

from .heartbeat import Heartbeat

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
    raw_options = data.get("options") or {}
    if not isinstance(raw_options, dict):
        raise InvalidEvent("data.options must be a JSON object")
    try:
        request = renditions.parse_request(raw_options, services.config.max_dimension)
    except BadRequest as exc:
        raise InvalidEvent(f"data.options: {exc}") from exc
    callback_url = data.get("callback_url") or ""
    if not isinstance(callback_url, str):
        raise InvalidEvent("data.callback_url must be a URL")
    if callback_url:
        try:
            webhooks.check_url(callback_url, webhooks.AllowedHosts.parse(
                services.config.webhook_allowed_hosts))
        except BadRequest as exc:
            raise InvalidEvent(f"data.callback_url: {exc.message}") from exc
    if not services.store.exists(key):
        raise InvalidEvent(f"object {key!r} is not in bucket {services.store.bucket!r}")
    job = Job(job_id=job_id, created_at=time.time(), bucket=bucket, original_key=key,
              options=request, event_id=event.get_id(),
              event_source=event.get_source(), callback_url=callback_url)
    check_at = job.created_at + services.config.requeue_after_seconds
    if services.jobs.create_if_absent(job, events.to_json(event), check_at):
        metrics.JOBS_SUBMITTED.labels("event").inc()
        log.info("job %s created for event %s from %s", job_id, event.get_id(),
                 event.get_source())


def _process(services: Services, job: Job, token: str) -> Job:
    """Fetch, decode once, make every output and store them, renewing the lease meanwhile;
    finish the job (returned); release the lease on an outage. Success is logged and counted
    once the finish is recorded; an attempt whose finish is refused deletes what it wrote
    (each attempt writes under keys of its own, so the winner's objects are untouched)."""
    job_id, config = job.job_id, services.config
    started = time.perf_counter()
    written: list[str] = []
    with Heartbeat(services.jobs, job_id, token, config.lease_seconds,
                   config.job_deadline_seconds) as heartbeat:
        try:
            original = services.store.get(job.original_key)
            fetched = time.perf_counter()
            outputs = _make(services, job, original)
            if heartbeat.lost:  # taken over or deleted meanwhile: write nothing
                raise JobBusy(f"job {job_id}: lease lost while processing")
            stored_at = time.perf_counter()
            for key, _, thumb in outputs:
                services.store.put(key, thumb.data, thumb.content_type)
                written.append(key)
        # BadRequest: options the record holds but this deployment refuses (MAX_DIMENSION
        # lowered since the upload, say); retrying cannot help, so the job fails.
        except (InvalidImage, UnsupportedMediaType, ObjectNotFound, BadRequest) as exc:
            finished = _finish(services, job, token, JobStatus.FAILED, started,
                               error_code=exc.code, error_message=exc.message)
            log.info("job %s failed: %s: %s", job_id, exc.code, exc.message)
            return finished
        except DependencyUnavailable:
            for key in written:  # a later attempt writes under its own keys
                _delete_quietly(services, key)
            services.jobs.release(job_id, token)
            raise
        done = time.perf_counter()
        thumbs = [thumb for _, _, thumb in outputs]
        records = [RenditionRecord(name=name, key=key, content_type=t.content_type,
                                   width=t.width, height=t.height, size=len(t.data),
                                   etag=_etag(t.data))
                   for key, name, t in outputs if name is not None]
        first_key, _, first = outputs[0]  # with renditions, /thumbnail serves the first one
        # make_thumbnails decodes once for all outputs: the sums are this job's whole cost.
        decode_ms = sum(t.decode_ms for t in thumbs)
        encode_ms = sum(t.encode_ms for t in thumbs)
        try:
            finished = _finish(
                services, job, token, JobStatus.SUCCEEDED, started,
                thumbnail_key=first_key, content_type=first.content_type,
                thumbnail_width=first.width, thumbnail_height=first.height,
                thumbnail_bytes=len(first.data), etag=_etag(first.data), renditions=records,
                source_format=first.source.format, source_width=first.source.width,
                source_height=first.source.height,
                stage_fetch_ms=_ms(fetched - started), stage_decode_ms=round(decode_ms, 3),
                stage_encode_ms=round(encode_ms, 3), stage_store_ms=_ms(done - stored_at),
            )
        except JobBusy:
            for key in written:
                _delete_quietly(services, key)
            raise
    for stage, seconds in (("fetch", fetched - started), ("decode_resize", decode_ms / 1000),
                           ("encode", encode_ms / 1000), ("store", done - stored_at)):
        metrics.STAGE_DURATION.labels(stage).observe(seconds)
    metrics.IMAGE_BYTES.labels("out").inc(sum(len(t.data) for t in thumbs))
    log.info("job %s succeeded: %s in %.1f ms", job_id,
             ", ".join(f"{name or 'thumbnail'} {t.width}x{t.height} {t.content_type}"
                       for _, name, t in outputs), (done - started) * 1000)
    return finished


def _make(services: Services, job: Job,
          original: bytes) -> list[tuple[str, str | None, imaging.Thumbnail]]:
    """(object key, rendition name or None, thumbnail) for each output the job asks for:
    its renditions, from one decode, in the order asked; else its one thumbnail."""
    request = job.options
    request.check(services.config.max_dimension)
    if not request.renditions:
        thumb = imaging.make_thumbnail(original, request.options, services.limits)
        return [(thumbnail_key(job.job_id, job.attempts, request.options.extension), None,
                 thumb)]
    made = imaging.make_thumbnails(original, [r.options for r in request.renditions],
                                   services.limits)
    return [(thumbnail_key(job.job_id, job.attempts, r.options.extension, r.name), r.name,
             thumb)
            for r, thumb in zip(request.renditions, made, strict=True)]


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _finish(services: Services, job: Job, token: str, status: JobStatus, started: float,
            **values: Any) -> Job:
    """Record the outcome (counted here, once recorded); JobBusy if the finish is refused."""
    values["finished_at"] = time.time()
    values["processing_time_ms"] = round((time.perf_counter() - started) * 1000)
    if not services.jobs.finish(job.job_id, token, status, **values):
        # The lease ran out and another worker took the job over (its result stands), or the
        # job was deleted.
        raise JobBusy(f"job {job.job_id}: lease lost while processing")
    metrics.JOBS_FINISHED.labels(status.value, values.get("error_code", "")).inc()
    return replace(job, status=status, **values)


def _delete_quietly(services: Services, key: str) -> None:
    """Delete what a losing attempt wrote; if that fails, retention or DELETE removes it."""
    try:
        services.store.delete(key)
        log.info("lost attempt: deleted its thumbnail %s", key)
    except ThumbnailsError as exc:
        log.warning("lost attempt: thumbnail %s left for retention: %s", key, exc)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def reply_event(services: Services, job: Job,
                correlation_id: str | None = None) -> BaseCloudEvent:
    """thumbnail.generated or thumbnail.failed for a finished job (same id on every re-send),
    with the correlation id of the event that asked for it, and events.CALLBACK when the job
    has a callback_url."""
    links = job_links(services.config.status_base_url, job.job_id)
    data: dict[str, Any] = {"job_id": job.job_id, "status": job.status.value, "links": links}
    if job.status is JobStatus.SUCCEEDED:
        event_type = services.event_types.thumbnail_generated
        data["thumbnail"] = {
            "bucket": job.bucket, "key": job.thumbnail_key, "content_type": job.content_type,
            "width": job.thumbnail_width, "height": job.thumbnail_height,
            "size": job.thumbnail_bytes,
        }
        if job.renditions:  # in the order asked; "thumbnail" above is the first
            data["renditions"] = [
                {**r.describe(rendition_link(services.config.status_base_url, job.job_id,
                                             r.name)), "bucket": job.bucket, "key": r.key}
                for r in job.renditions]
    else:
        event_type = services.event_types.thumbnail_failed
        data["error"] = {"code": job.error_code, "message": job.error_message}
    extensions = {events.CORRELATION_ID: correlation_id} if correlation_id else {}
    if job.callback_url:  # status's webhooks Trigger takes only these (events.CALLBACK)
        extensions[events.CALLBACK] = "true"
    return events.new_event(
        event_type, events.RESIZE_SOURCE, data,
        event_id=events.reply_id(job.job_id, event_type), subject=job.job_id,
        extensions=extensions)


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
