"""The functions' status codes for the cases the broker and clients depend on (Flask test
clients on a real Valkey and a filesystem store)."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from tests.support.images import kinds
from thumbnails import resize, status, upload
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import ClaimOutcome, Job, JobStatus, JobStore

PNG = kinds()["png"][0]


def uploaded(client: FlaskClient) -> str:
    answer = client.post("/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    assert answer.status_code == 202
    job_id: str = answer.json["job_id"]
    return job_id


def deliver(client: FlaskClient, job_id: str, path: str = "/", *,
            recorded: Job | None = None, **extensions: str) -> tuple[int, bytes, dict[str, str]]:
    """POST an image.uploaded event for the job: with `recorded`, the job's own event (its
    id and source, as a dead letter carries it), else one from "/test"."""
    source, event_id = (recorded.event_source, recorded.event_id) if recorded else ("/test", None)
    event = events.new_event(events.IMAGE_UPLOADED, source, {"job_id": job_id},
                             event_id=event_id, extensions=extensions)
    headers, body = events.to_http(event)
    response = client.post(path, data=body, headers=headers)
    return response.status_code, response.data, dict(response.headers)


def test_job_held_by_another_worker_is_409(upload_client: FlaskClient, resize_client: FlaskClient,
                                           redis_client: redis.Redis) -> None:
    job_id = uploaded(upload_client)
    JobStore(redis_client).claim(job_id, "someone-else", 60, 5)
    status_code, body, _ = deliver(resize_client, job_id)
    assert status_code == 409 and b"job_busy" in body


def test_dependency_down_is_503_with_retry_after(config: Config, tmp_path: Path) -> None:
    down = Config(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path,
                  dependency_timeout_seconds=0.5)
    answer = upload.create_app(down).test_client().post(
        "/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    assert answer.status_code == 503 and answer.json["error"] == "redis_unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "an orphaned original was left"
    status_code, _, headers = deliver(resize.create_app(down).test_client(),
                                      str(uuid.uuid4()))
    assert status_code == 503 and "Retry-After" in headers
    assert status.create_app(down).test_client().get("/ready").status_code == 503


def test_storage_down_releases_the_lease(upload_client: FlaskClient, resize_client: FlaskClient,
                                         redis_client: redis.Redis, tmp_path: Path) -> None:
    job_id = uploaded(upload_client)
    # A file where the thumbnails folder belongs: writing a thumbnail fails, even for root.
    (tmp_path / "thumbnails" / "thumbnails").write_bytes(b"")
    status_code, body, _ = deliver(resize_client, job_id)
    assert status_code == 503 and b"storage_unavailable" in body
    jobs = JobStore(redis_client)
    assert jobs.claim(job_id, "next", 60, 5)[0] is ClaimOutcome.CLAIMED  # free at once


def test_dead_letter_fails_the_job_with_the_brokers_reason(
        upload_client: FlaskClient, resize_client: FlaskClient, redis_client: redis.Redis) -> None:
    job_id = uploaded(upload_client)
    recorded = JobStore(redis_client).get(job_id)
    status_code, body, _ = deliver(resize_client, job_id,
                                   "/dead-letter", recorded=recorded, knativeerrorcode="500",
                                   knativeerrordest="http://resize")
    assert status_code == 204 and body == b""
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error_code == "delivery_failed" and "500" in job.error_message
    assert "http://resize" in job.error_message


@pytest.mark.parametrize("code", ["409", "503", "502", "504", "429", ""])
def test_dead_letter_after_an_outage_leaves_the_job_to_the_sweep(
        upload_client: FlaskClient, resize_client: FlaskClient, redis_client: redis.Redis,
        code: str) -> None:
    """Retries used up on a busy lease, an outage or no answer at all: the job and its
    original are intact, so the sweep re-emits it until JOB_DEADLINE_SECONDS."""
    job_id = uploaded(upload_client)
    jobs = JobStore(redis_client)
    jobs.claim(job_id, "a-worker-that-died", 60, 5)
    extensions = {"knativeerrorcode": code} if code else {}
    status_code, _, _ = deliver(resize_client, job_id,
                                "/dead-letter", recorded=jobs.get(job_id), **extensions)
    assert status_code == 204
    job = jobs.get(job_id)
    assert job is not None and job.status is JobStatus.PROCESSING  # the sweep takes it on


def test_deeply_nested_event_data_is_400(resize_client: FlaskClient) -> None:
    headers, _ = events.to_http(events.new_event(events.IMAGE_UPLOADED, "/t", {"a": 1}))
    deep = b"[" * 20000 + b"]" * 20000
    for path in ("/", "/dead-letter"):
        answer = resize_client.post(path, data=deep, headers=headers)
        assert answer.status_code == 400, (path, answer.data[:200])


def test_dead_letter_never_changes_a_finished_job(upload_client: FlaskClient,
                                                  resize_client: FlaskClient,
                                                  redis_client: redis.Redis) -> None:
    job_id = uploaded(upload_client)
    client = resize_client
    assert deliver(client, job_id)[0] == 200
    deliver(client, job_id, "/dead-letter", recorded=JobStore(redis_client).get(job_id),
            knativeerrorcode="500")
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED


def test_permanent_image_error_is_200_with_failed_reply(resize_client: FlaskClient, config: Config,
                                                        redis_client: redis.Redis) -> None:
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time(), original_key="originals/x",
              bucket="thumbnails")
    JobStore(redis_client).create(job, b"{}", check_at=time.time() + 60)
    (config.data_dir / "thumbnails" / "originals").mkdir(parents=True)
    (config.data_dir / "thumbnails" / "originals" / "x").write_bytes(PNG[:60])
    status_code, body, headers = deliver(resize_client, job.job_id)
    assert status_code == 200
    reply = events.from_http(headers, body)
    assert reply.get_type() == events.THUMBNAIL_FAILED
    assert events.data_of(reply)["error"]["code"] == "invalid_image"


def test_debug_endpoint_is_off_by_default(upload_client: FlaskClient, status_client: FlaskClient,
                                          config: Config) -> None:
    job_id = uploaded(upload_client)
    assert status_client.get(f"/jobs/{job_id}/debug").status_code == 404
    on = Config(redis_url=config.redis_url, data_dir=config.data_dir, debug_endpoint=True)
    assert status.create_app(on).test_client().get(f"/jobs/{job_id}/debug").status_code == 200


def test_responses_carry_nosniff(status_client: FlaskClient) -> None:
    response = status_client.get("/jobs")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_file_over_the_limit_is_413(config: Config) -> None:
    small = Config(redis_url=config.redis_url, data_dir=config.data_dir,
                   max_upload_bytes=len(PNG) - 1)
    answer = upload.create_app(small).test_client().post(
        "/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    assert answer.status_code == 413 and answer.json["error"] == "too_large"
