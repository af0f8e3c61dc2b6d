"""Nothing grows without bound: retention, DELETE /jobs/{id}, trimmed finished jobs, capped
event sizes, temporary files (Flask test clients of the real apps on a real Valkey and a
filesystem store; the broker ingress's own app for its cap)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import redis
import requests
from flask.testing import FlaskClient

from tests.support.images import kinds
from tests.support.servers import S3Server
from tests.support.stackutil import poll
from thumbnails import resize, status, upload
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import (
    EVENTS_KEY,
    INDEX_KEY,
    ClaimOutcome,
    Job,
    JobStatus,
    JobStore,
    index_member,
    job_key,
)
from thumbnails.core.metrics import JOBS_DELETED
from thumbnails.core.storage import FilesystemStore, S3Store
from thumbnails.local.broker import STREAM_KEY
from thumbnails.local.broker.ingress import create_app as ingress_app
from thumbnails.local.broker.settings import BrokerSettings

PNG = kinds()["png"][0]
KNATIVE = Path(__file__).resolve().parents[2] / "knative"
KEY = "a-client-key"


def bucket(config: Config) -> Path:
    return config.data_dir / config.s3_bucket


def objects_of(config: Config, job_id: str) -> list[str]:
    """Every stored file whose path names the job (originals and thumbnails)."""
    return sorted(str(p.relative_to(bucket(config))) for p in bucket(config).rglob("*")
                  if job_id in str(p) and p.is_file())


def finished_job(config: Config) -> str:
    """A job uploaded by upload's app and processed by resize's app: its id."""
    answer = upload.create_app(config).test_client().post(
        "/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    assert answer.status_code == 202
    job_id: str = answer.json["job_id"]
    event = events.new_event(events.IMAGE_UPLOADED, "/test", {"job_id": job_id})
    headers, body = events.to_http(event)
    assert resize.create_app(config).test_client().post("/", data=body,
                                                        headers=headers).status_code == 200
    return job_id


def deleted_count(reason: str) -> float:
    return JOBS_DELETED.labels(reason)._value.get()  # this process's counter


# -- DELETE /jobs/{id} -----------------------------------------------------------------------

def test_delete_removes_the_job_and_its_objects_then_404(config: Config,
                                                         redis_client: redis.Redis) -> None:
    job_id = finished_job(config)
    assert objects_of(config, job_id) == [f"originals/{job_id}", f"thumbnails/{job_id}/1.png"]
    client = status.create_app(config).test_client()
    before = deleted_count("request")
    answer = client.delete(f"/jobs/{job_id}")
    assert answer.status_code == 204 and answer.data == b""
    assert objects_of(config, job_id) == []
    assert not (bucket(config) / "thumbnails" / job_id).exists()  # its folder too
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.get(f"/jobs/{job_id}/thumbnail").status_code == 404
    assert job_id not in [j["job_id"] for j in client.get("/jobs").json]
    assert redis_client.zcard(INDEX_KEY) == 0
    again = client.delete(f"/jobs/{job_id}")
    assert again.status_code == 404 and again.json["error"] == "not_found"
    assert deleted_count("request") == before + 1


def test_delete_of_an_unknown_or_malformed_id_is_404(config: Config) -> None:
    client = status.create_app(config).test_client()
    for job_id in (str(uuid.uuid4()), "not-a-job", "../originals"):
        assert client.delete(f"/jobs/{job_id}").status_code == 404


def test_delete_needs_the_api_key_when_keys_are_on(config: Config) -> None:
    job_id = finished_job(config)
    keyed = Config(redis_url=config.redis_url, data_dir=config.data_dir,
                   api_key_hashes=hashlib.sha256(KEY.encode()).hexdigest())
    client = status.create_app(keyed).test_client()
    assert client.delete(f"/jobs/{job_id}").status_code == 401
    assert objects_of(config, job_id) != []  # nothing was removed
    assert client.delete(f"/jobs/{job_id}", headers={"X-API-Key": KEY}).status_code == 204


def test_a_deleted_job_cannot_be_finished_claimed_or_recreated(config: Config,
                                                               redis_client: redis.Redis) -> None:
    jobs = JobStore(redis_client)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time(), original_key="originals/x")
    jobs.create(job, b"{}", check_at=time.time() + 60)
    assert jobs.claim(job.job_id, "worker", 60, 5)[0] is ClaimOutcome.CLAIMED
    assert jobs.delete(job.job_id)
    assert not jobs.renew(job.job_id, "worker", 60, 900)  # the heartbeat learns it is gone
    assert not jobs.finish(job.job_id, "worker", JobStatus.SUCCEEDED, thumbnail_key="k")
    assert not jobs.fail_unfinished(job.job_id, error_code="delivery_failed")
    assert jobs.claim(job.job_id, "another", 60, 5) == (ClaimOutcome.MISSING, None)
    assert not jobs.create_if_absent(job, b"{}", time.time() + 60)  # a redelivered event
    assert jobs.get(job.job_id) is None
    assert 0 < redis_client.ttl(job_key(job.job_id))  # the tombstone itself expires


def test_an_idempotency_key_of_a_deleted_job_makes_a_new_job(config: Config) -> None:
    client = upload.create_app(config).test_client()

    def post() -> str:
        answer = client.post("/jobs", data={"file": (io.BytesIO(PNG), "a.png")},
                             headers={"Idempotency-Key": "order-1"})
        assert answer.status_code == 202, answer.json
        job_id: str = answer.json["job_id"]
        return job_id

    first = post()
    assert status.create_app(config).test_client().delete(f"/jobs/{first}").status_code == 204
    second = post()
    assert second != first and post() == second


# -- retention --------------------------------------------------------------------------------

def test_a_finished_job_expires_after_retention(config: Config,
                                                redis_client: redis.Redis) -> None:
    short = Config(redis_url=config.redis_url, data_dir=config.data_dir, retention_seconds=1)
    job_id = finished_job(short)
    ttl = redis_client.ttl(job_key(job_id))
    assert 0 < ttl <= 1  # EXPIRE set when it finished, in the same script
    sweep = upload.create_app(short)  # no K_SINK: no outbox thread, only its sweeper
    client = status.create_app(short).test_client()
    before = deleted_count("retention")
    poll(lambda: client.get(f"/jobs/{job_id}").status_code == 404 or None, timeout=10)
    swept = poll(lambda: sweep.extensions["sweeper"].sweep()["expired_deleted"]
                 or None, timeout=10)
    assert swept == 1 and objects_of(short, job_id) == []
    # Nothing of the job is left: only the capped stream of all jobs' state changes remains.
    assert redis_client.zcard(INDEX_KEY) == 0 and redis_client.keys() in ([], [EVENTS_KEY.encode()])
    assert deleted_count("retention") == before + 1


def test_the_sweep_goes_on_when_the_store_fails_an_expired_job(config: Config,
                                                               redis_client: redis.Redis
                                                               ) -> None:
    short = Config(redis_url=config.redis_url, data_dir=config.data_dir, retention_seconds=1)
    job_id = finished_job(short)
    folder = bucket(short) / "thumbnails" / job_id
    moved = folder.with_name(job_id + ".aside")
    folder.rename(moved)
    folder.write_bytes(b"")  # listing the job's thumbnails now fails
    app = upload.create_app(short)
    poll(lambda: redis_client.exists(job_key(job_id)) == 0 or None, timeout=10)
    swept = app.extensions["sweeper"].sweep()
    assert swept["expired_deleted"] == 0  # the sweep went on without raising
    assert redis_client.zcard(INDEX_KEY) == 1  # left for the next round
    folder.unlink()
    moved.rename(folder)
    assert app.extensions["sweeper"].sweep()["expired_deleted"] == 1
    assert objects_of(short, job_id) == [] and redis_client.zcard(INDEX_KEY) == 0


def test_jobs_finished_before_retention_was_configured_expire_too(config: Config,
                                                                   redis_client: redis.Redis
                                                                   ) -> None:
    """A job that finished while RETENTION_SECONDS was 0 has no expiry of its own: once
    retention is on, the sweep deletes it, record included."""
    forever = Config(redis_url=config.redis_url, data_dir=config.data_dir, retention_seconds=0)
    old, recent = finished_job(forever), finished_job(forever)
    long_ago = time.time() - 3600
    redis_client.hset(job_key(old), mapping={"created_at": long_ago, "finished_at": long_ago})
    redis_client.zadd(INDEX_KEY, {index_member(long_ago, old): 0})
    redis_client.zrem(INDEX_KEY, *[m for m in redis_client.zrange(INDEX_KEY, 0, -1)
                                   if m.decode().endswith(old) and
                                   m.decode() != index_member(long_ago, old)])
    later = Config(redis_url=config.redis_url, data_dir=config.data_dir, retention_seconds=600)
    swept = upload.create_app(later).extensions["sweeper"].sweep()
    assert swept["expired_deleted"] == 1
    assert redis_client.exists(job_key(old)) == 0 and objects_of(later, old) == []
    assert status.create_app(later).test_client().get(f"/jobs/{recent}").status_code == 200
    assert [m.decode().split(":")[1] for m in redis_client.zrange(INDEX_KEY, 0, -1)] == [recent]


def test_retention_zero_keeps_jobs_forever(config: Config, redis_client: redis.Redis) -> None:
    forever = Config(redis_url=config.redis_url, data_dir=config.data_dir, retention_seconds=0)
    job_id = finished_job(forever)
    assert redis_client.ttl(job_key(job_id)) == -1  # no expiry
    app = upload.create_app(forever)
    assert app.extensions["sweeper"].sweep()["expired_deleted"] == 0
    assert len(objects_of(forever, job_id)) == 2


def test_default_retention_is_seven_days(config: Config, redis_client: redis.Redis) -> None:
    job_id = finished_job(config)
    assert 7 * 86400 - 60 < redis_client.ttl(job_key(job_id)) <= 7 * 86400


def test_an_unfinished_job_does_not_expire(config: Config, redis_client: redis.Redis) -> None:
    short = Config(redis_url=config.redis_url, data_dir=config.data_dir, retention_seconds=1)
    answer = upload.create_app(short).test_client().post(
        "/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    job_id = answer.json["job_id"]
    assert redis_client.ttl(job_key(job_id)) == -1
    # Even when it is older than the retention, the sweep leaves it (and its original) alone.
    jobs = JobStore(redis_client, 1)
    assert jobs.expired(time.time() + 10) == []
    assert objects_of(short, job_id) == [f"originals/{job_id}"]


# -- what a finished job keeps ----------------------------------------------------------------

def test_a_finished_job_keeps_only_what_status_needs(config: Config,
                                                     redis_client: redis.Redis) -> None:
    job_id = finished_job(config)
    fields = {k.decode() for k in redis_client.hkeys(job_key(job_id))}
    assert not fields & {"event", "lease_token", "lease_until"}
    assert redis_client.object("encoding", job_key(job_id)) == b"listpack"  # compact again
    assert redis_client.memory_usage(job_key(job_id)) < 1024
    doc = status.create_app(config).test_client().get(f"/jobs/{job_id}").json
    assert doc["status"] == "succeeded" and doc["thumbnail"]["width"] > 0


def test_a_padded_event_leaves_no_big_job_behind(config: Config,
                                                 redis_client: redis.Redis) -> None:
    """Another producer's event padded to just under MAX_EVENT_BYTES: once the job has
    finished, its record is as small as any other."""
    FilesystemStore(config.data_dir, config.s3_bucket).put("incoming/a.png", PNG, "image/png")
    padding = "x" * (config.max_event_bytes - 2048)
    event = events.new_event(events.IMAGE_UPLOADED, "/producer", {
        "bucket": config.s3_bucket, "key": "incoming/a.png", "padding": padding})
    headers, body = events.to_http(event)
    answer = resize.create_app(config).test_client().post("/", data=body, headers=headers)
    assert answer.status_code == 200, answer.data[:300]
    job_id = events.data_of(events.from_http(answer.headers, answer.data))["job_id"]
    assert redis_client.memory_usage(job_key(job_id)) < 1024


# -- capped event sizes -----------------------------------------------------------------------

def padded_event(size: int) -> tuple[dict[str, str], bytes]:
    """A structured image.uploaded event of about `size` bytes (data.padding makes it up)."""
    event = events.new_event(events.IMAGE_UPLOADED, "/producer", {
        "bucket": "thumbnails", "key": "incoming/a.png", "padding": "x" * size})
    return events.to_http(event, structured=True)


def test_an_event_padded_to_19_mib_is_413_at_the_broker_ingress(redis_url: str,
                                                                 redis_client: redis.Redis
                                                                 ) -> None:
    app = ingress_app(Config(redis_url=redis_url),
                      settings=BrokerSettings(knative_dir=KNATIVE,
                                              subscribers="resize=http://127.0.0.1:9"))
    client: FlaskClient = app.test_client()
    headers, body = padded_event(19 * 1024 * 1024)
    answer = client.post("/", data=body, headers=headers)
    assert answer.status_code == 413 and answer.json["error"] == "too_large"
    assert redis_client.xlen(STREAM_KEY) == 0  # nothing stored
    headers, body = padded_event(1000)
    assert client.post("/", data=body, headers=headers).status_code == 202
    assert redis_client.xlen(STREAM_KEY) == 1


def test_an_event_padded_to_19_mib_is_413_at_resize(config: Config,
                                                    redis_client: redis.Redis) -> None:
    FilesystemStore(config.data_dir, config.s3_bucket).put("incoming/a.png", PNG, "image/png")
    headers, body = padded_event(19 * 1024 * 1024)
    client = resize.create_app(config).test_client()
    answer = client.post("/", data=body, headers=headers)
    assert answer.status_code == 413 and answer.json["error"] == "too_large"
    assert redis_client.keys() in ([], [EVENTS_KEY.encode()])  # no job hash, no other key


def test_large_binary_mode_headers_count_towards_the_cap(config: Config,
                                                         redis_client: redis.Redis) -> None:
    small = Config(redis_url=config.redis_url, data_dir=config.data_dir, max_event_bytes=1024)
    event = events.new_event(events.IMAGE_UPLOADED, "/producer",
                             {"bucket": "thumbnails", "key": "incoming/a.png"},
                             extensions={"padding": "y" * 2000})
    headers, body = events.to_http(event)  # binary mode: the padding is a ce- header
    assert len(body) < 1024
    answer = resize.create_app(small).test_client().post("/", data=body, headers=headers)
    assert answer.status_code == 413 and answer.json["error"] == "too_large"
    assert redis_client.keys() in ([], [EVENTS_KEY.encode()])


# -- temporary files --------------------------------------------------------------------------

def test_the_sweep_removes_temporary_files_a_killed_process_left(config: Config,
                                                                 redis_client: redis.Redis
                                                                 ) -> None:
    store = FilesystemStore(config.data_dir, config.s3_bucket)
    store.put("originals/x", b"data", "image/png")  # makes the temporary folder
    stale, fresh = store.temp / "dead-writer", store.temp / "live-writer"
    stale.write_bytes(b"half an image")
    fresh.write_bytes(b"being written")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    app = upload.create_app(config)  # ORPHAN_AFTER_SECONDS 900: an hour is stale
    swept = app.extensions["sweeper"].sweep()
    assert swept["temp_files_removed"] == 1
    assert not stale.exists() and fresh.exists()
    assert store.get("originals/x") == b"data"


def test_a_write_killed_midway_leaves_its_file_only_where_the_sweep_looks(
        tmp_path: Path) -> None:
    """A real process SIGKILLed between writing an object's bytes and renaming them into
    place (no finally block runs): the half-done file is in the temporary folder, not among
    the objects, and the sweep's clean-up removes it."""
    script = textwrap.dedent(f"""
        import os, signal
        from thumbnails.core.storage import FilesystemStore
        os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        FilesystemStore({str(tmp_path)!r}, "b").put("originals/a", b"x" * 100, "image/png")
    """)
    killed = subprocess.run([sys.executable, "-c", script], check=False)
    assert killed.returncode == -9
    store = FilesystemStore(tmp_path, "b")
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.parent for p in leftovers] == [store.temp]
    assert leftovers[0].read_bytes() == b"x" * 100
    assert not store.exists("originals/a")
    assert store.remove_stale_temp(3600) == 0  # too recent: a live writer may own it
    assert store.remove_stale_temp(0) == 1
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


