"""Fault injection on the real local stack (every part a real process): Redis killed and
restarted, storage outages, a resize worker killed mid-job, duplicate and lost events, the
dead-letter path, and a load run. Each test counts what it submitted, what was accepted
(202) and how every accepted job ended; the figures are printed at the end of each test."""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml
from PIL import Image, ImageCms

from tests.support.images import encode, marked
from tests.support.pingsource import ping_request
from tests.support.servers import free_port
from tests.support.stackutil import (
    all_jobs,
    child_pids,
    job_debug,
    poll,
    scraped,
    signal_group,
    started_stack,
    submit,
    wait_terminal,
)
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import OUTBOX_KEY, idempotency_key
from thumbnails.local import devstack
from thumbnails.local.broker import STREAM_KEY
from thumbnails.local.broker.settings import BrokerSettings
from thumbnails.local.localredis import start_valkey

pytestmark = pytest.mark.faults

# Small settings so that every repair happens within seconds.
FAST: dict[str, Any] = {"lease_seconds": 2.0, "sweep_interval_seconds": 0.5,
                        "dependency_timeout_seconds": 1.0}
SMALL = encode(marked((64, 48)), "PNG")  # about a millisecond of work
TERMINAL = ("succeeded", "failed")
# How long Redis stays down (longer runs by hand: the broker retries for 31.5 s in all).
OUTAGE_SECONDS = float(os.environ.get("FAULT_REDIS_OUTAGE_SECONDS", "3"))
# How long storage stays down past the broker's retries (0: until two dead letters a job).
STORAGE_OUTAGE_SECONDS = float(os.environ.get("FAULT_STORAGE_OUTAGE_SECONDS", "0"))
KNATIVE = Path(__file__).resolve().parents[2] / "knative"
TRIGGER = "trigger-resize-on-image-uploaded.yaml"


@functools.cache
def slow_image(side: int = 7000) -> bytes:
    """A side x side RGBA PNG with an ICC profile: at 7000, over a second of resize work
    (colour transform of 49 Mpx) with SLOW_OPTIONS, yet under a megabyte to upload."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image.linear_gradient("L").resize((side, side)).convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1, icc_profile=profile)
    return buffer.getvalue()


SLOW_OPTIONS = {"width": "1024", "height": "1024", "format": "webp", "fit": "cover"}


# -- figures for the closing note -------------------------------------------------------------

@dataclass
class Figures:
    """What one fault test did: requests made, jobs accepted, and how those jobs ended."""

    fault: str = ""
    submitted: int = 0
    accepted: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0  # accepted, then missing or not terminal by the deadline
    notes: dict[str, Any] = field(default_factory=dict)

    def outcome(self, statuses: dict[str, str]) -> None:
        """Count the final statuses of the accepted jobs ('missing' = no record at all)."""
        self.accepted = len(statuses)
        values = list(statuses.values())
        self.succeeded = values.count("succeeded")
        self.failed = values.count("failed")
        self.lost = len(values) - self.succeeded - self.failed


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    recorded = Figures(fault=request.node.name)
    started = time.monotonic()
    yield recorded
    seconds = time.monotonic() - started
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (f"FIGURES {recorded.fault}: submitted={recorded.submitted} "
            f"accepted={recorded.accepted} terminal={recorded.succeeded + recorded.failed} "
            f"(succeeded={recorded.succeeded} failed={recorded.failed}) lost={recorded.lost} "
            f"time={seconds:.1f}s {recorded.notes}")
    if reporter is not None:
        reporter.write_line(line)
    if path := os.environ.get("FAULT_FIGURES"):  # collect them across a run
        with open(path, "a") as out:
            out.write(line + "\n")


# -- helpers ----------------------------------------------------------------------------------

def settle(urls: dict[str, str], job_ids: list[str], timeout: float) -> dict[str, str]:
    """Wait until every job is terminal or the deadline passes; each job's last status
    ('missing' if GET /jobs does not list it). Never raises on the deadline: the caller's
    assertions show what was left."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            listed = all_jobs(urls, limit=1000)
        except requests.RequestException:
            listed = {}
        statuses = {job_id: listed.get(job_id, "missing") for job_id in job_ids}
        if all(s in TERMINAL for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def accept(response: requests.Response) -> str:
    """The job id of a 202 answer (anything else fails the test with the body)."""
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def uploaded_event_of(urls: dict[str, str], job_id: str) -> events.CloudEvent:
    """The job's image.uploaded event as upload sent it (same id and source)."""
    debug = job_debug(urls, job_id)
    return events.new_event(events.IMAGE_UPLOADED, debug["event_source"], {
        "job_id": job_id, "bucket": "thumbnails", "key": f"originals/{job_id}"},
        event_id=debug["event_id"], subject=job_id)


def post_event(url: str, event: events.CloudEvent, timeout: float = 30) -> requests.Response:
    headers, body = events.to_http(event)
    return requests.post(url, data=body, headers=headers, timeout=timeout)


def thumbnails_dir(data_dir: Path) -> Path:
    """Where the filesystem store keeps thumbnails in a stack started on data_dir."""
    return data_dir / "objects" / "thumbnails" / "thumbnails"


def block_thumbnails(data_dir: Path) -> Path:
    """A file where the thumbnails folder belongs: every thumbnail write fails, even as
    root, while originals are still stored. Returns the blocker (unlink it to repair)."""
    blocker = thumbnails_dir(data_dir)
    assert not blocker.exists(), "block the store before the first thumbnail is written"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"")
    return blocker


