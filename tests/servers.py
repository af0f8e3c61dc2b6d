"""Helpers for tests that need a real server on loopback (plain functions, no fixtures)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 30.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll url until it answers with a status below 500; fail after the deadline.

    If process is given and exits first, fail at once instead of waiting out the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return  # the server answers; the status is the caller's business
        except OSError:
            pass  # not listening yet
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout}s")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate process, killing it if it has not exited within timeout."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def moto_s3_server(timeout: float = 30.0) -> Iterator[str]:
    """Run moto's S3 server on a free loopback port; yield its endpoint "127.0.0.1:PORT"."""
    port = free_port()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        try:
            try:
                wait_for_http(f"http://127.0.0.1:{port}/", timeout, process)
            except (RuntimeError, TimeoutError) as exc:
                output.seek(0)
                tail = output.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"moto server did not start: {exc}\n{tail}") from exc
            log.info("moto S3 server on 127.0.0.1:%d (pid %d)", port, process.pid)
            yield f"127.0.0.1:{port}"
        finally:
            stop(process)
