#!/usr/bin/env python3
"""CPU time per job of the whole local stack, part by part, against raw Pillow in the same run.

Starts `thumbnails dev`'s stack (thumbnails.local.devstack: filesystem store, embedded Valkey, the
local broker, three gunicorns) on free loopback ports, and for each image: warms up, then
runs `--jobs` jobs at `--concurrency`. Each job is what a client that uses the long poll
does: POST /jobs (multipart, field `file`), then one GET /jobs/{id}?wait=S that answers when
the job has ended. CPU time is utime + stime (+ the reaped children's cutime + cstime) from
/proc/<pid>/stat of every process of each part (by process group: gunicorn arbiters and
their workers, the broker's ingress and dispatcher, valkey-server), read before and after
the jobs. The client (this process) is reported apart and not counted in the total.

Raw is plain Pillow on the same bytes in this process: `Image.open; thumbnail((100, 100));
save PNG`, CPU time (time.process_time) per thumbnail, measured before and after the stack's
jobs; the mean of both is the ratio's denominator.

Usage: scripts/cpu_per_job.py [--jobs 200] [--concurrency 2] [--images jpeg,jpeg12mp,png2mp]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import resource
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from urllib3 import encode_multipart_formdata

from thumbnails.core.config import Config
from thumbnails.local import devstack

# The parts whose CPU is counted, and the devstack processes (process-group leaders) of each.
PARTS = {"upload": ("upload",), "broker": ("broker", "dispatcher"), "resize": ("resize",),
         "status": ("status",), "redis": ("redis",)}
WAIT_SECONDS = 30  # the long poll's `wait`
_TICK = os.sysconf("SC_CLK_TCK")


def photo(size: tuple[int, int], seed: int = 42) -> Image.Image:
    """A photo-like RGB picture: a gradient, shapes, a blur and noise (compresses as a
    photo does, unlike flat colour)."""
    rng = random.Random(seed)
    width, height = size
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(base)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + rng.randrange(width // 32, width // 4),
                      y + rng.randrange(height // 24, height // 3)), colour)
    noise = Image.effect_noise(size, 40).convert("RGB")
    return Image.blend(base.filter(ImageFilter.GaussianBlur(2)), noise, 0.15)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


# name -> (description, factory of the image's bytes)
IMAGES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpeg": ("1600x1200 JPEG q90", lambda: _encode(photo((1600, 1200)), "JPEG", quality=90)),
    "jpeg12mp": ("4000x3000 (12 MP) JPEG q90",
                 lambda: _encode(photo((4000, 3000)), "JPEG", quality=90)),
    "png2mp": ("1732x1155 (2 MP) PNG", lambda: _encode(photo((1732, 1155)), "PNG")),
}


def raw_pillow_ms(data: bytes, count: int) -> float:
    """CPU ms per thumbnail of plain Pillow in this process: open, thumbnail((100, 100)),
    save as PNG (after one unmeasured run)."""
    def once() -> None:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((100, 100))
            image.save(io.BytesIO(), "PNG")

    once()
    started = time.process_time()
    for _ in range(count):
        once()
    return (time.process_time() - started) * 1000 / count


def cpu_seconds(stack: devstack.Stack) -> dict[str, float]:
    """CPU seconds (user + system, reaped children included) used so far by each part's
    processes, and by this process ("client")."""
    leaders = {process.pid: name for name, process in stack.processes.items()}
    part_of = {name: part for part, names in PARTS.items() for name in names}
    used = dict.fromkeys(PARTS, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        name = leaders.get(int(fields[2]))  # stat field 5: the process group id
        if name is not None:
            # stat fields 14-17: utime, stime, cutime, cstime (clock ticks)
            used[part_of[name]] += sum(int(f) for f in fields[11:15]) / _TICK
    own = resource.getrusage(resource.RUSAGE_SELF)
    used["client"] = own.ru_utime + own.ru_stime
    return used


class Client:
    """One keep-alive HTTP connection per thread and part; the multipart body built once."""

    def __init__(self, urls: dict[str, str], data: bytes, filename: str) -> None:
        self.addresses = {part: url.split("//", 1)[1].split(":") for part, url in urls.items()}
        self.body, self.content_type = encode_multipart_formdata({"file": (filename, data)})
        self.local = threading.local()

    def _request(self, part: str, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        connections = self.local.__dict__.setdefault("connections", {})
        for attempt in (1, 2):
            if part not in connections:
                host, port = self.addresses[part]
                connections[part] = http.client.HTTPConnection(host, int(port),
                                                               timeout=WAIT_SECONDS + 30)
            connection = connections[part]
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                connections.pop(part).close()  # closed by the server: one reconnect
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def job(self, _: int = 0) -> None:
        """Submit the image, then wait for the job's end with one long poll."""
        status, answer = self._request("upload", "POST", "/jobs", self.body,
                                       {"Content-Type": self.content_type})
        if status != 202:
            raise RuntimeError(f"upload answered {status}: {answer[:200]!r}")
        job_id = json.loads(answer)["job_id"]
        while True:  # a long poll that ran out answers the job as it is: ask again
            status, answer = self._request("status", "GET", f"/jobs/{job_id}?wait={WAIT_SECONDS}")
            doc = json.loads(answer)
            if status != 200:
                raise RuntimeError(f"status answered {status}: {answer[:200]!r}")
            if doc["status"] == "succeeded":
                return
            if doc["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {doc.get('error')}")

    def run(self, jobs: int, concurrency: int) -> None:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(self.job, range(jobs)))


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


