"""Slow clients don't take a function down (issue 11, section 5): real gunicorn processes
(`thumbnails serve`, as a container runs them) and raw sockets that send half a request, or
trickle a body. See thumbnails.core.buffering for the mechanism and scripts/slow_clients.py for
the figures."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis
import requests
from urllib3 import encode_multipart_formdata

from tests.integration.test_shutdown import THUMBNAILS
from tests.support.gunicornproc import Server, serving_function
from tests.support.images import encode, marked
from tests.support.servers import free_port
from tests.support.stackutil import poll
from thumbnails.core.jobs import job_key

HALF_HEADERS = b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
SMALL = encode(marked((64, 48)), "PNG")


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """conftest's, with short header and body-rate limits."""
    return {**env, "HEADER_TIMEOUT_SECONDS": "2", "MIN_BODY_RATE": str(500 * 1024)}


@contextmanager
def served(function: str, env: dict[str, str], tmp_path: Path, workers: int,
           threads: int) -> Iterator[Server]:
    command = [THUMBNAILS, "serve", function, "--host", "127.0.0.1", "--workers",
               str(workers), "--threads", str(threads)]
    with serving_function(command, env, free_port(), tmp_path / f"{function}.log") as server:
        yield server


def stalled(server: Server, count: int, stack: ExitStack, data: bytes = HALF_HEADERS,
            ) -> list[socket.socket]:
    """`count` connections that send `data` and then nothing (closed with the stack)."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        stack.callback(sock.close)
        sock.sendall(data)
        socks.append(sock)
    return socks


def answer_of(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends on this connection until it closes it (or the deadline)."""
    deadline = time.monotonic() + timeout
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received


def timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    status = requests.get(url, timeout=5).status_code
    return status, time.monotonic() - started


def test_half_sent_headers_do_not_stop_upload_answering(env: dict[str, str],
                                                        tmp_path: Path) -> None:
    """Issue example: four connections that sent half their headers kept upload (1 worker,
    4 threads) from answering anyone, /health included, indefinitely. Here, 4 and then 64."""
    with served("upload", env, tmp_path, workers=1, threads=4) as server, ExitStack() as stack:
        socks = stalled(server, 4, stack)
        for path in ("/health", "/ready"):
            status, seconds = timed_get(server.url + path)
            assert status == 200 and seconds < 2, (path, seconds)
        socks += stalled(server, 60, stack)
        with requests.Session() as session:  # kept alive: its second request is read too
            for _ in range(2):
                started = time.monotonic()
                answer = session.post(f"{server.url}/jobs", files={"file": ("a.png", SMALL)},
                                      timeout=5)
                assert answer.status_code == 202, answer.text
                assert time.monotonic() - started < 2
        # Past HEADER_TIMEOUT_SECONDS (2) each stalled client gets a 408 JSON and is closed.
        answers = [answer_of(sock, timeout=6) for sock in socks]
        for answer in answers:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b'"error": "request_timeout"' in body, body


def test_one_stalled_connection_does_not_stall_resize(env: dict[str, str],
                                                      tmp_path: Path) -> None:
    """Issue example: one such connection stalled half of resize's requests (2 workers of
    one thread each)."""
    with served("resize", env, tmp_path, workers=2, threads=1) as server, ExitStack() as stack:
        stalled(server, 1, stack, b"POST / HTTP/1.1\r\nHost: x\r\nce-id: 1\r\n")
        timings = [timed_get(server.url + "/health") for _ in range(10)]
        assert all(status == 200 for status, _ in timings), timings
        assert max(seconds for _, seconds in timings) < 1, timings


