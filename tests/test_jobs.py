"""The job state machine on a real Redis-protocol server."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from thumbnails.errors import RedisUnavailable
from thumbnails.jobs import ClaimOutcome, Job, JobStatus, JobStore


@pytest.fixture
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client)


def new_job(store: JobStore, created_at: float | None = None) -> Job:
    job = Job(job_id=str(uuid.uuid4()), created_at=created_at or time.time(),
              options={"width": 100}, original_key="originals/x")
    store.create(job, b'{"event": 1}')
    return job


def test_record_round_trips(store: JobStore) -> None:
    job = new_job(store)
    loaded = store.get(job.job_id)
    assert loaded == job
    assert loaded is not None and loaded.status is JobStatus.QUEUED
    assert store.get("not-an-id") is None
    assert store.get(str(uuid.uuid4())) is None


def test_queued_processing_succeeded(store: JobStore) -> None:
    job = new_job(store)
    outcome, claimed = store.claim(job.job_id, "t1", 30, 5)
    processing = store.get(job.job_id)
    assert outcome is ClaimOutcome.CLAIMED and claimed == processing
    assert processing is not None and processing.status is JobStatus.PROCESSING
    assert processing.attempts == 1 and processing.started_at is not None
    assert store.finish(job.job_id, "t1", JobStatus.SUCCEEDED, thumbnail_key="k")
    done = store.get(job.job_id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.thumbnail_key == "k"


def test_finished_job_never_changes(store: JobStore) -> None:
    job = new_job(store)
    store.claim(job.job_id, "t1", 30, 5)
    store.finish(job.job_id, "t1", JobStatus.FAILED, error_code="invalid_image")
    assert store.claim(job.job_id, "t2", 30, 5)[0] is ClaimOutcome.DONE
    assert not store.finish(job.job_id, "t1", JobStatus.SUCCEEDED)
    assert not store.fail_unfinished(job.job_id, error_code="delivery_failed")
    final = store.get(job.job_id)
    assert final is not None and final.status is JobStatus.FAILED
    assert final.error_code == "invalid_image" and final.attempts == 1


def test_busy_while_leased_then_taken_over_when_expired(store: JobStore) -> None:
    job = new_job(store)
    assert store.claim(job.job_id, "t1", 30, 5)[0] is ClaimOutcome.CLAIMED
    assert store.claim(job.job_id, "t2", 30, 5)[0] is ClaimOutcome.BUSY
    store.release(job.job_id, "t1")
    assert store.claim(job.job_id, "t2", 30, 5)[0] is ClaimOutcome.CLAIMED
    assert not store.finish(job.job_id, "t1", JobStatus.SUCCEEDED)  # the old holder lost it
    assert store.finish(job.job_id, "t2", JobStatus.SUCCEEDED)


def test_attempts_are_bounded(store: JobStore) -> None:
    job = new_job(store)
    for attempt in range(2):
        assert store.claim(job.job_id, f"t{attempt}", 0, 2)[0] is ClaimOutcome.CLAIMED
    assert store.claim(job.job_id, "t9", 0, 2)[0] is ClaimOutcome.EXHAUSTED
    failed = store.get(job.job_id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error_code == "too_many_attempts"


def test_missing_job(store: JobStore) -> None:
    assert store.claim(str(uuid.uuid4()), "t", 30, 5) == (ClaimOutcome.MISSING, None)


def test_outbox_hands_each_event_to_one_sender(store: JobStore) -> None:
    job = new_job(store)
    assert store.outbox_depth() == 1
    assert store.outbox_due(retry_after=60, batch=10) == [(job.job_id, b'{"event": 1}')]
    assert store.outbox_due(retry_after=60, batch=10) == []  # pushed out: no second sender takes it
    store.outbox_ack(job.job_id)
    assert store.outbox_depth() == 0


def test_claim_clears_the_outbox(store: JobStore) -> None:
    job = new_job(store)
    store.claim(job.job_id, "t", 30, 5)
    assert store.outbox_depth() == 0 and store.outbox_due(retry_after=0, batch=10) == []


def test_create_if_absent(store: JobStore) -> None:
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
    assert store.create_if_absent(job)
    assert not store.create_if_absent(job)


def test_list_pages_newest_first(store: JobStore) -> None:
    now = time.time()
    jobs = [new_job(store, created_at=now + i) for i in range(7)]
    newest_first = [j.job_id for j in reversed(jobs)]
    seen, cursor = [], None
    while True:
        page, cursor = store.page(3, cursor)
        seen += [job_id for job_id, _ in page]
        assert all(status == "queued" for _, status in page)
        if not cursor:
            break
    assert seen == newest_first


def test_redis_down_is_unavailable() -> None:
    client = redis.Redis(port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    with pytest.raises(RedisUnavailable):
        JobStore(client).get(str(uuid.uuid4()))
