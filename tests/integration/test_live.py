"""No polling needed, over the real local stack: the long poll (GET /jobs/{id}?wait=S) and
the event stream (GET /events), fed by the scripts that change a job's status."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from PIL import Image

from tests.support.images import encode
from tests.support.stackutil import poll, running_stack, scraped, started_stack, submit
from thumbnails.client import Client
from thumbnails.core.config import Config
from thumbnails.core.jobs import Job, JobStatus, JobStore


@pytest.fixture
def store(urls: dict[str, str]) -> Iterator[JobStore]:
    client = redis.Redis.from_url(urls["redis"])
    yield JobStore(client)
    client.close()


def quiet_job(store: JobStore) -> str:
    """A queued job no event announces: nothing but the test changes it."""
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
    store.create(job, b"", check_at=time.time() + 3600)
    return job.job_id


def image_bytes() -> bytes:
    return encode(Image.new("RGB", (64, 48), (10, 200, 30)), "PNG")


def test_long_poll_answers_when_the_job_ends(urls: dict[str, str]) -> None:
    job_id = submit(urls, image_bytes()).json()["job_id"]
    started = time.monotonic()
    response = requests.get(f"{urls['status']}/jobs/{job_id}", params={"wait": 30}, timeout=40)
    took = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert took < 15, f"the long poll took {took:.1f}s for a job that ends in well under that"
    # Same body as without wait.
    plain = requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).json()
    assert response.json() == plain


def test_long_poll_wakes_on_the_change(urls: dict[str, str], store: JobStore) -> None:
    job_id = quiet_job(store)
    answer: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        got = requests.get(f"{urls['status']}/jobs/{job_id}", params={"wait": 20}, timeout=30)
        answer.update(doc=got.json(), took=time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    until_waiting(urls, "long_poll", 1)  # the change comes while it waits
    store.claim(job_id, "token", 60, 3)
    assert store.finish(job_id, "token", JobStatus.FAILED, error_code="x", error_message="y",
                        finished_at=time.time())
    waiter.join(30)
    assert answer["doc"]["status"] == "failed"
    assert answer["took"] < 10, answer["took"]


def test_long_poll_answers_after_wait_with_the_current_state(urls: dict[str, str],
                                                              store: JobStore) -> None:
    job_id = quiet_job(store)
    started = time.monotonic()
    response = requests.get(f"{urls['status']}/jobs/{job_id}?wait=1.5", timeout=20)
    took = time.monotonic() - started
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert 1.4 <= took < 10, took


@pytest.mark.parametrize("value", ["0", "-1", "61", "abc", "nan", "inf", ""])
def test_bad_wait_is_400(urls: dict[str, str], store: JobStore, value: str) -> None:
    response = requests.get(f"{urls['status']}/jobs/{quiet_job(store)}",
                            params={"wait": value}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_long_poll_of_an_unknown_job_is_404(urls: dict[str, str]) -> None:
    response = requests.get(f"{urls['status']}/jobs/{uuid.uuid4()}?wait=5", timeout=10)
    assert response.status_code == 404


def test_hundred_waiting_clients_do_not_starve_other_requests(urls: dict[str, str],
                                                              store: JobStore) -> None:
    job_ids = [quiet_job(store) for _ in range(100)]
    status = urls["status"]
    with ThreadPoolExecutor(max_workers=100) as pool:
        waits = [pool.submit(requests.get, f"{status}/jobs/{job_id}?wait=20", timeout=40)
                 for job_id in job_ids]
        until_waiting(urls, "long_poll", 100)
        assert not any(w.done() for w in waits), "a long poll answered before its job changed"
        for path in ("/health", "/jobs?limit=5", f"/jobs/{job_ids[0]}"):
            started = time.monotonic()
            response = requests.get(status + path, timeout=10)
            took = time.monotonic() - started
            assert response.status_code == 200, (path, response.text)
            assert took < 2.0, f"{path} took {took:.2f}s with 100 long polls waiting"
        for job_id in job_ids:
            store.claim(job_id, "t", 60, 3)
            store.finish(job_id, "t", JobStatus.SUCCEEDED, finished_at=time.time())
        docs = [w.result(timeout=30).json() for w in waits]
    assert [d["status"] for d in docs] == ["succeeded"] * 100


class EventReader:
    """Reads a text/event-stream response on a thread into (id, event, data) tuples."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.comments = 0
        self.started = threading.Event()  # the first block (retry:, id:) came: the server
        #                                   reads changes from here on
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "":
                    self.started.set()
                    if "data" in fields:
                        self.events.append((fields.get("id", ""), fields.get("event", ""),
                                            json.loads(fields["data"])))
                    fields = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        except (requests.RequestException, ValueError, AttributeError):
            pass  # closed by the test (http.client drops its file while a read waits)

    def wait_started(self) -> None:
        assert self.started.wait(30), "no first block from GET /events"

    def of(self, job_id: str) -> list[str]:
        return [data["status"] for _, _, data in self.events if data["job_id"] == job_id]

    def close(self) -> None:
        self.response.close()


