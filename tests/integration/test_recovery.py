"""What the sweep repairs, and what an Idempotency-Key promises (upload's Flask test client
on a real Valkey and a filesystem store; a real HTTP subscriber stands in for the broker)."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from flask import Flask

from tests.support.images import kinds
from tests.support.stackutil import poll
from tests.support.subscriber import Subscriber
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import OUTBOX_DUE_KEY, OUTBOX_KEY, JobStatus, JobStore
from thumbnails.core.storage import original_key
from thumbnails.upload import create_app

PNG, JPEG = kinds()["png"][0], kinds()["jpeg"][0]


def upload_app(redis_url: str, tmp_path: Path, sink: str = "", **settings: float) -> Flask:
    config = Config(redis_url=redis_url, data_dir=tmp_path, sink_url=sink, **settings)
    app = create_app(config)
    if "outbox" in app.extensions:
        app.extensions["outbox"].stop()  # only the sweep endpoint sends in these tests
    return app


def post(app: Flask, data: bytes = PNG, **headers: str) -> tuple[int, dict, dict]:
    answer = app.test_client().post("/jobs", data={"file": (io.BytesIO(data), "a")},
                                    headers=headers)
    return answer.status_code, answer.json, dict(answer.headers)


def stored_originals(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("originals/*") if p.is_file())


def test_the_same_idempotency_key_gives_the_same_job(redis_url: str, redis_client: redis.Redis,
                                                     tmp_path: Path) -> None:
    app = upload_app(redis_url, tmp_path)
    status, first, headers = post(app, **{"Idempotency-Key": "order-17"})
    assert status == 202 and "Idempotent-Replayed" not in headers
    status, again, headers = post(app, **{"Idempotency-Key": "order-17"})
    assert status == 202 and again["job_id"] == first["job_id"]
    assert headers["Idempotent-Replayed"] == "true"
    # Another payload under the same key: 422 (draft-ietf-httpapi-idempotency-key-header,
    # section 2.7), and nothing stored.
    status, refused, _ = post(app, JPEG, **{"Idempotency-Key": "order-17"})
    assert status == 422 and refused["error"] == "idempotency_key_reused"
    status, other, _ = post(app, **{"Idempotency-Key": "order-18"})
    assert status == 202 and other["job_id"] != first["job_id"]
    assert len(stored_originals(tmp_path)) == 2  # the replay stored nothing


def test_concurrent_requests_with_one_key_make_one_job(redis_url: str,
                                                       redis_client: redis.Redis,
                                                       tmp_path: Path) -> None:
    app = upload_app(redis_url, tmp_path)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(app, **{"Idempotency-Key": "k"}), range(8)))
    assert {status for status, _, _ in answers} == {202}
    assert len({body["job_id"] for _, body, _ in answers}) == 1
    assert len(stored_originals(tmp_path)) == 1  # the losers' originals were deleted
    assert redis_client.zcard("thumbnails:jobs") == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_idempotency_key_is_400(redis_url: str, redis_client: redis.Redis,
                                            tmp_path: Path, key: str) -> None:
    app = upload_app(redis_url, tmp_path)
    answer = app.test_client().post("/jobs", data={"file": (io.BytesIO(PNG), "a")},
                                    headers={"Idempotency-Key": key.encode().decode("latin-1")})
    assert answer.status_code == 400 and answer.json["error"] == "bad_request"
    assert stored_originals(tmp_path) == []


def test_the_sweep_re_emits_a_job_whose_event_the_broker_lost(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path,
        serve: Callable[[Subscriber], Subscriber]) -> None:
    broker = serve(Subscriber([202]))
    app = upload_app(redis_url, tmp_path, broker.url, requeue_after_seconds=0.2,
                     sweep_interval_seconds=0.01)
    _, body, _ = post(app)
    poll(lambda: app.extensions["sweeper"].sweep()["sent"] or None, timeout=5)
    assert len(broker.received) == 1
    # The broker accepted the event and lost it (an InMemoryChannel restart, say).
    time.sleep(0.3)
    sweep = app.extensions["sweeper"].sweep()
    assert sweep["requeued"] == 1 and sweep["sent"] == 1 and sweep["pending"] == 0
    first, second = broker.received
    assert second.get_id() == first.get_id() and events.data_of(second)["job_id"] == \
        body["job_id"]


def test_the_sweep_fails_jobs_past_the_deadline(redis_url: str, redis_client: redis.Redis,
                                                tmp_path: Path) -> None:
    app = upload_app(redis_url, tmp_path, requeue_after_seconds=0.1, job_deadline_seconds=0.2)
    _, body, _ = post(app)
    time.sleep(0.3)
    assert app.extensions["sweeper"].sweep()["timed_out"] == 1
    job = JobStore(redis_client).get(body["job_id"])
    assert job is not None and job.status is JobStatus.FAILED and job.error_code == "timed_out"
    assert redis_client.hlen(OUTBOX_KEY) == redis_client.zcard(OUTBOX_DUE_KEY) == 0


def test_the_sweep_deletes_originals_that_never_got_a_record(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    app = upload_app(redis_url, tmp_path, orphan_after_seconds=0.1)
    services = app.extensions["services"]
    kept = post(app)[1]["job_id"]
    # An upload that died between storing the original and writing the record:
    orphan = str(uuid.uuid4())
    services.jobs.note_upload(orphan)
    services.store.put(original_key(orphan), PNG, "image/png")
    assert len(stored_originals(tmp_path)) == 2
    poll(lambda: app.extensions["sweeper"].sweep()["orphans_deleted"] or None,
         timeout=5)
    assert [p.name for p in stored_originals(tmp_path)] == [kept]


def test_redis_down_after_the_original_is_stored_leaves_nothing(tmp_path: Path) -> None:
    app = upload_app("redis://127.0.0.1:1/0", tmp_path, dependency_timeout_seconds=0.3)
    status, body, headers = post(app)
    assert status == 503 and body["error"] == "redis_unavailable" and "Retry-After" in headers
    assert stored_originals(tmp_path) == []
