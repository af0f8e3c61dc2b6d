"""The long poll and the event stream in one process: which requests wait on their own
threads, what a request on a usual thread gets, the chart's sizing for waiting slots."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.integration.test_knative_rules import containers, functions, pod_spec
from tests.support import k8s
from thumbnails import status
from thumbnails.core import probeworker
from thumbnails.core.config import Config
from thumbnails.core.jobs import EVENTS_KEY, Job, JobStatus, JobStore


@pytest.mark.parametrize(("head", "waiting"), [
    (b"GET /jobs/6b0e8f0c-1111-4222-8333-944445555666?wait=30 HTTP/1.1\r\n", True),
    (b"GET /jobs/6b0e8f0c-1111-4222-8333-944445555666?x=1&wait=5 HTTP/1.1\r\n", True),
    (b"GET /events HTTP/1.1\r\n", True),
    (b"GET /events?job_id=6b0e8f0c-1111-4222-8333-944445555666 HTTP/1.1\r\n", True),
    (b"GET /jobs/6b0e8f0c-1111-4222-8333-944445555666 HTTP/1.1\r\n", False),
    (b"GET /jobs/6b0e8f0c-1111-4222-8333-944445555666?nowait=1 HTTP/1.1\r\n", False),
    (b"GET /jobs/6b0e8f0c/thumbnail?wait=3 HTTP/1.1\r\n", False),
    (b"GET /jobs?wait=3 HTTP/1.1\r\n", False),
    (b"POST /events HTTP/1.1\r\n", False),
    (b"GET /eventsx HTTP/1.1\r\n", False),
    (b"GET /health HTTP/1.1\r\n", False),
])
def test_which_requests_take_a_waiting_thread(head: bytes, waiting: bool) -> None:
    assert probeworker.is_waiting(head[:probeworker.WAIT_HEAD_BYTES]) is waiting
    assert len(b"GET /jobs/6b0e8f0c-1111-4222-8333-944445555666?wait=60") \
        < probeworker.WAIT_HEAD_BYTES


def test_on_a_usual_thread_a_long_poll_answers_at_once(redis_client: redis.Redis,
                                                       redis_url: str, tmp_path: Path) -> None:
    """Every waiting slot taken (the request is on a usual thread): the job as it is now,
    not a thread held for `wait` seconds."""
    store = JobStore(redis_client)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
    store.create(job, b"", check_at=time.time() + 3600)
    client = status.create_app(Config(redis_url=redis_url, data_dir=tmp_path)).test_client()
    assert threading.current_thread().name.startswith(probeworker.WAIT_THREAD_PREFIX) is False
    started = time.monotonic()
    answer = client.get(f"/jobs/{job.job_id}?wait=30")
    assert answer.status_code == 200 and answer.get_json()["status"] == "queued"
    assert time.monotonic() - started < 5
    stream = client.get("/events")  # a stream on a usual thread: what is there, then the end
    assert stream.status_code == 200 and stream.data.startswith(b"retry: ")


def test_every_state_change_is_in_the_stream(redis_client: redis.Redis) -> None:
    """create, claim, finish: one entry each, in order, from the scripts themselves."""
    store = JobStore(redis_client)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
    store.create(job, b"", check_at=time.time() + 3600)
    store.claim(job.job_id, "t", 60, 3)
    store.finish(job.job_id, "t", JobStatus.SUCCEEDED, finished_at=time.time())
    assert not store.finish(job.job_id, "t", JobStatus.FAILED)  # no change: no entry
    entries = [(f[b"job_id"].decode(), f[b"status"].decode())
               for _, f in redis_client.xrange(EVENTS_KEY)]
    assert entries == [(job.job_id, s) for s in ("queued", "processing", "succeeded")]


@pytest.mark.parametrize("source", list(k8s.SET_VALUES))
def test_status_concurrency_counts_its_waiting_slots(source: str) -> None:
    """The queue-proxy counts a waiting request as in flight: status admits its threads
    plus probeworker.WAIT_THREADS per worker."""
    status_svc = functions(k8s.object_set(source))["status"]
    (container,) = containers(status_svc)
    args = [str(a) for a in container["args"]]
    opts = dict(zip(args[2::2], args[3::2], strict=False))
    expected = int(opts["--workers"]) * (int(opts["--threads"]) + probeworker.WAIT_THREADS)
    assert pod_spec(status_svc)["containerConcurrency"] == expected
    template = status_svc["spec"]["template"]["spec"]
    assert template["timeoutSeconds"] > 240  # a stream's EVENTS_STREAM_SECONDS default
    assert template["responseStartTimeoutSeconds"] > 60  # the longest long poll


def test_stream_text_keepalive_filter_and_ids(redis_client: redis.Redis,
                                              redis_url: str) -> None:
    """ChangeHub.stream as text: where it starts, what the filter leaves out, the
    keep-alive comment after a quiet spell, and the id it ends at."""
    from thumbnails.core.changes import ChangeHub, hub_client

    store = JobStore(redis_client)
    wanted, other = (Job(job_id=str(uuid.uuid4()), created_at=time.time()) for _ in range(2))
    store.create(other, b"", check_at=time.time() + 3600)
    start = redis_client.xrevrange(EVENTS_KEY, count=1)[0][0].decode()
    store.create(wanted, b"", check_at=time.time() + 3600)
    store.claim(other.job_id, "t", 60, 3)
    end = redis_client.xrevrange(EVENTS_KEY, count=1)[0][0].decode()
    hub = ChangeHub(hub_client(redis_url, 2))
    text = "".join(hub.stream(start, frozenset({wanted.job_id}), seconds=0.6, keepalive=0.2))
    blocks = text.split("\n\n")
    assert blocks[0] == f"retry: 1000\nid: {start}"
    assert blocks[1].startswith("id: ") and "event: job" in blocks[1]
    assert f'"job_id": "{wanted.job_id}", "status": "queued"' in blocks[1]
    assert other.job_id not in text
    assert ": keep-alive" in blocks[2:]
    assert blocks[-2] == f"id: {end}" and blocks[-1] == ""


def test_resuming_after_trimmed_changes_sends_reset(redis_client: redis.Redis,
                                                    redis_url: str) -> None:
    """A Last-Event-ID older than what the stream still keeps: a `reset` event first (the
    client reads the jobs again); an id it keeps: none."""
    from thumbnails.core.changes import ChangeHub, hub_client

    store = JobStore(redis_client)
    for _ in range(3):
        store.create(Job(job_id=str(uuid.uuid4()), created_at=time.time()), b"",
                     check_at=time.time() + 3600)
    oldest, _, newest = (e[0].decode() for e in redis_client.xrange(EVENTS_KEY)[-3:])
    hub = ChangeHub(hub_client(redis_url, 2))
    fresh = "".join(hub.stream(oldest, frozenset(), seconds=0))
    assert "event: reset" not in fresh and fresh.count("event: job") == 2
    redis_client.xtrim(EVENTS_KEY, maxlen=1, approximate=False)
    resumed = "".join(hub.stream(oldest, frozenset(), seconds=0)).split("\n\n")
    assert resumed[1].startswith("event: reset\ndata: ")
    assert sum(block.startswith("id: ") and "event: job" in block for block in resumed) == 1
    assert "event: reset" not in "".join(hub.stream(newest, frozenset(), seconds=0))
