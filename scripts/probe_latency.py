"""How fast resize answers Knative's probes while every request slot does real work.

Starts a throwaway Valkey and DATA_DIR, then, for thumbnails.core.probeworker's worker and for
gunicorn's stock gthread worker in turn, runs resize under gunicorn with the chart's
workers and threads (default 2 x 1 = containerConcurrency 2). WORKERS x THREADS clients
keep that many image.uploaded events in flight, one large PNG each (a real resize: CPU and
GIL busy; PNG has no reduced-size decoding, so every pixel is decoded), while a prober
sends GET /health every INTERVAL seconds, as the kubelet's liveness probe does. Prints the
probes' latency (median, 95th percentile, max) and how many took longer than 0.1 s (the
queue-proxy's attempt when periodSeconds is 0) and than TIMEOUT (the chart's
timeoutSeconds, 3), for each worker.

Usage: python scripts/probe_latency.py [--seconds 20] [--megapixels 48] [--workers 2]
       [--threads 1] [--interval 0.5] [--timeout 3]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image

from thumbnails import upload
from thumbnails.core import events, serving
from thumbnails.core.config import Config
from thumbnails.local.localredis import start_valkey

WORKERS = {"probe threads": serving.WORKER_CLASS, "stock gthread": "gthread"}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def large_png(megapixels: float) -> bytes:
    """A PNG of about `megapixels` (a gradient: small to upload, full cost to decode)."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    image = Image.linear_gradient("L").resize((width, width * 3 // 4)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jobs(config: Config, data: bytes, count: int) -> list[str]:
    """`count` queued jobs of the image, made by upload's app in this process."""
    client = upload.create_app(config).test_client()
    return [client.post("/jobs", data={"file": (io.BytesIO(data), "big.png")}).json["job_id"]
            for _ in range(count)]


def run(label: str, worker_class: str, args: argparse.Namespace, config: Config,
        job_ids: list[str]) -> None:
    """Serve resize with one worker class, load it, probe it, print one line."""
    port = free_port()
    command = serving.gunicorn_command("resize", f"127.0.0.1:{port}", args.workers,
                                       args.threads, worker_class=worker_class,
                                       log_level="warning")
    process = subprocess.Popen(command, env={**os.environ, **config.to_env()},
                               stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"resize did not start ({label})")
            time.sleep(0.05)
        pending = iter(job_ids)
        lock, stop = threading.Lock(), threading.Event()
        done = itertools.count()

        def client() -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    with lock:
                        job_id = next(pending, None)
                    if job_id is None:
                        return
                    headers, body = events.to_http(events.new_event(
                        events.IMAGE_UPLOADED, "/bench", {"job_id": job_id}))
                    session.post(base + "/", headers=headers, data=body, timeout=300)
                    next(done)

        clients = [threading.Thread(target=client) for _ in range(args.workers * args.threads)]
        for thread in clients:
            thread.start()
        latencies = []
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                ok = requests.get(base + "/health", timeout=args.timeout * 3).status_code == 200
            except requests.RequestException:
                ok = False
            took = time.monotonic() - started
            latencies.append(took if ok else float("inf"))
            time.sleep(max(0.0, args.interval - took))
        stop.set()
        for thread in clients:
            thread.join()
        ms = sorted(t * 1000 for t in latencies)
        print(f"{label:14} probes {len(ms):3}  median {statistics.median(ms):7.1f} ms  "
              f"p95 {ms[int(len(ms) * 0.95) - 1]:7.1f} ms  max {ms[-1]:7.1f} ms  "
              f"over 0.1 s: {sum(t > 100 for t in ms):3}  "
              f"over {args.timeout:g} s: {sum(t > args.timeout * 1000 for t in ms):3}  "
              f"resizes done: {next(done)}", flush=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--megapixels", type=float, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        valkey = start_valkey(port, Path(tmp) / "valkey", persist=False)
        try:
            config = Config(redis_url=f"redis://127.0.0.1:{port}/0", data_dir=Path(tmp) / "data",
                            lease_seconds=600, log_level="WARNING")
            data = large_png(args.megapixels)
            print(f"resize: {args.workers} workers x {args.threads} threads, "
                  f"{args.megapixels:g} MP PNG ({len(data) / 1e6:.1f} MB) per request; "
                  f"GET /health every {args.interval:g} s for {args.seconds:g} s", flush=True)
            count = int(args.seconds * args.workers * args.threads * 2) + 10
            for label, worker_class in WORKERS.items():
                run(label, worker_class, args, config, jobs(config, data, count))
        finally:
            valkey.terminate()
            valkey.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
