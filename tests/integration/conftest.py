"""Shared fixtures: a real Valkey server for the session and a clean client per test, and a
real S3 server (SeaweedFS) for the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support import engine
from tests.support.servers import S3Server, free_port, seaweedfs_s3_server
from tests.support.subscriber import Subscriber, serving
from thumbnails.localredis import start_valkey


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Valkey server on a free loopback port, stopped at the end of the session."""
    port = free_port()
    process = start_valkey(port, Path(tmp_path_factory.mktemp("valkey")), persist=False)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a flushed database."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[S3Server]:
    """The session's S3 server: SeaweedFS on loopback, ready to store objects
    (endpoint "host:port", access key, secret key). Tests share it: each uses its own bucket."""
    with seaweedfs_s3_server() as server:
        yield server


@pytest.fixture
def serve() -> Iterator[Callable[[Subscriber], Subscriber]]:
    """Start recording HTTP subscribers for one test."""
    yield from serving()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the container tests measured (image size, cold starts, memory)."""
    if engine.FIGURES:
        terminalreporter.write_sep("=", "container figures")
        for line in engine.FIGURES:
            terminalreporter.write_line(line)
