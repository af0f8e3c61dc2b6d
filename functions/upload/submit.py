"""Accept an upload: validate before storing, then store, record and queue its event."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping

from thumbnails.core import events, imaging, logs, metrics, renditions, webhooks
from thumbnails.core.errors import EmptyFile, IdempotencyKeyReused, PayloadTooLarge, ThumbnailsError
from thumbnails.core.jobs import Job
from thumbnails.core.services import Services
from thumbnails.core.storage import original_key

log = logging.getLogger(__name__)


def submit(services: Services, data: bytes, form: Mapping[str, str],
           idempotency: str | None = None, client: str = "") -> tuple[Job, bytes | None]:
    """Validate the image and options, store the original, write job + outbox atomically;
    the job (recording its API `client`) and its event (to send once the client has its
    answer). With an Idempotency-Key that already names a job of this client: that job, and
    None (nothing new to send); IdempotencyKeyReused (422) if that job's upload differed."""
    config = services.config
    digest = fingerprint(data, form) if idempotency else ""
    if idempotency and (replayed := _job_of(services, idempotency, client)):
        logs.bind(job_id=replayed.job_id, event_id=replayed.event_id)
        return _same_request(replayed, digest), None
    if not data:
        raise EmptyFile("the uploaded file is empty")
    if len(data) > config.max_upload_bytes:
        raise PayloadTooLarge(f"the file is over {config.max_upload_bytes} bytes")
    request = renditions.parse_request(form, config.max_dimension)
    callback_url = form.get("callback_url") or ""
    if callback_url:  # 400 callback_refused before anything is stored
        webhooks.check_url(callback_url,
                           webhooks.AllowedHosts.parse(config.webhook_allowed_hosts))
    info = imaging.inspect(data, services.limits)
    job_id = str(uuid.uuid4())
    key = original_key(job_id)
    job = Job(
        job_id=job_id,
        created_at=time.time(),
        bucket=services.store.bucket,
        original_key=key,
        original_bytes=len(data),
        source_format=info.format,
        source_width=info.width,
        source_height=info.height,
        options=request,
        event_source=config.event_source,
        event_id=str(uuid.uuid4()),
        callback_url=callback_url,
        client=client,
        request_digest=digest,
    )
    logs.bind(job_id=job_id, event_id=job.event_id)
    # Should this process die before the record is written, the sweep deletes the original.
    services.jobs.note_upload(job_id)
    services.store.put(key, data, info.mime)
    event_json = events.to_json(uploaded_event(job, info.mime, services.event_types,
                                               logs.current("correlation_id")))
    try:
        # The outbox sweep leaves the event to this process's sender for a while.
        existing = services.jobs.create(
            job, event_json, check_at=job.created_at + config.requeue_after_seconds,
            send_by=job.created_at + config.sweep_interval_seconds, idempotency=idempotency)
    except ThumbnailsError:
        # Did the record get written? A lost reply cannot tell, so the original stays for the
        # sweep, which deletes it only if no record appeared (ORPHAN_AFTER_SECONDS).
        log.warning("job %s: recording failed; its original is left for the sweep", job_id)
        raise
    if existing is not None and existing != job_id:  # a request with the same key won
        _delete_quietly(services, job_id)
        replayed = services.jobs.get(existing)
        if replayed is not None:
            return _same_request(replayed, digest), None
        raise ThumbnailsError(f"job {existing} of this Idempotency-Key vanished")
    metrics.JOBS_SUBMITTED.labels("upload").inc()
    metrics.IMAGE_BYTES.labels("in").inc(len(data))
    log.info("job %s queued (event %s, %s %dx%d, %d bytes)", job_id, job.event_id,
             info.format, info.width, info.height, len(data))
    return job, event_json


def uploaded_event(job: Job, content_type: str, types: events.EventTypes,
                   correlation_id: str | None = None) -> events.CloudEvent:
    """The image.uploaded event for a new job: a reference to the original, never its bytes.
    The correlation id of the upload request travels as the `correlationid` extension."""
    return events.new_event(
        types.image_uploaded,
        job.event_source,
        {
            "job_id": job.job_id,
            "bucket": job.bucket,
            "key": job.original_key,
            "content_type": content_type,
            "size": job.original_bytes,
            "width": job.source_width,
            "height": job.source_height,
            "options": job.options.to_dict(),
            **({"callback_url": job.callback_url} if job.callback_url else {}),
        },
        event_id=job.event_id,
        subject=job.job_id,
        extensions={events.CORRELATION_ID: correlation_id} if correlation_id else None,
    )


def fingerprint(data: bytes, form: Mapping[str, str]) -> str:
    """An upload's idempotency fingerprint (draft-ietf-httpapi-idempotency-key-header-07,
    section 2.4): SHA-256 of the file's bytes and the form fields, not of the multipart
    framing (a client library picks a new boundary on every retry)."""
    digest = hashlib.sha256(data)
    digest.update(json.dumps(sorted(form.items())).encode())
    return digest.hexdigest()


def _same_request(replayed: Job, digest: str) -> Job:
    """The replayed job, unless its upload was another payload: 422 (draft
    draft-ietf-httpapi-idempotency-key-header-07, section 2.7, Error Handling)."""
    if replayed.request_digest and replayed.request_digest != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with another file or other options")
    return replayed


def _job_of(services: Services, idempotency: str, client: str) -> Job | None:
    job_id = services.jobs.idempotent_job(idempotency, client)
    return services.jobs.get(job_id) if job_id else None


def _delete_quietly(services: Services, job_id: str) -> None:
    """Delete an original that got no record; what fails here, the sweep finishes later."""
    try:
        services.store.delete(original_key(job_id))
        services.jobs.forget_upload(job_id)
    except ThumbnailsError as exc:
        log.warning("job %s: original left for the sweep to delete: %s", job_id, exc)