# -- S3: the same deletions, and the bucket's lifecycle rule (SeaweedFS, a real S3 server) ----

def s3_store(seaweedfs: S3Server, bucket: str, retention: float) -> S3Store:
    """A store on the session's SeaweedFS (ready: the fixture waits for it), bucket created."""
    endpoint, access, secret = seaweedfs
    store = S3Store(endpoint, access, secret, bucket, retention_seconds=retention)
    store.ping()
    return store


def test_s3_bucket_gets_a_lifecycle_rule_behind_the_retention(
        seaweedfs: S3Server) -> None:
    store = s3_store(seaweedfs, f"retention-{uuid.uuid4().hex[:8]}", retention=3 * 86400)
    rules = store.client.get_bucket_lifecycle(store.bucket).rules
    expiring = {r.rule_filter.prefix: r.expiration.days for r in rules if r.expiration}
    assert expiring == {"originals/": 4, "thumbnails/": 4}  # 3 days of retention, then a day
    aborts = [r.abort_incomplete_multipart_upload for r in rules
              if r.abort_incomplete_multipart_upload]
    assert [a.days_after_initiation for a in aborts] == [1]


def test_s3_bucket_keeping_jobs_forever_gets_no_lifecycle_rule(
        seaweedfs: S3Server) -> None:
    store = s3_store(seaweedfs, f"forever-{uuid.uuid4().hex[:8]}", retention=0)
    assert store.client.get_bucket_lifecycle(store.bucket) is None


