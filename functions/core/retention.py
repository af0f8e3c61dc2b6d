"""Deleting jobs: on request (DELETE /jobs/{id}) and once they are past RETENTION_SECONDS.

A job is removed in two steps. Redis first: the record becomes a tombstone that no worker can
finish and no event can re-create (or, past retention, it has expired on its own: the finish
scripts set its EXPIRE). Then the objects, whose keys follow from the job id alone; only then
does the job leave the index. If the object store fails in between, the index entry stays,
and the next DELETE or the sweep finishes the work.
"""

from __future__ import annotations

import logging
import time

from . import metrics
from .errors import StorageUnavailable
from .services import Services
from .storage import original_key, thumbnails_prefix

log = logging.getLogger(__name__)


def purge_objects(services: Services, job_id: str) -> None:
    """Delete the job's original (the one upload stored; another producer's object is its
    own) and every thumbnail any attempt wrote. StorageUnavailable if the store fails."""
    services.store.delete(original_key(job_id))
    services.store.delete_prefix(thumbnails_prefix(job_id))


def delete_job(services: Services, job_id: str) -> bool:
    """DELETE /jobs/{id}: remove the job, its original and its thumbnails; False if there is
    no such job (or it is deleted already). Safe while resize works on it: its finish is
    refused, and it deletes what it wrote."""
    jobs = services.jobs
    job = jobs.get(job_id)  # its API client's index entry goes too (a tombstone has none)
    if not jobs.delete(job_id):
        return False
    entry = jobs.index_entry(job_id)
    purge_objects(services, job_id)
    if entry is not None:
        jobs.forget(job_id, entry, job.client if job else "")
    metrics.JOBS_DELETED.labels("request").inc()
    log.info("job %s deleted on request", job_id, extra={"job_id": job_id})
    return True


def sweep_expired(services: Services, batch: int = 100) -> int:
    """Delete the objects and index entries of jobs whose record expired (RETENTION_SECONDS
    after they finished) or was deleted; how many jobs. Nothing with RETENTION_SECONDS=0. A
    store outage ends the round early (the index entries stay: the next round tries again)."""
    retention = services.config.retention_seconds
    if retention <= 0:
        return 0
    jobs, removed = services.jobs, 0
    try:
        while True:
            found = jobs.expired(time.time() - retention, batch)
            for job_id, entry in found:
                purge_objects(services, job_id)
                jobs.forget(job_id, entry)
                removed += 1
            if len(found) < batch:
                break
        jobs.prune_client_indexes(time.time() - retention, batch)
    except StorageUnavailable as exc:  # the rest of the sweep still runs; next round retries
        log.warning("sweep: expired jobs left for the next round: %s", exc)
    if removed:
        metrics.JOBS_DELETED.labels("retention").inc(removed)
        log.info("sweep: %d expired job(s) deleted", removed)
    return removed
