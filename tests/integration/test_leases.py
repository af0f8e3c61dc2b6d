"""Leases that hold for jobs longer than the lease: the worker's heartbeat renews it, a job
never moves backwards, success is counted only once recorded, and an attempt that lost leaves
nothing behind.

A job is made as long as a test needs by stalling the storage: the job's original is
replaced by a named pipe (FIFO), so resize's read of it blocks until the test writes the
image into the pipe. Real processes (the local stack) where the issue's example involves
them; resize's Flask app on a real Valkey where one worker's view is enough."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.support.images import kinds
from tests.support.stackutil import child_pids, job_debug, poll, signal_group, started_stack, submit
from thumbnails import resize, upload
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import ClaimOutcome, Job, JobStatus, JobStore, job_key
from thumbnails.core.metrics import JOBS_FINISHED
from thumbnails.core.storage import FilesystemStore, original_key, thumbnail_key

PNG = kinds()["png"][0]
ORDER = {"queued": 0, "processing": 1, "succeeded": 2, "failed": 2}


class Stall:
    """The job's stored original replaced by a FIFO that the test holds open (read-write, so
    neither side's open blocks): resize's read of the original waits until release()."""

    def __init__(self, objects: Path, job_id: str) -> None:
        self.path = objects / "thumbnails" / original_key(job_id)
        self.data = self.path.read_bytes()
        assert len(self.data) < 65536  # fits the pipe's buffer: the write never blocks
        self.path.unlink()
        os.mkfifo(self.path)
        self.fd = os.open(self.path, os.O_RDWR)

    def release(self) -> None:
        """Hand the original to whoever reads, then end the stream."""
        os.write(self.fd, self.data)
        os.close(self.fd)


def uploaded_event(job_id: str, **data: Any) -> tuple[dict[str, str], bytes]:
    return events.to_http(events.new_event(events.IMAGE_UPLOADED, "/test",
                                           {"job_id": job_id, **data}))


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def assert_never_backwards(statuses: list[str]) -> None:
    ranks = [ORDER[s] for s in statuses]
    assert ranks == sorted(ranks), f"the job moved backwards: {statuses}"


# -- the example: a job longer than its lease, real processes --------------------------

def test_a_job_longer_than_its_lease_is_not_taken_over(tmp_path: Path) -> None:
    """LEASE_SECONDS=1, a job stalled for 4 s, and a sweep that re-emits any job whose lease
    ran out after 1 s: the worker's heartbeat keeps the job, a duplicate delivery is 409, and
    the job ends succeeded after one attempt with one thumbnail, counted once."""
    lease = 1.0
    config = Config(lease_seconds=lease, requeue_after_seconds=lease, sweep_interval_seconds=0.5,
                    dependency_timeout_seconds=1.0)
    with started_stack(config, tmp_path) as stack:
        urls, objects = stack.urls, tmp_path / "objects"
        dispatcher = stack.processes["dispatcher"].pid
        signal_group(dispatcher, signal.SIGSTOP)  # hold the event until the original stalls
        response = submit(urls, PNG)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        stall = Stall(objects, job_id)
        signal_group(dispatcher, signal.SIGCONT)
        statuses = [job_debug(urls, job_id)["status"]]
        statuses.append(poll(lambda: (s := job_debug(urls, job_id)["status"]) == "processing"
                             and s or None, timeout=20))
        # Four leases long the job stays with its first worker (the experiment's duration,
        # not a wait for some state).
        until = time.monotonic() + 4 * lease
        duplicate = None
        while time.monotonic() < until:
            debug = job_debug(urls, job_id)
            statuses.append(debug["status"])
            assert debug["status"] == "processing" and debug["attempts"] == 1, debug
            if duplicate is None and time.monotonic() > until - 2 * lease:
                headers, body = uploaded_event(job_id)
                duplicate = requests.post(urls["resize"], data=body, headers=headers,
                                          timeout=10)
            time.sleep(0.05)
        assert duplicate is not None and duplicate.status_code == 409, duplicate.text
        assert duplicate.json()["error"] == "job_busy"
        stall.release()

        def ended() -> dict[str, Any] | None:
            debug = job_debug(urls, job_id)
            statuses.append(debug["status"])
            return debug if debug["status"] in ("succeeded", "failed") else None

        final = poll(ended, timeout=30)
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 1
        assert final["processing_time_ms"] > 4 * lease * 1000  # it did outlast its lease
        assert_never_backwards(statuses)
        folder = objects / "thumbnails" / "thumbnails" / job_id
        assert sorted(p.name for p in folder.iterdir()) == ["1.png"]
        scraped = requests.get(f"{urls['resize']}/metrics", timeout=10).text
        assert metric(scraped, "thumbnails_jobs_finished_total", status="succeeded") == 1
        assert metric(scraped, "thumbnails_stage_duration_seconds_count", stage="store") == 1


def test_a_stopped_worker_loses_its_job_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """The first worker is frozen (SIGSTOP: alive but not renewing) while it holds the job;
    its lease runs out, the sweep re-emits the job, the other worker takes it over and
    finishes it. The frozen one, thawed, writes nothing that stays, and the job never moved
    backwards."""
    lease = 1.0
    config = Config(lease_seconds=lease, requeue_after_seconds=lease, sweep_interval_seconds=0.5,
                    dependency_timeout_seconds=1.0)
    with started_stack(config, tmp_path) as stack:
        urls, objects = stack.urls, tmp_path / "objects"
        dispatcher = stack.processes["dispatcher"].pid
        signal_group(dispatcher, signal.SIGSTOP)
        response = submit(urls, PNG)
        job_id = response.json()["job_id"]
        stall = Stall(objects, job_id)
        signal_group(dispatcher, signal.SIGCONT)
        statuses = [poll(lambda: (s := job_debug(urls, job_id)["status"]) == "processing"
                         and s or None, timeout=20)]
        workers = child_pids(stack.processes["resize"].pid)
        first = poll(lambda: next((pid for pid in workers if reads(pid, stall.path)), None),
                     timeout=10)
        os.kill(first, signal.SIGSTOP)
        try:
            # The other worker takes the job over (attempt 2) and waits on the pipe too.
            def taken_over() -> dict[str, Any] | None:
                debug = job_debug(urls, job_id)
                statuses.append(debug["status"])
                return debug if debug["attempts"] == 2 else None

            poll(taken_over, timeout=30)
            second = poll(lambda: next((pid for pid in workers if pid != first
                                        and reads(pid, stall.path)), None), timeout=10)
            assert second != first
            stall.release()  # only the running worker can read it

            def ended() -> dict[str, Any] | None:
                debug = job_debug(urls, job_id)
                statuses.append(debug["status"])
                return debug if debug["status"] in ("succeeded", "failed") else None

            final = poll(ended, timeout=30)
        finally:
            os.kill(first, signal.SIGCONT)
        assert final["status"] == "succeeded" and final["attempts"] == 2, final
        assert_never_backwards(statuses)
        # The thawed worker's read ends, its attempt fails to finish (409 to the broker,
        # whose retry finds the job done): once the broker is idle, only the winner's
        # thumbnail is in the store.
        client = redis.Redis.from_url(urls["redis"])
        poll(lambda: broker_idle(client), timeout=60)
        folder = objects / "thumbnails" / "thumbnails" / job_id
        assert sorted(p.name for p in folder.iterdir()) == ["2.png"]
        doc = requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).json()
        assert doc["status"] == "succeeded"
        scraped = requests.get(f"{urls['resize']}/metrics", timeout=10).text
        assert metric(scraped, "thumbnails_jobs_finished_total", status="succeeded") == 1


def test_a_job_deleted_while_its_worker_runs_gets_no_thumbnail(tmp_path: Path) -> None:
    """DELETE /jobs/{id} over HTTP while a resize worker process is stalled on the job: 204
    at once; once the worker goes on and the broker is done with the event, the job is 404
    and no thumbnail of it is in the store."""
    config = Config(lease_seconds=1.0, requeue_after_seconds=1.0, sweep_interval_seconds=0.5,
                    dependency_timeout_seconds=1.0)
    with started_stack(config, tmp_path) as stack:
        urls, objects = stack.urls, tmp_path / "objects"
        dispatcher = stack.processes["dispatcher"].pid
        signal_group(dispatcher, signal.SIGSTOP)
        job_id = submit(urls, PNG).json()["job_id"]
        stall = Stall(objects, job_id)
        signal_group(dispatcher, signal.SIGCONT)
        poll(lambda: job_debug(urls, job_id)["status"] == "processing" or None, timeout=20)
        workers = child_pids(stack.processes["resize"].pid)
        poll(lambda: any(reads(pid, stall.path) for pid in workers) or None, timeout=10)
        answer = requests.delete(f"{urls['status']}/jobs/{job_id}", timeout=10)
        assert answer.status_code == 204, answer.text
        stall.release()  # the worker goes on: it still holds the (now unlinked) pipe
        client = redis.Redis.from_url(urls["redis"])
        poll(lambda: broker_idle(client), timeout=60)  # its delivery, retries included, ended
        folder = objects / "thumbnails" / "thumbnails" / job_id
        assert not folder.exists() or list(folder.iterdir()) == []
        assert requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).status_code == 404
        assert requests.delete(f"{urls['status']}/jobs/{job_id}", timeout=10).status_code == 404
        scraped = requests.get(f"{urls['resize']}/metrics", timeout=10).text
        assert metric(scraped, "thumbnails_jobs_finished_total", status="succeeded") == 0


def reads(pid: int, path: Path) -> bool:
    """True if the process has the file open (from /proc)."""
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def broker_idle(client: redis.Redis) -> bool | None:
    """True once every Trigger's consumer group has read and finished every event."""
    from thumbnails.local.broker import STREAM_KEY

    groups = client.xinfo_groups(STREAM_KEY)
    return all(g["pending"] == 0 and g["lag"] == 0 for g in groups) or None


