"""A function's gunicorn as a container runs it, in its own process group, and what /proc
tells about its workers and connections (plain helpers, no fixtures)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.stackutil import poll


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker(self) -> int:
        """The one gunicorn worker (the master's child)."""
        return poll(lambda: (children(self.process.pid) or [None])[0], timeout=30)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def children(pid: int) -> list[int]:
    """The child processes of pid (a gunicorn master's workers)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def tcp_inodes(port: int) -> dict[tuple[int, str], str]:
    """{(remote port, state): inode} of the loopback sockets whose local port is `port`."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.split(":")[1], 16) == port:
            found[(int(remote.split(":")[1], 16), state)] = inode
    return found


def fd_links(pid: int) -> dict[str, str]:
    """{fd: link} of a process's open files (sockets read `socket:[inode]`)."""
    links = {}
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links[fd.name] = os.readlink(fd)
            except OSError:
                continue
    except FileNotFoundError:
        pass
    return links


def holds_connection(worker: int, port: int, client_port: int) -> bool:
    """Whether the worker has accepted the connection from our client_port."""
    inode = tcp_inodes(port).get((client_port, "01"))  # 01: ESTABLISHED
    return inode is not None and f"socket:[{inode}]" in fd_links(worker).values()


def unread_bytes(port: int) -> dict[int, int]:
    """{client port: bytes the server has not read yet} of the established loopback
    connections to `port` (/proc/net/tcp's rx_queue of the server's side)."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        if int(local.split(":")[1], 16) == port and state == "01":  # 01: ESTABLISHED
            found[int(remote.split(":")[1], 16)] = int(queues.split(":")[1], 16)
    return found


@contextmanager
def serving_function(command: list[str], env: dict[str, str], port: int,
                     log: Path) -> Iterator[Server]:
    """Run a function's gunicorn in its own process group; wait until /ready answers."""
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, env={**os.environ, **env, "PORT": str(port)},
                                   stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
    server = Server(process, port, log)
    try:
        def ready() -> bool | None:
            assert process.poll() is None, f"exited early: {server.stderr()}"
            try:
                return requests.get(f"{server.url}/ready", timeout=5).status_code == 200 or None
            except (requests.ConnectionError, requests.Timeout):  # still booting
                return None

        poll(ready, timeout=30)
        yield server
    finally:
        if process.poll() is None:  # a failed test: do not leave the group behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

