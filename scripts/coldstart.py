"""Cold start of one function, measured on this machine: process start to the first 200
from GET /ready (or --path /health), as a Knative cold start sees it once the container runs:
the queue-proxy sends it traffic once its readiness probe passes.

Starts a throwaway Valkey and a temporary DATA_DIR, then RUNS times starts
`thumbnails serve FUNCTION --workers WORKERS --threads 1` on a free port (or, where `serve` is
not there yet, `python -m gunicorn 'thumbnails.FUNCTION:create_app()'`), polls the path and
stops it (/ready: Redis takes a write and the store answers).
Prints min/median/max (and the CPU time its processes had used by then: on a shared
machine wall-clock times are noisy, CPU times much less), the same without any .pyc (as a
python:slim image would start under readOnlyRootFilesystem had the Dockerfile not
precompiled), and the heaviest imports of the function's app by `python -X importtime`.

Usage: python scripts/coldstart.py [--function resize] [--path /ready] [--runs 5] [--top 15]
       [--workers 1] [--no-compare]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from thumbnails.local.localredis import start_valkey

FUNCTIONS = ("upload", "status", "resize")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def thumbnails_command() -> list[str]:
    """The console script next to this Python (a container's ENTRYPOINT), else -m."""
    script = Path(sys.executable).parent / "thumbnails"
    return [str(script)] if script.exists() else [sys.executable, "-m", "thumbnails.core.cli"]


def serve_command(function: str, port: int, workers: int = 1) -> tuple[list[str], str]:
    """The command that serves `function` on 127.0.0.1:port, and how it is described."""
    help_run = subprocess.run([*thumbnails_command(), "serve", "--help"],
                              capture_output=True, text=True, check=False)
    if help_run.returncode == 0:
        command = [*thumbnails_command(), "serve", function, "--workers", str(workers),
                   "--threads", "1"]
        if "--host" in help_run.stdout:
            command += ["--host", "127.0.0.1"]
        return command, f"thumbnails serve {function} --workers {workers} --threads 1"
    command = [sys.executable, "-m", "gunicorn", f"thumbnails.{function}:create_app()",
               "-b", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "1"]
    return command, (f"python -m gunicorn 'thumbnails.{function}:create_app()' "
                     f"--workers {workers}")


def healthy(port: int, path: str) -> bool:
    """Whether GET path answers 200 now."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM gunicorn (it stops its workers); SIGKILL the group if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process and its children alive now have used, in ms
    (/proc/<pid>/stat utime and stime, in clock ticks; 0 for one that is gone)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return total
    return total + sum(cpu_ms(int(child)) for child in children)


def one_start(function: str, env: dict[str, str], path: str, timeout: float = 60.0,
              workers: int = 1) -> float:
    """Milliseconds from starting the server process to its first 200 from GET path."""
    return timed_start(function, env, path, timeout, workers)[0]


def timed_start(function: str, env: dict[str, str], path: str, timeout: float = 60.0,
                workers: int = 1) -> tuple[float, float]:
    """Milliseconds from starting the server process to its first 200 from GET path, and the
    CPU milliseconds its processes had used by then (less noisy on a shared machine)."""
    port = free_port()
    command, _ = serve_command(function, port, workers)
    env = {**env, "PORT": str(port)}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        while not healthy(port, path):
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"{command[:4]} exited with {process.returncode}:\n{error}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"no 200 from {path} within {timeout}s")
            time.sleep(0.005)
        return (time.perf_counter() - started) * 1000, cpu_ms(process.pid)
    finally:
        stop(process)


def measure(function: str, runs: int, env: dict[str, str], path: str, workers: int = 1,
            ) -> list[tuple[float, float]]:
    """`runs` cold starts (after one unmeasured start that warms the page cache): (wall ms,
    CPU ms) each."""
    one_start(function, env, path, workers=workers)
    return [timed_start(function, env, path, workers=workers) for _ in range(runs)]


def summary(samples: list[tuple[float, float]]) -> str:
    """min / median / max in milliseconds, wall clock and CPU."""
    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return (f"min {min(wall):.0f} ms   median {statistics.median(wall):.0f} ms   "
            f"max {max(wall):.0f} ms   (CPU: median {statistics.median(cpu):.0f} ms)")


def import_times(function: str, top: int) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, indented module) of the heaviest imports of the app."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          f"import thumbnails.{function}.app"],
                         capture_output=True, text=True, check=True)
    rows = []
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative), int(own), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", choices=FUNCTIONS, default="resize")
    parser.add_argument("--path", choices=("/ready", "/health"), default="/ready",
                        help="the probe whose first 200 ends the cold start")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (resize's "
                        "chart default is 2)")
    parser.add_argument("--top", type=int, default=15, help="imports to list")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the measurement without .pyc files")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        redis_port = free_port()
        valkey = start_valkey(redis_port, Path(tmp) / "valkey", persist=False)
        try:
            env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                   "STORAGE_BACKEND": "filesystem", "DATA_DIR": str(Path(tmp) / "objects"),
                   "LOG_LEVEL": "WARNING"}
            _, described = serve_command(args.function, 0, args.workers)
            print(f"cold start of `{described}`: process start -> first 200 from {args.path}, "
                  f"{args.runs} runs")
            warm = measure(args.function, args.runs, env, args.path, args.workers)
            print(f"  with .pyc (the image precompiles):      {summary(warm)}")
            if not args.no_compare:
                # An empty cache prefix and no writing: every import compiles its source,
                # every time, as in a slim image under readOnlyRootFilesystem.
                no_pyc = {**env, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "empty-pycache"),
                          "PYTHONDONTWRITEBYTECODE": "1"}
                cold = measure(args.function, args.runs, no_pyc, args.path, args.workers)
                print(f"  without any .pyc (compiled each start): {summary(cold)}")
        finally:
            valkey.terminate()
            valkey.wait(timeout=10)

    print(f"\nheaviest imports of thumbnails.{args.function}.app "
          f"(python -X importtime, cumulative):")
    print(f"  {'cumulative':>10}  {'self':>8}  module")
    for cumulative, own, name in import_times(args.function, args.top):
        print(f"  {cumulative / 1000:>7.1f} ms  {own / 1000:>5.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
