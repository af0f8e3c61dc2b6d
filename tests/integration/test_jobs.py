"""The job state machine on a real Redis-protocol server."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from thumbnails.core.errors import RedisUnavailable
from thumbnails.core.imaging import ThumbnailOptions
from thumbnails.core.jobs import (
    IDEMPOTENCY_TTL,
    OUTBOX_KEY,
    WATCH_KEY,
    ClaimOutcome,
    Job,
    JobStatus,
    JobStore,
    idempotency_key,
)
from thumbnails.core.renditions import Request


@pytest.fixture
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client)


def new_job(store: JobStore, created_at: float | None = None) -> Job:
    job = Job(job_id=str(uuid.uuid4()), created_at=created_at or time.time(),
              options=Request(ThumbnailOptions(width=100)), original_key="originals/x")
    store.create(job, b'{"event": 1}', check_at=job.created_at + 60, send_by=job.created_at)
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
    assert store.create_if_absent(job, b"{}", check_at=time.time() + 60)
    assert not store.create_if_absent(job, b"{}", check_at=time.time() + 60)


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


# --- the sweep's view: watch list, idempotency keys, orphaned uploads ----------------------


def watched(store: JobStore, job: Job, check_at: float, created_at: float | None = None) -> Job:
    """A job created with no outbox entry (its event already went out) and a due time."""
    if created_at is not None:
        job = Job(job_id=job.job_id, created_at=created_at)
    store.create(job, b'{"id": "' + job.job_id.encode() + b'"}', check_at=check_at)
    return job


def fresh(created_at: float | None = None) -> Job:
    return Job(job_id=str(uuid.uuid4()), created_at=created_at or time.time())


def test_recover_re_emits_a_queued_job_whose_event_was_lost(store: JobStore) -> None:
    now = time.time()
    due, later = watched(store, fresh(), now - 1), watched(store, fresh(), now + 60)
    assert store.outbox_depth() == 0
    assert store.recover(requeue_after=30, deadline=600) == {"requeued": 1, "timed_out": 0}
    assert store.outbox_due(retry_after=60, batch=10) == [
        (due.job_id, b'{"id": "' + due.job_id.encode() + b'"}')]
    assert store.recover(requeue_after=30, deadline=600)["requeued"] == 0  # looks again later
    assert later.job_id not in [i for i, _ in store.outbox_due(retry_after=0, batch=10)]


def test_recover_waits_for_a_live_lease_and_requeues_an_expired_one(store: JobStore) -> None:
    now = time.time()
    live, dead = watched(store, fresh(), now - 1), watched(store, fresh(), now - 1)
    store.claim(live.job_id, "alive", 60, 5)
    store.claim(dead.job_id, "crashed", 0.01, 5)
    time.sleep(0.02)
    store.redis.zadd(WATCH_KEY, {live.job_id: now - 1, dead.job_id: now - 1})
    assert store.recover(requeue_after=30, deadline=600) == {"requeued": 1, "timed_out": 0}
    assert [i for i, _ in store.outbox_due(retry_after=60, batch=10)] == [dead.job_id]
    requeued = store.get(dead.job_id)
    # A job never moves backwards: it stays processing until the next claim takes it over.
    assert requeued is not None and requeued.status is JobStatus.PROCESSING
    assert requeued.attempts == 1  # the next claim counts the second attempt
    assert store.claim(dead.job_id, "next", 60, 5)[0] is ClaimOutcome.CLAIMED
    assert not store.finish(dead.job_id, "crashed", JobStatus.SUCCEEDED)
    still = store.get(live.job_id)
    assert still is not None and still.status is JobStatus.PROCESSING


def test_recover_fails_jobs_past_the_deadline(store: JobStore) -> None:
    now = time.time()
    old = watched(store, fresh(), now - 1, created_at=now - 1000)
    store.redis.hset(OUTBOX_KEY, old.job_id, b"{}")
    assert store.recover(requeue_after=30, deadline=600) == {"requeued": 0, "timed_out": 1}
    failed = store.get(old.job_id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error_code == "timed_out" and store.outbox_depth() == 0
    assert store.claim(old.job_id, "late", 60, 5)[0] is ClaimOutcome.DONE


def test_finished_jobs_leave_the_watch_list(store: JobStore) -> None:
    job = watched(store, fresh(), time.time() + 60)
    store.claim(job.job_id, "t", 60, 5)
    assert store.finish(job.job_id, "t", JobStatus.SUCCEEDED)
    assert store.redis.zscore(WATCH_KEY, job.job_id) is None
    dead_lettered = watched(store, fresh(), time.time() + 60)
    assert store.fail_unfinished(dead_lettered.job_id, error_code="delivery_failed")
    assert store.redis.zcard(WATCH_KEY) == 0


def test_an_idempotency_key_names_one_job(store: JobStore) -> None:
    first, second = fresh(), fresh()
    assert store.create(first, b"{}", check_at=time.time(), idempotency="key-1") is None
    assert store.create(second, b"{}", check_at=time.time(), idempotency="key-1") == first.job_id
    assert store.get(second.job_id) is None  # nothing of the second was written
    assert store.idempotent_job("key-1") == first.job_id
    assert store.idempotent_job("key-2") is None
    assert 0 < store.redis.ttl(idempotency_key("key-1")) <= IDEMPOTENCY_TTL


def test_orphaned_uploads_are_those_without_a_record(store: JobStore) -> None:
    recorded, orphan = fresh(), fresh()
    store.note_upload(recorded.job_id)
    store.note_upload(orphan.job_id)
    store.create(recorded, b"{}", check_at=time.time() + 60)  # takes its own entry away
    assert store.orphaned_uploads(older_than=60) == []  # too recent to call
    assert store.orphaned_uploads(older_than=0) == [orphan.job_id]
    store.forget_upload(orphan.job_id)
    assert store.orphaned_uploads(older_than=0) == []


def test_a_released_lease_gives_the_attempt_back(store: JobStore) -> None:
    job = new_job(store)
    for _ in range(7):  # an outage longer than MAX_ATTEMPTS deliveries
        outcome, _ = store.claim(job.job_id, "t", 60, 5)
        assert outcome is ClaimOutcome.CLAIMED
        store.release(job.job_id, "t")
    held = store.get(job.job_id)
    assert held is not None and held.attempts == 0 and held.status is JobStatus.PROCESSING


def test_create_if_absent_is_atomic_under_concurrent_callers(store: JobStore) -> None:
    job = fresh()
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: store.create_if_absent(job, b"{}", time.time() + 60),
                                range(16)))
    assert created.count(True) == 1
    loaded = store.get(job.job_id)
    assert loaded is not None and loaded.status is JobStatus.QUEUED
