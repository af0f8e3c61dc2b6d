"""Knative's probes are answered while every request slot of a function is busy.

Each function runs as its container does (`thumbnails serve <fn>` with the workers and
threads of the rendered chart's Service, knative/). The test holds exactly
containerConcurrency real requests in flight: each sends its headers and its body in chunked
transfer coding without the last chunk, so the real handler blocks reading the body, for as
long as the test likes, without using CPU. (A body with a Content-Length would not do: the
worker reads such a body whole in its event loop before a thread sees the request,
thumbnails.core.buffering; a chunked one of unknown length goes to a thread after its headers.)
It then probes /health as the kubelet does (one GET, the
livenessProbe's timeoutSeconds) and /ready as the queue-proxy does (knative/serving
knative-v1.23.0 pkg/queue/readiness/probe.go: with periodSeconds 0, attempts of 100 ms every
50 ms for 10 s; else one attempt of timeoutSeconds).

The same test with gunicorn's stock gthread worker (the configuration before
thumbnails.core.probeworker) shows the defect: there both probes time out.

How the test knows every slot is busy (no sleeping): the kernel's receive queue of the
server's side of each held connection (/proc/net/tcp) is empty only once a worker thread
has read the request; and which worker accepted a connection shows in /proc/<pid>/fd.
gunicorn does not balance connections between workers, so one that lands on a worker whose
threads are all held is closed and sent again until each worker holds `threads` of them.
"""

from __future__ import annotations

import io
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3 import encode_multipart_formdata

from tests.support import k8s
from tests.support.gunicornproc import children, holds_connection, serving_function, unread_bytes
from tests.support.images import kinds
from tests.support.servers import free_port
from tests.support.stackutil import poll
from thumbnails import upload
from thumbnails.core import events, probeworker, serving
from thumbnails.core.config import Config

THUMBNAILS = str(Path(sys.executable).with_name("thumbnails"))
KUBE_PROBE = {"User-Agent": "kube-probe/1.34"}  # what kubelet and queue-proxy send
# knative/serving knative-v1.23.0 pkg/queue/readiness/probe.go
AGGRESSIVE_TIMEOUT, AGGRESSIVE_INTERVAL, AGGRESSIVE_POLL = 0.1, 0.05, 10.0


def service(name: str) -> dict[str, Any]:
    """The rendered chart's Knative Service `name` (knative/)."""
    return k8s.by_name(k8s.ksvcs(k8s.knative_objects()))[name]


