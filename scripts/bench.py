#!/usr/bin/env python3
"""Benchmark: Pillow's raw thumbnail rate on this machine vs jobs through the local stack.

Prints, from one run on the same 1600x1200 JPEGs:
  - in-process thumbnails/s, one process per core (the machine's raw rate);
  - through `thumbnails dev` at concurrency 8: jobs/s, p50/p99 submit latency and
    p50/p99 submit-to-succeeded latency, and the ratio of jobs/s to the raw rate;
  - p50/p99 submit latency with resize idle and with resize saturated (frozen with
    SIGSTOP while a backlog builds), to show that upload never waits for resize.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from stackutil import free_port_block  # noqa: E402

from thumbnails import devstack, imaging  # noqa: E402
from thumbnails.config import Config  # noqa: E402

OPTIONS = imaging.ThumbnailOptions()
LIMITS = imaging.Limits()


def make_jpegs(count: int) -> list[bytes]:
    """Photo-like 1600x1200 JPEGs: gradients, shapes and noise, quality 90."""
    rng = random.Random(42)
    out = []
    for i in range(count):
        base = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
        draw = ImageDraw.Draw(base)
        for _ in range(40):
            x, y = rng.randrange(1600), rng.randrange(1200)
            colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            draw.ellipse((x, y, x + rng.randrange(50, 400), y + rng.randrange(50, 400)), colour)
        noise = Image.effect_noise((1600, 1200), 40 + i).convert("RGB")
        image = Image.blend(base.filter(ImageFilter.GaussianBlur(2)), noise, 0.15)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _thumbnail_many(args: tuple[list[bytes], int]) -> int:
    jpegs, n = args
    for i in range(n):
        imaging.make_thumbnail(jpegs[i % len(jpegs)], OPTIONS, LIMITS)
    return n


def raw_rate(jpegs: list[bytes], per_process: int, processes: int) -> float:
    """Thumbnails per second with `processes` worker processes."""
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_thumbnail_many, [(jpegs, 2)] * processes))  # warm up
        start = time.perf_counter()
        done = sum(pool.map(_thumbnail_many, [(jpegs, per_process)] * processes))
        return done / (time.perf_counter() - start)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), in the unit of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Client:
    """Submits jobs and waits for them, recording wall-clock times."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
        return self.local.s

    def submit(self, data: bytes) -> tuple[str, float, float]:
        """(job id, wall-clock submit time, submit latency in s)."""
        wall, start = time.time(), time.perf_counter()
        response = self.session().post(f"{self.urls['upload']}/jobs",
                                       files={"file": ("b.jpg", data)}, timeout=60)
        latency = time.perf_counter() - start
        response.raise_for_status()
        return response.json()["job_id"], wall, latency

    def finished_at(self, job_id: str, timeout: float = 300) -> float:
        """Poll the debug view until the job succeeds; return its recorded finish time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            doc = self.session().get(f"{self.urls['status']}/jobs/{job_id}/debug",
                                     timeout=30).json()
            if doc["status"] == "succeeded":
                return float(doc["finished_at"])
            if doc["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {doc['error']}")
            time.sleep(0.2)
        raise TimeoutError(job_id)


def run_load(client: Client, jpegs: list[bytes], jobs: int, concurrency: int) -> dict[str, float]:
    """Submit `jobs` at `concurrency`; wait for all; compute rates and latencies."""
    with ThreadPoolExecutor(concurrency) as pool:
        submitted = list(pool.map(client.submit, [jpegs[i % len(jpegs)] for i in range(jobs)]))
    with ThreadPoolExecutor(4) as pool:
        finished = list(pool.map(client.finished_at, [job_id for job_id, _, _ in submitted]))
    first = min(wall for _, wall, _ in submitted)
    submit_ms = [lat * 1000 for _, _, lat in submitted]
    e2e_ms = [(fin - wall) * 1000 for (_, wall, _), fin in zip(submitted, finished, strict=True)]
    return {
        "jobs_per_s": jobs / (max(finished) - first),
        "submit_p50": pct(submit_ms, 50), "submit_p99": pct(submit_ms, 99),
        "e2e_p50": pct(e2e_ms, 50), "e2e_p99": pct(e2e_ms, 99),
    }


def submit_latencies(client: Client, jpegs: list[bytes], jobs: int,
                     concurrency: int) -> list[float]:
    """Submit latencies (ms) only."""
    with ThreadPoolExecutor(concurrency) as pool:
        return [lat * 1000 for _, _, lat in pool.map(
            client.submit, [jpegs[i % len(jpegs)] for i in range(jobs)])]


def cpu_seconds(stack: devstack.Stack) -> dict[str, float]:
    """CPU time (user + system) used so far by each part's process group."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {process.pid: part for part, process in stack.processes.items()}
    used = dict.fromkeys(stack.processes, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        part = groups.get(int(fields[2]))  # field 5 of stat: the process group id
        if part is not None:
            used[part] += (int(fields[11]) + int(fields[12])) / tick
    return used


def signal_group(process: object, sig: signal.Signals) -> None:
    os.killpg(process.pid, sig)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400, help="jobs through the stack")
    parser.add_argument("--raw", type=int, default=300, help="thumbnails per process (raw)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="gunicorn workers per function")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    jpegs = make_jpegs(8)
    print(f"machine: {cores} cores; inputs: 8 JPEGs 1600x1200, "
          f"{statistics.mean(map(len, jpegs)) / 1024:.0f} KiB on average; "
          f"thumbnail {OPTIONS.width}x{OPTIONS.height} {OPTIONS.format}", flush=True)
    raw = raw_rate(jpegs, args.raw, cores)
    print(f"in-process Pillow ({cores} processes): {raw:.1f} thumbnails/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        stack = devstack.start(Config(), free_port_block(len(devstack.PARTS)), Path(tmp),
                               args.workers)
        try:
            client = Client(stack.urls)
            run_load(client, jpegs, 20, args.concurrency)  # warm up
            before = cpu_seconds(stack)
            load = run_load(client, jpegs, args.jobs, args.concurrency)
            after = cpu_seconds(stack)
            print(f"local stack (concurrency {args.concurrency}, {args.jobs} jobs): "
                  f"{load['jobs_per_s']:.1f} jobs/s; "
                  f"submit p50 {load['submit_p50']:.1f} ms p99 {load['submit_p99']:.1f} ms; "
                  f"submit->succeeded p50 {load['e2e_p50']:.0f} ms p99 {load['e2e_p99']:.0f} ms",
                  flush=True)
            print("CPU ms per job: " + ", ".join(
                f"{part} {(after[part] - before[part]) * 1000 / args.jobs:.1f}"
                for part in after), flush=True)
            print(f"ratio local-stack jobs/s / in-process thumbnails/s: "
                  f"{load['jobs_per_s'] / raw:.2f}", flush=True)

            n = max(100, args.jobs // 4)
            idle = submit_latencies(client, jpegs, n, args.concurrency)
            signal_group(stack.processes["resize"], signal.SIGSTOP)
            try:
                saturated = submit_latencies(client, jpegs, n, args.concurrency)
            finally:
                signal_group(stack.processes["resize"], signal.SIGCONT)
            print(f"submit latency, resize idle:      p50 {pct(idle, 50):.1f} ms "
                  f"p99 {pct(idle, 99):.1f} ms ({n} jobs)", flush=True)
            print(f"submit latency, resize saturated: p50 {pct(saturated, 50):.1f} ms "
                  f"p99 {pct(saturated, 99):.1f} ms ({n} jobs, resize frozen, backlog {n})",
                  flush=True)
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
