"""MinIO bucket notifications as a producer: each new object under the configured prefix of
the configured bucket becomes a job and an image.uploaded event (through the outbox).

MinIO's webhook target (minio/minio internal/event/target/webhook.go, `send`) POSTs one
record per request as JSON `{"EventName", "Key": "<bucket>/<key>", "Records": [event]}`, the
event shaped as S3's (internal/event/event.go: `eventName`, `s3.bucket.name`,
`s3.object.key` URL-encoded, `size`, `eTag`, `contentType`, `versionId`), with
`Authorization: Bearer <auth_token>`, and redelivers until it gets a 2xx (at least once).
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from thumbnails.core import events, logs, metrics, renditions
from thumbnails.core.errors import BadRequest, NotFound, Unauthorized
from thumbnails.core.jobs import Job
from thumbnails.core.services import Services
from thumbnails.core.storage import incoming_key_ok

from .submit import uploaded_event

log = logging.getLogger(__name__)
CREATED = "s3:ObjectCreated:"  # the prefix of every object-creation eventName
SOURCE_SUFFIX = "/notifications/s3"  # event source: EVENT_SOURCE + this


@dataclass(frozen=True)
class Accepted:
    """One record that names a job: new (an event was queued) or seen before."""

    job_id: str
    key: str
    created: bool
    event_json: bytes | None


def authorize(services: Services, authorization: str) -> None:
    """404 when BUCKET_NOTIFY_TOKEN is unset (the endpoint is off), 401 unless the header is
    "Bearer <token>" (compared in constant time)."""
    token = services.config.bucket_notify_token
    if not token:
        raise NotFound("bucket notifications are off (set BUCKET_NOTIFY_TOKEN)")
    if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        raise Unauthorized("bucket notifications need Authorization: Bearer <BUCKET_NOTIFY_TOKEN>")


def job_id_of(bucket: str, key: str, version: str, etag: str) -> str:
    """The same object version always names the same job (so a redelivery makes none new):
    UUIDv5 of s3://bucket/key plus the versionId, else the eTag."""
    which = f"versionId={version}" if version else f"eTag={etag}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{bucket}/{key}?{which}"))


def accept(services: Services, doc: Any) -> tuple[list[Accepted], int]:
    """Record a job (and its outbox event) for each s3:ObjectCreated:* record of the
    configured bucket under INCOMING_PREFIX (thumbnails.core.storage.incoming_key_ok); return
    them and how many records were ignored (other events, buckets or keys). BadRequest
    (400) for a body that is not MinIO's event JSON."""
    records = doc.get("Records") if isinstance(doc, dict) else None
    if not isinstance(records, list):
        raise BadRequest('the body must be a bucket notification: {"Records": [...]}')
    accepted, ignored = [], 0
    for index, record in enumerate(records):
        found = _record(record, index)
        if found is None or not _wanted(services, *found[:2]):
            ignored += 1
            continue
        accepted.append(_job(services, *found))
    return accepted, ignored


def _record(record: Any, index: int) -> tuple[str, str, str, str, str, int] | None:
    """(bucket, key, versionId, eTag, contentType, size) of an object-creation record."""
    where = f"Records[{index}]"
    if not isinstance(record, dict) or not isinstance(record.get("eventName"), str):
        raise BadRequest(f"{where} must be an object with an eventName")
    if not record["eventName"].startswith(CREATED):
        return None
    s3 = record.get("s3")
    bucket = s3.get("bucket") if isinstance(s3, dict) else None
    obj = s3.get("object") if isinstance(s3, dict) else None
    if not (isinstance(bucket, dict) and isinstance(obj, dict)
            and isinstance(bucket.get("name"), str) and isinstance(obj.get("key"), str)
            and obj["key"]):
        raise BadRequest(f"{where}.s3 must have bucket.name and object.key")
    strings = [obj.get(name) or "" for name in ("versionId", "eTag", "contentType")]
    size = obj.get("size") or 0
    if not all(isinstance(v, str) for v in strings) or not isinstance(size, int):
        raise BadRequest(f"{where}.s3.object has a malformed versionId, eTag, contentType "
                         "or size")
    # MinIO sends the key as url.QueryEscape made it ("+" for a space).
    return bucket["name"], unquote_plus(obj["key"]), strings[0], strings[1], strings[2], size


def _wanted(services: Services, bucket: str, key: str) -> bool:
    # The same rule as for another producer's image.uploaded: never the service's own keys.
    return bucket == services.store.bucket and incoming_key_ok(key,
                                                               services.config.incoming_prefix)


def _job(services: Services, bucket: str, key: str, version: str, etag: str,
         content_type: str, size: int) -> Accepted:
    config = services.config
    job_id = job_id_of(bucket, key, version, etag)
    logs.bind(job_id=job_id)
    job = Job(job_id=job_id, created_at=time.time(), bucket=bucket, original_key=key,
              original_bytes=size,
              options=renditions.parse_request({}, config.max_dimension),
              event_source=config.event_source.rstrip("/") + SOURCE_SUFFIX,
              event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:thumbnails:event:{job_id}")))
    event_json = events.to_json(uploaded_event(job, content_type, services.event_types,
                                               logs.current("correlation_id")))
    existing = services.jobs.create(
        job, event_json, check_at=job.created_at + config.requeue_after_seconds,
        send_by=job.created_at + config.sweep_interval_seconds, unless_exists=True)
    if existing is not None:
        log.info("job %s: notification for s3://%s/%s again: nothing new", job_id, bucket, key)
        return Accepted(job_id, key, False, None)
    metrics.JOBS_SUBMITTED.labels("bucket_notification").inc()
    log.info("job %s queued for s3://%s/%s (event %s)", job_id, bucket, key, job.event_id)
    return Accepted(job_id, key, True, event_json)