def broker_idle(client: redis.Redis) -> bool | None:
    """True once every Trigger's consumer group has read and finished every event."""
    groups = client.xinfo_groups(STREAM_KEY)
    return all(g["pending"] == 0 and g["lag"] == 0 for g in groups) or None


def stream_entries_of(client: redis.Redis, job_id: str) -> list[bytes]:
    """Ids of the broker's stored events that carry this job id."""
    return [entry_id for entry_id, fields in client.xrange(STREAM_KEY)
            if job_id.encode() in fields.get(b"event", b"")]


def dead_letters_answered(resize_url: str) -> float:
    """How many dead letters resize has answered 204 (its /metrics, all workers)."""
    return scraped(resize_url, "thumbnails_http_requests_total", route="/dead-letter",
                   status="204")


def redis_port(stack: devstack.Stack) -> int:
    found = re.fullmatch(r"redis://127\.0\.0\.1:(\d+)/0", stack.urls["redis"])
    assert found, stack.urls["redis"]
    return int(found.group(1))


def knative_dir_with(tmp_path: Path, **delivery: Any) -> Path:
    """A copy of knative/ whose resize Trigger has these delivery settings."""
    target = tmp_path / "knative"
    shutil.copytree(KNATIVE, target)
    manifest = target / TRIGGER
    trigger = yaml.safe_load(manifest.read_text())
    assert trigger["kind"] == "Trigger"
    trigger["spec"]["delivery"].update(delivery)
    manifest.write_text(yaml.safe_dump(trigger))
    return target


def two_workers(arbiter: int, not_: int = 0) -> list[int] | None:
    """The arbiter's two workers once it has two (none of them `not_`), else None."""
    workers = child_pids(arbiter)
    return workers if len(workers) == 2 and not_ not in workers else None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_holding_the_image(workers: list[int]) -> int | None:
    """The one worker whose memory is 60 MB above the other's, if there is one."""
    sizes = {pid: rss_mb(pid) for pid in workers}
    big, small = sorted(workers, key=lambda pid: -sizes[pid])
    return big if sizes[big] - sizes[small] > 60 else None


# -- 1. Redis killed mid-load and restarted ---------------------------------------------------

@dataclass
class Answer:
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all
    body: Any
    retry_after: str | None


