"""gunicorn's gthread worker with probe threads of their own: GET /health and GET /ready are
answered while every one of the worker's `--threads` is busy with a real request.

Why: Knative admits containerConcurrency (= workers x threads) real requests into a pod, but
its probes bypass that limit. The queue-proxy runs the readiness probe itself, straight
against the user container's port (knative/serving knative-v1.23.0:
pkg/reconciler/revision/resources/deploy.go makeContainer removes the container's
readinessProbe, queue.go makeQueueContainer hands it to the queue-proxy in
SERVING_READINESS_PROBE; pkg/queue/sharedmain/handlers.go answers it in the Drainer's
HealthCheck, outside the breaker of queue.ProxyHandler; pkg/queue/readiness/probe.go gives
each attempt timeoutSeconds, or 100 ms when periodSeconds is 0). The kubelet sends the
liveness probe to the same port: deploy.go rewriteUserLivenessProbe sets it to the user port
unless the multi-container-probing feature is on, so a probe port of its own is not an
option. Stock gthread hands every accepted connection to one ThreadPoolExecutor of `threads`
threads, first come first served: with all of them in long resizes, a probe waits in the
executor's queue until one ends, readiness flaps and liveness restarts the container mid-job.

How: before a connection goes to a thread, the worker's main thread peeks (MSG_PEEK: nothing
is consumed) at the request line. `GET|HEAD /health|/ready` goes to a pool of PROBE_THREADS
threads that only probes use; everything else goes to the usual pool of `threads`. A new
connection whose request has not arrived yet waits in the poller (not in a thread, as stock
gthread's does for up to 5 s), so the peek always sees the first bytes a client sent. Real
requests in flight per worker stay `threads`, so containerConcurrency and resize's memory
formula (images in flight = workers x threads) are unchanged. A request line split by TCP
before its PROBE_HEAD_BYTES-th byte takes the usual pool: Go's net/http, which both the
kubelet and the queue-proxy use, writes a request's head in one write.

Which worker takes a connection: stock gthread accepts whenever its poller wakes, so a worker
whose threads are all busy can take a real request that then waits for one of them while
another worker sits idle. This worker stops accepting while all of its `threads` are busy,
and takes a waiting connection only once it has waited ACCEPT_GRACE_SECONDS (no idle worker
took it: every worker is busy, and it may be a probe).

Waiting requests (long polls `GET /jobs/{id}?wait=S` and `GET /events`, see
thumbnails.core.changes) go to a third pool of WAIT_THREADS threads, so clients that wait hold no
request thread: with every waiting slot taken, a waiting request goes to the usual pool and
its handler, seeing it is not on a waiting thread (waiting_slot()), answers without waiting.

Memory: when a real request has finished, the worker gives free heap memory back to the
kernel if it holds more than it did idle by thumbnails.core.memory.TRIM_ABOVE_BYTES (a large
upload or image), so a burst of large images does not leave it at its peak.

Built on gthread's internals of gunicorn >= 25.2 (enqueue_req, pending_conns,
on_pending_socket_readable); pyproject.toml bounds the version and
tests/integration/test_probes.py fails if a gunicorn release changes them.
"""

from __future__ import annotations

import re
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.workers import gthread

from .memory import Trimmer
from .probes import PROBE_PATHS

PROBE_THREADS = 2  # liveness and readiness at once; /ready waits on Redis and the store
# How long a connection may wait for an idle worker before a busy one takes it: well under
# Knative's 100 ms aggressive-probe timeout (pkg/queue/readiness/probe.go).
ACCEPT_GRACE_SECONDS = 0.02
PROBE_HEAD_BYTES = 32  # "HEAD /health?" and a little more
PROBE_REQUEST = re.compile(
    rb"(?:GET|HEAD) (?:" + b"|".join(re.escape(p.encode()) for p in PROBE_PATHS) + rb")[ ?]")
# Waiting requests per worker process that hold no request thread: each sleeps on an Event
# (thumbnails.core.changes), so idle ones cost memory (a thread's stack), not CPU.
WAIT_THREADS = 256
WAIT_THREAD_PREFIX = "wait"
WAIT_HEAD_BYTES = 160  # "GET /jobs/<36-character id>?wait=60" with room for other parameters
WAIT_REQUEST = re.compile(
    rb"GET (?:/events[ ?]|/jobs/[^/?# ]+\?(?:[^ ]*&)?wait=)")


_stopping: list[Callable[[], None]] = []


def when_stopping(callback: Callable[[], None]) -> None:
    """Call `callback` when this worker process is told to stop (SIGTERM, SIGQUIT, SIGINT),
    so waiting requests end at once instead of holding the graceful shutdown."""
    _stopping.append(callback)


def _stop_waiting() -> None:
    for callback in _stopping:
        callback()


def is_waiting(head: bytes) -> bool:
    """Whether the first bytes of a request are a long poll's or an event stream's."""
    return WAIT_REQUEST.match(head) is not None


def waiting_slot() -> bool:
    """Whether the current request runs on a waiting thread (may wait up to a minute)."""
    return threading.current_thread().name.startswith(WAIT_THREAD_PREFIX)


