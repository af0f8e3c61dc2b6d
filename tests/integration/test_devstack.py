"""`thumbnails dev` as a user runs it: the printed lines, Ctrl-C/SIGTERM, a rerun after a crash."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import redis
import requests

from tests.support.images import kinds
from tests.support.servers import free_port
from tests.support.stackutil import free_port_block, poll, submit, wait_terminal
from thumbnails.local.devstack import PARTS, PID_FILE

THUMBNAILS = str(Path(sys.executable).with_name("thumbnails"))


def start_dev(port: int, data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run the console script; return it and the URLs from its first five lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "STORAGE_BACKEND")}
    process = subprocess.Popen([THUMBNAILS, "dev", "--port", str(port), "--data-dir",
                                str(data_dir)], stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    lines = [process.stdout.readline().rstrip("\n") for _ in PARTS]
    urls = {}
    for part, line in zip(PARTS, lines, strict=True):
        scheme = "redis" if part == "redis" else "http"
        assert re.fullmatch(rf"{part}: {scheme}://127\.0\.0\.1:\d+(/0)?", line), lines
        urls[part] = line.split(": ", 1)[1]
    return process, urls


def children_alive(data_dir: Path, pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()
            and b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()]


def test_dev_serves_stops_and_restarts_after_a_crash(tmp_path: Path) -> None:
    port = free_port_block(len(PARTS))
    process, urls = start_dev(port, tmp_path)
    try:
        assert urls["upload"] == f"http://127.0.0.1:{port}"
        assert urls["redis"] == f"redis://127.0.0.1:{port + 4}/0"
        job = submit(urls, kinds()["png"][0]).json()
        assert wait_terminal(urls, job["job_id"])["status"] == "succeeded"
        pids = [int(p) for p in (tmp_path / PID_FILE).read_text().split()]
        assert len(pids) == 6  # valkey, three functions, broker ingress and dispatcher
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert poll(lambda: children_alive(tmp_path, pids) == [] or None, timeout=30)
    assert not (tmp_path / PID_FILE).exists()

    # A crash: the parent dies without cleaning up; its children keep the ports.
    process, urls = start_dev(port, tmp_path)
    stale = [int(p) for p in (tmp_path / PID_FILE).read_text().split()]
    process.kill()
    process.wait()
    assert children_alive(tmp_path, stale)
    process, urls = start_dev(port, tmp_path)  # same ports and data dir: works again
    try:
        assert children_alive(tmp_path, stale) == []
        # Jobs from before the crash survived (Valkey's append-only file).
        listed = requests.get(f"{urls['status']}/jobs", timeout=10).json()
        assert job["job_id"] in [j["job_id"] for j in listed]
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    port = free_port_block(len(PARTS))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port + 2))
        blocker.listen()
        result = subprocess.run([THUMBNAILS, "dev", "--port", str(port), "--data-dir",
                                 str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"port {port + 2} for resize is in use" in result.stderr
    assert not (tmp_path / PID_FILE).exists()


def test_serve_runs_one_function_on_port_and_stops_on_sigterm(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    """A container's entry point: gunicorn in this very process, on $PORT, SIGTERM ends it."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "REDIS_URL": redis_url, "DATA_DIR": str(tmp_path)}
    process = subprocess.Popen([THUMBNAILS, "serve", "status", "--host", "127.0.0.1",
                                "--workers", "1", "--threads", "2"], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        def answered() -> requests.Response | None:
            try:
                return requests.get(f"http://127.0.0.1:{port}/ready", timeout=5)
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or a slow box
                assert process.poll() is None, "serve exited early"
                return None

        assert poll(answered).json() == {"status": "ready"}
        assert requests.get(f"http://127.0.0.1:{port}/jobs", timeout=5).json() == []
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-2000:]
    # Not a child: the pid Knative signals is gunicorn's master itself (gunicorn's own line
    # names the master's pid).
    assert f"Listening at: http://127.0.0.1:{port} ({process.pid})" in stderr
    assert "Shutting down" in stderr


# On SIGTERM: note the signal, take 0.3 s to finish (as upload's outbox sends its last
# events), note the exit.
SLOW_EXIT = """
import signal, sys, time
def stop(*_):
    with open(sys.argv[1], "a") as log:
        log.write(sys.argv[2] + " term\\n")
    time.sleep(0.3)
    with open(sys.argv[1], "a") as log:
        log.write(sys.argv[2] + " exit\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_stop_terminates_upload_before_the_broker_and_redis_last(tmp_path: Path) -> None:
    """Each stage gets SIGTERM only once the one before has exited (STOP_ORDER)."""
    from thumbnails.local.devstack import STOP_ORDER, Stack

    log = tmp_path / "order.log"
    names = ["redis", "broker", "dispatcher", "status", "resize", "upload"]  # start order
    processes = {}
    for name in names:
        processes[name] = subprocess.Popen([sys.executable, "-c", SLOW_EXIT, str(log), name],
                                           stdout=subprocess.PIPE, text=True)
        assert processes[name].stdout.readline() == "ready\n"
    Stack(urls={}, processes=processes, pid_file=tmp_path / PID_FILE).stop()
    events = log.read_text().split("\n")[:-1]
    assert sorted(events) == sorted(f"{n} {e}" for n in names for e in ("term", "exit"))
    stage_of = {name: i for i, stage in enumerate(STOP_ORDER) for name in stage}
    assert stage_of["upload"] < stage_of["broker"] < stage_of["redis"]
    for event in events:
        name, what = event.split()
        if what == "term":  # every part of an earlier stage has exited already
            earlier = [n for n in names if stage_of[n] < stage_of[name]]
            assert all(events.index(f"{n} exit") < events.index(event) for n in earlier)
