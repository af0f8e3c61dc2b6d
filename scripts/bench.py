#!/usr/bin/env python3
"""Benchmark: this project's local stack side by side with its peers, in one run.

Systems, each making a 100x100 PNG from the same images:
  - plain Pillow (`Image.open`, `thumbnail((100, 100))`, PNG save), in-process;
  - this project's `make_thumbnail` alone, in-process;
  - libvips (`pyvips.Image.thumbnail_buffer`, PNG), in-process;
  - thumbor from PyPI (file loader, `fit-in/100x100/filters:format(png)`), a real HTTP
    server on 127.0.0.1, one synchronous request per job;
  - this project's whole local stack (`thumbnails dev`: filesystem store, embedded Valkey,
    local broker, three gunicorns): POST /jobs, then the long poll GET /jobs/{id}?wait=30;
  - the original FastAPI + RQ design, if running (--original-url, --original-pids):
    POST /jobs/, then GET /jobs/{id} every --poll-interval until it ends.
Images: a 1600x1200 q90 JPEG (the headline), a 12 MP JPEG and a 2 MP PNG.

Per system and image, over --rounds rounds (systems interleaved within a round): CPU ms
per job (utime+stime from /proc/<pid>/stat of every process of the system, children
included; the client's CPU excluded), its ratio to plain Pillow in the same round, jobs/s
at --concurrency, p50/p99 time to completion; medians with min-max over rounds. Then cold
starts, and upload's submit latency with resize running and frozen.

Prints the results only; the stack's and peers' logs go to --log-dir (build/bench/).
--report writes the Markdown report and a plot next to it (docs/benchmarks.md, .png).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import os
import platform
import random
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFilter
from urllib3 import encode_multipart_formdata

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
BOX = (100, 100)


# --- images --------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageKind:
    """One input of the benchmark: several photo-like variants of one size and format."""

    key: str
    label: str
    size: tuple[int, int]
    format: str  # Pillow's format name: JPEG or PNG
    variants: int
    share: float  # jobs per round, as a share of --jobs

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "JPEG" else "png"

    @property
    def content_type(self) -> str:
        return f"image/{self.format.lower()}"


IMAGE_KINDS = (
    ImageKind("jpeg", "1600x1200 q90 JPEG", (1600, 1200), "JPEG", 8, 1.0),
    ImageKind("jpeg12mp", "4000x3000 (12 MP) q90 JPEG", (4000, 3000), "JPEG", 2, 0.25),
    ImageKind("png2mp", "1632x1224 (2 MP) PNG", (1632, 1224), "PNG", 2, 0.25),
)


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like RGB picture: a gradient, 40 blurred ellipses and noise (no two alike)."""
    rng = random.Random(seed)
    width, height = size
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(base)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + rng.randrange(width // 32, width // 4),
                      y + rng.randrange(height // 24, height // 3)), colour)
    noise = Image.effect_noise(size, 40 + seed % 20).convert("RGB")
    return Image.blend(base.filter(ImageFilter.GaussianBlur(2)), noise, 0.15)


def make_images(kind: ImageKind) -> list[bytes]:
    """The encoded variants of one kind (JPEG at quality 90, PNG at Pillow's default)."""
    out = []
    for i in range(kind.variants):
        buffer = io.BytesIO()
        photo(kind.size, 42 + i).save(buffer, kind.format,
                                      **({"quality": 90} if kind.format == "JPEG" else {}))
        out.append(buffer.getvalue())
    return out


# --- CPU accounting --------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, CPU ticks of the process and its reaped children), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # proc(5): fields 4 ppid, 14 utime, 15 stime, 16 cutime, 17 cstime; [0] here is field 3
    return int(fields[1]), sum(int(v) for v in fields[11:15])


def tree_cpu(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each part: its root processes, all their
    living descendants, and the children they reaped (cutime/cstime, proc(5)).

    roots: part name -> root pids. A descendant of two roots counts for the first given.
    A process that dies between two readings moves from its own count to its parent's
    cutime, so the difference of two readings is the CPU used in between.
    """
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    used = {}
    seen: set[int] = set()
    for part, pids in roots.items():
        ticks = 0
        todo = [pid for pid in pids if pid in stats]
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            ticks += stats[pid][1]
            todo.extend(children.get(pid, ()))
        used[part] = ticks / TICK
    return used


def own_cpu() -> float:
    """CPU seconds this process (the client) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- one round of one system -------------------------------------------------------------

@dataclass
class Sample:
    """One round of one system on one image kind."""

    jobs: int
    wall_s: float
    cpu_s: dict[str, float]  # part -> CPU seconds in the round
    latencies_ms: list[float]
    client_cpu_s: float = 0.0

    @property
    def cpu_ms_per_job(self) -> float:
        return sum(self.cpu_s.values()) * 1000 / self.jobs

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least 1
    return ordered[int(rank) - 1]


def settle(roots: dict[str, list[int]], quiet_ticks: int = 2, timeout: float = 5.0) -> None:
    """Wait until the system's work after the last answer (events, acks) has ended: its CPU
    grows by at most quiet_ticks clock ticks in 0.1 s, or timeout passes."""
    deadline = time.monotonic() + timeout
    last = sum(tree_cpu(roots).values())
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = sum(tree_cpu(roots).values())
        if now - last <= quiet_ticks / TICK:
            return
        last = now


class System:
    """A thumbnailer under test. run() makes `jobs` thumbnails of `kind` at `concurrency`."""

    name = ""
    notes = ""

    def roots(self) -> dict[str, list[int]]:
        raise NotImplementedError

    def run(self, kind: ImageKind, jobs: int, concurrency: int) -> Sample:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --- in-process systems ---------------------------------------------------------------------

def thumbnail_pillow(data: bytes) -> bytes:
    """Plain Pillow: open, thumbnail((100, 100)), save as PNG."""
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail(BOX)
        out = io.BytesIO()
        image.save(out, "PNG")
    return out.getvalue()


def thumbnail_vips(data: bytes) -> bytes:
    """libvips: thumbnail_buffer into 100x100, PNG."""
    import pyvips

    image = pyvips.Image.thumbnail_buffer(data, BOX[0], height=BOX[1])
    return bytes(image.write_to_buffer(".png"))


def thumbnail_project(data: bytes) -> bytes:
    """This project's imaging core with its default options (100x100 contain, PNG)."""
    from thumbnails import imaging

    return imaging.make_thumbnail(data, imaging.ThumbnailOptions(), imaging.Limits()).data


THUMBNAILERS: dict[str, Callable[[bytes], bytes]] = {
    "pillow": thumbnail_pillow, "vips": thumbnail_vips, "project": thumbnail_project}


def _in_process_worker(connection: Any, method: str,
                       images: dict[str, list[bytes]]) -> None:
    make = THUMBNAILERS[method]
    for key, start, count in iter(connection.recv, None):
        variants = images[key]
        latencies = []
        for i in range(start, start + count):
            began = time.perf_counter()
            make(variants[i % len(variants)])
            latencies.append((time.perf_counter() - began) * 1000)
        connection.send(latencies)


class InProcess(System):
    """`concurrency` forked worker processes, each making thumbnails in a loop."""

    def __init__(self, name: str, method: str, images: dict[str, list[bytes]],
                 processes: int, notes: str) -> None:
        self.name, self.notes = name, notes
        context = multiprocessing.get_context("fork")
        self.workers = []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(target=_in_process_worker,
                                      args=(theirs, method, images), daemon=True)
            process.start()
            self.workers.append((process, ours))

    def roots(self) -> dict[str, list[int]]:
        return {"workers": [p.pid for p, _ in self.workers if p.pid is not None]}

    def run(self, kind: ImageKind, jobs: int, concurrency: int) -> Sample:
        n = len(self.workers)
        counts = [jobs // n + (1 if i < jobs % n else 0) for i in range(n)]
        before, started = tree_cpu(self.roots()), time.perf_counter()
        offset = 0
        for (_, connection), count in zip(self.workers, counts, strict=True):
            connection.send((kind.key, offset, count))
            offset += count
        latencies = [ms for _, connection in self.workers for ms in connection.recv()]
        wall = time.perf_counter() - started
        after = tree_cpu(self.roots())
        return Sample(jobs, wall, {k: after[k] - before[k] for k in after}, latencies)

    def close(self) -> None:
        for process, connection in self.workers:
            connection.send(None)
            process.join(timeout=10)


# --- HTTP systems ------------------------------------------------------------------------

class Client:
    """Keep-alive HTTP connections, one per thread and host, for a light client."""

    def __init__(self) -> None:
        self.local = threading.local()

    def request(self, url: str, method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; reconnects once if the connection was closed."""
        parts = urlsplit(url)
        connections = self.local.__dict__.setdefault("connections", {})
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            connection = connections.get(parts.netloc)
            if connection is None:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
                connections[parts.netloc] = connection
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                del connections[parts.netloc]
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class HttpSystem(System):
    """A service reached over HTTP; one_job() runs one job to completion."""

    def __init__(self, images: dict[str, list[bytes]]) -> None:
        self.client = Client()
        self.bodies = {kind.key: [encode_multipart_formdata(
            {"file": (f"bench.{kind.extension}", data, kind.content_type)})
            for data in images[kind.key]] for kind in IMAGE_KINDS}

    def one_job(self, kind: ImageKind, index: int) -> None:
        raise NotImplementedError

    def run(self, kind: ImageKind, jobs: int, concurrency: int) -> Sample:
        roots = self.roots()

        def timed(index: int) -> float:
            began = time.perf_counter()
            self.one_job(kind, index)
            return (time.perf_counter() - began) * 1000

        before, client_before = tree_cpu(roots), own_cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(timed, range(jobs)))
        wall = time.perf_counter() - started
        settle(roots)
        after = tree_cpu(roots)
        return Sample(jobs, wall, {k: after[k] - before[k] for k in after}, latencies,
                      own_cpu() - client_before)


def submitted_job_id(status: int, answer: bytes, expected: int) -> str:
    """The job id of a submit's answer, or RuntimeError with what the service said."""
    if status != expected:
        raise RuntimeError(f"submit answered {status}: {answer[:300]!r}")
    return str(json.loads(answer)["job_id"])


class Stack(HttpSystem):
    """This project's local stack, started here (thumbnails.devstack)."""

    name = "this project, whole local stack"

    def __init__(self, images: dict[str, list[bytes]], port: int, data_dir: Path,
                 workers: int) -> None:
        from thumbnails import devstack
        from thumbnails.config import Config

        super().__init__(images)
        self.stack = devstack.start(Config(), port, data_dir, workers)
        self.urls = self.stack.urls
        self.notes = (f"`thumbnails dev` parts: resize {workers} gunicorn workers x 1 thread, "
                      f"upload and status {max(1, workers // 2)} x 4 threads, local broker, "
                      "embedded Valkey, filesystem store; POST /jobs then GET "
                      "/jobs/{id}?wait=30 until it ends")

    def roots(self) -> dict[str, list[int]]:
        processes = self.stack.processes
        names = {"upload": ("upload",), "broker": ("broker", "dispatcher"),
                 "resize": ("resize",), "status": ("status",), "valkey": ("redis",)}
        return {part: [processes[n].pid for n in ns if n in processes]
                for part, ns in names.items()}

    def submit(self, kind: ImageKind, index: int) -> str:
        body, content_type = self.bodies[kind.key][index % kind.variants]
        status, answer = self.client.request(self.urls["upload"] + "/jobs", "POST", body,
                                             {"Content-Type": content_type})
        return submitted_job_id(status, answer, 202)

    def wait(self, job_id: str) -> None:
        while True:
            status, answer = self.client.request(f"{self.urls['status']}/jobs/{job_id}?wait=30")
            doc = json.loads(answer)
            if status != 200 or doc.get("status") == "failed":
                raise RuntimeError(f"job {job_id}: {status} {answer[:300]!r}")
            if doc["status"] == "succeeded":
                return

    def one_job(self, kind: ImageKind, index: int) -> None:
        self.wait(self.submit(kind, index))

    def close(self) -> None:
        self.stack.stop()


class Original(HttpSystem):
    """A running service with the original API (POST /jobs/, GET /jobs/{id}), by URL and pids."""

    name = "the original FastAPI + RQ design"

    def __init__(self, images: dict[str, list[bytes]], url: str, pids: list[int],
                 poll_interval: float) -> None:
        super().__init__(images)
        self.url, self.pids, self.poll_interval = url.rstrip("/"), pids, poll_interval
        self.notes = (f"running at {self.url}, processes {', '.join(map(describe_pid, pids))};"
                      f" POST /jobs/ then GET /jobs/{{id}} every {poll_interval * 1000:.0f} ms "
                      "(it has no long poll)")

    def roots(self) -> dict[str, list[int]]:
        parts: dict[str, list[int]] = {}
        for pid in self.pids:
            parts.setdefault(describe_pid(pid).split(" ")[0], []).append(pid)
        return parts

    def one_job(self, kind: ImageKind, index: int) -> None:
        body, content_type = self.bodies[kind.key][index % kind.variants]
        job_id = submitted_job_id(*self.client.request(
            self.url + "/jobs/", "POST", body, {"Content-Type": content_type}), 200)
        while True:
            status, answer = self.client.request(f"{self.url}/jobs/{job_id}")
            state = json.loads(answer).get("status") if status == 200 else None
            if state == "succeeded":
                return
            if state not in ("queued", "processing"):
                raise RuntimeError(f"original job {job_id}: {status} {answer[:300]!r}")
            time.sleep(self.poll_interval)


def describe_pid(pid: int) -> str:
    """A short name for a process: its program (the script for an interpreter) and pid."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"gone ({pid})"
    names = [Path(a.decode(errors="replace")).name for a in argv if a]
    name = names[0] if names else "?"
    if name.startswith("python") and len(names) > 1:
        name = names[1]
    return f"{name} ({pid})"


THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = 'thumbor.result_storages.no_storage'
ALLOW_UNSAFE_URL = True
"""


def thumbor_command(python: Path, port: int, conf: Path, processes: int) -> list[str]:
    """thumbor from its own virtualenv, on 127.0.0.1:port."""
    return [str(python.parent / "thumbor"), "--ip", "127.0.0.1", "--port", str(port),
            "--conf", str(conf), "--processes", str(processes), "--log-level", "error"]


def wait_for_200(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until GET url answers 200 (polled every 5 ms); RuntimeError if process dies."""
    started = time.perf_counter()
    parts = urlsplit(url)
    while True:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1)
        try:
            connection.request("GET", parts.path)
            if connection.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        finally:
            connection.close()
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"no 200 from {url} within {timeout}s")
        time.sleep(0.005)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL its process group if it lingers."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Thumbor(HttpSystem):
    """thumbor (its own virtualenv: it pins Pillow < 13), file loader, no storage."""

    name = "thumbor, fit-in PNG (one synchronous request)"

    def __init__(self, images: dict[str, list[bytes]], python: Path, port: int,
                 work_dir: Path, processes: int) -> None:
        super().__init__(images)
        root = work_dir / "thumbor-images"
        root.mkdir(parents=True, exist_ok=True)
        for kind in IMAGE_KINDS:
            for i, data in enumerate(images[kind.key]):
                (root / f"{kind.key}-{i}.{kind.extension}").write_bytes(data)
        self.conf = work_dir / "thumbor.conf"
        self.conf.write_text(THUMBOR_CONF.format(root=str(root)))
        self.python, self.processes = python, processes
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(thumbor_command(python, port, self.conf, processes),
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_200(self.url + "/healthcheck", self.process)
        self.notes = (f"thumbor {thumbor_version(python)} (Pillow {pillow_version(python)}), "
                      f"--processes {processes}, file loader, no storage or result storage; "
                      "GET /unsafe/fit-in/100x100/filters:format(png)/<file>")

    def roots(self) -> dict[str, list[int]]:
        return {"thumbor": [self.process.pid]}

    def one_job(self, kind: ImageKind, index: int) -> None:
        path = f"{kind.key}-{index % kind.variants}.{kind.extension}"
        status, body = self.client.request(
            f"{self.url}/unsafe/fit-in/{BOX[0]}x{BOX[1]}/filters:format(png)/{path}")
        if status != 200 or not body.startswith(b"\x89PNG"):
            raise RuntimeError(f"thumbor answered {status}: {body[:200]!r}")

    def close(self) -> None:
        stop_process(self.process)


def thumbor_version(python: Path) -> str:
    return _version(python, "thumbor")


def pillow_version(python: Path) -> str:
    return _version(python, "pillow")


def _version(python: Path, package: str) -> str:
    run = subprocess.run([str(python), "-c", "import importlib.metadata as m, sys; "
                          f"print(m.version({package!r}))"],
                         capture_output=True, text=True, check=False)
    return run.stdout.strip() or "?"


# --- cold starts --------------------------------------------------------------------------

COLD_SNIPPET = {
    "pillow": ("import io, sys; from PIL import Image; im = Image.open(sys.argv[1]); "
               "im.thumbnail((100, 100)); im.save(io.BytesIO(), 'PNG')"),
    "vips": ("import sys, pyvips; pyvips.Image.thumbnail(sys.argv[1], 100, height=100)"
             ".write_to_buffer('.png')"),
}


def cold_in_process(method: str, image: Path, runs: int) -> list[float]:
    """ms from starting `python -c` to its exit after one thumbnail of image."""
    samples = []
    for _ in range(runs + 1):  # the first run warms the page cache and is dropped
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", COLD_SNIPPET[method], str(image)], check=True)
        samples.append((time.perf_counter() - began) * 1000)
    return samples[1:]


def cold_thumbor(python: Path, port: int, conf: Path, runs: int) -> list[float]:
    """ms from starting thumbor (--processes 1) to its first 200 from /healthcheck."""
    samples = []
    for _ in range(runs + 1):
        began = time.perf_counter()
        process = subprocess.Popen(thumbor_command(python, port, conf, 1),
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_200(f"http://127.0.0.1:{port}/healthcheck", process)
            samples.append((time.perf_counter() - began) * 1000)
        finally:
            stop_process(process)
    return samples[1:]


def cold_resize(redis_url: str, data_dir: Path, runs: int) -> list[float]:
    """ms from starting `thumbnails serve resize` to its first 200 from /ready
    (scripts/coldstart.py's measurement)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import coldstart

    env = {**os.environ, "REDIS_URL": redis_url, "STORAGE_BACKEND": "filesystem",
           "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    return coldstart.measure("resize", runs, env, "/ready")


# --- upload does not wait for resize ---------------------------------------------------------

def upload_check(stack: Stack, kind: ImageKind, jobs: int, concurrency: int
                 ) -> dict[str, list[float]]:
    """Submit latencies (ms) with resize running and with resize frozen (SIGSTOP to its
    process group while a backlog of `jobs` builds); waits for every job to end."""
    def submit_all() -> tuple[list[float], list[str]]:
        def timed(index: int) -> tuple[float, str]:
            began = time.perf_counter()
            job_id = stack.submit(kind, index)
            return (time.perf_counter() - began) * 1000, job_id
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(timed, range(jobs)))
        return [ms for ms, _ in results], [job_id for _, job_id in results]

    running, ids = submit_all()
    resize = stack.stack.processes["resize"]
    os.killpg(resize.pid, signal.SIGSTOP)
    try:
        frozen, more = submit_all()
    finally:
        os.killpg(resize.pid, signal.SIGCONT)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(stack.wait, ids + more))
    return {"resize running": running, f"resize frozen (backlog grows to {jobs})": frozen}


# --- summaries ------------------------------------------------------------------------

@dataclass
class Spread:
    """Median and range of one figure over rounds."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def show(self, digits: int = 1) -> str:
        if len(self.values) == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


@dataclass
class Results:
    """Everything one run measured, and how it was run."""

    args: dict[str, Any]
    command: str
    machine: dict[str, str]
    systems: list[tuple[str, str]]  # (name, how it ran)
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (system, image)
    cold: dict[str, list[float] | str] = field(default_factory=dict)
    upload: dict[str, list[float]] = field(default_factory=dict)
    not_measured: list[str] = field(default_factory=list)
    log_issues: list[str] = field(default_factory=list)

    def ratio(self, system: str, image: str) -> Spread:
        """CPU per job / plain Pillow's, round by round."""
        base = self.samples[(PILLOW, image)]
        return Spread([s.cpu_ms_per_job / b.cpu_ms_per_job
                       for s, b in zip(self.samples[(system, image)], base, strict=True)])

    def figure(self, system: str, image: str, get: Callable[[Sample], float]) -> Spread:
        return Spread([get(s) for s in self.samples[(system, image)]])


PILLOW = "plain Pillow thumbnail + PNG save"


def machine() -> dict[str, str]:
    """What this machine is: CPU model, cores, memory, kernel, Python and library versions."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    import importlib.metadata as metadata

    versions = []
    for package in ("pillow", "pyvips", "gunicorn", "flask"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": f"{os.cpu_count()} x {model}", "memory": f"{int(memory) / 2**20:.1f} GiB",
            "kernel": platform.release(), "python": platform.python_version(),
            "libraries": ", ".join(versions),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def tables(results: Results, markdown: bool) -> str:
    """The results as Markdown tables (markdown=True) or as aligned text for the terminal."""
    out: list[str] = []

    def table(header: list[str], rows: list[list[str]]) -> None:
        if markdown:
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(row) + " |" for row in rows)
        else:
            lines = [header, *rows]
            widths = [max(len(c) for c in column) for column in zip(*lines, strict=True)]
            for row in lines:
                cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
                out.append("  ".join(cells).rstrip())
        out.append("")

    def heading(text: str) -> None:
        out.append(f"### {text}\n" if markdown else f"== {text}")

    rounds = results.args["rounds"]
    for kind in IMAGE_KINDS:
        present = [name for name, _ in results.systems if (name, kind.key) in results.samples]
        if not present:
            continue
        jobs = results.samples[(present[0], kind.key)][0].jobs
        heading(f"{kind.label} -> 100x100 PNG: {jobs} jobs a round, concurrency "
                f"{results.args['concurrency']}, median (min-max) of {rounds} rounds")
        rows = []
        for name in present:
            rows.append([
                f"**{name}**" if markdown and name.startswith("this project, whole") else name,
                results.figure(name, kind.key, lambda s: s.cpu_ms_per_job).show(),
                results.ratio(name, kind.key).show(2),
                results.figure(name, kind.key, lambda s: s.jobs_per_s).show(),
                results.figure(name, kind.key, lambda s: percentile(s.latencies_ms, 50)).show(0),
                results.figure(name, kind.key, lambda s: percentile(s.latencies_ms, 99)).show(0),
            ])
        table(["system", "CPU ms/job", "x Pillow", "jobs/s", "p50 ms", "p99 ms"], rows)
        for name in present:
            samples = results.samples[(name, kind.key)]
            parts = list(samples[0].cpu_s)
            if len(parts) < 2:
                continue
            cells = [results.figure(name, kind.key,
                                    lambda s, p=p: s.cpu_s[p] * 1000 / s.jobs).show()
                     for p in parts]
            client = results.figure(name, kind.key, lambda s: s.client_cpu_s * 1000 / s.jobs)
            out.append(("CPU ms/job by part, " if markdown else "  by part, ") + f"{name}: "
                       + ", ".join(f"{p} {c}" for p, c in zip(parts, cells, strict=True))
                       + f"; the client (not counted) {client.show()}")
            out.append("")
    if results.cold:
        heading(f"Cold start, ms, median (min-max) of {results.args['cold_runs']} starts")
        rows = []
        for label, values in results.cold.items():
            rows.append([label, values if isinstance(values, str) else Spread(values).show(0)])
        table(["what", "ms"], rows)
    if results.upload:
        heading(f"Submit latency to the stack's upload, concurrency "
                f"{results.args['concurrency']} ({IMAGE_KINDS[0].label})")
        rows = [[label, f"{percentile(v, 50):.1f}", f"{percentile(v, 99):.1f}", str(len(v))]
                for label, v in results.upload.items()]
        table(["while", "p50 ms", "p99 ms", "submits"], rows)
    for line in results.not_measured:
        out.append(f"Not measured in this run: {line}")
    if results.not_measured:
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def plot(results: Results, path: Path) -> None:
    """Bar charts: CPU per job relative to plain Pillow per system and image (whiskers:
    min-max over rounds), and the stack's CPU per job by part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in IMAGE_KINDS if (PILLOW, k.key) in results.samples]
    names = [n for n, _ in results.systems]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2),
                                         gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs, heights, errors = [], [], [[], []]
        for j, kind in enumerate(kinds):
            if (name, kind.key) not in results.samples:
                continue
            spread = results.ratio(name, kind.key)
            xs.append(j + (i - (len(names) - 1) / 2) * width)
            heights.append(spread.median)
            errors[0].append(spread.median - spread.low)
            errors[1].append(spread.high - spread.median)
        left.bar(xs, heights, width, yerr=errors, capsize=2, label=name)
    left.axhline(1.0, color="black", linewidth=0.8)
    left.axhline(1.5, color="grey", linewidth=0.8, linestyle="--")
    left.set_xticks(range(len(kinds)), [k.label for k in kinds], fontsize=8)
    left.set_ylabel("CPU per job / plain Pillow's (same run)")
    left.set_title("CPU per job relative to plain Pillow (median, min-max over rounds)",
                   fontsize=10)
    left.legend(fontsize=7)
    stack = next((n for n in names if n.startswith("this project, whole")), None)
    if stack is not None:
        bottoms = [0.0] * len(kinds)
        parts = list(results.samples[(stack, kinds[0].key)][0].cpu_s)
        for part in parts:
            heights = [results.figure(stack, k.key,
                                      lambda s, p=part: s.cpu_s[p] * 1000 / s.jobs).median
                       for k in kinds]
            right.bar(range(len(kinds)), heights, 0.6, bottom=bottoms, label=part)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        pillow = [results.figure(PILLOW, k.key, lambda s: s.cpu_ms_per_job).median
                  for k in kinds]
        right.scatter(range(len(kinds)), pillow, color="black", marker="_", s=600,
                      label="plain Pillow", zorder=3)
        right.set_xticks(range(len(kinds)), [k.label for k in kinds], fontsize=8)
        right.set_ylabel("CPU ms per job")
        right.set_title("The local stack's CPU per job by part (median)", fontsize=10)
        right.legend(fontsize=7)
    figure.suptitle(f"{results.machine['cpu']}, {results.machine['date']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def report(results: Results, path: Path, plot_path: Path) -> None:
    """Write the Markdown report (and the plot beside it)."""
    plot(results, plot_path)
    args = results.args
    m = results.machine
    systems = "\n".join(f"- **{name}**: {notes}" for name, notes in results.systems)
    ratios = {k.key: results.ratio(n, k.key) for n, _ in results.systems
              if n.startswith("this project, whole") for k in IMAGE_KINDS
              if (n, k.key) in results.samples}
    headline = ratios.get(IMAGE_KINDS[0].key)
    spreads = [results.ratio(n, IMAGE_KINDS[0].key) for n, _ in results.systems
               if (n, IMAGE_KINDS[0].key) in results.samples and n != PILLOW]
    widest = max(((s.high - s.low) / s.median for s in spreads), default=0.0)
    text = f"""# Benchmarks

Written by `scripts/bench.py` from one run; do not edit by hand. Re-run with:

```sh
{results.command}
```

![CPU per job relative to plain Pillow, and the local stack's CPU by part]({plot_path.name})

Headline: on the {IMAGE_KINDS[0].label} the whole local stack costs
**{headline.show(2) if headline else "n/a"} x** plain Pillow's CPU per job (median of
{args['rounds']} rounds, min-max in brackets; the target in issue 13 is at most 1.5).

## Machine

{m['cpu']}, {m['memory']}, Linux {m['kernel']}, Python {m['python']}; {m['libraries']};
{m['date']}. The machine is shared with other work: compare ratios from this one run,
not absolute times, with other runs.

## Systems

{systems}

## Results

{tables(results, markdown=True)}
## How each figure was measured

- **Images**: photo-like pictures made by the script (a gradient, 40 ellipses, blur and
  noise), several variants of each kind, used in turn: {", ".join(
      f"{k.label} ({k.variants} variants)" for k in IMAGE_KINDS)}.
- **Rounds**: {args['rounds']} rounds; in each round every system runs every image kind
  (systems interleaved, so slow phases of the shared machine hit them alike), after one
  unrecorded warm-up batch per system and image. Each figure is the median over rounds with
  min-max in brackets.
- **CPU ms/job**: utime + stime of every process of the system, with its descendants and
  the children they reaped (cutime + cstime), from `/proc/<pid>/stat`, read before and
  after the round, divided by the jobs. For HTTP systems the "after" reading waits until
  the system's CPU stops growing (at most 2 clock ticks in 0.1 s), so work done after the
  last answer (events, acknowledgements) counts. The client's CPU (this script: HTTP, JSON)
  is not counted; it is shown per part for the stack.
- **x Pillow**: the system's CPU per job divided by plain Pillow's in the same round and
  image, then the median over rounds.
- **jobs/s**: jobs / wall time of the round at concurrency {args['concurrency']}
  ({args['concurrency']} client threads, or {args['concurrency']} worker processes
  in-process).
- **p50/p99 ms**: time to completion per job by the nearest-rank method: in-process, one
  thumbnail; thumbor, one request; the stack, POST /jobs until the long poll answers
  `succeeded`; the original, POST /jobs/ until a poll sees `succeeded`.
- **Cold start**: wall time from starting the process to its first answer: the stack's
  resize, `thumbnails serve resize --workers 1 --threads 1` to the first 200 from /ready
  (as scripts/coldstart.py measures it, bytecode cached, against the stack's Valkey);
  thumbor `--processes 1` to the first 200 from /healthcheck; in-process Pillow and
  libvips, `python -c` to its exit after one thumbnail of the headline JPEG. One
  unrecorded start first warms the page cache. The original design is not started by the
  script, so its cold start is not measured.
- **Submit latency**: the stack's POST /jobs latency with resize running, then with
  resize's processes stopped (SIGSTOP) while a backlog builds: upload does not wait for
  resize.

## Noise

The widest spread of a ratio to Pillow on the headline image was {widest * 100:.0f}% of its
median (max-min over median). Wall-clock figures (jobs/s, latencies, cold starts) move
more than CPU figures on this shared 2-core machine; the ratios of CPU per job from one
run are the figures to compare.
"""
    path.write_text(text)


# --- main -------------------------------------------------------------------------------

def free_port_block(count: int) -> int:
    """The first of `count` consecutive free loopback ports (tests/stackutil.py's finder)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from stackutil import free_port_block as find

    return find(count)


def log_issues(log: Path, start: int) -> list[str]:
    """Lines of the log written since offset start that look like warnings or tracebacks."""
    with log.open("rb") as handle:
        handle.seek(start)
        lines = handle.read().decode(errors="replace").splitlines()
    marks = ("Traceback", "WARNING", "ERROR", "CRITICAL", '"warning"', '"error"')
    return [line for line in lines if any(mark in line for mark in marks)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=60,
                        help="jobs a round on the headline JPEG (the others get a quarter)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2,
                        help="resize gunicorn workers, thumbor processes (the original's "
                             "RQ workers are whatever was started)")
    parser.add_argument("--images", default=",".join(k.key for k in IMAGE_KINDS),
                        help="image kinds, comma-separated")
    parser.add_argument("--systems", default="pillow,project,vips,thumbor,stack,original",
                        help="systems, comma-separated")
    parser.add_argument("--port-base", type=int, default=None,
                        help="first of 7 consecutive ports (the stack's 5, thumbor's 2); "
                             "default: a free block")
    parser.add_argument("--original-url", default=None,
                        help="URL of a running service with the original API")
    parser.add_argument("--original-pids", default="",
                        help="comma-separated pids of ALL its processes (API, workers, Redis)")
    parser.add_argument("--poll-interval", type=float, default=0.1,
                        help="seconds between the original's status polls")
    parser.add_argument("--thumbor-python", type=Path, default=ROOT / ".venv-thumbor/bin/python",
                        help="python of a virtualenv with thumbor (make bench makes one)")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--upload-check", type=int, default=40,
                        help="submits each for the upload-does-not-wait check (0: skip)")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build/bench")
    parser.add_argument("--report", type=Path, default=None,
                        help="write this Markdown report and a .png plot beside it")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, out: TextIO, command: str) -> Results:
    """Start the systems, measure, stop them; print progress-free results to out."""
    wanted = set(args.systems.split(","))
    kinds = [k for k in IMAGE_KINDS if k.key in args.images.split(",")]
    if IMAGE_KINDS[0] not in kinds:
        kinds.insert(0, IMAGE_KINDS[0])
    wanted.add("pillow")  # the base of every ratio
    images = {k.key: make_images(k) if k in kinds else [] for k in IMAGE_KINDS}
    port = args.port_base or free_port_block(7)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=args.log_dir))
    results = Results(vars(args) | {"log_dir": str(args.log_dir)}, command, machine(), [])
    systems: list[System] = []
    try:
        in_process = [("pillow", PILLOW, "Image.open, thumbnail((100, 100)), save PNG"),
                      ("project", "this project's make_thumbnail alone",
                       "thumbnails.imaging.make_thumbnail with default options "
                       "(100x100 contain, PNG)"),
                      ("vips", "libvips (pyvips)",
                       "pyvips.Image.thumbnail_buffer(data, 100, height=100), PNG")]
        for key, name, notes in in_process:
            if key in wanted:
                systems.append(InProcess(name, key, images, args.concurrency,
                                         f"{notes}; {args.concurrency} forked processes"))
        if "thumbor" in wanted:
            if args.thumbor_python.exists():
                systems.append(Thumbor(images, args.thumbor_python, port + 5, work,
                                       args.workers))
            else:
                results.not_measured.append(f"thumbor ({args.thumbor_python} not found; "
                                            "`make bench` makes that virtualenv)")
        stack = None
        if "stack" in wanted:
            stack = Stack(images, port, work / "stack", args.workers)
            systems.append(stack)
        if "original" in wanted:
            if args.original_url:
                pids = [int(p) for p in args.original_pids.split(",") if p]
                if not pids:
                    raise SystemExit("--original-url needs --original-pids")
                systems.append(Original(images, args.original_url, pids, args.poll_interval))
            else:
                results.not_measured.append(
                    "the original FastAPI + RQ design (no --original-url/--original-pids)")
        results.systems = [(s.name, s.notes) for s in systems]

        def jobs_for(kind: ImageKind) -> int:
            return max(args.concurrency, round(args.jobs * kind.share))

        for kind in kinds:  # warm-up, not recorded
            for system in systems:
                system.run(kind, args.concurrency * 2, args.concurrency)
        for _ in range(args.rounds):
            for kind in kinds:
                for system in systems:
                    results.samples.setdefault((system.name, kind.key), []).append(
                        system.run(kind, jobs_for(kind), args.concurrency))

        if args.cold_runs:
            headline = work / "headline.jpg"
            headline.write_bytes(images[IMAGE_KINDS[0].key][0])
            if stack is not None:
                results.cold["this project: resize, process start -> /ready 200"] = \
                    cold_resize(stack.urls["redis"], work / "cold-objects", args.cold_runs)
            if any(isinstance(s, Thumbor) for s in systems):
                results.cold["thumbor: process start -> /healthcheck 200"] = cold_thumbor(
                    args.thumbor_python, port + 6, work / "thumbor.conf", args.cold_runs)
            for key, label in (("pillow", "plain Pillow"), ("vips", "libvips")):
                if key in wanted:
                    results.cold[f"{label}: python start -> one thumbnail done, exit"] = \
                        cold_in_process(key, headline, args.cold_runs)
            if args.original_url:
                results.cold["the original design"] = "not measured (started by hand)"
        if stack is not None and args.upload_check:
            results.upload = upload_check(stack, IMAGE_KINDS[0], args.upload_check,
                                          args.concurrency)
    finally:
        for system in reversed(systems):
            system.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python scripts/bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    log = args.log_dir / "bench.log"
    # Results to the terminal; everything the stack and the peers print to the log: the
    # children inherit file descriptors 1 and 2.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    err = os.fdopen(os.dup(2), "w", buffering=1)
    sys.stdout.flush()
    sys.stderr.flush()
    with log.open("ab") as handle:
        start = handle.tell()
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    try:
        results = run(args, out, command)
    except BaseException:
        err.write(traceback.format_exc())
        err.write(f"(logs in {log})\n")
        return 1
    results.log_issues = log_issues(log, start)
    out.write(tables(results, markdown=False))
    out.write(f"machine: {results.machine['cpu']}; logs: {log} "
              f"({len(results.log_issues)} warning/error lines)\n")
    if args.report:
        report(results, args.report, args.report.with_suffix(".png"))
        out.write(f"report: {args.report}, plot: {args.report.with_suffix('.png')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