def test_redis_killed_mid_load_loses_no_accepted_job(tmp_path: Path, figures: Figures) -> None:
    config = Config(**FAST, requeue_after_seconds=5.0)
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        client = redis.Redis.from_url(urls["redis"], socket_timeout=2)
        client.set("fault:sentinel", "written before the kill")
        answers: list[Answer] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = submit(urls, SMALL)
                except requests.RequestException as exc:
                    answers.append(Answer(started, time.monotonic(), 0, repr(exc), None))
                    continue
                try:
                    body = response.json()
                except ValueError:
                    body = response.text
                answers.append(Answer(started, time.monotonic(), response.status_code, body,
                                      response.headers.get("Retry-After")))

        def count(status: int, after: float = 0.0, before: float = float("inf")) -> int:
            return sum(1 for a in list(answers)
                       if a.status == status and a.started >= after and a.ended <= before)

        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            poll(lambda: count(202) >= 40 or None, timeout=30)
            time.sleep(1.2)  # past one AOF fsync: the sentinel is on disk whatever happens
            unfinished = [s for s in all_jobs(urls, limit=1000).values() if s not in TERMINAL]
            killed_at = time.monotonic()
            stack.processes["redis"].send_signal(signal.SIGKILL)  # mid-load
            stack.processes["redis"].wait(timeout=10)
            poll(lambda: count(503, after=killed_at) >= 6 or None, timeout=20)
            time.sleep(max(0.0, killed_at + OUTAGE_SECONDS - time.monotonic()))  # stay down
            restart_at = time.monotonic()
            # The same port and the same data directory (its AOF), as devstack started it.
            stack.processes["redis"] = start_valkey(redis_port(stack), tmp_path / "valkey")
            restarted_at = time.monotonic()
            poll(lambda: count(202, after=restarted_at) >= 40 or None, timeout=30)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=40)
        down_seconds = restarted_at - killed_at
        assert client.get("fault:sentinel") == b"written before the kill"  # same data dir

        figures.submitted = len(answers)
        statuses = {a.status for a in answers}
        assert statuses <= {202, 503}, [(a.status, a.body) for a in answers
                                        if a.status not in (202, 503)][:5]
        while_down = [a for a in answers if a.started >= killed_at and a.ended <= restart_at]
        assert while_down and {a.status for a in while_down} == {503}
        for answer in (a for a in answers if a.status == 503):
            assert answer.body["error"] == "redis_unavailable" and answer.body["message"]
            assert answer.retry_after is not None and int(answer.retry_after) > 0
        after = [a for a in answers if a.started >= restarted_at]
        assert after and {a.status for a in after} == {202}

        accepted = [a.body["job_id"] for a in answers if a.status == 202]
        assert len(set(accepted)) == len(accepted)
        final = settle(urls, accepted, timeout=45)
        figures.notes["restart_to_all_done_s"] = round(time.monotonic() - restarted_at, 1)
        figures.outcome(final)
        listed = all_jobs(urls, limit=1000)
        phantoms = sorted(set(listed) - set(accepted))  # recorded although the client got 503
        figures.notes.update(rejected_503=count(503), down_seconds=round(down_seconds, 1),
                             phantom_jobs=len(phantoms),
                             accepted_before_kill=count(202, before=killed_at),
                             unfinished_at_kill=len(unfinished))
        lost = {job_id: s for job_id, s in final.items() if s != "succeeded"}
        assert not lost, f"{len(lost)} accepted job(s) did not succeed: {lost}"
        # A job recorded although its client got 503: Redis ran the create script and died
        # before answering. Such a job is whole (its original is kept; the sweep deletes an
        # original only if no record appeared), so it must finish like any other.
        phantom_final = settle(urls, phantoms, timeout=30)
        assert phantom_final == dict.fromkeys(phantoms, "succeeded"), phantom_final


def test_hung_redis_gets_503_within_the_dependency_timeout(tmp_path: Path,
                                                         figures: Figures) -> None:
    """Valkey stopped (SIGSTOP: connections open, nothing answers) rather than dead."""
    config = Config(**FAST, requeue_after_seconds=30.0)
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        first = accept(submit(urls, SMALL))
        assert wait_terminal(urls, first)["status"] == "succeeded"
        valkey = stack.processes["redis"].pid
        signal_group(valkey, signal.SIGSTOP)
        try:
            timings = []
            for call in (lambda: submit(urls, SMALL),
                         lambda: requests.get(f"{urls['status']}/jobs/{first}", timeout=30)):
                started = time.monotonic()
                answer = call()
                timings.append(round(time.monotonic() - started, 2))
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"] == "redis_unavailable"
                assert int(answer.headers["Retry-After"]) > 0
        finally:
            signal_group(valkey, signal.SIGCONT)
        later = accept(submit(urls, SMALL))
        final = settle(urls, [first, later], timeout=20)
        figures.submitted = 3
        figures.outcome(final)
        figures.notes["seconds_to_503"] = timings
        # DEPENDENCY_TIMEOUT_SECONDS=1 bounds each Redis call; allow a retry and slack.
        assert max(timings) < 3 * config.dependency_timeout_seconds, timings
        assert final == {first: "succeeded", later: "succeeded"}
        assert len(all_jobs(urls)) == 2  # the refused upload left no job behind


# -- 1b. the reply to the job's creation lost on the way back ---------------------------------

