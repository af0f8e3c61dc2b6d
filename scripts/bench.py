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
import http.client
import io
import json
import os
import random
import resource
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFilter
from urllib3 import encode_multipart_formdata

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


def _thumbnail_many(args: tuple[list[bytes], int]) -> float:
    jpegs, n = args
    started = time.process_time()
    for i in range(n):
        imaging.make_thumbnail(jpegs[i % len(jpegs)], OPTIONS, LIMITS)
    return time.process_time() - started


def raw_rate(jpegs: list[bytes], per_process: int, processes: int) -> tuple[float, float]:
    """(thumbnails per second, CPU ms per thumbnail) with `processes` worker processes."""
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_thumbnail_many, [(jpegs, 2)] * processes))  # warm up
        start = time.perf_counter()
        cpu = sum(pool.map(_thumbnail_many, [(jpegs, per_process)] * processes))
        done = per_process * processes
        return done / (time.perf_counter() - start), cpu * 1000 / done


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), in the unit of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Client:
    """A light HTTP client (one keep-alive connection per thread, multipart bodies built once),
    so that the client's own CPU takes as little as possible from the service on this machine."""

    def __init__(self, urls: dict[str, str], jpegs: list[bytes]) -> None:
        self.urls = urls
        self.local = threading.local()
        self.bodies = [encode_multipart_formdata({"file": ("bench.jpg", data)}) for data in jpegs]

    def _connection(self, part: str) -> http.client.HTTPConnection:
        connections = self.local.__dict__.setdefault("connections", {})
        if part not in connections:
            parsed = urlsplit(self.urls[part])
            connections[part] = http.client.HTTPConnection(parsed.hostname, parsed.port,
                                                           timeout=60)
        return connections[part]

    def request(self, part: str, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request on this thread's connection to a part (reconnects if it was closed)."""
        for attempt in (1, 2):
            connection = self._connection(part)
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def submit(self, index: int) -> tuple[str, float, float]:
        """Upload image `index`: (job id, wall-clock submit time, submit latency in s)."""
        body, content_type = self.bodies[index % len(self.bodies)]
        wall, start = time.time(), time.perf_counter()
        status, answer = self.request("upload", "POST", "/jobs", body,
                                      {"Content-Type": content_type})
        latency = time.perf_counter() - start
        if status != 202:
            raise RuntimeError(f"upload answered {status}: {answer[:200]!r}")
        return json.loads(answer)["job_id"], wall, latency

    def wait_all(self, job_ids: list[str], timeout: float = 600) -> None:
        """Poll the last job until it is terminal (the others were submitted before it)."""
        self.finished_at(job_ids[-1], timeout)

    def finished_at(self, job_id: str, timeout: float = 600) -> float:
        """Wait until the job succeeds; the finish time resize recorded for it."""
        deadline = time.monotonic() + timeout
        while True:
            status, answer = self.request("status", "GET", f"/jobs/{job_id}/debug")
            doc = json.loads(answer)
            if doc["status"] == "succeeded":
                return float(doc["finished_at"])
            if doc["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {doc['error']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish")
            time.sleep(0.1)


def run_load(client: Client, jobs: int, concurrency: int,
             stack: devstack.Stack) -> dict[str, float]:
    """Submit `jobs` at `concurrency`; wait for all; rates, latencies, CPU ms per job."""
    before = cpu_seconds(stack)
    with ThreadPoolExecutor(concurrency) as pool:
        submitted = list(pool.map(client.submit, range(jobs)))
    client.wait_all([job_id for job_id, _, _ in submitted])
    after = cpu_seconds(stack)
    # Rates and latencies come from the finish times resize recorded, so reading them
    # afterwards adds no load to the measured window.
    finished = [client.finished_at(job_id) for job_id, _, _ in submitted]
    first = min(wall for _, wall, _ in submitted)
    submit_ms = [lat * 1000 for _, _, lat in submitted]
    e2e_ms = [(fin - wall) * 1000 for (_, wall, _), fin in zip(submitted, finished, strict=True)]
    return {
        "jobs_per_s": jobs / (max(finished) - first),
        "submit_p50": pct(submit_ms, 50), "submit_p99": pct(submit_ms, 99),
        "e2e_p50": pct(e2e_ms, 50), "e2e_p99": pct(e2e_ms, 99),
        **{f"cpu_{part}": (after[part] - before[part]) * 1000 / jobs for part in after},
    }


def submit_latencies(client: Client, jobs: int, concurrency: int) -> list[float]:
    """Submit latencies (ms) only."""
    with ThreadPoolExecutor(concurrency) as pool:
        return [lat * 1000 for _, _, lat in pool.map(client.submit, range(jobs))]


def cpu_seconds(stack: devstack.Stack) -> dict[str, float]:
    """CPU time (user + system) used so far by each part's process group."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {process.pid: part for part, process in stack.processes.items()}
    used = dict.fromkeys(stack.processes, 0.0)
    own = resource.getrusage(resource.RUSAGE_SELF)
    used["client"] = own.ru_utime + own.ru_stime
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
                        help="gunicorn workers for resize (the other functions get half)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the stack keeps Redis data and images (default: a new "
                             "temporary folder under $TMPDIR or /tmp)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    jpegs = make_jpegs(8)
    print(f"machine: {cores} cores; inputs: 8 JPEGs 1600x1200, "
          f"{statistics.mean(map(len, jpegs)) / 1024:.0f} KiB on average; "
          f"thumbnail {OPTIONS.width}x{OPTIONS.height} {OPTIONS.format}", flush=True)
    os.sync()  # start each phase without the disk still writing back an earlier run's data
    raw, raw_cpu = raw_rate(jpegs, args.raw, cores)
    print(f"in-process Pillow ({cores} processes), before the stack: {raw:.1f} thumbnails/s, "
          f"{raw_cpu:.1f} CPU ms each", flush=True)

    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        print(f"local stack state in {tmp}", flush=True)
        stack = devstack.start(Config(), free_port_block(len(devstack.PARTS)), Path(tmp),
                               args.workers)
        try:
            client = Client(stack.urls, jpegs)
            run_load(client, 20, args.concurrency, stack)  # warm up
            os.sync()
            load = run_load(client, args.jobs, args.concurrency, stack)
            print(f"local stack (concurrency {args.concurrency}, {args.jobs} jobs): "
                  f"{load['jobs_per_s']:.1f} jobs/s; "
                  f"submit p50 {load['submit_p50']:.1f} ms p99 {load['submit_p99']:.1f} ms; "
                  f"submit->succeeded p50 {load['e2e_p50']:.0f} ms p99 {load['e2e_p99']:.0f} ms",
                  flush=True)
            print("CPU ms per job: " + ", ".join(
                f"{key[4:]} {value:.1f}" for key, value in load.items()
                if key.startswith("cpu_")), flush=True)
            # This machine's speed drifts: measure the raw rate again right after the load
            # and compare with the mean of the two.
            os.sync()
            raw_after, raw_cpu_after = raw_rate(jpegs, args.raw, cores)
            print(f"in-process Pillow ({cores} processes), after the load: "
                  f"{raw_after:.1f} thumbnails/s, {raw_cpu_after:.1f} CPU ms each", flush=True)
            raw, raw_cpu = (raw + raw_after) / 2, (raw_cpu + raw_cpu_after) / 2
            print(f"ratio local-stack jobs/s / in-process thumbnails/s (mean of both): "
                  f"{load['jobs_per_s'] / raw:.2f}", flush=True)
            # The same comparison in CPU time, which time stolen by the host does not skew.
            stack_cpu = sum(v for k, v in load.items() if k.startswith("cpu_")
                            and k != "cpu_client")
            print(f"CPU per job: stack {stack_cpu:.1f} ms, raw thumbnail {raw_cpu:.1f} ms; "
                  f"ratio {raw_cpu / stack_cpu:.2f}", flush=True)

            n = max(100, args.jobs // 4)
            single = submit_latencies(client, n, 1)
            client.wait_all([client.submit(0)[0]])
            running = submit_latencies(client, n, args.concurrency)
            signal_group(stack.processes["resize"], signal.SIGSTOP)
            try:
                frozen = submit_latencies(client, n, args.concurrency)
            finally:
                signal_group(stack.processes["resize"], signal.SIGCONT)
            for label, values, concurrency in (
                    ("one upload at a time", single, 1),
                    ("resize running, no backlog at start", running, args.concurrency),
                    (f"resize saturated (frozen, backlog grows to {n})", frozen,
                     args.concurrency)):
                print(f"submit latency at concurrency {concurrency}, {label}: "
                      f"p50 {pct(values, 50):.1f} ms p99 {pct(values, 99):.1f} ms ({n} jobs)",
                      flush=True)
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
