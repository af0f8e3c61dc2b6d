"""A gunicorn worker class that reads each request whole before a thread sees it, so slow
clients cost a buffer, never a thread (`--worker-class thumbnails.core.buffering.BufferingWorker`,
from thumbnails.core.serving: locally and in containers alike).

gunicorn's gthread worker hands a connection to a thread as soon as its first byte arrives;
the thread then blocks until the headers and the body are in. Four connections that send
half their headers and stop hold upload's four threads (and its probes wait behind them);
one holds one of resize's two. This worker keeps gthread's thread pool, keep-alive and
shutdown, but reads in its event loop (non-blocking, like nginx's request buffering):

- the headers must be complete within HEADER_TIMEOUT_SECONDS of the first byte awaited;
- a body with a Content-Length is read into memory at MIN_BODY_RATE bytes a second at
  least (plus the header allowance), and only then is the request handed to a thread;
- past a deadline the client gets `408 {"error": "request_timeout", ...}` and is closed;
- bodies held at once are bounded (threads x the largest request): past that, 503 with
  Retry-After, so slow uploads cannot exhaust memory either.

What is not buffered: a chunked body (its length unknown) and one over the request limit (the
app refuses it as 413 before reading). Those reach a thread after their headers, with a
socket timeout of HEADER_TIMEOUT_SECONDS for each read.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import selectors
import socket
import struct
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn

from .config import Config
from .errors import DependencyUnavailable, RequestTimeout
from .probeworker import ProbeThreadWorker

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # beyond this gunicorn's parser refuses the request anyway
RECV_BYTES = 256 * 1024
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d{1,15})[ \t]*\r\n", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.I)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue", re.I)


class BufferingWorker(ProbeThreadWorker):
    """gthread, but a request reaches a thread only once its headers and body are in; then
    probes go to the probe threads (ProbeThreadWorker.enqueue_req), the rest to `threads`."""

    def init_process(self) -> None:
        config = Config.from_env()
        self.header_timeout = config.header_timeout_seconds
        self.min_body_rate = config.min_body_rate
        self.max_request_bytes = config.max_upload_bytes + 64 * 1024  # as web.bare_app
        self.buffer_budget = self.cfg.threads * self.max_request_bytes
        self.buffered = 0  # bytes promised to bodies being read now
        self.reading: dict[int, _Reading] = {}  # by id(conn)
        super().init_process()

    # -- gthread's entry points ---------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and start reading its request in the event loop."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:  # as gthread: another worker took it, or it was aborted
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        self._read(conn)

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection sends its next request: read it whole first, too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read(conn)

    def handle(self, conn: TConn) -> Any:
        """In a thread: give the parser what the event loop read, then serve as gthread."""
        reading = getattr(conn, "buffered_request", None)
        if reading is not None:
            conn.buffered_request = None
            conn.data_ready = True
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(reading)
        return super().handle(conn)

    def murder_pending(self) -> None:
        """gthread's deadline round (about once a second): also the requests being read."""
        super().murder_pending()
        now = time.monotonic()
        for reading in [r for r in self.reading.values() if r.deadline <= now]:
            self._refuse(reading, RequestTimeout(
                "the request's headers did not arrive in time" if reading.body_end is None
                else "the request's body arrived too slowly"))

    # -- reading ------------------------------------------------------------------------------

    def _read(self, conn: TConn) -> None:
        reading = _Reading(conn, time.monotonic() + self.header_timeout)
        self.reading[id(conn)] = reading
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, reading))

    def _readable(self, reading: _Reading, sock: socket.socket) -> None:
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._forget(reading)
            self.nr_conns -= 1
            reading.conn.close()
            return
        reading.data += data
        if reading.body_end is None:
            end = reading.data.find(b"\r\n\r\n")
            if end < 0:
                if len(reading.data) > MAX_HEADER_BYTES:
                    self._hand_over(reading)  # gunicorn's parser answers it (431/400)
                return
            head = bytes(reading.data[:end + 2])
            length = _CONTENT_LENGTH.search(head)
            if _CHUNKED.search(head) or length is None:
                self._hand_over(reading)  # no body, or one of unknown length
                return
            size = int(length.group(1))
            if _EXPECT_CONTINUE.search(head):  # the client waits for this before its body
                _send_quietly(reading.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            if size > self.max_request_bytes:
                self._hand_over(reading)  # the app refuses it (413) before reading it
                return
            if self.buffered + size > self.buffer_budget:
                self._refuse(reading, _Busy("too many request bodies are being received"))
                return
            reading.body_end, reading.reserved = end + 4 + size, size
            self.buffered += size
            reading.deadline = time.monotonic() + self.header_timeout + size / self.min_body_rate
        if len(reading.data) >= reading.body_end:
            self._hand_over(reading)

    def _hand_over(self, reading: _Reading) -> None:
        self._forget(reading)
        reading.conn.buffered_request = bytes(reading.data)
        # Whatever the thread still reads itself (a chunked body) waits at most this long per
        # read: SO_RCVTIMEO holds in blocking mode, which gthread's thread sets.
        seconds = int(self.header_timeout)
        micros = int((self.header_timeout - seconds) * 1_000_000)
        reading.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                     struct.pack("ll", seconds, micros))
        self.enqueue_req(reading.conn)

    def _forget(self, reading: _Reading) -> None:
        self.reading.pop(id(reading.conn), None)
        self.buffered -= reading.reserved
        reading.reserved = 0
        try:
            self.poller.unregister(reading.conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _refuse(self, reading: _Reading, error: RequestTimeout | DependencyUnavailable) -> None:
        """Answer the error as JSON (best effort: the socket is not waited for) and close."""
        self._forget(reading)
        self.nr_conns -= 1
        body = json.dumps({"error": error.code, "message": error.message}).encode()
        retry = (f"Retry-After: {error.retry_after}\r\n"
                 if isinstance(error, DependencyUnavailable) else "")
        head = (f"HTTP/1.1 {error.status} {_REASONS[error.status]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{retry}"
                "Connection: close\r\n\r\n").encode()
        log.log(error.log_level, "%s: %d %s: %s (client %s)", error.summary, error.status,
                error.code, error.message, reading.conn.client)
        _send_quietly(reading.conn.sock, head + body)
        reading.conn.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the socket takes now (a short answer fits its buffer); never wait."""
    try:
        sock.send(data)
    except OSError:
        pass


class _Busy(DependencyUnavailable):
    code = "busy"
    summary = "request bodies over budget"


_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}


class _Reading:
    """A request being read: its bytes so far, when it must be complete, and (once the
    headers are in) where its body ends and how many bytes it holds of the budget."""

    __slots__ = ("conn", "deadline", "data", "body_end", "reserved")

    def __init__(self, conn: TConn, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.data = bytearray()
        self.body_end: int | None = None
        self.reserved = 0
