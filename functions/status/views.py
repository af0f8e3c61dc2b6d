"""Job documents as the API shows them (no Flask here)."""

from __future__ import annotations

from typing import Any

from thumbnails.jobs import Job, JobStatus
from thumbnails.links import job_links, rendition_link


def job_document(job: Job, status_base_url: str) -> dict[str, Any]:
    """GET /jobs/{id}: status, times, options, the thumbnail (and renditions) when succeeded,
    the error when failed, links."""
    doc: dict[str, Any] = {
        "job_id": job.job_id,
        "status": job.status.value,
        "created_at": job.created_at,
        "options": job.options,
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
    return doc


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
    }
