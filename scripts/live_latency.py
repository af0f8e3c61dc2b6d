"""How soon a client knows its job ended: polling every 100 ms, the long poll
(GET /jobs/{id}?wait=S) and the event stream (GET /events), on the local stack.

Starts the whole local stack (`thumbnails dev`'s parts: Valkey, broker, upload, resize,
status under gunicorn) in a temporary directory. For each way in turn, submits N small PNGs
one after another; for each job, the client follows it until it is succeeded or failed and
notes the wall-clock time it learnt that. The latency is that time minus the job's
`finished_at` (written by resize on this machine's clock, just before the state change).
Prints p50, p99 and max in milliseconds, and the GET /jobs/{id} requests per job.

Then: how fast status answers GET /health, GET /jobs?limit=20 and GET /jobs/{id} (p50, p99
over --probes requests each) with no long poll waiting and with --waiting long polls parked
on jobs that never end (thumbnails.core.probeworker gives them threads of their own).

Usage: python scripts/live_latency.py [--jobs 50] [--workers 2] [--waiting 100]
       [--probes 200]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support
from tests.support.stackutil import child_pids, free_port_block  # noqa: E402
from thumbnails.core.config import Config  # noqa: E402
from thumbnails.core.jobs import Job, JobStatus, JobStore  # noqa: E402
from thumbnails.local import devstack  # noqa: E402

TERMINAL = ("succeeded", "failed")
POLL_INTERVAL = 0.1  # seconds: the polling client the others are compared with


def png() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((320, 240)).convert("RGB").save(out, "PNG")
    return out.getvalue()


def submit(urls: dict[str, str], data: bytes) -> str:
    answer = requests.post(f"{urls['upload']}/jobs", files={"file": ("a.png", data)},
                           timeout=30)
    answer.raise_for_status()
    job_id: str = answer.json()["job_id"]
    return job_id


class Counted:
    """GET /jobs/{id} with a count of the requests sent."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.status, self.session, self.requests = urls["status"], requests.Session(), 0

    def get(self, job_id: str, **params: object) -> dict[str, object]:
        self.requests += 1
        doc: dict[str, object] = self.session.get(f"{self.status}/jobs/{job_id}",
                                                  params=params, timeout=70).json()
        return doc


def by_polling(urls: dict[str, str], job_id: str, jobs: Counted) -> float:
    while True:
        if jobs.get(job_id)["status"] in TERMINAL:
            return time.time()
        time.sleep(POLL_INTERVAL)


def by_long_poll(urls: dict[str, str], job_id: str, jobs: Counted) -> float:
    while True:
        if jobs.get(job_id, wait=30)["status"] in TERMINAL:
            return time.time()