def sizing(svc: dict[str, Any]) -> tuple[int, int, int]:
    """(containerConcurrency, workers, threads) of a Service's template."""
    spec = svc["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    workers, threads = (int(args[args.index(flag) + 1]) for flag in ("--workers", "--threads"))
    return spec["containerConcurrency"], workers, threads


def probes(svc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    container = svc["spec"]["template"]["spec"]["containers"][0]
    return container["livenessProbe"], container["readinessProbe"]


def answered_in_time(url: str, timeout: float) -> bool:
    """One probe attempt: a 2xx or 3xx answer within timeout seconds (Kubernetes' and
    Knative's rule for HTTP probes)."""
    started = time.monotonic()
    try:
        answer = requests.get(url, headers=KUBE_PROBE, timeout=timeout)
    except requests.RequestException:
        return False
    return 200 <= answer.status_code < 400 and time.monotonic() - started <= timeout


def kubelet_liveness(base: str, probe: dict[str, Any]) -> bool:
    """The kubelet's liveness probe: one GET of timeoutSeconds (default 1)."""
    return answered_in_time(base + probe["httpGet"]["path"], probe.get("timeoutSeconds", 1))


def queue_proxy_readiness(base: str, probe: dict[str, Any]) -> bool:
    """The queue-proxy's readiness probe of the user container."""
    url = base + probe["httpGet"]["path"]
    if probe.get("periodSeconds", 0):
        return answered_in_time(url, probe.get("timeoutSeconds", 1))
    try:
        poll(lambda: answered_in_time(url, AGGRESSIVE_TIMEOUT) or None,
             timeout=AGGRESSIVE_POLL, interval=AGGRESSIVE_INTERVAL)
    except AssertionError:
        return False
    return True


def held_request(function: str, config: Config) -> bytes:
    """A real request of the function, all but its end: resize gets an image.uploaded event,
    upload a multipart PNG, each body in one chunk (RFC 9112 section 7.1) without the last
    chunk that would end it."""
    if function == "resize":
        job = upload.create_app(config).test_client().post(
            "/jobs", data={"file": (io.BytesIO(kinds()["png"][0]), "a.png")}).json["job_id"]
        headers, body = events.to_http(
            events.new_event(events.IMAGE_UPLOADED, "/test", {"job_id": job}))
        path = "/"
    else:
        body, content_type = encode_multipart_formdata(
            {"file": ("a.png", kinds()["png"][0], "image/png")})
        headers, path = {"Content-Type": content_type}, "/jobs"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n"


@contextmanager
def slots_held(port: int, workers: list[int], threads: int, request: bytes) -> Iterator[int]:
    """Hold `threads` requests in flight on each worker (all of its slots); yield how many."""
    with ExitStack() as held:
        per_worker = dict.fromkeys(workers, 0)
        while sum(per_worker.values()) < len(workers) * threads:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            client = sock.getsockname()[1]
            sock.sendall(request)
            owner = poll(lambda c=client: next(
                (w for w in workers if holds_connection(w, port, c)), None), timeout=10)
            if per_worker[owner] == threads:  # queued behind that worker's busy threads
                sock.close()
                continue
            held.callback(sock.close)
            per_worker[owner] += 1
            # A worker thread has read the request: it is in the handler, waiting for the body.
            poll(lambda c=client: unread_bytes(port).get(c) == 0 or None, timeout=10)
        yield sum(per_worker.values())


@pytest.mark.parametrize("function", ["resize", "upload"])
@pytest.mark.parametrize("worker", ["probe threads", "stock gthread"])
def test_probes_are_answered_while_every_slot_is_busy(function: str, worker: str,
                                                      env: dict[str, str],
                                                      tmp_path: Path) -> None:
    svc = service(function)
    concurrency, workers, threads = sizing(svc)
    assert concurrency == workers * threads, "containerConcurrency is every request slot"
    liveness, readiness = probes(svc)
    port = free_port()
    if worker == "probe threads":  # the container's own command
        command = [THUMBNAILS, "serve", function, "--host", "127.0.0.1",
                   "--workers", str(workers), "--threads", str(threads)]
    else:  # the configuration before: gunicorn's gthread worker as it comes
        command = serving.gunicorn_command(function, f"127.0.0.1:{port}", workers, threads,
                                           worker_class="gthread")
    config = Config(redis_url=env["REDIS_URL"], data_dir=Path(env["DATA_DIR"]))
    request = held_request(function, config)
    with serving_function(command, env, port, tmp_path / "gunicorn.log") as server:
        pids = poll(lambda: children(server.process.pid)
                    if len(children(server.process.pid)) == workers else None)
        with slots_held(port, pids, threads, request) as in_flight:
            assert in_flight == concurrency
            alive = kubelet_liveness(server.url, liveness)
            ready = queue_proxy_readiness(server.url, readiness)
            # Still all in flight, on the same workers: the probes took no slot from them.
            assert sum(1 for n in unread_bytes(port).values() if n == 0) >= concurrency
            assert children(server.process.pid) == pids
        if worker == "probe threads":
            assert alive and ready, f"liveness {alive}, readiness {ready}\n{server.stderr()}"
        else:
            assert not alive and not ready, "the stock worker answered probes while busy"


@pytest.mark.parametrize(("head", "probe"), [
    (b"GET /health HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n", True),  # the kubelet's
    (b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n", True),  # the queue-proxy's
    (b"HEAD /ready HTTP/1.0\r\n", True),
    (b"GET /health?verbose=1 HTTP/1.1\r\n", True),
    (b"GET /healthz HTTP/1.1\r\n", False),
    (b"GET /ready/more HTTP/1.1\r\n", False),
    (b"POST /health HTTP/1.1\r\n", False),
    (b"GET /jobs/ HTTP/1.1\r\n", False),
    (b"GET /hea", False),  # too little to tell: the usual threads
    (b"", False),
])
def test_which_requests_get_the_probe_threads(head: bytes, probe: bool) -> None:
    assert probeworker.is_probe(head) is probe