def measure_stack(images: dict[str, bytes], jobs: int | dict[str, int] = 200,
                  concurrency: int = 2, workers: int = 2, warmup: int = 20,
                  raw_count: int = 50, data_dir: Path | None = None,
                  config: Config | None = None) -> dict[str, dict[str, float]]:
    """CPU ms per job for each image (name -> bytes) through one local stack.

    `jobs`: jobs per image (or per image name). Returns, per image name: CPU ms per job of
    each part in PARTS, "total" (their sum), "client" (this process, not in the total),
    "raw" (plain Pillow, mean of before and after), "ratio" (total / raw), "jobs" and
    "seconds" (wall-clock time of the measured jobs)."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        stack = devstack.start(config or Config(), free_port_block(len(devstack.PARTS)),
                               Path(tmp), workers)
        try:
            for name, data in images.items():
                count = jobs[name] if isinstance(jobs, dict) else jobs
                client = Client(stack.urls, data, f"{name}.bin")
                raw_before = raw_pillow_ms(data, raw_count)
                client.run(warmup, concurrency)
                before, started = cpu_seconds(stack), time.perf_counter()
                client.run(count, concurrency)
                seconds = time.perf_counter() - started
                after = cpu_seconds(stack)
                raw = (raw_before + raw_pillow_ms(data, raw_count)) / 2
                row = {part: (after[part] - before[part]) * 1000 / count for part in after}
                row["total"] = sum(row[part] for part in PARTS)
                row.update(raw=raw, ratio=row["total"] / raw, jobs=count, seconds=seconds)
                results[name] = row
        finally:
            stack.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200,
                        help="jobs per image (the 12 MP JPEG gets a quarter)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn workers for resize (the other functions get half)")
    parser.add_argument("--images", default=",".join(IMAGES),
                        help=f"comma-separated, of {', '.join(IMAGES)}")
    args = parser.parse_args()
    names = [n for n in args.images.split(",") if n]
    images = {name: IMAGES[name][1]() for name in names}
    jobs = {name: max(10, args.jobs // 4) if name == "jpeg12mp" else args.jobs for name in names}
    print(f"{os.cpu_count()} cores; concurrency {args.concurrency}; one long poll per job "
          f"(wait={WAIT_SECONDS}); CPU ms per job", flush=True)
    results = measure_stack(images, jobs, args.concurrency, args.workers)
    header = ["image", *PARTS, "total", "raw", "ratio", "client", "jobs", "jobs/s"]
    print("  ".join(f"{h:>8}" for h in header))
    for name, row in results.items():
        cells = [name, *(f"{row[p]:.2f}" for p in PARTS), f"{row['total']:.2f}",
                 f"{row['raw']:.2f}", f"{row['ratio']:.2f}", f"{row['client']:.2f}",
                 f"{row['jobs']:.0f}", f"{row['jobs'] / row['seconds']:.1f}"]
        print("  ".join(f"{c:>8}" for c in cells), flush=True)
    for name in results:
        print(f"{name}: {IMAGES[name][0]}, {len(images[name]) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
