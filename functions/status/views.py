"""Job documents as the API shows them (no Flask here)."""

from __future__ import annotations

from typing import Any

from thumbnails.core.jobs import Job, JobStatus
from thumbnails.core.links import job_links, rendition_link
from thumbnails.core.signedlinks import LinkSigner


def job_document(job: Job, status_base_url: str,
                 signer: LinkSigner | None = None) -> dict[str, Any]:
    """GET /jobs/{id}: status, times, options, the thumbnail (and renditions) when succeeded,
    the error when failed, links; with a signer and a succeeded job, `signed_links`:
    {"expires_at": Unix seconds, "thumbnail": URL, "renditions": {name: URL}}."""
    doc: dict[str, Any] = {
        "job_id": job.job_id,
        "status": job.status.value,
        "created_at": job.created_at,
        "options": job.options.to_dict(),
    }
    if job.finished_at is not None:
        doc["finished_at"] = job.finished_at
    if job.status is JobStatus.SUCCEEDED:
        doc["thumbnail"] = {"content_type": job.content_type, "width": job.thumbnail_width,
                            "height": job.thumbnail_height, "size": job.thumbnail_bytes}
        if job.renditions:  # in the order asked; "thumbnail" is the first of them
            doc["renditions"] = [r.describe(rendition_link(status_base_url, job.job_id, r.name))
                                 for r in job.renditions]
    if job.status is JobStatus.FAILED:
        doc["error"] = {"code": job.error_code, "message": job.error_message}
    doc["links"] = job_links(status_base_url, job.job_id)
    if signer is not None and job.status is JobStatus.SUCCEEDED:
        doc["signed_links"] = signed_links(job, status_base_url, signer)
    return doc


def signed_links(job: Job, status_base_url: str, signer: LinkSigner) -> dict[str, Any]:
    """Links to the job's thumbnail and renditions that work without an API key until
    expires_at (thumbnails.core.signedlinks)."""
    base, expires = status_base_url.rstrip("/"), signer.expiry()
    links: dict[str, Any] = {
        "expires_at": expires,
        "thumbnail": base + signer.sign(f"/jobs/{job.job_id}/thumbnail", expires)}
    if job.renditions:
        links["renditions"] = {
            r.name: base + signer.sign(f"/jobs/{job.job_id}/thumbnails/{r.name}", expires)
            for r in job.renditions}
    return links


def debug_document(job: Job) -> dict[str, Any]:
    """GET /jobs/{id}/debug: the original design's fields plus stage timings."""
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "event_id": job.event_id,
        "event_source": job.event_source,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "processing_time_ms": job.processing_time_ms,
        "stages_ms": {
            "fetch": job.stage_fetch_ms,
            "decode_resize": job.stage_decode_ms,
            "encode": job.stage_encode_ms,
            "store": job.stage_store_ms,
        },
        "source": {"format": job.source_format, "width": job.source_width,
                   "height": job.source_height, "bytes": job.original_bytes},
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code
        else None,
        "webhook": {"callback_url": job.callback_url, "attempts": job.webhook_attempts,
                    "outcome": job.webhook_outcome or None,
                    "response": job.webhook_response or None,
                    "error": job.webhook_error or None, "at": job.webhook_at}
        if job.callback_url else None,
    }