def trickle(server: Server, body: bytes, content_type: str, rate: float,
            stop_after: float) -> tuple[bytes, float, int]:
    """POST body to /jobs at `rate` bytes a second; stop sending at the server's answer or
    after `stop_after` seconds. (the answer, seconds until it came, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     + content_type.encode() + b"\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n")
        started, sent, piece = time.monotonic(), 0, max(1, int(rate / 20))
        sock.setblocking(False)
        while sent < len(body) and time.monotonic() - started < stop_after:
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server answered before the body was in
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            try:
                sent += sock.send(body[sent:sent + piece])
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            time.sleep(piece / rate)  # the client's own pace, not a wait for state
        sock.setblocking(True)
        answer = answer_of(sock, timeout=10)
        return answer, time.monotonic() - started, sent
    finally:
        sock.close()


def multipart(size: int) -> tuple[bytes, str]:
    padding = b"\0" * max(0, size - len(SMALL))  # a PNG with trailing bytes: still a PNG
    body, content_type = encode_multipart_formdata({"file": ("a.png", SMALL + padding)})
    return body, content_type


def test_a_trickled_upload_is_refused_and_holds_no_thread(
        env: dict[str, str], tmp_path: Path, redis_client: redis.Redis) -> None:
    """Issue example: a 20 MB upload trickled at 50 KB/s held a thread six minutes and was
    then accepted. Scaled down: 1 MB at 50 KB/s (20 s to send) with MIN_BODY_RATE 500 KB/s
    (so 2 s + 2 s allowed) is refused with 408 within seconds, and meanwhile upload, with a
    single thread, answers others."""
    with served("upload", env, tmp_path, workers=1, threads=1) as server:
        body, content_type = multipart(1024 * 1024)
        outcome: dict[str, tuple[bytes, float, int]] = {}
        slow = threading.Thread(target=lambda: outcome.setdefault(
            "answer", trickle(server, body, content_type, 50 * 1024, stop_after=30)))
        slow.start()
        for _ in range(5):  # its one thread is free while the body trickles in
            status, seconds = timed_get(server.url + "/health")
            assert status == 200 and seconds < 1, seconds
        slow.join(timeout=40)
        answer, seconds, sent = outcome["answer"]
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"request_timeout" in answer
        assert seconds < 10 and sent < len(body), (seconds, sent)
        assert list(redis_client.scan_iter(match=job_key("*"))) == []


def test_a_body_at_a_fair_rate_may_take_longer_than_the_header_timeout(
        env: dict[str, str], tmp_path: Path, redis_client: redis.Redis) -> None:
    """The body's limit is a rate, not a fixed time: 2 MB at 1 MB/s takes about 2 s, as long
    as HEADER_TIMEOUT_SECONDS, and is accepted (allowed: 2 s + 2 MB / 500 KB/s = 6 s)."""
    with served("upload", env, tmp_path, workers=1, threads=1) as server:
        body, content_type = multipart(2 * 1024 * 1024)
        answer, seconds, sent = trickle(server, body, content_type, 1024 * 1024, stop_after=30)
        assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]
        assert sent == len(body) and seconds > 1.5
        poll(lambda: list(redis_client.scan_iter(match=job_key("*"))) or None, timeout=5)


def test_bodies_over_the_buffer_budget_get_503(env: dict[str, str], tmp_path: Path) -> None:
    """Slow bodies cannot exhaust memory either: a worker holds at most threads x the largest
    request in bodies being received; one more is told to come back (503, Retry-After)."""
    limited = {**env, "MAX_UPLOAD_BYTES": str(1024 * 1024)}
    with served("upload", limited, tmp_path, workers=1, threads=1) as server, \
            ExitStack() as stack:
        length = 1024 * 1024  # the budget: 1 thread x (1 MB + 64 KB framing)
        head = (b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                b"boundary=b\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n")
        first, = stalled(server, 1, stack, head + b"--b")
        second, = stalled(server, 1, stack, head + b"--b")
        answer = answer_of(second, timeout=5)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert b"Retry-After: " in answer and b'"error": "busy"' in answer
        status, _ = timed_get(server.url + "/health")
        assert status == 200
        assert answer_of(first, timeout=8).startswith(b"HTTP/1.1 408 ")  # then it times out
