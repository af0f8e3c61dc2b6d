"""thumbnails.core.serving, the one gunicorn module: the command line and `thumbnails serve` carry
the same settings, gunicorn reads only the hooks and the logger from the module, and `serve`
runs gunicorn in its own process with the app preloaded and glibc's malloc tuned."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from gunicorn.config import KNOWN_SETTINGS
from gunicorn.config import Config as GunicornConfig

from tests.support.gunicornproc import children, serving_function
from tests.support.servers import free_port
from tests.support.stackutil import poll
from thumbnails import upload
from thumbnails.core import serving
from thumbnails.core.config import Config

THUMBNAILS = str(Path(sys.executable).with_name("thumbnails"))
# What every function runs with (written out here, not read from the module under test).
EXPECTED = {"bind": ["127.0.0.1:9"], "workers": 2, "threads": 3, "timeout": 60,
            "graceful_timeout": 20, "control_socket_disable": True, "loglevel": "debug",
            "accesslog": "-", "worker_tmp_dir": "/dev/shm",
            "worker_class": "thumbnails.core.buffering.BufferingWorker"}
HOOKS = {"on_starting", "post_worker_init", "worker_exit", "child_exit", "on_exit"}


def gunicorn_reads(command: list[str]) -> GunicornConfig:
    """The settings gunicorn's own argument parser takes from a command line."""
    assert command[1:3] == ["-m", "gunicorn"]
    config = GunicornConfig()
    args = config.parser().parse_args(command[3:])
    for name, value in vars(args).items():
        if value is not None and name in config.settings:
            config.set(name, value)
    return config


def test_command_line_carries_the_settings() -> None:
    command = serving.gunicorn_command("resize", "127.0.0.1:9", 2, 3, access_log=True,
                                       worker_tmp_dir="/dev/shm", log_level="DEBUG")
    read = gunicorn_reads(command)
    assert {name: read.settings[name].get() for name in EXPECTED} == EXPECTED
    assert read.settings["config"].get() == "python:thumbnails.core.serving"
    assert command[3] == "thumbnails.resize:create_app()"


def test_serve_and_the_command_line_share_the_settings() -> None:
    server = serving.FunctionServer("resize", serving.settings(
        "127.0.0.1:9", 2, 3, access_log=True, worker_tmp_dir="/dev/shm", log_level="DEBUG",
        preload=True))
    assert {name: server.cfg.settings[name].get() for name in EXPECTED} == EXPECTED
    assert server.cfg.preload_app is True
    assert server.cfg.logger_class is serving.JsonLogger
    for hook in HOOKS:
        assert server.cfg.settings[hook].get() is getattr(serving, hook)


def test_gunicorn_reads_only_the_hooks_and_the_logger_from_the_module() -> None:
    """gunicorn takes every module-level name of a `-c python:` module that is one of its
    settings (gunicorn.app.base.load_config_from_module_name_or_filename)."""
    settings = {setting.name for setting in KNOWN_SETTINGS}
    assert {name for name in vars(serving) if name in settings} == {*HOOKS, "logger_class"}


def test_hooks_start_and_stop_the_apps_background_threads(redis_url: str,
                                                          tmp_path: Path) -> None:
    """The factory builds upload's outbox thread; gunicorn's post_worker_init starts it (in
    the worker, after any fork) and worker_exit stops it."""
    app = upload.create_app(Config(redis_url=redis_url, data_dir=tmp_path,
                                   sink_url=f"http://127.0.0.1:{free_port()}/",
                                   sweep_interval_seconds=30))
    outbox = app.extensions["outbox"]._thread
    assert not outbox.is_alive()  # built, not started
    worker = SimpleNamespace(wsgi=app)  # what the hooks read of gunicorn's Worker
    try:
        serving.post_worker_init(worker)
        assert outbox.is_alive()
        serving.worker_exit(None, worker)
        assert not outbox.is_alive()
    finally:
        gc.unfreeze()  # post_worker_init froze this test process's heap


ARENAS = """
import ctypes, sys, threading
from thumbnails.core import memory, serving
if sys.argv[1] == "tuned":
    memory.tune_malloc(serving.MALLOC_TUNING)
barrier, held = threading.Barrier(4), []
def allocate():  # four threads allocating at once: glibc gives each an arena unless limited
    held.append(bytearray(200_000))
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(out))  # glibc's own report: one <heap> per arena
libc.fclose(ctypes.c_void_p(out))
print(open(sys.argv[2]).read().count("<heap nr="))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_info")
def test_tune_malloc_limits_the_arenas_as_the_environment_variable_would(tmp_path: Path) -> None:
    def arenas(mode: str, **env: str) -> int:
        run = subprocess.run([sys.executable, "-c", ARENAS, mode, str(tmp_path / "info.xml")],
                             env={**os.environ, **env}, capture_output=True, text=True,
                             check=True, timeout=60)
        return int(run.stdout)

    assert arenas("plain") > 1
    assert arenas("tuned") == 1  # MALLOC_ARENA_MAX=1
    assert arenas("plain", MALLOC_ARENA_MAX="1") == 1  # what glibc does with the variable


def test_serve_is_gunicorn_in_one_process_with_the_app_preloaded(redis_url: str,
                                                                   tmp_path: Path) -> None:
    """No second interpreter: the process started is gunicorn's master (the workers are its
    children), and it built the app before forking them (Pillow, which only resize's app
    imports, is mapped in the master too)."""
    port = free_port()
    command = [THUMBNAILS, "serve", "resize", "--host", "127.0.0.1", "--workers", "2",
               "--threads", "1"]
    env = {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "objects"),
           "LOG_LEVEL": "WARNING"}
    with serving_function(command, env, port, tmp_path / "resize.log") as server:
        master = server.process.pid
        cmdline = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
        # The console script's command line still (an exec'd gunicorn would show -m gunicorn).
        assert cmdline[1:4] == [THUMBNAILS.encode(), b"serve", b"resize"], cmdline
        # /ready may come from the first worker before the master has forked the second.
        workers = poll(lambda: children(master) if len(children(master)) == 2 else None)
        for worker in workers:
            stat = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
            assert int(stat[1]) == master  # its parent, field 4 of proc(5)'s stat
        maps = Path(f"/proc/{master}/maps").read_text()
        assert "PIL/_imaging" in maps
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0, server.stderr()


def test_preloaded_workers_share_prometheus_multiprocess_directory(redis_url: str,
                                                                   tmp_path: Path) -> None:
    """The master makes the metrics directory before it imports the app (a preloaded app
    imports prometheus_client): every worker writes its values there, and /metrics adds
    them up."""
    port = free_port()
    command = [THUMBNAILS, "serve", "upload", "--host", "127.0.0.1", "--workers", "2",
               "--threads", "1"]
    env = {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "objects"), "LOG_LEVEL": "WARNING",
           "TMPDIR": str(tmp_path)}
    with serving_function(command, env, port, tmp_path / "upload.log") as server:
        master = server.process.pid
        workers = poll(lambda: children(master) if len(children(master)) == 2 else None)
        for _ in range(10):
            assert requests.get(f"{server.url}/jobs/x", timeout=10).status_code == 404
        directory = tmp_path / f"thumbnails-metrics-{master}"
        written = {int(f.stem.rsplit("_", 1)[1]) for f in directory.glob("counter_*.db")}
        assert written & set(workers), (written, workers)
        scrape = requests.get(f"{server.url}/metrics", timeout=10).text
        line = ('thumbnails_http_requests_total{function="upload",method="GET",'
                'route="unmatched",status="404"} ')
        assert f"{line}10.0" in scrape.splitlines()