def is_probe(head: bytes) -> bool:
    """Whether the first bytes of an HTTP/1.x request are a probe's request line
    (`GET /health HTTP/1.1`, a query string allowed)."""
    return PROBE_REQUEST.match(head) is not None


class ProbeThreadWorker(gthread.ThreadWorker):
    """gthread, plus PROBE_THREADS threads that serve only GET/HEAD of PROBE_PATHS and
    WAIT_THREADS for waiting requests."""

    def init_process(self) -> None:
        self.probe_pool = futures.ThreadPoolExecutor(max_workers=PROBE_THREADS,
                                                     thread_name_prefix="probe")
        self.in_flight = 0  # real requests handed to the usual pool and not yet finished
        self.waiting_since: float | None = None  # a connection seen waiting while busy
        self.wait_pool = futures.ThreadPoolExecutor(max_workers=WAIT_THREADS,
                                                    thread_name_prefix=WAIT_THREAD_PREFIX)
        self.waiting = 0  # requests in wait_pool; only the main thread changes it
        super().init_process()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gthread's poll, but while every request thread is busy the listeners are polled
        only to see whether a connection waits, and one is taken once it has waited
        ACCEPT_GRACE_SECONDS (an idle worker would have taken it by then)."""
        busy = self.in_flight >= self.cfg.threads
        if not busy or not self._accepting:
            self.waiting_since = None
            super().wait_for_and_dispatch_events(timeout)
            return
        now = time.monotonic()
        waiting = bool(select.select(self.sockets, [], [], 0)[0])
        if not waiting:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = now
        if self.waiting_since is not None and now - self.waiting_since >= ACCEPT_GRACE_SECONDS:
            self.waiting_since = None
            super().wait_for_and_dispatch_events(0)  # accept it with everything else due
            return
        self.set_accept_enabled(False)
        try:
            super().wait_for_and_dispatch_events(min(timeout, ACCEPT_GRACE_SECONDS / 2))
        finally:
            self.set_accept_enabled(True)

    def run(self) -> None:
        # The app is loaded: what the worker holds now is its idle size (thumbnails.core.memory).
        self.trimmer = Trimmer()
        try:
            super().run()
        finally:
            self.probe_pool.shutdown(wait=False)
            self.wait_pool.shutdown(wait=False)

    def handle_exit(self, sig: Any, frame: Any) -> None:
        _stop_waiting()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: Any, frame: Any) -> None:
        _stop_waiting()
        self.probe_pool.shutdown(wait=False)
        self.wait_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    def enqueue_req(self, conn: gthread.TConn) -> None:
        """Hand the connection's next request to the probe pool or the usual one; a new
        connection with nothing sent yet waits in the poller first."""
        head = self._head(conn)
        if head is None:
            self._wait_for_request(conn)
            return
        if is_waiting(head) and self.waiting < WAIT_THREADS:
            self.waiting += 1
            future = self.wait_pool.submit(self.handle, conn)
            future.add_done_callback(
                lambda fut: self.method_queue.defer(self._finish_waiting, conn, fut))
            return
        if is_probe(head):
            future = self.probe_pool.submit(self.handle, conn)
            future.add_done_callback(
                lambda fut: self.method_queue.defer(self.finish_request, conn, fut))
            return
        self.in_flight += 1
        future = self.tpool.submit(self.handle, conn)
        future.add_done_callback(
            lambda fut: self.method_queue.defer(self._finish_real, conn, fut))

    def _finish_real(self, conn: gthread.TConn, fut: futures.Future[Any]) -> None:
        self.in_flight -= 1
        self.finish_request(conn, fut)
        self.trimmer.after_request()  # a large upload or image freed: give it back

    def _finish_waiting(self, conn: gthread.TConn, fut: futures.Future[Any]) -> None:
        self.waiting -= 1
        self.finish_request(conn, fut)

    def _head(self, conn: gthread.TConn) -> bytes | None:
        """The request's first bytes without consuming them; None if a new connection has
        sent nothing yet. Bytes gunicorn has already read ahead come first."""
        whole = getattr(conn, "buffered_request", None)  # read by thumbnails.core.buffering
        if whole:
            return bytes(whole[:WAIT_HEAD_BYTES])
        parser = conn.parser
        buffered = parser.unreader.buf.getvalue() if hasattr(parser, "unreader") else b""
        if buffered:
            return bytes(buffered[:WAIT_HEAD_BYTES])
        try:
            return conn.sock.recv(WAIT_HEAD_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            # Only a new connection can have nothing to read: the poller woke up the others.
            return None if not conn.initialized and not conn.data_ready else b""
        except OSError:
            return b""  # the usual pool's handle() meets the error and closes

    def _wait_for_request(self, conn: gthread.TConn) -> None:
        """As gthread does with a connection that sent nothing for 5 s, but at once: wait in
        the poller, and close it if nothing arrives within that time plus keepalive."""
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + gthread.DEFAULT_WORKER_DATA_TIMEOUT + \
            self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))
