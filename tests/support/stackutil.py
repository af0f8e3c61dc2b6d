"""Run the real local stack for integration tests and talk to it over HTTP."""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests

from thumbnails.core.config import Config
from thumbnails.local import devstack
from thumbnails.local.broker.settings import BrokerSettings

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
def running_stack(config: Config, data_dir: Path, workers: int = 2,
                  broker: BrokerSettings | None = None) -> Iterator[dict[str, str]]:
    """Start every part as `thumbnails dev` does; yield the URLs; stop them all."""
    stack = devstack.start(config, free_port_block(len(devstack.PARTS)), data_dir, workers,
                           broker or BrokerSettings())
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


# Fault injection: the Stack itself (its processes), process trees, and the whole job list.

@contextmanager
def started_stack(config: Config, data_dir: Path, workers: int = 2,
                  broker: BrokerSettings | None = None) -> Iterator[devstack.Stack]:
    """As running_stack, but yield the Stack (urls and processes) so a test can harm parts;
    whatever a test stopped with SIGSTOP is resumed before the stack is stopped."""
    stack = devstack.start(config, free_port_block(len(devstack.PARTS)), data_dir, workers,
                           broker or BrokerSettings())
    try:
        yield stack
    finally:
        for process in stack.processes.values():
            if process.poll() is None:
                signal_group(process.pid, signal.SIGCONT)
        stack.stop()


def signal_group(pid: int, signum: int) -> None:
    """Signal a part's whole process group (each part leads its own, workers included)."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def child_pids(pid: int) -> list[int]:
    """The live children of a process (a gunicorn arbiter's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def all_jobs(urls: dict[str, str], limit: int = 100) -> dict[str, str]:
    """Every job GET /jobs lists, following the cursor page by page: {job id: status}."""
    jobs: dict[str, str] = {}
    params: dict[str, Any] = {"limit": limit}
    for _ in range(100_000):
        response = requests.get(f"{urls['status']}/jobs", params=params, timeout=10)
        response.raise_for_status()
        for item in response.json():
            assert item["job_id"] not in jobs, f"job {item['job_id']} listed twice"
            jobs[item["job_id"]] = item["status"]
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            return jobs
        params = {"limit": limit, "cursor": cursor}
    raise AssertionError("GET /jobs paging did not end")


def job_debug(urls: dict[str, str], job_id: str) -> dict[str, Any]:
    """GET /jobs/{id}/debug (the stack runs with DEBUG_ENDPOINT on)."""
    response = requests.get(f"{urls['status']}/jobs/{job_id}/debug", timeout=10)
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


def scraped(base_url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels in a function's GET /metrics (all its
    workers), e.g. scraped(url, "thumbnails_http_requests_total", route="/", status="204")."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name
               and all(sample.labels.get(k) == v for k, v in labels.items()))