def test_s3_delete_removes_the_jobs_objects(redis_url: str, redis_client: redis.Redis,
                                            seaweedfs: S3Server) -> None:
    endpoint, access, secret = seaweedfs
    config = Config(redis_url=redis_url, storage_backend="s3", s3_endpoint=endpoint,
                    s3_access_key=access, s3_secret_key=secret,
                    s3_bucket=f"jobs-{uuid.uuid4().hex[:8]}")
    s3_store(seaweedfs, config.s3_bucket, 0)
    job_id = finished_job(config)
    store = s3_store(seaweedfs, config.s3_bucket, 0)
    keys = sorted(o.object_name for o in store.client.list_objects(store.bucket, recursive=True))
    assert keys == [f"originals/{job_id}", f"thumbnails/{job_id}/1.png"]
    client = status.create_app(config).test_client()
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert list(store.client.list_objects(store.bucket, recursive=True)) == []
    assert client.delete(f"/jobs/{job_id}").status_code == 404


def test_a_delete_cut_short_by_the_store_is_finished_by_the_next(config: Config,
                                                                  redis_client: redis.Redis
                                                                  ) -> None:
    """The object store fails midway: 503 with Retry-After, the job is already gone for
    GET, and the next DELETE removes what was left (204), then 404."""
    job_id = finished_job(config)
    folder = bucket(config) / "thumbnails" / job_id
    moved = folder.with_name(job_id + ".aside")
    folder.rename(moved)
    folder.write_bytes(b"")  # a file where the job's thumbnail folder is: listing it fails
    client = status.create_app(config).test_client()
    failed = client.delete(f"/jobs/{job_id}")
    assert failed.status_code == 503 and failed.json["error"] == "storage_unavailable"
    assert int(failed.headers["Retry-After"]) > 0
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert redis_client.zcard(INDEX_KEY) == 1  # kept until the objects are gone
    folder.unlink()
    moved.rename(folder)
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert objects_of(config, job_id) == [] and redis_client.zcard(INDEX_KEY) == 0
    assert client.delete(f"/jobs/{job_id}").status_code == 404


