"""Memory that comes back: the resident set (VmRSS in /proc/<pid>/status) of the real
gunicorn workers of upload and resize, idle, at the peak of a burst of large images, and
once the burst is over.

Starts the local stack (`thumbnails dev`'s, thumbnails.local.devstack: embedded Valkey, the
filesystem store, the broker, the functions with serving.MALLOC_TUNING) in a temporary
directory, reads every upload and resize worker's VmRSS, sends UPLOADS random-noise PNGs of
about 15 MB (noise does not compress) and LARGE 7000x7000 (49 MP) PNGs, waits for every
job to end (sampling the peak meanwhile), then polls each worker's VmRSS until it is
within --bound MB of its idle size or --settle seconds have passed. Prints one row per
worker in MB; exits 1 if a worker did not come back within the bound. --json prints the
figures as one JSON object instead.

Usage: python scripts/memory_return.py [--uploads 5] [--large 2] [--bound 30] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from PIL import Image

from thumbnails.core.config import Config
from thumbnails.local import devstack

MB = 1 << 20


def vm_rss(pid: int) -> int:
    """VmRSS of a process in bytes, from /proc/<pid>/status (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def workers_of(master: int) -> list[int]:
    """The gunicorn workers of a master: its live children, from /proc/<pid>/stat."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[1]) == master:
                found.append(int(entry.name))
    return sorted(found)


def noise_png(megabytes: float) -> bytes:
    """A PNG of random RGB noise, about `megabytes` MB (noise is incompressible)."""
    side = int((megabytes * MB / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def large_png(side: int = 7000) -> bytes:
    """A side x side RGB PNG (49 MP at 7000): small on disk, 147 MB decoded."""
    image = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def wait_all(status_url: str, job_ids: list[str], sample: Callable[[], None],
             timeout: float) -> None:
    """Poll every job until it has ended, calling sample() between rounds."""
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    while pending:
        for job_id in list(pending):
            doc = requests.get(f"{status_url}/jobs/{job_id}", timeout=30).json()
            if doc.get("status") in ("succeeded", "failed"):
                if doc["status"] == "failed":
                    raise RuntimeError(f"job {job_id} failed: {doc}")
                pending.discard(job_id)
        sample()
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not done within {timeout}s: {sorted(pending)}")
        time.sleep(0.1)


def measure(uploads: int, large: int, bound_mb: float, settle: float) -> dict[str, object]:
    """Run the burst on a fresh stack; {"workers": [{function, pid, idle, peak, after}], ...}
    with sizes in bytes."""
    with tempfile.TemporaryDirectory(prefix="memory-return-") as tmp:
        config = Config.from_env({"LOG_LEVEL": "WARNING", "STORAGE_BACKEND": "filesystem"})
        stack = devstack.start(config, _free_block(), Path(tmp), workers=2)
        try:
            pids = {pid: part for part in ("upload", "resize")
                    for pid in workers_of(stack.processes[part].pid)}
            idle = {pid: vm_rss(pid) for pid in pids}
            peak = dict(idle)

            def sample() -> None:
                for pid in pids:
                    peak[pid] = max(peak[pid], vm_rss(pid))

            bodies = [noise_png(15) for _ in range(uploads)] + [large_png()] * large
            job_ids = []
            for number, body in enumerate(bodies):
                answer = requests.post(f"{stack.urls['upload']}/jobs/",
                                       files={"file": (f"image{number}.png", body)}, timeout=60)
                answer.raise_for_status()
                job_ids.append(answer.json()["job_id"])
                sample()
            wait_all(stack.urls["status"], job_ids, sample, timeout=300)
            deadline = time.monotonic() + settle
            while True:
                after = {pid: vm_rss(pid) for pid in pids}
                if all(after[p] <= idle[p] + bound_mb * MB for p in pids) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            return {"uploads": uploads, "large": large, "upload_bytes": len(bodies[0]),
                    "workers": [{"function": pids[p], "pid": p, "idle": idle[p],
                                 "peak": peak[p], "after": after[p]} for p in pids]}
        finally:
            stack.stop()


def _free_block() -> int:
    """The first of the stack's consecutive free loopback ports (tests.support.stackutil)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository
    from tests.support.stackutil import free_port_block

    return free_port_block(len(devstack.PARTS))


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=5, help="15 MB noise PNGs")
    parser.add_argument("--large", type=int, default=2, help="49 MP PNGs")
    parser.add_argument("--bound", type=float, default=30, help="MB over idle allowed after")
    parser.add_argument("--settle", type=float, default=20,
                        help="seconds to wait for memory to come back")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = measure(args.uploads, args.large, args.bound, args.settle)
    workers = figures["workers"]
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{args.uploads} uploads of {figures['upload_bytes'] / MB:.1f} MB and "
              f"{args.large} 49 MP PNGs; VmRSS of each gunicorn worker, MB:")
        print(f"  {'function':<8} {'pid':>7} {'idle':>7} {'peak':>7} {'after':>7} "
              f"{'after-idle':>10}")
        for w in workers:
            print(f"  {w['function']:<8} {w['pid']:>7} {w['idle'] / MB:>7.1f} "
                  f"{w['peak'] / MB:>7.1f} {w['after'] / MB:>7.1f} "
                  f"{(w['after'] - w['idle']) / MB:>+10.1f}")
    back = all(w["after"] <= w["idle"] + args.bound * MB for w in workers)
    return 0 if back else 1


if __name__ == "__main__":
    sys.exit(main())