class RedisProxy:
    """A TCP proxy in front of Valkey that can hold up, or cut off, the reply to a command
    whose request bytes contain every marker (a lost or late reply; the command ran)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.markers: tuple[bytes, ...] = ()
        self.mode = ""
        self.delay = 0.0
        self.remaining = 0
        self.hits = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, *markers: bytes, mode: str, times: int = 1, delay: float = 0.0) -> None:
        """The next `times` matching commands: "reset" drops the reply and closes the
        connection; "delay" holds the reply back for `delay` seconds."""
        with self.lock:
            self.markers, self.mode, self.delay, self.remaining = markers, mode, delay, times

    def close(self) -> None:
        self.listener.close()
        for sock in list(self.sockets):
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                return
            self.sockets += [client, server]
            state: dict[str, tuple[str, float] | None] = {"pending": None}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state),
                             daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket,
            state: dict[str, tuple[str, float] | None]) -> None:
        try:
            while data := client.recv(65536):
                with self.lock:
                    if self.remaining and all(m in data for m in self.markers):
                        self.remaining -= 1
                        self.hits += 1
                        state["pending"] = (self.mode, self.delay)
                server.sendall(data)
        except OSError:
            pass
        _close(client)
        _close(server)

    def _down(self, server: socket.socket, client: socket.socket,
              state: dict[str, tuple[str, float] | None]) -> None:
        try:
            while data := server.recv(65536):
                if (rule := state["pending"]) is not None:
                    state["pending"] = None
                    if rule[0] == "reset":
                        break
                    time.sleep(rule[1])
                client.sendall(data)
        except OSError:
            pass
        _close(client)
        _close(server)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def proxied_redis(tmp_path: Path) -> Iterator[RedisProxy]:
    """A Valkey of the test's own behind a RedisProxy."""
    valkey = start_valkey(free_port(), tmp_path / "valkey-own")
    port = int(valkey.args[valkey.args.index("--port") + 1])
    proxy = RedisProxy(port)
    try:
        yield proxy
    finally:
        proxy.close()
        valkey.terminate()
        valkey.wait(timeout=10)


def test_create_reply_cut_off_then_retry_with_the_idempotency_key_succeeds(
        tmp_path: Path, proxied_redis: RedisProxy, figures: Figures) -> None:
    """The connection drops after Redis ran the job's creation (Idempotency-Key given): the
    upload cannot know it was written and answers 503; the client retries as told, with the
    same key, and is handed the job that was written. That job must succeed."""
    # The outbox sweep waits longer than the upload takes to give up (as with the defaults).
    config = Config(**{**FAST, "sweep_interval_seconds": 3.0}, requeue_after_seconds=30.0,
                    redis_url=proxied_redis.url)
    with started_stack(config, tmp_path / "stack") as stack:
        urls = stack.urls
        warm = accept(submit(urls, SMALL))  # the scripts are loaded: EVALSHA runs at once
        assert wait_terminal(urls, warm)["status"] == "succeeded"
        key = "order-4711"
        proxied_redis.arm(b"EVALSHA", idempotency_key(key).encode(), mode="reset")
        answers = []
        for _ in range(2):
            answers.append(requests.post(f"{urls['upload']}/jobs", files={"file": ("i", SMALL)},
                                         headers={"Idempotency-Key": key}, timeout=30))
            if answers[-1].status_code == 202:
                break
        assert proxied_redis.hits == 1
        figures.submitted = 1 + len(answers)
        figures.notes["answers"] = [a.status_code for a in answers]
        assert answers[0].status_code in (202, 503), answers[0].text
        job_id = accept(answers[-1])
        final = settle(urls, [warm, job_id], timeout=20)
        figures.outcome(final)
        doc = requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).json()
        figures.notes.update(replayed=answers[-1].headers.get("Idempotent-Replayed"),
                             error=doc.get("error"))
        assert doc["status"] == "succeeded", doc