# -- the same through the real processes (the local stack) ------------------------------------

def test_stack_expires_finished_jobs_and_serves_delete(tmp_path: Path) -> None:
    """RETENTION_SECONDS=2 on the local stack: a finished job answers 404 and its files are
    gone within a few sweeps; another is deleted over HTTP at once."""
    from tests.support.stackutil import running_stack, submit, wait_terminal

    config = Config(retention_seconds=2, sweep_interval_seconds=0.5)
    with running_stack(config, tmp_path) as urls:
        kept, deleted = (submit(urls, PNG).json()["job_id"] for _ in range(2))
        for job_id in (kept, deleted):
            assert wait_terminal(urls, job_id)["status"] == "succeeded"
        store = tmp_path / "objects" / "thumbnails"
        assert (store / "originals" / deleted).is_file()
        assert requests.delete(f"{urls['status']}/jobs/{deleted}", timeout=10).status_code == 204
        assert not (store / "originals" / deleted).exists()
        assert not (store / "thumbnails" / deleted).exists()

        def expired() -> bool | None:
            gone = requests.get(f"{urls['status']}/jobs/{kept}", timeout=10).status_code == 404
            files = [p for p in store.rglob("*") if kept in str(p)]
            return (gone and not files) or None

        poll(expired, timeout=30, interval=0.2)
        assert requests.get(f"{urls['status']}/jobs", timeout=10).json() == []
        scraped = requests.get(f"{urls['upload']}/metrics", timeout=10).text
        assert 'thumbnails_jobs_deleted_total{reason="retention"} 1.0' in scraped
