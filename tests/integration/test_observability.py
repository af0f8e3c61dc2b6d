"""Metrics and logs: /metrics of each function in the real local stack (several gunicorn
workers adding up), JSON log lines with the job's ids, one correlation id from the upload
request through resize into the reply event, and gunicorn's JSON access log."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.support.images import encode, kinds
from tests.support.servers import free_port
from tests.support.stackutil import free_port_block, poll, submit, wait_terminal
from thumbnails.core import events, logs, serving
from thumbnails.core.config import Config
from thumbnails.core.jobs import OUTBOX_KEY
from thumbnails.local.devstack import PARTS, PID_FILE

THUMBNAILS = str(Path(sys.executable).with_name("thumbnails"))
KINDS = kinds()
FUNCTIONS = ("upload", "status", "resize")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
UUID_IN_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
Sample = tuple[str, frozenset[tuple[str, str]]]


# ---------------------------------------------------------------- helpers


@dataclass
class Dev:
    """`thumbnails dev` running: its process, URLs and the file its stderr goes to."""

    process: subprocess.Popen[str]
    urls: dict[str, str]
    data_dir: Path
    stderr: Path

    def lines(self) -> list[dict[str, Any]]:
        """Every complete stderr line so far, each parsed as JSON (fails on any other)."""
        text = self.stderr.read_text()
        complete = text[: text.rfind("\n") + 1]
        return [parse_line(line) for line in complete.splitlines() if line]


def parse_line(line: str) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError:
        raise AssertionError(f"a log line is not JSON: {line[:300]!r}") from None
    assert isinstance(doc, dict), line
    missing = {"ts", "level", "logger", "message"} - set(doc)
    assert not missing, f"log line without {missing}: {line[:300]}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"]), doc["ts"]
    return doc


def scrape(url: str) -> dict[Sample, float]:
    """GET /metrics, parsed: {(sample name, labels): value}."""
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter not incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def submit_all(urls: dict[str, str], images: list[bytes]) -> list[str]:
    """Submit concurrently (so that both resize workers get work); the job ids."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: submit(urls, data), images))
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
    return [a.json()["job_id"] for a in answers]


