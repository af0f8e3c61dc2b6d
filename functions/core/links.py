"""URLs of a job's resources on the status function."""

from __future__ import annotations


def job_links(status_base_url: str, job_id: str) -> dict[str, str]:
    """Links to a job's status, thumbnail and debug view."""
    base = f"{status_base_url.rstrip('/')}/jobs/{job_id}"
    return {"self": base, "thumbnail": f"{base}/thumbnail", "debug": f"{base}/debug"}


def rendition_link(status_base_url: str, job_id: str, name: str) -> str:
    """URL of one rendition of a job (GET /jobs/{id}/thumbnails/{name})."""
    return f"{status_base_url.rstrip('/')}/jobs/{job_id}/thumbnails/{name}"