def test_create_reply_too_late_leaves_no_failed_ghost_job(
        tmp_path: Path, proxied_redis: RedisProxy, figures: Figures) -> None:
    """Redis ran the job's creation but answered after DEPENDENCY_TIMEOUT_SECONDS: the client
    got 503. Whatever the record says, no job may end failed for it (its original must not
    be deleted while its record exists)."""
    config = Config(**{**FAST, "sweep_interval_seconds": 3.0}, requeue_after_seconds=30.0,
                    redis_url=proxied_redis.url)
    with started_stack(config, tmp_path / "stack") as stack:
        urls = stack.urls
        warm = accept(submit(urls, SMALL))
        assert wait_terminal(urls, warm)["status"] == "succeeded"
        proxied_redis.arm(b"EVALSHA", idempotency_key("").encode(), mode="delay",
                          delay=2 * config.dependency_timeout_seconds)
        answer = submit(urls, SMALL)
        assert proxied_redis.hits == 1
        assert answer.status_code == 503, answer.text
        time.sleep(2 * config.sweep_interval_seconds)  # a sweep sends any outbox entry left
        listed = all_jobs(urls)
        ghosts = [j for j in listed if j != warm]
        final = settle(urls, [warm, *ghosts], timeout=20)
        figures.submitted = 2
        figures.outcome(final)
        figures.notes["ghosts"] = {
            g: requests.get(f"{urls['status']}/jobs/{g}", timeout=10).json().get("error")
            for g in ghosts}
        assert all(final[g] == "succeeded" for g in ghosts), figures.notes["ghosts"]


# -- 2. storage outage while resizing ----------------------------------------------------------

def test_storage_outage_during_resize_is_retried_then_succeeds(tmp_path: Path,
                                                              figures: Figures) -> None:
    config = Config(**FAST, requeue_after_seconds=30.0)
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        blocker = block_thumbnails(tmp_path)
        job_ids = [accept(submit(urls, SMALL)) for _ in range(5)]
        figures.submitted = len(job_ids)
        # Each job was claimed (started_at set) and answered 503: the lease and the attempt
        # were given back, so the count stays 0 while the outage lasts.
        poll(lambda: all(job_debug(urls, j)["started_at"] for j in job_ids) or None,
             timeout=15)
        assert all(job_debug(urls, j)["attempts"] == 0 for j in job_ids)
        for job_id in job_ids:
            assert job_debug(urls, job_id)["status"] in ("queued", "processing")
        # What the broker sees: 503 JSON with Retry-After, and the lease given back at once
        # (so a delivery right after is not refused as busy).
        reply = post_event(urls["resize"], uploaded_event_of(urls, job_ids[0]))
        assert reply.status_code == 503, reply.text  # not 409: the broker's lease was released
        assert reply.json()["error"] == "storage_unavailable"
        assert int(reply.headers["Retry-After"]) > 0
        blocker.unlink()  # the store is back
        final = settle(urls, job_ids, timeout=30)
        figures.outcome(final)
        assert final == dict.fromkeys(job_ids, "succeeded")
        attempts = [job_debug(urls, j)["attempts"] for j in job_ids]
        figures.notes["attempts"] = attempts
        assert attempts == [1] * len(job_ids)  # the outage cost no attempt
        for job_id in job_ids:
            assert requests.get(f"{urls['status']}/jobs/{job_id}/thumbnail",
                                timeout=10).status_code == 200


def test_storage_outage_longer_than_max_attempts_backoff_still_succeeds(
        tmp_path: Path, figures: Figures) -> None:
    """A 10 s storage outage: well inside the Trigger's retry budget (6 retries, 0.5 s
    exponential: 31.5 s) and the job deadline. A 503 delivery gives its attempt back, so the
    outage does not use up MAX_ATTEMPTS=5 (it did once: the sixth delivery failed the job)."""
    config = Config(**FAST, requeue_after_seconds=30.0)
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        blocker = block_thumbnails(tmp_path)
        job_ids = [accept(submit(urls, SMALL)) for _ in range(3)]
        figures.submitted = len(job_ids)
        time.sleep(10)  # the outage
        blocker.unlink()
        final = settle(urls, job_ids, timeout=30)
        figures.outcome(final)
        errors = [job_debug(urls, j)["error"] for j in job_ids]
        figures.notes.update(attempts=[job_debug(urls, j)["attempts"] for j in job_ids],
                             errors=errors)
        assert final == dict.fromkeys(job_ids, "succeeded"), errors


# -- 3. a resize worker killed mid-job ---------------------------------------------------------