def worker_pids(master: int) -> list[int]:
    """A gunicorn master's live workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat[0] != "Z" and int(stat[1]) == master:
                found.append(int(entry.name))
    return found


def master_of(dev: Dev, part: str) -> int:
    for pid in map(int, (dev.data_dir / PID_FILE).read_text().split()):
        if f"thumbnails.{part}:create_app" in Path(f"/proc/{pid}/cmdline").read_text():
            return pid
    raise AssertionError(f"no gunicorn master for {part}")


def about(lines: list[dict[str, Any]], job_id: str, logger_prefix: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("job_id") == job_id
            and line["logger"].startswith(logger_prefix)]


def both_sides(dev: Dev, job_id: str,
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """upload's and resize's lines about a job, once there are both."""
    lines = dev.lines()
    upload = about(lines, job_id, "thumbnails.upload")
    resize = about(lines, job_id, "thumbnails.resize")
    return (upload, resize) if upload and resize else None


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """`thumbnails dev` as a user runs it (2 resize workers), stderr to a file."""
    data_dir = tmp_path_factory.mktemp("dev")
    stderr_path = data_dir / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "STORAGE_BACKEND")}
    env["LOG_LEVEL"] = "INFO"
    with stderr_path.open("ab") as stderr:
        process = subprocess.Popen(
            [THUMBNAILS, "dev", "--port", str(free_port_block(len(PARTS))), "--data-dir",
             str(data_dir), "--workers", "2"], stdout=subprocess.PIPE, stderr=stderr, text=True,
            env=env)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in PARTS]
        urls = dict(line.split(": ", 1) for line in lines)
        assert list(urls) == list(PARTS), lines
        yield Dev(process, urls, data_dir, stderr_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


# ---------------------------------------------------------------- metrics in the real stack


def test_metrics_count_jobs_requests_stages_and_bytes(dev: Dev) -> None:
    urls = dev.urls
    before = {part: scrape(urls[part]) for part in FUNCTIONS}
    images = [KINDS[k][0] for k in ("png", "jpeg", "rgba", "exif_rotated", "tiny", "png")]
    job_ids = submit_all(urls, images)
    docs = [wait_terminal(urls, job_id) for job_id in job_ids]
    assert {d["status"] for d in docs} == {"succeeded"}, docs
    n, bytes_in = len(images), sum(map(len, images))
    bytes_out = sum(d["thumbnail"]["size"] for d in docs)
    after = {part: scrape(urls[part]) for part in FUNCTIONS}

    def delta(part: str, name: str, **labels: str) -> float:
        return value(after[part], name, **labels) - value(before[part], name, **labels)

    assert delta("upload", "thumbnails_jobs_submitted_total", source="upload") == n
    assert delta("upload", "thumbnails_image_bytes_total", direction="in") == bytes_in
    assert delta("upload", "thumbnails_http_requests_total", function="upload",
                 route="/jobs", method="POST", status="202") == n
    assert delta("upload", "thumbnails_http_request_duration_seconds_count",
                 function="upload", route="/jobs", method="POST") == n
    assert delta("upload", "thumbnails_outbox_sends_total", attempt="first",
                 result="accepted") == n
    assert value(after["upload"], "thumbnails_outbox_depth") == 0
    assert delta("resize", "thumbnails_jobs_finished_total", status="succeeded",
                 error_code="") == n
    assert delta("resize", "thumbnails_image_bytes_total", direction="out") == bytes_out
    assert delta("resize", "thumbnails_http_requests_total", function="resize", route="/",
                 method="POST", status="200") == n
    # the stage names of the debug view's stages_ms (openapi.yaml), one name for each stage
    for stage in ("fetch", "decode_resize", "encode", "store"):
        assert delta("resize", "thumbnails_stage_duration_seconds_count", stage=stage) == n
        assert delta("resize", "thumbnails_stage_duration_seconds_sum", stage=stage) > 0
    # status: one label set per URL rule, whatever job id the path had
    assert delta("status", "thumbnails_http_requests_total", function="status",
                 route="/jobs/<job_id>", method="GET", status="200") >= n
    # Over the whole run so far every submitted job succeeded, and nothing else finished.
    submitted = value(after["upload"], "thumbnails_jobs_submitted_total", source="upload")
    finished = {labels: v for (name, labels), v in after["resize"].items()
                if name == "thumbnails_jobs_finished_total"}
    assert finished == {frozenset({("status", "succeeded"), ("error_code", "")}): submitted}
    for part in FUNCTIONS:
        routes = {dict(labels)["route"] for (name, labels) in after[part]
                  if name == "thumbnails_http_requests_total"}
        functions = {dict(labels)["function"] for (name, labels) in after[part]
                     if name == "thumbnails_http_requests_total"}
        assert functions == {part}
        assert routes and not any(UUID_IN_TEXT.search(r) for r in routes), routes
    # Each counter where its event happens: no job counters on status at all.
    assert not [s for s in after["status"] if s[0].startswith("thumbnails_jobs_")]


def test_metrics_add_up_across_workers_and_survive_a_dead_worker(dev: Dev) -> None:
    urls = dev.urls
    resize_master = master_of(dev, "resize")
    assert len(worker_pids(resize_master)) == 2
    start = value(scrape(urls["resize"]), "thumbnails_jobs_finished_total",
                  status="succeeded", error_code="")
    done: list[str] = []
    # Images that take a while, so that deliveries overlap: a busy worker leaves new
    # connections to the idle one (thumbnails.core.probeworker), and both make thumbnails.
    slow = encode(Image.effect_noise((1200, 1200), 64).convert("RGB"), "PNG")
    for _ in range(6):  # until both resize workers have made thumbnails (bounded)
        done += submit_all(urls, [slow] * 8)
        for job_id in done:
            wait_terminal(urls, job_id)
        pids = {line["pid"] for job_id in done
                for line in about(dev.lines(), job_id, "thumbnails.resize")
                if "succeeded" in line["message"]}
        if len(pids) >= 2:
            break
    assert len(pids) == 2, f"only resize worker(s) {pids} made thumbnails"
    # Whichever worker answers /metrics, it reports the jobs of both.
    for _ in range(6):
        assert value(scrape(urls["resize"]), "thumbnails_jobs_finished_total",
                     status="succeeded", error_code="") == start + len(done)
    # A worker killed (and replaced by gunicorn) takes none of its counts with it.
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    poll(lambda: (victim not in worker_pids(resize_master)
                  and len(worker_pids(resize_master)) == 2) or None, timeout=30)
    for _ in range(4):
        assert value(scrape(urls["resize"]), "thumbnails_jobs_finished_total",
                     status="succeeded", error_code="") == start + len(done)


def test_outbox_depth_is_read_from_redis_when_scraped(dev: Dev) -> None:
    client = redis.Redis.from_url(dev.urls["redis"])
    try:
        fake = str(uuid.uuid4())  # in the outbox hash only, never due: nobody sends it
        client.hset(OUTBOX_KEY, fake, b"{}")
        try:
            assert value(scrape(dev.urls["upload"]), "thumbnails_outbox_depth") == \
                client.hlen(OUTBOX_KEY) >= 1
        finally:
            client.hdel(OUTBOX_KEY, fake)
        assert value(scrape(dev.urls["upload"]), "thumbnails_outbox_depth") == \
            client.hlen(OUTBOX_KEY)
    finally:
        client.close()


# ---------------------------------------------------------------- logs and correlation


def test_one_correlation_id_from_upload_through_resize_to_the_reply(dev: Dev) -> None:
    urls = dev.urls
    trace_id = uuid.uuid4().hex
    cases = {
        "traceparent": ({"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}, trace_id),
        "x-request-id": ({"X-Request-Id": "req-42.abc"}, "req-42.abc"),
        "none": ({}, None),
    }
    client = redis.Redis.from_url(urls["redis"])
    try:
        for case, (headers, expected) in cases.items():
            answer = requests.post(f"{urls['upload']}/jobs", headers=headers, timeout=30,
                                   files={"file": ("i.png", KINDS["png"][0])})
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["job_id"]
            correlation = answer.headers["X-Request-Id"]
            if expected is None:
                assert HEX32.match(correlation), correlation
            else:
                assert correlation == expected, case
            assert wait_terminal(urls, job_id)["status"] == "succeeded"

            # The image.uploaded event carries it, as the correlationid extension: resize,
            # which gets no request header from the broker, logs it. (A finished job no
            # longer keeps its event: the event's id and source come from the debug view.)
            debug = requests.get(f"{urls['status']}/jobs/{job_id}/debug", timeout=10).json()
            upload_lines, resize_lines = poll(lambda job_id=job_id: both_sides(dev, job_id),
                                              timeout=10)
            assert {line.get("correlation_id") for line in upload_lines + resize_lines} == \
                {correlation}, case
            assert {line.get("event_id") for line in upload_lines + resize_lines} == \
                {debug["event_id"]}
            stored = events.new_event(events.IMAGE_UPLOADED, debug["event_source"],
                                      {"job_id": job_id}, event_id=debug["event_id"],
                                      extensions={events.CORRELATION_ID: correlation})

            # Delivered again (as a broker would), resize answers with the reply event: the
            # same correlation id, and its lines about the job say so too.
            event_headers, body = events.to_http(stored)
            reply = requests.post(urls["resize"], data=body, headers=event_headers, timeout=10)
            assert reply.status_code == 200, reply.text
            reply_event = events.from_http(reply.headers, reply.content)
            assert reply_event.get_type() == events.THUMBNAIL_GENERATED
            assert reply_event.get_extension(events.CORRELATION_ID) == correlation
    finally:
        client.close()


def test_every_stderr_line_is_json_and_stdout_only_the_urls(dev: Dev) -> None:
    """Last in this module: it stops the stack to read the rest of its stdout."""
    lines = dev.lines()  # parse_line fails on any line that is not JSON
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "thumbnails.upload.submit", "thumbnails.resize.worker"} <= \
        loggers, loggers
    assert "gunicorn.access" not in loggers  # the local stack logs requests only at DEBUG
    assert all(isinstance(line["pid"], int) for line in lines)
    dev.process.send_signal(signal.SIGTERM)
    rest, _ = dev.process.communicate(timeout=60)
    assert dev.process.returncode == 0
    assert rest == "", f"thumbnails dev printed more than its five URL lines: {rest[:300]!r}"
    dev.lines()  # the shutdown lines too


# ---------------------------------------------------------------- a container's entry point


def test_serve_writes_a_json_access_log_and_cleans_its_metrics_dir(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "REDIS_URL": redis_url,
           "DATA_DIR": str(tmp_path / "objects"), "TMPDIR": str(tmp_path), "LOG_LEVEL": "INFO"}
    stale = tmp_path / "thumbnails-metrics-999999999"  # a master long gone
    stale.mkdir()
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("ab") as stderr:
        process = subprocess.Popen(
            [THUMBNAILS, "serve", "status", "--host", "127.0.0.1", "--workers", "2",
             "--threads", "2"], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    base = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / f"thumbnails-metrics-{process.pid}"  # exec: gunicorn's pid
    try:
        def answered() -> requests.Response | None:
            try:
                return requests.get(f"{base}/ready", timeout=2)
            except requests.RequestException:
                assert process.poll() is None, "serve exited early"
                return None

        poll(answered)
        assert metrics_dir.is_dir() and not stale.exists()
        assert requests.get(f"{base}/jobs", headers={"X-Request-Id": "abc-123"},
                            timeout=5).status_code == 200
        missing = requests.get(f"{base}/jobs/{uuid.uuid4()}", timeout=5)
        assert missing.status_code == 404
        for _ in range(4):  # two workers: the scrapes add both up
            requests.get(f"{base}/jobs", timeout=5)
        scraped = scrape(base)
        assert value(scraped, "thumbnails_http_requests_total", function="status",
                     route="/jobs", method="GET", status="200") == 5
        assert value(scraped, "thumbnails_http_requests_total", function="status",
                     route="/jobs/<job_id>", method="GET", status="404") == 1

        def access_lines() -> list[dict[str, Any]] | None:
            text = stderr_path.read_text()
            found = [parse_line(line) for line in text[: text.rfind("\n") + 1].splitlines()]
            found = [line for line in found if line["logger"] == "gunicorn.access"]
            return found if len(found) >= 6 else None

        access = poll(access_lines, timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert stdout == ""  # every log line goes to stderr
    first = next(line for line in access if line["path"] == "/jobs")
    assert first["method"] == "GET" and first["status"] == 200 and first["level"] == "INFO"
    assert first["correlation_id"] == "abc-123" and first["message"] == "GET /jobs 200"
    assert isinstance(first["duration_ms"], float) and isinstance(first["bytes"], int)
    assert any(line["status"] == 404 and line["path"].startswith("/jobs/") for line in access)
    # Probes and scrapes are left out at INFO.
    assert not [line for line in access if line["path"] in ("/ready", "/metrics")]
    assert not metrics_dir.exists(), "the metrics directory outlived gunicorn"


def test_metrics_stay_open_when_api_keys_are_on(redis_url: str,
                                                 redis_client: redis.Redis) -> None:
    from thumbnails import resize, status, upload

    key_hash = "a" * 64
    config = Config(redis_url=redis_url, api_key_hashes=key_hash, storage_backend="filesystem")
    for module in (upload, status, resize):
        client = module.create_app(config).test_client()
        answer = client.get("/metrics")
        assert answer.status_code == 200, module.__name__
        assert b"thumbnails_" in answer.data
    assert upload.create_app(config).test_client().post("/jobs").status_code == 401


# ---------------------------------------------------------------- units


def test_gunicorn_metrics_dir_is_fresh_and_stale_ones_go(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])  # a pid that is gone
    dead.wait()
    mine = tmp_path / "thumbnails-metrics-4242"
    mine.mkdir()
    (mine / "counter_1.db").write_bytes(b"old run")
    gone = tmp_path / f"thumbnails-metrics-{dead.pid}"
    gone.mkdir()
    alive = tmp_path / f"thumbnails-metrics-{os.getpid()}"
    alive.mkdir()
    other = tmp_path / "unrelated"
    other.mkdir()
    directory = serving.metrics_dir(str(tmp_path), pid=4242)
    assert directory == mine and directory.is_dir() and list(directory.iterdir()) == []
    assert not gone.exists() and alive.exists() and other.exists()


def test_json_formatter_one_line_with_bound_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("thumbnails.test_observability")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logs.clear()
        logs.bind(correlation_id="c1")
        with logs.bound(job_id="j1", event_id="e1"):
            logger.warning("two\nlines %s", "here")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed", extra={"fields": {"extra_field": 3}})
    finally:
        logger.removeHandler(handler)
        logs.clear()
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "two\nlines here" and first["level"] == "WARNING"
    assert (first["job_id"], first["event_id"], first["correlation_id"]) == ("j1", "e1", "c1")
    assert "job_id" not in second and second["correlation_id"] == "c1"  # bound() undone
    assert "ValueError: boom" in second["exception"] and second["extra_field"] == 3
    assert second["pid"] == os.getpid() and second["logger"] == logger.name


@pytest.mark.parametrize(("traceparent", "request_id", "expected"), [
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x",
     "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "r-1", "r-1"),
    ("garbage", "r-2", "r-2"),
    (None, "has space", None),
    (None, "x" * 200, None),
    (None, None, None),
])
def test_correlation_id_of_a_request(traceparent: str | None, request_id: str | None,
                                     expected: str | None) -> None:
    got = logs.correlation_from(traceparent, request_id)
    if expected is None:
        assert HEX32.match(got), got
    else:
        assert got == expected


def test_correlation_id_of_an_event() -> None:
    plain = events.new_event(events.IMAGE_UPLOADED, "/t", {})
    assert logs.correlation_of_event(plain) is None
    tagged = events.new_event(events.IMAGE_UPLOADED, "/t", {},
                              extensions={events.CORRELATION_ID: "abc"})
    again = events.from_http(*events.to_http(tagged))  # survives the HTTP binding
    assert logs.correlation_of_event(again) == "abc"
    traced = events.new_event(events.IMAGE_UPLOADED, "/t", {}, extensions={
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert logs.correlation_of_event(traced) == "4bf92f3577b34da6a3ce929d0e0e4736"
