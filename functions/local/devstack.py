"""`thumbnails dev`: the whole service on one machine, each part a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click
import requests

from thumbnails.core.cli import BadConfiguration, service_config
from thumbnails.core.config import Config, ConfigError
from thumbnails.core.serving import APPS, MALLOC_TUNING, gunicorn_command

from .broker.settings import BrokerSettings
from .localredis import start_valkey

# The parts in the order their ports are handed out (--port, --port + 1, ...).
PARTS = ("upload", "status", "resize", "broker", "redis")
PID_FILE = "dev.pids"
# Stages of Stack.stop: upload (new jobs; its outbox sends their events) first, then the
# other functions, which also send events to the broker, then the broker, then Redis,
# which all of them use.
STOP_ORDER = (("upload",), ("resize", "status"), ("broker", "dispatcher"), ("redis",))


@dataclass
class Stack:
    """The running processes and the URL of each part."""

    urls: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]  # part (and "dispatcher") -> process
    pid_file: Path

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the parts in STOP_ORDER, each stage after the one before has exited
        (SIGKILL what outlives timeout): upload first, so its outbox thread sends its last
        events while the broker still takes them; the broker after everything that sends
        to it; Redis last."""
        for stage in STOP_ORDER:
            _terminate([p for name, p in self.processes.items() if name in stage], timeout)
        self.pid_file.unlink(missing_ok=True)

    def failed(self) -> subprocess.Popen[bytes] | None:
        """A child that has exited, if any."""
        return next((p for p in self.processes.values() if p.poll() is not None), None)


def start(config: Config, port: int, data_dir: Path, workers: int,
          broker: BrokerSettings | None = None) -> Stack:
    """Start every part on consecutive ports from `port`; return when all of them answer.
    The broker gets `broker` (default: from the environment) with resize's and status's
    URLs added to its subscribers."""
    broker = broker or BrokerSettings.from_env()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pid_file = data_dir / PID_FILE
    _kill_stale(pid_file)
    ports = dict(zip(PARTS, range(port, port + len(PARTS)), strict=True))
    urls = {part: f"http://127.0.0.1:{p}" for part, p in ports.items()}
    embedded_redis = not config.redis_url
    urls["redis"] = f"redis://127.0.0.1:{ports['redis']}/0" if embedded_redis else config.redis_url
    for part in PARTS if embedded_redis else PARTS[:-1]:
        _check_free(ports[part], part)
    config = replace(
        config,
        redis_url=urls["redis"],
        data_dir=config.data_dir if config.storage_backend == "s3" else data_dir / "objects",
        sink_url=urls["broker"],
        status_base_url=urls["status"],
        upload_base_url=urls["upload"],
        # status's web page uploads to upload, another origin; the page may be opened at
        # localhost as well as at 127.0.0.1
        cors_origins=",".join(filter(None, (
            config.cors_origins, urls["status"],
            urls["status"].replace("//127.0.0.1:", "//localhost:")))),
        debug_endpoint=True,
    )
    # resize, status (webhooks), plus any Service the caller maps (a test's recording
    # subscriber, say)
    broker = replace(broker, subscribers=",".join(filter(None, (
        f"resize={urls['resize']}", f"status={urls['status']}", broker.subscribers))))
    # Every upload and resize allocates and frees buffers of the image's size; glibc would
    # hand those back to the kernel each time and fault fresh zeroed pages in for the next
    # one. Keeping them in the heap saves about a tenth of the CPU a job costs.
    env = {**MALLOC_TUNING, **os.environ, **config.to_env()}
    broker_env = {**env, **broker.to_env()}  # the broker's own settings: its processes only
    stack = Stack(urls=urls, processes={}, pid_file=pid_file)
    try:
        if embedded_redis:
            stack.processes["redis"] = start_valkey(ports["redis"], data_dir / "valkey")
            _record(stack)
        for part in APPS:
            stack.processes[part] = _gunicorn(part, ports[part], workers,
                                              broker_env if part == "broker" else env)
        stack.processes["dispatcher"] = (subprocess.Popen(
            [sys.executable, "-m", "thumbnails.local.broker.dispatcher"], env=broker_env,
            stdin=subprocess.DEVNULL, start_new_session=True))
        _record(stack)
        for part in APPS:
            _wait_healthy(stack, urls[part] + "/health")
    except BaseException:
        stack.stop()
        raise
    return stack


def _terminate(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _gunicorn(part: str, port: int, workers: int,
              env: dict[str, str]) -> subprocess.Popen[bytes]:
    # resize is CPU-bound: one request per process, as containerConcurrency does in a
    # cluster; the others mostly wait on I/O and serve several requests per process.
    resize = part == "resize"
    # Access lines only at DEBUG: the terminal stays readable while the web page polls.
    level = env.get("LOG_LEVEL", "INFO")
    args = gunicorn_command(part, f"127.0.0.1:{port}",
                            workers if resize else max(1, workers // 2), 1 if resize else 4,
                            access_log=level.upper() == "DEBUG", log_level=level)
    return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_healthy(stack: Stack, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dead = stack.failed()
        if dead is not None:
            raise RuntimeError(f"{dead.args[:4]} exited with code {dead.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout}s")
        time.sleep(0.1)


def _check_free(port: int, part: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(
                f"port {port} for {part} is in use; choose another with --port") from None


def _record(stack: Stack) -> None:
    stack.pid_file.write_text("".join(f"{p.pid}\n" for p in stack.processes.values()))


def _kill_stale(pid_file: Path) -> None:
    """Stop what a previous run that crashed left behind (only our own processes)."""
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        pid = int(line)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gunicorn" in cmdline or b"thumbnails" in cmdline or b"valkey" in cmdline:
            try:  # each child leads its own process group: take its workers too
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            Path(f"/proc/{line}").exists() for line in pid_file.read_text().split()):
        time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def run(config: Config, port: int, data_dir: Path, workers: int,
        broker: BrokerSettings | None = None) -> int:
    """Start the stack, print one line per part, run until Ctrl-C/SIGTERM or a child dies."""
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stack = start(config, port, data_dir, workers, broker)
    for part in PARTS:
        print(f"{part}: {stack.urls[part]}", flush=True)
    code = 0
    try:
        while not stopping:
            dead = stack.failed()
            if dead is not None:
                print(f"a part exited ({dead.args[:4]}, code {dead.returncode}); stopping",
                      file=sys.stderr, flush=True)
                code = 1
                break
            time.sleep(0.2)
    finally:
        stack.stop()
    return code


@click.command()
@click.option("--port", type=click.IntRange(1, 65535 - len(PARTS) + 1), default=8080,
              show_default=True, help="first port; the parts take consecutive ports")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("data"), show_default=True,
              help="where Redis data and stored images live")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="gunicorn workers for resize; the other functions get half")
def dev(port: int, data_dir: Path, workers: int) -> None:
    """Run the whole service locally (Valkey, broker, functions) until Ctrl-C."""
    config = service_config()
    try:
        broker = BrokerSettings.from_env()
    except ConfigError as exc:
        raise BadConfiguration(f"configuration error: {exc}") from None
    try:
        code = run(config, port, data_dir, workers, broker)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
