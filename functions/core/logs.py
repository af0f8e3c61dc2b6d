"""Structured logs: one JSON object per line, with the ids of the job a line is about.

Every line has ts, level, logger, message and pid; job_id, event_id and correlation_id
when the code handling a request or an event has bound them (`bind`), so they need not be
passed to every log call. The ids live in context variables (contextvars): each thread
(and each request, which web.py starts afresh) sees only its own.

The lines are python-json-logger's (`JsonFormatter`). Not structlog: its import takes
asyncio along (on every cold start), and its stdlib formatter costs about 28 µs of CPU a
line against python-json-logger's 19 µs (`python scripts/bench_logs.py`: 20,000 lines with
three bound ids). The gunicorn configuration imports this module in the master process,
before anything may import prometheus_client: neither this module nor python-json-logger
imports it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

IDS = ("job_id", "event_id", "correlation_id")
_VARS: dict[str, ContextVar[str | None]] = {name: ContextVar(name, default=None) for name in IDS}
_JOB_ID, _EVENT_ID, _CORRELATION_ID = (_VARS[name] for name in IDS)
# A W3C traceparent: version-traceid-parentid-flags; its trace id is the correlation id.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\Z")
# \Z, not $: "$" matches before a final newline too, and a header value may not hold one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}\Z")


def bind(**ids: str | None) -> None:
    """Attach ids (job_id, event_id, correlation_id) to every later line of this context."""
    for name, value in ids.items():
        _VARS[name].set(value or None)


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Bind ids for a block only (work for one job inside a request or a loop)."""
    tokens = [(_VARS[name], _VARS[name].set(value or None)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def clear() -> None:
    """Forget every id (a new request, or a new item of a background loop)."""
    for var in _VARS.values():
        var.set(None)


def start(correlation_id: str) -> None:
    """A new request: its correlation id, and no other id yet."""
    _JOB_ID.set(None)
    _EVENT_ID.set(None)
    _CORRELATION_ID.set(correlation_id)


def current(name: str) -> str | None:
    """The id bound under `name` in this context, if any."""
    return _VARS[name].get()


def correlation_from(traceparent: str | None, request_id: str | None) -> str:
    """The correlation id of an incoming request: the trace id of a valid W3C `traceparent`,
    else a well-formed `X-Request-Id`, else a new one (32 hex digits, like a trace id)."""
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    if request_id and _REQUEST_ID.match(request_id):
        return request_id
    return os.urandom(16).hex()


def correlation_of_event(event: Any) -> str | None:
    """The correlation id an event carries: its `correlationid` extension attribute, or the
    trace id of its distributed-tracing `traceparent` extension; None without either."""
    for name in ("correlationid", "traceparent"):
        try:
            value = event.get_extension(name)
        except (KeyError, AttributeError):
            value = None
        if not value:
            continue
        value = str(value)
        if name == "traceparent":
            match = _TRACEPARENT.match(value.strip().lower())
            if match is None:
                continue
            return match.group(1)
        return value if _REQUEST_ID.match(value) else None
    return None


# The LogRecord attributes python-json-logger writes, under this project's names.
RENAMED = {"levelname": "level", "name": "logger", "process": "pid", "exc_info": "exception",
           "stack_info": "stack"}


class JsonFormatter(_JsonFormatter):
    """A record as one line of JSON: ts (UTC, ms), level, logger, message, pid, the ids
    (given with extra=, else the bound ones; a None given with extra= leaves that id out),
    the record's `fields` (a dict passed with extra=, merged in), any other extra= value,
    and the exception and stack, if any."""

    def __init__(self) -> None:
        # json_default=str: any other object as its str(), as before the library.
        super().__init__("{levelname}{name}{message}{process}", style="{", json_default=str,
                         rename_fields=RENAMED)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        """python-json-logger's fields after ts; then the ids and `fields`."""
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        log_data["ts"] = f"{ts}.{int(record.msecs):03d}Z"
        super().add_fields(log_data, record, message_dict)
        for name, var in _VARS.items():
            value = log_data.pop(name) if name in log_data else var.get()
            if value:
                log_data[name] = value
        fields = log_data.pop("fields", None)
        if fields:
            log_data.update(fields)