# -- one worker's view (resize's app on a real Valkey) ----------------------------------------

@pytest.fixture
def config(config: Config) -> Config:
    """conftest's, with a lease longer than any test here."""
    return replace(config, lease_seconds=60)


def test_an_attempt_whose_finish_is_refused_deletes_its_thumbnail(
        config: Config, redis_client: redis.Redis, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Worker 1 is stalled on the original; meanwhile its lease is taken over (as if it had
    expired) and worker 2's result recorded. Worker 1 then writes its thumbnail, its finish is
    refused, it deletes what it wrote, answers 409, and neither logs nor counts a success."""
    answer = upload.create_app(config).test_client().post(
        "/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    job_id = answer.json["job_id"]
    stall = Stall(tmp_path, job_id)
    app = resize.create_app(config)
    headers, body = uploaded_event(job_id)
    replies: list[Any] = []
    worker = threading.Thread(
        target=lambda: replies.append(app.test_client().post("/", data=body, headers=headers)))
    succeeded_before = JOBS_FINISHED.labels("succeeded", "")._value.get()
    with caplog.at_level(logging.INFO, logger="thumbnails.resize.worker"):
        worker.start()
        jobs = JobStore(redis_client)
        poll(lambda: (j := jobs.get(job_id)) is not None and j.status is JobStatus.PROCESSING
             or None)
        redis_client.hset(job_key(job_id), "lease_until", "0")  # as if the lease ran out
        outcome, claimed = jobs.claim(job_id, "worker-2", 60, 5)
        assert outcome is ClaimOutcome.CLAIMED and claimed is not None and claimed.attempts == 2
        winner = thumbnail_key(job_id, 2, "png")
        FilesystemStore(tmp_path, "thumbnails").put(winner, b"the winner's", "image/png")
        assert jobs.finish(job_id, "worker-2", JobStatus.SUCCEEDED, thumbnail_key=winner)
        stall.release()
        worker.join(timeout=30)
    assert replies and replies[0].status_code == 409, replies
    folder = tmp_path / "thumbnails" / "thumbnails" / job_id
    assert sorted(p.name for p in folder.iterdir()) == ["2.png"]
    assert JOBS_FINISHED.labels("succeeded", "")._value.get() == succeeded_before
    assert not [r for r in caplog.records if "succeeded" in r.getMessage()]
    job = jobs.get(job_id)
    assert job is not None and job.thumbnail_key == winner


def test_a_job_deleted_while_resize_works_gets_no_thumbnail(config: Config,
                                                            redis_client: redis.Redis,
                                                            tmp_path: Path) -> None:
    """DELETE /jobs/{id} while resize is stalled on the original: the delete answers 204 at
    once; resize's finish is then refused and no thumbnail appears afterwards."""
    from thumbnails import status

    answer = upload.create_app(config).test_client().post(
        "/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    job_id = answer.json["job_id"]
    stall = Stall(tmp_path, job_id)
    app = resize.create_app(config)
    headers, body = uploaded_event(job_id, bucket="thumbnails", key=original_key(job_id))
    replies: list[Any] = []
    worker = threading.Thread(
        target=lambda: replies.append(app.test_client().post("/", data=body, headers=headers)))
    worker.start()
    jobs = JobStore(redis_client)
    poll(lambda: (j := jobs.get(job_id)) is not None and j.status is JobStatus.PROCESSING
         or None)
    client = status.create_app(config).test_client()
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    stall.release()  # the delete unlinked the pipe; the worker still holds it open
    worker.join(timeout=30)
    assert replies and replies[0].status_code == 409, replies
    assert not (tmp_path / "thumbnails" / "thumbnails" / job_id).exists() or not any(
        (tmp_path / "thumbnails" / "thumbnails" / job_id).iterdir())
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.delete(f"/jobs/{job_id}").status_code == 404
    # A redelivery of its event cannot bring it back.
    assert app.test_client().post("/", data=body, headers=headers).status_code == 400
    assert jobs.get(job_id) is None


# -- the lease scripts ------------------------------------------------------------------------

def test_renew_extends_only_the_holders_lease(redis_client: redis.Redis) -> None:
    jobs = JobStore(redis_client)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
    jobs.create(job, b"{}", check_at=time.time() + 60)
    jobs.claim(job.job_id, "holder", 1, 5)
    assert jobs.renew(job.job_id, "holder", 30, deadline=900)
    until = float(redis_client.hget(job_key(job.job_id), "lease_until") or 0)
    assert until > time.time() + 25
    assert redis_client.zscore("thumbnails:jobs:watch", job.job_id) == pytest.approx(until)
    assert not jobs.renew(job.job_id, "someone-else", 30, deadline=900)
    assert jobs.claim(job.job_id, "someone-else", 30, 5)[0] is ClaimOutcome.BUSY
    assert jobs.finish(job.job_id, "holder", JobStatus.SUCCEEDED)
    assert not jobs.renew(job.job_id, "holder", 30, deadline=900)  # finished: nothing to hold


def test_a_lease_is_not_renewed_past_the_job_deadline(redis_client: redis.Redis) -> None:
    jobs = JobStore(redis_client)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time() - 1000)
    jobs.create(job, b"{}", check_at=time.time() + 60)
    jobs.claim(job.job_id, "hung", 1, 5)
    assert not jobs.renew(job.job_id, "hung", 30, deadline=900)  # the sweep may time it out
    assert jobs.renew(job.job_id, "hung", 30, deadline=2000)


def test_the_heartbeat_keeps_a_lease_and_notices_when_it_is_lost(
        redis_client: redis.Redis) -> None:
    from thumbnails.resize.heartbeat import Heartbeat

    jobs = JobStore(redis_client)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
    jobs.create(job, b"{}", check_at=time.time() + 60)
    jobs.claim(job.job_id, "holder", 0.3, 5)
    with Heartbeat(jobs, job.job_id, "holder", 0.3, 900) as heartbeat:
        # Three lease lengths: without renewals another claim would succeed by now.
        until = time.monotonic() + 0.9
        while time.monotonic() < until:
            assert jobs.claim(job.job_id, "intruder", 0.3, 5)[0] is ClaimOutcome.BUSY
            time.sleep(0.05)
        assert not heartbeat.lost
        redis_client.hset(job_key(job.job_id), "lease_token", "taken-over")
        poll(lambda: heartbeat.lost or None, timeout=5)


def test_the_heartbeat_survives_redis_being_down() -> None:
    from thumbnails.resize.heartbeat import Heartbeat, _renewer

    down = JobStore(redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2))
    with Heartbeat(down, str(uuid.uuid4()), "holder", 0.15, 900) as heartbeat:
        time.sleep(0.5)  # a few failed renewals (the duration under test, not a wait)
        # still renewed after the failures, by a renewer that lives on
        assert _renewer().running and _renewer().renewing(heartbeat) and not heartbeat.lost
    assert not _renewer().renewing(heartbeat)
    assert _renewer().running  # for the process's next job