def test_resize_worker_killed_mid_job(tmp_path: Path, figures: Figures) -> None:
    # The lease must outlive one slow job (1-3 s on two busy cores): a job that takes longer
    # than its lease is taken over by the next delivery and never finishes (see the report).
    config = Config(**{**FAST, "lease_seconds": 8.0}, requeue_after_seconds=2.0)
    data = slow_image(5000)  # about half a second of work on an idle core
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        arbiter = stack.processes["resize"].pid
        workers = poll(lambda: two_workers(arbiter), timeout=15)
        job_id = accept(submit(urls, data, **SLOW_OPTIONS))
        figures.submitted = 1
        poll(lambda: job_debug(urls, job_id)["status"] == "processing" or None, timeout=20,
             interval=0.02)
        # The worker on the job holds the decoded 25 Mpx image (100 MB and more): the other,
        # idle one does not. (CPU time is a poorer sign on two cores shared with others.)
        busy = poll(lambda: worker_holding_the_image(workers), timeout=20, interval=0.02)
        os.kill(busy, signal.SIGKILL)
        killed_at = time.monotonic()
        killed = job_debug(urls, job_id)
        assert killed["status"] == "processing" and killed["finished_at"] is None  # mid-job
        respawned = poll(lambda: two_workers(arbiter, not_=busy), timeout=15)
        doc = wait_terminal(urls, job_id, timeout=40)
        debug = job_debug(urls, job_id)
        figures.outcome({job_id: doc["status"]})
        figures.notes.update(attempts=debug["attempts"], killed_worker=busy,
                             workers_after=respawned,
                             kill_to_done_s=round(time.monotonic() - killed_at, 1))
        assert doc["status"] == "succeeded", doc
        assert debug["attempts"] >= 2, debug
        assert requests.get(doc["links"]["thumbnail"], timeout=10).status_code == 200


# -- 4. the same event ten times at once -------------------------------------------------------

def test_same_event_ten_times_at_once_makes_one_thumbnail(tmp_path: Path,
                                                           figures: Figures) -> None:
    # A lease well beyond the slow job: this is about duplicates, not lease expiry.
    config = Config(**{**FAST, "lease_seconds": 15.0}, requeue_after_seconds=30.0)
    with started_stack(config, tmp_path, workers=4) as stack:  # four resize processes
        urls = stack.urls
        client = redis.Redis.from_url(urls["redis"])
        dispatcher = stack.processes["dispatcher"].pid
        signal_group(dispatcher, signal.SIGSTOP)  # the broker keeps the event, undelivered
        try:
            job_id = accept(submit(urls, slow_image(), **SLOW_OPTIONS))
            poll(lambda: not client.hexists(OUTBOX_KEY, job_id) or None, timeout=10)
            event = uploaded_event_of(urls, job_id)
            gate = threading.Barrier(10)

            def deliver(_: int) -> requests.Response:
                gate.wait(timeout=10)
                return post_event(urls["resize"], event, timeout=40)

            with ThreadPoolExecutor(10) as pool:
                replies = list(pool.map(deliver, range(10)))
        finally:
            signal_group(dispatcher, signal.SIGCONT)
        poll(lambda: broker_idle(client), timeout=20)  # the broker's own delivery, too
        figures.submitted = 1
        codes = sorted(r.status_code for r in replies)
        figures.notes["replies"] = {c: codes.count(c) for c in set(codes)}
        assert set(codes) <= {200, 409}, [(r.status_code, r.text) for r in replies]
        ok = [r for r in replies if r.status_code == 200]
        assert ok, codes
        # (How many overlap the one doing the work, and get 409, depends on how gunicorn
        # spreads the ten connections over its workers: usually several, now and then none.)
        assert all(r.json()["error"] == "job_busy" for r in replies if r.status_code == 409)
        assert len({r.headers["ce-id"] for r in ok}) == 1
        assert {r.headers["ce-type"] for r in ok} == {events.THUMBNAIL_GENERATED}
        doc = wait_terminal(urls, job_id, timeout=10)
        figures.outcome({job_id: doc["status"]})
        assert doc["status"] == "succeeded"
        assert job_debug(urls, job_id)["attempts"] == 1  # one claim: one resize, one write
        written = sorted(str(p.relative_to(thumbnails_dir(tmp_path)))
                         for p in thumbnails_dir(tmp_path).rglob("*") if p.is_file())
        assert written == [f"{job_id}/1.webp"]  # the first (and only) attempt's


