#!/usr/bin/env python3
"""Benchmark: Redis memory a finished job keeps.

Starts the local stack (`thumbnails dev`: Valkey, the filesystem store, the local broker and
the functions under gunicorn) in a temporary folder, runs a warm-up of jobs, then uploads N
small PNGs over HTTP, waits until every job has succeeded and the broker has delivered
everything, and prints:
  - MEMORY USAGE of each finished job's own keys (its hash), mean / min / max, in bytes;
  - the job index's MEMORY USAGE per job (one sorted-set entry each);
  - Valkey's used_memory (and used_memory_dataset: the data without the server's own
    buffers) after minus before the uploads, per job, with and without the local broker's
    event stream (the local broker's, not Knative's);
  - how much the append-only file grew per job;
  - the keys left in Redis, by kind.

Usage: .venv/bin/python scripts/redis_bytes_per_job.py [--jobs 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support
from tests.support.stackutil import free_port_block  # noqa: E402
from thumbnails.core.config import Config  # noqa: E402
from thumbnails.local import devstack  # noqa: E402
from thumbnails.local.broker import STREAM_KEY  # noqa: E402


def png(i: int) -> bytes:
    image = Image.new("RGB", (320, 240), (i % 256, 80, 160))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def used_memory(client: redis.Redis) -> tuple[int, int]:
    """(used_memory, used_memory_dataset): all the server's memory, and its data alone."""
    client.memory_purge()
    info = client.info("memory")
    return int(info["used_memory"]), int(info["used_memory_dataset"])


def wait(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the jobs")
        time.sleep(0.2)


def settle(client: redis.Redis, job_ids: list[str]) -> None:
    """Wait until every job succeeded, the broker delivered everything, the outbox is empty."""
    def all_done() -> bool:
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(f"thumbnails:job:{job_id}", "status")
        return all(s == b"succeeded" for s in pipe.execute())

    wait(all_done, 300)
    wait(lambda: all(g["pending"] == 0 and g["lag"] == 0
                     for g in client.xinfo_groups(STREAM_KEY)), 120)
    wait(lambda: client.hlen("thumbnails:outbox") == 0, 60)
    wait(lambda: client.xlen(STREAM_KEY) == 0, 60)  # the dispatcher trims every 5 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50,
                        help="jobs run before the first reading, so that what Redis allocates "
                             "once (script cache, client buffers, first stream nodes) is not "
                             "counted per job")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bytes-per-job-") as tmp:
        stack = devstack.start(Config(), free_port_block(len(devstack.PARTS)), Path(tmp), 2)
        try:
            urls = stack.urls
            client = redis.Redis.from_url(urls["redis"])

            def submit(data: bytes) -> str:
                answer = requests.post(f"{urls['upload']}/jobs",
                                       files={"file": ("a.png", data)}, timeout=30)
                answer.raise_for_status()
                job_id: str = answer.json()["job_id"]
                return job_id

            def run(count: int) -> list[str]:
                with ThreadPoolExecutor(args.concurrency) as pool:
                    job_ids = list(pool.map(submit, [png(i) for i in range(count)]))
                settle(client, job_ids)
                return job_ids

            run(args.warmup)
            before = used_memory(client)
            stream_before = client.memory_usage(STREAM_KEY, samples=0) or 0
            index_before = client.memory_usage("thumbnails:jobs", samples=0) or 0
            aof_before = int(client.info("persistence").get("aof_current_size", 0))
            job_ids = run(args.jobs)
            aof = int(client.info("persistence").get("aof_current_size", 0)) - aof_before
            after = used_memory(client)
            stream_after = client.memory_usage(STREAM_KEY, samples=0) or 0
            sizes = [client.memory_usage(f"thumbnails:job:{job_id}") or 0 for job_id in job_ids]
            index = (client.memory_usage("thumbnails:jobs", samples=0) or 0) - index_before
            kinds = Counter(":".join(k.decode().split(":")[:2]) for k in client.scan_iter())
            encodings = Counter(client.object("encoding", f"thumbnails:job:{job_id}")
                                for job_id in job_ids)
            delta, dataset = after[0] - before[0], after[1] - before[1]
            stream_delta = stream_after - stream_before
            print(f"{args.jobs} finished jobs")
            print(f"job hash MEMORY USAGE: mean {statistics.mean(sizes):.0f} B, min {min(sizes)} B,"
                  f" max {max(sizes)} B; encodings {dict(encodings)}")
            print(f"job index (sorted set) MEMORY USAGE: {index / args.jobs:.0f} B per job")
            print(f"used_memory delta: {delta / args.jobs:.0f} B per job; without the local "
                  f"broker's stream: {(delta - stream_delta) / args.jobs:.0f} B per job "
                  f"(stream: {stream_delta / args.jobs:.0f} B per job)")
            print(f"used_memory_dataset delta: {dataset / args.jobs:.0f} B per job; without the "
                  f"stream: {(dataset - stream_delta) / args.jobs:.0f} B per job")
            print(f"AOF growth: {aof / args.jobs:.0f} B per job (until the next rewrite)")
            print(f"keys left: {dict(kinds)}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
