"""How a function runs under gunicorn, in one module: its app factory, gunicorn's settings,
the hooks that do the process-level work, and the JSON logger.

Two ways in, one set of settings (`settings()`):

- `thumbnails serve` (a container's entry point) calls `serve()`, which runs gunicorn in
  its own process (`FunctionServer`, a gunicorn BaseApplication) with the app preloaded:
  Python starts once, the app is imported once, and the process Knative signals is
  gunicorn's master;
- `thumbnails dev`, the tests and the scripts start `gunicorn_command()`, which names this
  module as gunicorn's config (`-c python:thumbnails.core.serving`): gunicorn reads the hooks and
  `logger_class` below from it, and the other settings from the command's flags.

The hooks (gunicorn's server hooks, docs.gunicorn.org/en/stable/settings.html#server-hooks):

- on_starting (master): JSON log lines on stderr; a fresh metrics directory for
  prometheus_client's multiprocess mode, made before any worker is forked (and so before
  any worker imports prometheus_client): $TMPDIR/thumbnails-metrics-<master pid>, emptied at
  every start (a container restarted in the same pod finds its /tmp emptyDir, and its pid 1
  directory, as the last run left them);
- post_worker_init (each worker, its app built): start the app's background threads
  (thumbnails.core.web.start_background: upload's outbox), then gc.freeze what start-up made;
- worker_exit (each worker, leaving): stop those threads;
- child_exit (master): a worker that exits is marked dead, so its live gauges go; its
  counters stay in the totals;
- on_exit (master): the metrics directory goes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS

from .logs import JsonFormatter
from .probes import PROBE_PATHS

APPS = {
    "upload": "thumbnails.upload:create_app()",
    "status": "thumbnails.status:create_app()",
    "resize": "thumbnails.resize:create_app()",
    "broker": "thumbnails.local.broker.ingress:create_app()",
}
FUNCTIONS = ("upload", "status", "resize")  # what a container serves; the broker is local only
# gthread whose event loop reads each request whole before a thread sees it, so slow clients
# hold no thread (thumbnails.core.buffering), plus threads that serve only the probes, so they are
# answered while every request slot is busy (thumbnails.core.probeworker, its base class).
WORKER_CLASS = "thumbnails.core.buffering.BufferingWorker"
# glibc malloc: keep big image buffers in the heap instead of mapping and unmapping them on
# every request (each fresh mapping costs page faults). One arena: thumbnails.core.memory's
# malloc_trim after a large request returns the free top of the main arena's heap, but never
# that of a thread's arena (glibc malloc.c mtrim: systrim for main_arena only), where a 15 MB
# upload's buffers stayed resident (measured: +45 MB in upload's worker after three); threads
# allocate under the GIL anyway, so they hardly contend for it. As environment variables for
# processes started by a command (glibc reads them at start); `thumbnails serve` sets the same
# values with mallopt (thumbnails.core.memory.tune_malloc).
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20),
                 "MALLOC_ARENA_MAX": "1"}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name, not a setting
DIR_PREFIX = "thumbnails-metrics-"
# Probes and scrapes: an access log line each only at --log-level debug.
QUIET_PATHS = frozenset({*PROBE_PATHS, "/metrics"})
HOOKS = ("on_starting", "post_worker_init", "worker_exit", "child_exit", "on_exit")
_SETTINGS = {setting.name: setting for setting in KNOWN_SETTINGS}


def settings(bind: str, workers: int, threads: int, timeout: int = 60,
             access_log: bool = False, worker_tmp_dir: str | None = None,
             log_level: str = "info", worker_class: str = WORKER_CLASS, preload: bool = False,
             ) -> dict[str, Any]:
    """gunicorn's settings for one function, by gunicorn's setting names: `threads` request
    threads in each of `workers` processes (WORKER_CLASS: requests read whole before a thread
    takes them, probes answered on threads of their own), no control socket, JSON logs on
    stderr (access lines too when access_log), the workers' heartbeat files in
    worker_tmp_dir (None: gunicorn's default); with preload the master builds the app once
    and forks it into every worker (FunctionServer only: the metrics directory must exist
    before the app is imported, and gunicorn's first hook, on_starting, runs after a
    preload). timeout in seconds."""
    options: dict[str, Any] = {
        "bind": [bind], "workers": workers, "worker_class": worker_class, "threads": threads,
        "timeout": timeout, "graceful_timeout": 20, "control_socket_disable": True,
        "loglevel": log_level.lower(),
    }
    if access_log:
        options["accesslog"] = "-"  # stderr: JsonLogger
    if worker_tmp_dir:
        options["worker_tmp_dir"] = worker_tmp_dir
    if preload:
        options["preload_app"] = True
    return options


def gunicorn_command(part: str, bind: str, workers: int, threads: int, **options: Any,
                     ) -> list[str]:
    """The command line that runs gunicorn for one part (a new process) with this module's
    hooks and logger, and `settings(bind, workers, threads, **options)` as flags."""
    if options.get("preload"):
        raise ValueError("preload only in FunctionServer: see settings()")
    args = [sys.executable, "-m", "gunicorn", APPS[part], "--config",
            "python:thumbnails.core.serving"]
    for name, value in settings(bind, workers, threads, **options).items():
        flag = _SETTINGS[name].cli[-1]  # gunicorn's own flag for the setting
        if _SETTINGS[name].action == "store_true":
            args += [flag] if value else []
        else:
            for item in value if isinstance(value, list) else [value]:
                args += [flag, str(item)]
    return args


class FunctionServer(BaseApplication):  # type: ignore[misc]
    """gunicorn in this process, serving one part with `settings()`, this module's hooks and
    logger: what `thumbnails serve` runs (no second interpreter, so the cold start pays for
    one Python start and one import of gunicorn)."""

    def __init__(self, part: str, options: dict[str, Any]) -> None:
        self.part, self.options = part, options
        super().__init__(prog=f"thumbnails serve {part}")

    def load_config(self) -> None:
        """gunicorn's settings: ours, then the hooks and the logger."""
        for name, value in self.options.items():
            self.cfg.set(name, value)
        for name in (*HOOKS, "logger_class"):
            self.cfg.set(name, globals()[name])

    def load(self) -> Any:
        """The part's app, built by its factory: in each worker after the fork, or once in
        the master with preload_app (then frozen, so that the workers' collections do not
        touch, and so copy, the pages they share with it)."""
        app = util.import_app(APPS[self.part])
        if self.cfg.preload_app:
            freeze_heap()
        return app

    def run(self) -> None:
        """Serve until gunicorn's master stops (SIGTERM: graceful)."""
        _prepare_master(self.cfg.loglevel)  # before a preloaded app imports anything
        if self.cfg.preload_app:
            # No collections while the imports and the factory allocate (nothing they make is
            # garbage yet): 10-15% of the CPU to /ready (scripts/coldstart.py). load()
            # collects once, freezes and turns the collector on again before any fork.
            gc.disable()
        super().run()


def serve(part: str, bind: str, workers: int, threads: int, timeout: int,
          log_level: str) -> None:
    """Serve one function as its container does (`thumbnails serve`), in this process, until
    gunicorn's master stops: glibc's malloc tuned first (the workers inherit it), one JSON
    access line per request (probes and scrapes only at DEBUG: in a cluster nothing else
    records requests), heartbeat files in RAM, the app preloaded (resize's two workers reach
    /ready after one import of the app, not two at once on the pod's CPU:
    scripts/coldstart.py --workers 2)."""
    from .memory import tune_malloc

    tune_malloc(MALLOC_TUNING)
    FunctionServer(part, settings(
        bind, workers, threads, timeout=timeout, access_log=True, log_level=log_level,
        worker_tmp_dir="/dev/shm" if os.path.isdir("/dev/shm") else None,
        preload=True)).run()


# -- the hooks (gunicorn reads these names from this module, `-c python:thumbnails.core.serving`) --

def on_starting(server: Any) -> None:
    """Master start: JSON log lines; a fresh metrics directory for this run's workers."""
    _prepare_master(server.cfg.loglevel)


def _prepare_master(log_level: str) -> None:
    """What the master does once, before any app is built: on_starting's work."""
    configure_logging(log_level)
    if os.environ.get(MULTIPROC_ENV, "").endswith(f"/{DIR_PREFIX}{os.getpid()}"):
        return  # done already (FunctionServer.run, then on_starting)
    os.environ[MULTIPROC_ENV] = str(metrics_dir())


def post_worker_init(worker: Any) -> None:
    """A worker has built its app: start the app's background threads, then freeze the heap."""
    from .web import start_background

    start_background(worker.wsgi)
    freeze_heap()


def worker_exit(server: Any, worker: Any) -> None:
    """A worker is leaving: stop its app's background threads (what they hold is sent or
    left for the sweep)."""
    from .web import stop_background

    if worker.wsgi is not None:
        stop_background(worker.wsgi)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (its counters stay in the totals)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(worker.pid, directory)
    except OSError as exc:  # never take the master down over metrics
        server.log.warning("metrics of worker %s not marked dead: %s", worker.pid, exc)


def on_exit(server: Any) -> None:
    """Master exit: the metrics directory goes with it."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory and Path(directory).name == f"{DIR_PREFIX}{os.getpid()}":
        with contextlib.suppress(OSError):
            shutil.rmtree(directory)


# -- process-level helpers --------------------------------------------------------------------

def configure_logging(level: str) -> None:
    """Log to stderr once per process, one JSON object per line (thumbnails.core.logs)."""
    root = logging.getLogger()
    if not any(getattr(h, "_thumbnails", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._thumbnails = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())


def freeze_heap() -> None:
    """Move what start-up allocated out of the garbage collector's sight (each request
    then scans only its own objects, not the thousands the imports and app created), and
    collect from then on (start-up may have turned the collector off)."""
    gc.collect()
    gc.freeze()
    gc.enable()


def metrics_dir(base: str | None = None, pid: int | None = None) -> Path:
    """Make this master's metrics directory, empty; remove those of masters that are gone."""
    base_dir = Path(base or tempfile.gettempdir())
    pid = os.getpid() if pid is None else pid
    for stale in base_dir.glob(f"{DIR_PREFIX}*"):
        owner = stale.name.removeprefix(DIR_PREFIX)
        if owner.isdigit() and int(owner) != pid and not _alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    directory = base_dir / f"{DIR_PREFIX}{pid}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JsonLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, writing JSON lines to stderr (its access log too, never stdout:
    `thumbnails dev` prints only its URLs there)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not getattr(handler, "_gunicorn", False):
                    continue
                handler.setFormatter(JsonFormatter())
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                    handler.setStream(sys.stderr)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One JSON line per request: method, path, status, bytes, duration_ms, remote,
        user_agent, and the correlation and job ids the app handed over in the environ."""
        if not self.access_log_enabled:
            return
        path = environ.get("PATH_INFO", "")
        if path in QUIET_PATHS and self.loglevel > logging.DEBUG:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        method = environ.get("REQUEST_METHOD", "")
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": int(status) if str(status).isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote": environ.get("REMOTE_ADDR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        if query := environ.get("QUERY_STRING"):
            fields["query"] = query
        # The ids of this request only (not whatever this thread bound last).
        ids = {"correlation_id": environ.get("thumbnails.correlation_id"),
               "job_id": environ.get("thumbnails.job_id"), "event_id": None}
        try:
            self.access_log.info("%s %s %s", method, path, status,
                                 extra={"fields": fields, **ids})
        except Exception:
            self.exception("access log failed")


logger_class = JsonLogger
