"""Graceful shutdown with real gunicorn processes (`thumbnails serve`, as a container runs it):
SIGTERM, which Knative sends a pod it scales down, must not cut a request in flight.

(a) upload: SIGTERM while a large body is still arriving; the request completes with 202 and
    the process exits 0.
(b) resize: SIGTERM while a slow image is being decoded; the request completes with 200, the
    job is succeeded, the process exits 0.
(c) resize past gunicorn's graceful timeout: the worker is killed mid-job; the client gets no
    answer, the job keeps its lease until LEASE_SECONDS, then a redelivery claims it (attempt
    2) and finishes it.

How a test knows the worker has taken the SIGTERM (no sleeping): a gthread worker stops
accepting by taking its listening socket out of its epoll set; /proc/<worker>/fdinfo shows the
set. How it knows its request is in flight: the worker holds the accepted connection's socket.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
import requests
from PIL import Image
from urllib3 import encode_multipart_formdata

from tests.support.gunicornproc import fd_links, holds_connection, serving_function, tcp_inodes
from tests.support.images import encode, kinds
from tests.support.servers import free_port
from tests.support.stackutil import poll
from thumbnails import resize, upload
from thumbnails.core import events, serving
from thumbnails.core.config import Config
from thumbnails.core.jobs import JobStatus, JobStore

THUMBNAILS = str(Path(sys.executable).with_name("thumbnails"))


# ---------------------------------------------------------------- processes and /proc


def accepting(worker: int, port: int) -> bool:
    """Whether the worker still polls its listening socket (gthread drops it on SIGTERM)."""
    listen_inode = tcp_inodes(port).get((0, "0A"))  # 0A: LISTEN
    links = fd_links(worker)
    listeners = {fd for fd, link in links.items() if link == f"socket:[{listen_inode}]"}
    watched: set[str] = set()
    for fd, link in links.items():
        if link == "anon_inode:[eventpoll]":
            try:
                info = Path(f"/proc/{worker}/fdinfo/{fd}").read_text()
            except FileNotFoundError:
                continue
            watched |= {line.split()[1] for line in info.splitlines() if line.startswith("tfd:")}
    return bool(listeners & watched)


def serve_command(function: str) -> list[str]:
    return [THUMBNAILS, "serve", function, "--host", "127.0.0.1", "--workers", "1",
            "--threads", "2"]


def config_of(env: dict[str, str], **changes: Any) -> Config:
    return Config(redis_url=env["REDIS_URL"], data_dir=Path(env["DATA_DIR"]), **changes)


def queued_job(env: dict[str, str], data: bytes, **form: str) -> str:
    """A job made by an in-process upload on the same Redis and data directory."""
    app = upload.create_app(config_of(env, max_upload_bytes=64 << 20))
    answer = app.test_client().post("/jobs", data={"file": (io.BytesIO(data), "a"), **form})
    assert answer.status_code == 202, answer.data
    job_id: str = answer.json["job_id"]
    return job_id


def status_of(jobs: JobStore, job_id: str) -> JobStatus | None:
    job = jobs.get(job_id)
    return None if job is None else job.status


def event_for(job_id: str) -> tuple[dict[str, str], bytes]:
    return events.to_http(events.new_event(events.IMAGE_UPLOADED, "/test", {"job_id": job_id}))


def in_background(post: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run post() in a thread; its response (or exception) lands in the returned dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = post()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def noise_png() -> bytes:
    """~2 MB of incompressible RGB noise as a PNG (800x800)."""
    channels = [Image.effect_noise((800, 800), sigma) for sigma in (60, 70, 80)]
    return encode(Image.merge("RGB", channels), "PNG", compress_level=1)


def slow_gif() -> bytes:
    """7000x7000 (49 Mpx, under the default 50 Mpx limit): about 2 s to decode and resize."""
    small = Image.merge("RGB", [Image.effect_noise((700, 700), s) for s in (60, 70, 80)])
    big = small.resize((7000, 7000), Image.Resampling.NEAREST)
    return encode(big.quantize(64, method=Image.Quantize.FASTOCTREE), "GIF")


# ---------------------------------------------------------------- (a) upload


def test_sigterm_during_an_upload_body_lets_it_finish(env: dict[str, str],
                                                      redis_client: redis.Redis) -> None:
    png = noise_png()
    body, content_type = encode_multipart_formdata({"file": ("noise.png", png)})
    port = free_port()
    with serving_function(serve_command("upload"), env, port,
                          Path(env["DATA_DIR"]).parent / "upload.log") as server:
        worker = server.worker()
        assert accepting(worker, port)
        head = (f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        half = len(body) // 2
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head + body[:half])
            client_port = sock.getsockname()[1]
            poll(lambda: holds_connection(worker, port, client_port) or None, timeout=10)

            server.process.send_signal(signal.SIGTERM)  # the master, as Knative does
            poll(lambda: (not accepting(worker, port)) or None, timeout=10)
            assert server.process.poll() is None and Path(f"/proc/{worker}").exists()

            sock.sendall(body[half:])  # the rest of the body, after the SIGTERM
            response = http.client.HTTPResponse(sock)
            response.begin()
            reply = response.read()
        assert response.status == 202, reply[:500]
        assert server.process.wait(timeout=30) == 0, server.stderr()
    job_id = json.loads(reply)["job_id"]
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.status is JobStatus.QUEUED
    assert (Path(env["DATA_DIR"]) / "thumbnails" / "originals" / job_id).read_bytes() == png


# ---------------------------------------------------------------- (b) resize


def test_sigterm_during_resize_processing_lets_it_finish(env: dict[str, str],
                                                         redis_client: redis.Redis) -> None:
    job_id = queued_job(env, slow_gif(), width="1024", height="1024", format="webp")
    jobs = JobStore(redis_client)
    port = free_port()
    with serving_function(serve_command("resize"), env, port,
                          Path(env["DATA_DIR"]).parent / "resize.log") as server:
        worker = server.worker()
        headers, body = event_for(job_id)
        thread, outcome = in_background(
            lambda: requests.post(server.url, data=body, headers=headers, timeout=60))

        def processing() -> bool | None:
            job = jobs.get(job_id)
            assert job is not None and not job.status.terminal, "finished before the SIGTERM"
            return job.status is JobStatus.PROCESSING or None

        poll(processing, timeout=30, interval=0.005)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        poll(lambda: (not accepting(worker, port)) or None, timeout=10)
        job = jobs.get(job_id)
        assert job is not None and job.status is JobStatus.PROCESSING  # still in flight

        thread.join(timeout=60)
        assert "error" not in outcome, outcome
        response = outcome["response"]
        assert response.status_code == 200, response.text[:500]
        reply = events.from_http(dict(response.headers), response.content)
        assert reply.get_type() == events.THUMBNAIL_GENERATED
        assert server.process.wait(timeout=30) == 0, server.stderr()
        assert time.monotonic() - started < 20  # well inside the graceful timeout
    job = jobs.get(job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.attempts == 1
    assert job.thumbnail_width == 1024 and job.content_type == "image/webp"


# ---------------------------------------------------------------- (c) past the graceful timeout


def test_worker_killed_past_the_graceful_timeout_leaves_the_lease_to_expire(
        env: dict[str, str], redis_client: redis.Redis, tmp_path: Path) -> None:
    """A job that outlives gunicorn's graceful timeout (20 s in production; 1 s here) loses
    its worker to SIGKILL. The lease is not given back: a redelivery is 409 until
    LEASE_SECONDS pass, then it claims the job again (attempt 2) and finishes it."""
    command = serving.gunicorn_command("resize", "127.0.0.1:{port}", 1, 2)
    at = command.index("--graceful-timeout")
    assert command[at + 1] == "20"  # what production runs with
    command[at + 1] = "1"
    png = kinds()["png"][0]
    job_id = queued_job(env, png)
    original = Path(env["DATA_DIR"]) / "thumbnails" / "originals" / job_id
    original.unlink()
    os.mkfifo(original)  # reading the original blocks until we say: a job that never ends
    lease = 3.0
    jobs = JobStore(redis_client)
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with serving_function(command, {**env, "LEASE_SECONDS": str(lease)}, port,
                          tmp_path / "resize.log") as server:
        headers, body = event_for(job_id)
        thread, outcome = in_background(
            lambda: requests.post(server.url, data=body, headers=headers, timeout=30))
        poll(lambda: status_of(jobs, job_id) is JobStatus.PROCESSING or None, timeout=30,
             interval=0.005)
        claimed = time.time()
        server.process.send_signal(signal.SIGTERM)
        returncode = server.process.wait(timeout=30)
        thread.join(timeout=30)
        assert isinstance(outcome.get("error"), requests.ConnectionError), outcome
        assert returncode == 0, server.stderr()

    job = jobs.get(job_id)
    assert job is not None and job.status is JobStatus.PROCESSING and job.attempts == 1
    lease_until = float(redis_client.hget(f"thumbnails:job:{job_id}", "lease_until") or 0)
    assert claimed < lease_until <= claimed + lease + 1  # kept, not released

    original.unlink()
    original.write_bytes(png)
    client = resize.create_app(config_of(env, lease_seconds=lease)).test_client()
    headers, body = event_for(job_id)
    if time.time() < lease_until - 0.5:
        busy = client.post("/", data=body, headers=headers)
        assert busy.status_code == 409 and busy.json["error"] == "job_busy"

    def not_busy() -> Any:
        answer = client.post("/", data=body, headers=headers)
        return None if answer.status_code == 409 else answer

    redelivered = poll(not_busy, timeout=lease + 10, interval=0.2)
    assert redelivered.status_code == 200 and time.time() >= lease_until
    job = jobs.get(job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.attempts == 2
