"""A full or failing dependency gets an honest answer, (issue 11, section 2): real gunicorn
functions on a real Valkey at maxmemory under noeviction, or whose snapshots fail (MISCONF).
(A storage outage that outlasts the broker's retries: test_faults.)"""

from __future__ import annotations

import io
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.integration.test_faults import FAST
from tests.support.images import encode, marked
from tests.support.servers import free_port
from tests.support.stackutil import poll, started_stack, submit, wait_terminal
from thumbnails import status, upload
from thumbnails.core.config import Config
from thumbnails.core.errors import RedisUnavailable
from thumbnails.core.jobs import Job, JobStore
from thumbnails.local.localredis import start_valkey

pytestmark = pytest.mark.faults

SMALL = encode(marked((64, 48)), "PNG")
FUNCTIONS = ("upload", "status", "resize")


def assert_unavailable(response: requests.Response) -> None:
    """503, JSON {"error": "redis_unavailable", ...} and a Retry-After in seconds."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.json()["error"] == "redis_unavailable", response.text
    assert response.json()["message"]
    assert int(response.headers["Retry-After"]) > 0


def readiness(urls: dict[str, str]) -> dict[str, int]:
    return {part: requests.get(f"{urls[part]}/ready", timeout=10).status_code
            for part in FUNCTIONS}


def fill(client: redis.Redis) -> int:
    """Set maxmemory a little above what Valkey uses now and write 64 KB values until it
    refuses one (noeviction, as the chart configures it); then hold maxmemory just under what
    it uses, so that no small write slips into memory freed meanwhile. How many were
    written."""
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 2 * 1024 * 1024)
    for written in range(10_000):
        try:
            client.set(f"filler:{written}", b"x" * 65536)
        except redis.exceptions.OutOfMemoryError:
            client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 65536)
            return written
    raise AssertionError("Valkey never refused a write")


def test_redis_at_maxmemory_gives_503_and_not_ready(tmp_path: Path) -> None:
    """Issue example: with Redis full, uploads answered 500 internal with no Retry-After and
    /ready stayed 200."""
    with started_stack(Config(**FAST), tmp_path) as stack:
        urls = stack.urls
        client = redis.Redis.from_url(urls["redis"])
        before = submit(urls, SMALL)
        assert before.status_code == 202
        job_id = before.json()["job_id"]
        assert wait_terminal(urls, job_id)["status"] == "succeeded"
        assert readiness(urls) == dict.fromkeys(FUNCTIONS, 200)
        assert fill(client) > 0
        assert_unavailable(submit(urls, SMALL))
        assert readiness(urls) == dict.fromkeys(FUNCTIONS, 503)
        for part in FUNCTIONS:
            assert_unavailable(requests.get(f"{urls[part]}/ready", timeout=10))
            assert requests.get(f"{urls[part]}/health", timeout=10).status_code == 200
        # Reads need no memory: a finished job is still shown.
        assert requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).status_code == 200
        # Room again (DEL is allowed when full): ready, and uploads are taken and finished.
        client.delete(*client.keys("filler:*"))
        client.config_set("maxmemory", 0)
        poll(lambda: readiness(urls) == dict.fromkeys(FUNCTIONS, 200) or None, timeout=10)
        after = submit(urls, SMALL)
        assert after.status_code == 202, after.text
        assert wait_terminal(urls, after.json()["job_id"])["status"] == "succeeded"


def test_redis_whose_snapshots_fail_gives_503_and_not_ready(tmp_path: Path) -> None:
    """Issue example: with Redis's disk failing, uploads answered 500 and /ready 500. Here the
    RDB snapshot fails for real (its directory is gone), and Valkey refuses every write with
    MISCONF (stop-writes-on-bgsave-error, the default)."""
    with started_stack(Config(**FAST), tmp_path) as stack:
        urls = stack.urls
        client = redis.Redis.from_url(urls["redis"])
        valkey_dir = Path(client.config_get("dir")["dir"])
        assert valkey_dir.is_relative_to(tmp_path.resolve())
        shutil.rmtree(valkey_dir)
        client.config_set("save", "3600 1")
        try:
            client.bgsave()
            poll(lambda: _bgsave_failed(client), timeout=10)
            with pytest.raises(redis.ResponseError, match="^MISCONF"):
                client.set("probe", "1")
            assert_unavailable(submit(urls, SMALL))
            assert readiness(urls) == dict.fromkeys(FUNCTIONS, 503)
            # A delivery to resize: 503 too, so the broker retries it.
            event = requests.post(urls["resize"], data=b"{}", timeout=10, headers={
                "ce-specversion": "1.0", "ce-id": "x", "ce-source": "/t",
                "ce-type": "dev.knative-thumbnails.image.uploaded",
                "content-type": "application/json"})
            assert event.status_code in (400, 503), event.text  # no job id: refused first
        finally:
            valkey_dir.mkdir(parents=True, exist_ok=True)
            client.config_set("save", "")  # writes allowed again; shutdown needs no snapshot
        poll(lambda: readiness(urls) == dict.fromkeys(FUNCTIONS, 200) or None, timeout=10)
        assert submit(urls, SMALL).status_code == 202


def _bgsave_failed(client: redis.Redis) -> bool | None:
    info: dict[str, Any] = client.info("persistence")
    return (not info["rdb_bgsave_in_progress"] and info["rdb_last_bgsave_status"] == "err") or None


def test_a_read_only_replica_gives_503_and_not_ready(tmp_path: Path) -> None:
    """READONLY, the third kind of "cannot write now": a real Valkey made a replica of
    another (as after a failover that left the service pointed at the old master). Every
    write path maps it to 503, scripts and pipelines included, and /ready says not ready."""
    master_port, replica_port = free_port(), free_port()
    master = start_valkey(master_port, tmp_path / "master", persist=False)
    replica = start_valkey(replica_port, tmp_path / "replica", persist=False)
    try:
        client = redis.Redis(port=replica_port)
        client.replicaof("127.0.0.1", master_port)
        poll(lambda: client.info("replication")["master_link_status"] == "up" or None,
             timeout=15)
        config = Config(redis_url=f"redis://127.0.0.1:{replica_port}/0",
                        data_dir=tmp_path / "objects")
        answer = upload.create_app(config).test_client().post(
            "/jobs", data={"file": (io.BytesIO(SMALL), "a.png")})
        assert answer.status_code == 503 and answer.json["error"] == "redis_unavailable"
        assert "READONLY" in answer.json["message"]
        assert int(answer.headers["Retry-After"]) > 0
        ready = status.create_app(config).test_client().get("/ready")
        assert ready.status_code == 503 and ready.json["error"] == "redis_unavailable"
        jobs = JobStore(client)
        with pytest.raises(RedisUnavailable):
            jobs.outbox_ack(str(uuid.uuid4()))  # a MULTI/EXEC pipeline
        job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
        with pytest.raises(RedisUnavailable):
            jobs.create(job, b"{}", check_at=time.time())  # a Lua script that writes
        assert jobs.page(10) == ([], "")  # reads still work
    finally:
        for process in (replica, master):
            process.terminate()
            process.wait(timeout=10)