def test_same_foreign_event_ten_times_at_once_makes_one_job(tmp_path: Path,
                                                             figures: Figures) -> None:
    """Another producer's event (no job id: resize creates the job) delivered 10x at once.
    No reply may be 400: the broker does not retry a 400 but dead-letters it, and the dead
    letter fails the job if it has not finished by then."""
    config = Config(**FAST, requeue_after_seconds=30.0)
    with started_stack(config, tmp_path, workers=4) as stack:
        urls = stack.urls
        incoming = tmp_path / "objects" / "thumbnails" / "incoming"  # INCOMING_PREFIX
        incoming.mkdir(parents=True, exist_ok=True)
        (incoming / "foreign").write_bytes(SMALL)
        rounds: list[list[int]] = []
        odd: list[str] = []
        job_ids = []
        for _ in range(20):  # the race below is narrow: give it twenty chances
            event = events.new_event(events.IMAGE_UPLOADED, "/other-system",
                                     {"bucket": "thumbnails", "key": "incoming/foreign"})
            gate = threading.Barrier(10)

            def deliver(_: int, event: events.CloudEvent = event,
                        gate: threading.Barrier = gate) -> requests.Response:
                gate.wait(timeout=10)
                return post_event(urls["resize"], event)

            with ThreadPoolExecutor(10) as pool:
                replies = list(pool.map(deliver, range(10)))
            rounds.append(sorted(r.status_code for r in replies))
            odd += [r.text for r in replies if r.status_code not in (200, 409)]
            job_ids.append(str(uuid.uuid5(uuid.NAMESPACE_URL,
                                          f"/other-system#{event.get_id()}")))
        figures.submitted = len(job_ids)
        final = settle(urls, job_ids, timeout=20)
        figures.outcome(final)
        figures.notes.update(replies=rounds, odd_replies=odd)
        assert all(set(codes) <= {200, 409} for codes in rounds), (rounds, odd)
        assert final == dict.fromkeys(job_ids, "succeeded")
        assert [job_debug(urls, j)["attempts"] for j in job_ids] == [1] * len(job_ids)


# -- 5. an event lost between upload and resize ------------------------------------------------

def test_event_the_broker_accepted_and_lost_is_reemitted_by_the_sweep(
        tmp_path: Path, figures: Figures) -> None:
    """Needs the sweep's re-emit (REQUEUE_AFTER_SECONDS)."""
    config = Config(**FAST, requeue_after_seconds=3.0)
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        client = redis.Redis.from_url(urls["redis"])
        dispatcher = stack.processes["dispatcher"].pid
        signal_group(dispatcher, signal.SIGSTOP)
        try:
            job_id = accept(submit(urls, SMALL))
            figures.submitted = 1
            # The broker accepted it (upload's outbox entry is acknowledged) ...
            poll(lambda: not client.hexists(OUTBOX_KEY, job_id) or None, timeout=10)
            # (a slow first send and the outbox sweep's may both have got there: let any
            # send still in flight land: DEPENDENCY_TIMEOUT_SECONDS bounds each)
            time.sleep(config.dependency_timeout_seconds)
            stored = stream_entries_of(client, job_id)
            assert stored
            client.xdel(STREAM_KEY, *stored)  # ... and lost it before delivering it.
            figures.notes["events_deleted"] = len(stored)
        finally:
            signal_group(dispatcher, signal.SIGCONT)
        # Nothing is left in the broker to deliver: only a re-emitted event can finish it.
        doc = wait_terminal(urls, job_id, timeout=20)
        figures.outcome({job_id: doc["status"]})
        assert doc["status"] == "succeeded", doc
        assert job_debug(urls, job_id)["attempts"] == 1
        headers, body = ping_request()
        sweep = requests.post(f"{urls['upload']}/sweep", headers=headers, data=body,
                              timeout=10)
        assert sweep.status_code == 200
        assert {"sent", "pending", "requeued", "timed_out",
                "orphans_deleted"} <= set(sweep.json())


def test_event_held_up_by_a_stalled_broker_is_resent_by_the_outbox(
        tmp_path: Path, figures: Figures) -> None:
    config = Config(**FAST, requeue_after_seconds=30.0)
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        client = redis.Redis.from_url(urls["redis"])
        ingress = stack.processes["broker"].pid
        signal_group(ingress, signal.SIGSTOP)  # connections queue up; nothing answers
        try:
            job_ids = [accept(submit(urls, SMALL)) for _ in range(3)]
            figures.submitted = len(job_ids)
            time.sleep(2.5)  # a few timed-out sends (DEPENDENCY_TIMEOUT_SECONDS=1)
            for job_id in job_ids:
                assert client.hexists(OUTBOX_KEY, job_id)  # still waiting to be sent
                assert job_debug(urls, job_id)["status"] == "queued"
        finally:
            signal_group(ingress, signal.SIGCONT)
        final = settle(urls, job_ids, timeout=20)
        figures.outcome(final)
        assert final == dict.fromkeys(job_ids, "succeeded")
        # The stalled sends arrive late, next to the re-sends: duplicates, but one resize each.
        assert [job_debug(urls, j)["attempts"] for j in job_ids] == [1] * len(job_ids)
        poll(lambda: client.hlen(OUTBOX_KEY) == 0 or None, timeout=10)


