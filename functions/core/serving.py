"""How a function runs under gunicorn: the one place for its app factory and server flags,
used by `thumbnails serve` (a container's entry point) and by `thumbnails dev`."""

from __future__ import annotations

import sys

APPS = {
    "upload": "thumbnails.upload:create_app()",
    "status": "thumbnails.status:create_app()",
    "resize": "thumbnails.resize:create_app()",
    "broker": "thumbnails.broker.ingress:create_app()",
}
FUNCTIONS = ("upload", "status", "resize")  # what a container serves; the broker is local only
# What Knative probes: the chart's livenessProbe and readinessProbe paths. Every function
# serves them (thumbnails.web), and WORKER_CLASS answers them on threads of their own.
LIVENESS_PATH, READINESS_PATH = "/health", "/ready"
PROBE_PATHS = (LIVENESS_PATH, READINESS_PATH)
# gthread whose event loop reads each request whole before a thread sees it, so slow clients
# hold no thread (thumbnails.buffering), plus threads that serve only the probes, so they are
# answered while every request slot is busy (thumbnails.probeworker, its base class).
WORKER_CLASS = "thumbnails.buffering.BufferingWorker"
# glibc malloc: keep big image buffers in the heap instead of mapping and unmapping them on
# every request (each fresh mapping costs page faults). One arena: thumbnails.memory's
# malloc_trim after a large request returns the free top of the main arena's heap, but never
# that of a thread's arena (glibc malloc.c mtrim: systrim for main_arena only), where a 15 MB
# upload's buffers stayed resident (measured: +45 MB in upload's worker after three); threads
# allocate under the GIL anyway, so they hardly contend for it.
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20),
                 "MALLOC_ARENA_MAX": "1"}


# gunicorn's settings module: the metrics directory of the workers (prometheus_client's
# multiprocess mode), a JSON logger for its own and access lines (stderr).
GUNICORN_CONF = "python:thumbnails.gunicorn_conf"


def gunicorn_command(part: str, bind: str, workers: int, threads: int,
                     timeout: int = 60, access_log: bool = False,
                     worker_tmp_dir: str | None = None, log_level: str = "info",
                     worker_class: str = WORKER_CLASS) -> list[str]:
    """The gunicorn command line for one part: `threads` request threads in each of
    `workers` processes (WORKER_CLASS: requests read whole before a thread takes them, probes
    answered on threads of their own), no control socket, JSON logs on stderr (access lines
    too when access_log), metrics shared by the workers. timeout in seconds."""
    args = [
        sys.executable, "-m", "gunicorn", APPS[part],
        "--config", GUNICORN_CONF,
        "--bind", bind,
        "--workers", str(workers),
        "--worker-class", worker_class, "--threads", str(threads),
        "--timeout", str(timeout), "--graceful-timeout", "20", "--no-control-socket",
        "--log-level", log_level.lower(),
    ]
    if access_log:
        args += ["--access-logfile", "-"]  # stderr: thumbnails.gunicorn_conf.JsonLogger
    if worker_tmp_dir:  # the workers' heartbeat files: in RAM, not on a container's disk
        args += ["--worker-tmp-dir", worker_tmp_dir]
    return args
