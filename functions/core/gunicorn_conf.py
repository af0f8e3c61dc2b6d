"""gunicorn settings of every function (`-c python:thumbnails.gunicorn_conf`, from
thumbnails.serving.gunicorn_command): the metrics directory of prometheus_client's
multiprocess mode, and JSON lines for gunicorn's own and access logs.

The metrics directory is made in the master, before any worker is forked (and so before any
worker imports prometheus_client): $TMPDIR/thumbnails-metrics-<master pid>, emptied at every
start (a container restarted in the same pod finds its /tmp emptyDir, and its pid 1
directory, as the last run left them), and removed at exit. A worker that exits is marked
dead, so its live gauges go; its counters stay in the totals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging

from thumbnails.logs import JsonFormatter
from thumbnails.serving import PROBE_PATHS

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name, not a setting
DIR_PREFIX = "thumbnails-metrics-"
# Probes and scrapes: an access log line each only at --log-level debug.
QUIET_PATHS = frozenset({*PROBE_PATHS, "/metrics"})


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


class JsonLogger(glogging.Logger):
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


def on_starting(server: Any) -> None:
    """Master start: a fresh metrics directory for this run's workers."""
    os.environ[MULTIPROC_ENV] = str(metrics_dir())


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


logger_class = JsonLogger