# -- 6. the dead-letter path -------------------------------------------------------------------

def test_storage_outage_longer_than_the_brokers_retries_does_not_fail_jobs(
        tmp_path: Path, figures: Figures) -> None:
    """Issue 11 example: a storage outage longer than the broker's retry window marked
    accepted jobs delivery_failed although their originals were intact. Now the dead letter
    (last status 503) leaves them to the sweep's re-emits, which finish them once storage is
    back (before JOB_DEADLINE_SECONDS: after it, the sweep fails them timed_out)."""
    knative = knative_dir_with(tmp_path, retry=1, backoffDelay="PT0.1S", timeout="PT2S")
    config = Config(**FAST, requeue_after_seconds=1.0,
                    job_deadline_seconds=max(120.0, STORAGE_OUTAGE_SECONDS + 60))
    data_dir = tmp_path / "stack"
    with started_stack(config, data_dir, broker=BrokerSettings(knative_dir=knative)) as stack:
        urls = stack.urls
        blocker = block_thumbnails(data_dir)  # every delivery: 503 (retryable)
        outage_started = time.monotonic()
        job_ids = [accept(submit(urls, SMALL)) for _ in range(3)]
        figures.submitted = len(job_ids)
        # Each event: delivered twice (503, 503) and dead-lettered (resize answers 204), then
        # re-emitted by the sweep and dead-lettered again: wait for two rounds per job.
        poll(lambda: dead_letters_answered(urls["resize"]) >= 2 * len(job_ids) or None,
             timeout=30)
        for job_id in job_ids:
            doc = job_debug(urls, job_id)
            assert doc["status"] in ("queued", "processing"), doc
            assert doc["error"] is None and doc["attempts"] == 0, doc
        # Longer outages by hand: FAULT_STORAGE_OUTAGE_SECONDS=120 (deadline: outage + 60 s).
        time.sleep(max(0.0, STORAGE_OUTAGE_SECONDS - (time.monotonic() - outage_started)))
        figures.notes["outage_s"] = round(time.monotonic() - outage_started, 1)
        figures.notes["dead_letters"] = dead_letters_answered(urls["resize"])
        blocker.unlink()  # storage is back
        final = settle(urls, job_ids, timeout=30)
        figures.outcome(final)
        assert final == dict.fromkeys(job_ids, "succeeded")


# -- 7. load -----------------------------------------------------------------------------------

def test_load_500_jobs_at_concurrency_32(tmp_path: Path, figures: Figures) -> None:
    total, concurrency = 500, 32
    config = Config(**FAST, requeue_after_seconds=30.0)
    with started_stack(config, tmp_path) as stack:
        urls = stack.urls
        session_local = threading.local()

        def one(_: int) -> tuple[int, str]:
            session = getattr(session_local, "session", None)
            if session is None:
                session = session_local.session = requests.Session()
            response = session.post(f"{urls['upload']}/jobs", files={"file": ("i", SMALL)},
                                    timeout=60)
            return response.status_code, response.json().get("job_id", response.text)

        started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            answers = list(pool.map(one, range(total)))
        upload_seconds = time.monotonic() - started
        figures.submitted = len(answers)
        accepted = [job_id for status, job_id in answers if status == 202]
        final = settle(urls, accepted, timeout=90)
        done_seconds = time.monotonic() - started
        figures.outcome(final)
        listed = all_jobs(urls, limit=100)  # page by page
        client = redis.Redis.from_url(urls["redis"])
        figures.notes.update(upload_s=round(upload_seconds, 1), all_done_s=round(done_seconds, 1),
                             jobs_per_s=round(total / done_seconds, 1), listed=len(listed),
                             broker_events=client.xinfo_stream(STREAM_KEY)["entries-added"])
        assert len(accepted) == total, [a for a in answers if a[0] != 202][:5]
        assert len(set(accepted)) == total
        assert figures.succeeded == total and figures.failed == 0 and figures.lost == 0, (
            {s: list(final.values()).count(s) for s in set(final.values())})
        assert set(listed) == set(accepted)
        assert set(listed.values()) == {"succeeded"}