class Stream:
    """One GET /events connection for the whole run; `ended(job_id)` waits for that job's
    terminal event and gives the time it arrived."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.response = requests.get(f"{urls['status']}/events", stream=True,
                                     timeout=(10, 600))
        self.response.raise_for_status()
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    change = json.loads(line[5:])
                    if change["status"] in TERMINAL:
                        with self.cond:
                            self.arrived[change["job_id"]] = time.time()
                            self.cond.notify_all()
        except (requests.RequestException, AttributeError):
            pass  # closed at the end of the run

    def ended(self, job_id: str, timeout: float = 60) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: job_id in self.arrived, timeout):
                raise TimeoutError(f"no terminal event for {job_id}")
            return self.arrived[job_id]


def measure(urls: dict[str, str], count: int, data: bytes,
            follow: Callable[[str, Counted], float]) -> tuple[list[float], float]:
    """Latencies in ms over `count` jobs, and GET /jobs/{id} requests per job."""
    jobs = Counted(urls)
    latencies = []
    for _ in range(count):
        job_id = submit(urls, data)
        known = follow(job_id, jobs)
        finished = requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).json()
        latencies.append((known - float(finished["finished_at"])) * 1000)
    return latencies, jobs.requests / count


def report(name: str, latencies: list[float], per_job: float | None) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    tail = "" if per_job is None else f"   GET /jobs/{{id}} per job {per_job:5.1f}"
    print(f"{name:<32} p50 {statistics.median(ordered):7.1f} ms   p99 {p99:7.1f} ms   "
          f"max {ordered[-1]:7.1f} ms{tail}", flush=True)


def quiet_job(urls: dict[str, str]) -> str:
    """A queued job no event announces (nothing will change it)."""
    client = redis.Redis.from_url(urls["redis"])
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
    JobStore(client).create(job, b"", check_at=time.time() + 3600)
    client.close()
    return job.job_id


def answer_times(urls: dict[str, str], job_id: str, probes: int) -> dict[str, list[float]]:
    """ms per answer of each kind of ordinary request, one at a time."""
    session = requests.Session()
    paths = {"GET /health": "/health", "GET /jobs?limit=20": "/jobs?limit=20",
             "GET /jobs/{id}": f"/jobs/{job_id}"}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(probes):
        for name, path in paths.items():
            started = time.perf_counter()
            session.get(urls["status"] + path, timeout=30).raise_for_status()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def status_memory(stack: devstack.Stack) -> str:
    """Resident memory and threads of status's gunicorn workers, from /proc."""
    rss_kib, threads = 0, 0
    for pid in child_pids(stack.processes["status"].pid):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kib += int(line.split()[1])
            elif line.startswith("Threads:"):
                threads += int(line.split()[1])
    return f"status workers: {rss_kib / 1024:.1f} MiB resident, {threads} threads"


def starvation(stack: devstack.Stack, waiting: int, probes: int) -> None:
    """Ordinary requests' answer times with no long poll and with `waiting` parked."""
    urls = stack.urls
    job_id = quiet_job(urls)
    print(status_memory(stack) + ", 0 waiting", flush=True)
    for name, values in answer_times(urls, job_id, probes).items():
        report(f"{name}, 0 waiting", values, None)
    parked = [quiet_job(urls) for _ in range(waiting)]
    with ThreadPoolExecutor(max_workers=waiting) as pool:
        held = [pool.submit(requests.get, f"{urls['status']}/jobs/{j}?wait=60", timeout=90)
                for j in parked]
        time.sleep(2)  # lets every long poll reach status and park
        if any(f.done() for f in held):
            raise RuntimeError("a long poll answered before its job changed")
        for name, values in answer_times(urls, job_id, probes).items():
            report(f"{name}, {waiting} waiting", values, None)
        print(status_memory(stack) + f", {waiting} waiting", flush=True)
        still = sum(not f.done() for f in held)
        print(f"long polls still waiting after the probes: {still} of {waiting}", flush=True)
        client = redis.Redis.from_url(urls["redis"])
        store = JobStore(client)
        for j in parked:  # end them, so the pool closes at once
            store.claim(j, "t", 60, 3)
            store.finish(j, "t", JobStatus.SUCCEEDED, finished_at=time.time())
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50, help="jobs per way (default 50)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per part")
    parser.add_argument("--waiting", type=int, default=100, help="long polls parked (100)")
    parser.add_argument("--probes", type=int, default=200,
                        help="ordinary requests of each kind, per phase (200)")
    args = parser.parse_args()
    data = png()
    with tempfile.TemporaryDirectory() as tmp:
        stack = devstack.start(Config(), free_port_block(len(devstack.PARTS)), Path(tmp),
                               args.workers)
        try:
            urls = stack.urls
            measure(urls, 5, data, lambda j, c: by_polling(urls, j, c))  # warm up
            print(f"{args.jobs} jobs each, one at a time, {args.workers} workers per part; "
                  "latency = time the client knew - the job's finished_at", flush=True)
            report("polling every 100 ms",
                   *measure(urls, args.jobs, data, lambda j, c: by_polling(urls, j, c)))
            report("long poll (wait=30)",
                   *measure(urls, args.jobs, data, lambda j, c: by_long_poll(urls, j, c)))
            stream = Stream(urls)
            try:
                report("event stream", *measure(urls, args.jobs, data,
                                                lambda j, c: stream.ended(j)))
            finally:
                stream.response.close()
            starvation(stack, args.waiting, args.probes)
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