def open_events(urls: dict[str, str], **kwargs: Any) -> EventReader:
    response = requests.get(f"{urls['status']}/events", stream=True, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return EventReader(response)


def drive(store: JobStore, job_id: str, end: JobStatus = JobStatus.SUCCEEDED) -> None:
    assert store.claim(job_id, "tok", 60, 3)[0].value == "claimed"
    assert store.finish(job_id, "tok", end, finished_at=time.time())


def test_stream_sends_every_state_change_of_a_real_job(urls: dict[str, str]) -> None:
    reader = open_events(urls)
    try:
        reader.wait_started()  # the stream starts at "now": before the job
        job_id = submit(urls, image_bytes()).json()["job_id"]
        poll(lambda: True if "succeeded" in reader.of(job_id) else None, timeout=30)
        assert reader.of(job_id) == ["queued", "processing", "succeeded"]
    finally:
        reader.close()


def test_stream_filter_and_resumption(urls: dict[str, str], store: JobStore) -> None:
    wanted, other = quiet_job(store), quiet_job(store)
    reader = open_events(urls, params={"job_id": wanted})
    try:
        reader.wait_started()
        drive(store, other)
        drive(store, wanted, JobStatus.FAILED)
        poll(lambda: True if "failed" in reader.of(wanted) else None, timeout=15)
        assert reader.of(wanted) == ["processing", "failed"]
        assert reader.of(other) == []
        first_id = reader.events[0][0]
    finally:
        reader.close()
    # Changes while no one listened come on resumption, after the event named, in order.
    later = [quiet_job(store) for _ in range(3)]
    for job_id in later:
        drive(store, job_id)
    resumed = open_events(urls, headers={"Last-Event-ID": first_id},
                          params={"job_id": [wanted, *later]})
    try:
        poll(lambda: True if all("succeeded" in resumed.of(j) for j in later) else None,
             timeout=15)
        got = [(data["job_id"], data["status"]) for _, _, data in resumed.events]
        expected = [(wanted, "failed"), *((j, "queued") for j in later),
                    *((j, s) for j in later for s in ("processing", "succeeded"))]
        assert got == expected
        ids = [event_id for event_id, _, _ in resumed.events]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))), ids
        assert all(kind == "job" for _, kind, _ in resumed.events)
    finally:
        resumed.close()


@pytest.mark.parametrize("query", ["job_id=nope", "job_id=" + "a" * 40])
def test_stream_refuses_bad_filters(urls: dict[str, str], query: str) -> None:
    response = requests.get(f"{urls['status']}/events?{query}", timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


def test_stream_refuses_a_bad_last_event_id(urls: dict[str, str]) -> None:
    response = requests.get(f"{urls['status']}/events", headers={"Last-Event-ID": "x"},
                            timeout=10)
    assert response.status_code == 400


def test_stream_needs_a_key_when_keys_are_on(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"secret-key").hexdigest()
    with running_stack(Config(api_key_hashes=digest), tmp_path, workers=1) as stack:
        refused = requests.get(f"{stack['status']}/events", timeout=10)
        assert refused.status_code == 401
        allowed = requests.get(f"{stack['status']}/events", stream=True, timeout=10,
                               headers={"X-API-Key": "secret-key"})
        assert allowed.status_code == 200
        allowed.close()


def metric(urls: dict[str, str], name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels in status's GET /metrics."""
    return scraped(urls["status"], name, **labels)


def until_waiting(urls: dict[str, str], kind: str, count: int) -> None:
    """Poll status's gauge until `count` requests of `kind` wait there."""
    poll(lambda: True if metric(urls, "thumbnails_waiting_requests", kind=kind) == count
         else None, timeout=30)


def job_gets(urls: dict[str, str]) -> float:
    """GET /jobs/<job_id> answers status has counted (its Prometheus counter)."""
    return metric(urls, "thumbnails_http_requests_total", route="/jobs/<job_id>", method="GET")


def test_cli_wait_and_watch_do_not_poll(urls: dict[str, str], store: JobStore,
                                        tmp_path: Path) -> None:
    """A job that takes 3 s: polling at the old 100 ms-1 s would GET it several times."""
    job_id = quiet_job(store)
    environ = {"THUMBNAILS_UPLOAD_URL": urls["upload"], "THUMBNAILS_STATUS_URL": urls["status"],
               "PATH": "/usr/bin:/bin"}
    before = job_gets(urls)
    thumbnails = Path(sys.executable).with_name("thumbnails")
    watch = subprocess.Popen([str(thumbnails), "watch", job_id],
                             env=environ, stdout=subprocess.PIPE, text=True)
    time.sleep(3.0)  # the job stays queued this long: a poller would ask again and again
    drive(store, job_id)
    out, _ = watch.communicate(timeout=30)
    assert watch.returncode == 0
    assert [line.split()[1] for line in out.splitlines()] == ["queued", "processing",
                                                              "succeeded"]
    # One GET to show it, one for the finished job's document.
    assert job_gets(urls) - before == 2

    job_id = quiet_job(store)
    before = job_gets(urls)
    timer = threading.Timer(3.0, drive, (store, job_id))
    timer.start()
    docs = Client(urls["upload"], urls["status"]).wait([job_id], timeout=30)
    timer.join()
    assert docs[job_id]["status"] == "succeeded"
    assert job_gets(urls) - before == 1  # one long poll


def test_waiting_requests_end_at_once_when_status_stops(tmp_path: Path) -> None:
    """SIGTERM to status: open streams end and long polls answer at once, instead of
    holding the workers for gunicorn's 20 s graceful timeout."""
    with started_stack(Config(), tmp_path, workers=1) as stack:
        urls = stack.urls
        client = redis.Redis.from_url(urls["redis"])
        job_id = quiet_job(JobStore(client))
        reader = open_events(urls)
        reader.wait_started()
        with ThreadPoolExecutor(max_workers=1) as pool:
            held = pool.submit(requests.get, f"{urls['status']}/jobs/{job_id}?wait=60",
                               timeout=90)
            until_waiting(urls, "long_poll", 1)
            started = time.monotonic()
            stack.processes["status"].send_signal(signal.SIGTERM)
            answer = held.result(timeout=30)
            assert answer.status_code == 200 and answer.json()["status"] == "queued"
            reader.thread.join(30)
            assert not reader.thread.is_alive(), "the stream did not end"
            took = time.monotonic() - started
            assert took < 10, f"waiting requests took {took:.1f}s to end"
        client.close()
