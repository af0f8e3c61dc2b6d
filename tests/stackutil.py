"""Run the real local stack for integration tests and talk to it over HTTP."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests

from thumbnails import devstack
from thumbnails.config import Config

T = TypeVar("T")


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no block of free ports found")


@contextmanager
def running_stack(config: Config, data_dir: Path, workers: int = 2) -> Iterator[dict[str, str]]:
    """Start every part as `thumbnails dev` does; yield the URLs; stop them all."""
    stack = devstack.start(config, free_port_block(len(devstack.PARTS)), data_dir, workers)
    try:
        yield stack.urls
    finally:
        stack.stop()


def poll(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Call check until it returns something other than None, or fail after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def submit(urls: dict[str, str], data: bytes, name: str = "image",
           **form: Any) -> requests.Response:
    """POST /jobs/ with a multipart file, as the README's curl example does."""
    return requests.post(f"{urls['upload']}/jobs/", files={"file": (name, data)},
                         data=form, timeout=30)


def wait_terminal(urls: dict[str, str], job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job has succeeded or failed."""
    def check() -> dict[str, Any] | None:
        response = requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10)
        if response.status_code == 404:  # an event's job may not be created yet
            return None
        doc: dict[str, Any] = response.json()
        return doc if doc["status"] in ("succeeded", "failed") else None

    return poll(check, timeout)
