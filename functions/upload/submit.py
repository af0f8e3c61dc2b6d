"""Accept an upload: validate before storing, then store, record and queue its event."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping

from thumbnails import events, imaging
from thumbnails.errors import EmptyFile, PayloadTooLarge, ThumbnailsError
from thumbnails.jobs import Job
from thumbnails.services import Services
from thumbnails.storage import original_key

log = logging.getLogger(__name__)


def submit(services: Services, data: bytes, form: Mapping[str, str]) -> tuple[Job, bytes]:
    """Validate the image and options, store the original, write job + outbox atomically;
    the job and its event (to send once the client has its answer)."""
    config = services.config
    if not data:
        raise EmptyFile("the uploaded file is empty")
    if len(data) > config.max_upload_bytes:
        raise PayloadTooLarge(f"the file is over {config.max_upload_bytes} bytes")
    options = imaging.ThumbnailOptions.parse(form, config.max_dimension)
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
        options=options.to_dict(),
        event_source=config.event_source,
        event_id=str(uuid.uuid4()),
    )
    services.store.put(key, data, info.mime)
    event_json = events.to_json(uploaded_event(job, info.mime, services.event_types))
    try:
        # The outbox sweep leaves the event to this process's sender for a while.
        services.jobs.create(job, event_json,
                             send_by=job.created_at + config.outbox_retry_seconds)
    except ThumbnailsError:
        # Nothing half-written stays behind: without its record the original is an orphan.
        _delete_quietly(services, key)
        raise
    log.info("job %s queued (event %s, %s %dx%d, %d bytes)", job_id, job.event_id,
             info.format, info.width, info.height, len(data))
    return job, event_json


def uploaded_event(job: Job, content_type: str, types: events.EventTypes) -> events.CloudEvent:
    """The image.uploaded event for a new job: a reference to the original, never its bytes."""
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
            "options": job.options,
        },
        event_id=job.event_id,
        subject=job.job_id,
    )


def _delete_quietly(services: Services, key: str) -> None:
    try:
        services.store.delete(key)
    except ThumbnailsError as exc:
        log.warning("could not delete orphaned original %s: %s", key, exc)
