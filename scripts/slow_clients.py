"""How many slow clients until a function stops answering others, measured on this machine.

Starts a throwaway Valkey and upload as `thumbnails serve` runs it (1 worker, 4 threads, the
command of thumbnails.core.serving), once with thumbnails.core.buffering.BufferingWorker (what the
functions run) and once with gunicorn's stock gthread worker (what they ran before). Then
opens more and more connections that send half their headers and then nothing, and after
each step times GET /health. Prints, per step, the number of stalled connections and the
slowest of three /health answers (or "none in Ts"), and the threshold: the first count at
which /health took over a second.

Usage: python scripts/slow_clients.py [--steps 0,1,2,3,4,5,8,64,256,900,1000,1100]
                                      [--threads 4] [--timeout 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from thumbnails.core.serving import WORKER_CLASS, gunicorn_command
from thumbnails.local.localredis import start_valkey

HALF_HEADERS = b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def health_seconds(port: int, timeout: float) -> float | None:
    """Seconds until GET /health answered 200 on a new connection; None if it did not."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = sock.recv(64)
    except OSError:
        return None
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while health_seconds(port, 1) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("upload did not start")
        time.sleep(0.05)


def measure(worker_class: str, steps: list[int], threads: int, timeout: float,
            env: dict[str, str]) -> int | None:
    port = free_port()
    command = gunicorn_command("upload", f"127.0.0.1:{port}", 1, threads)
    command[command.index("--worker-class") + 1] = worker_class
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    stalled: list[socket.socket] = []
    threshold = None
    try:
        wait_ready(port, process)
        print(f"\n{worker_class} (1 worker, {threads} threads):")
        print(f"{'stalled':>8}  {'slowest /health of 3':>22}")
        for step in steps:
            while len(stalled) < step:
                sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                sock.sendall(HALF_HEADERS)
                stalled.append(sock)
            answers = [health_seconds(port, timeout) for _ in range(3)]
            worst = None if None in answers else max(a for a in answers if a is not None)
            shown = f"none in {timeout:g}s" if worst is None else f"{worst * 1000:.1f} ms"
            print(f"{step:>8}  {shown:>22}", flush=True)
            if threshold is None and (worst is None or worst > 1):
                threshold = step
                break
    finally:
        for sock in stalled:
            sock.close()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return threshold


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="0,1,2,3,4,5,8,64,256,900,1000,1100")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        redis_port = free_port()
        valkey = start_valkey(redis_port, Path(tmp) / "valkey", persist=False)
        # Stalled clients stay stalled while measured: a header timeout past the run.
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
               "DATA_DIR": str(Path(tmp) / "objects"), "HEADER_TIMEOUT_SECONDS": "600",
               "LOG_LEVEL": "WARNING"}
        try:
            results = {worker: measure(worker, steps, args.threads, args.timeout, env)
                       for worker in (WORKER_CLASS, "gthread")}
        finally:
            valkey.terminate()
            valkey.wait(timeout=10)
    print()
    for worker, threshold in results.items():
        text = (f"{threshold} stalled connections" if threshold is not None
                else f"not reached by {steps[-1]}")
        print(f"threshold ({worker}): /health waits over 1 s from {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
