"""CPU per JSON log line (thumbnails.core.logs.JsonFormatter, python-json-logger), and per
request for the id binding web.py does (logs.start, then two logs.current).

Logs LINES lines, each with three bound ids and a `fields` dict, to an in-memory stream
through a StreamHandler, and prints the process CPU time per line in µs (CPU time, not
wall time: the figure holds on a shared machine). With structlog importable (it is not a
dependency), prints the same for structlog's stdlib ProcessorFormatter set up to write
the same fields, as the comparison behind the choice in thumbnails.core.logs.

Usage: python scripts/bench_logs.py [--lines 20000]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import logging
import time
from typing import Any

from thumbnails.core import logs


def cpu_per_line(formatter: logging.Formatter, lines: int) -> tuple[float, str]:
    """µs of CPU per logger.info() call through `formatter`, and the first line written."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"bench_logs.{type(formatter).__module__}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    logs.bind(job_id="7" * 36, event_id="e" * 36, correlation_id="c" * 32)
    started = time.process_time()
    for _ in range(lines):
        logger.info("job %s stored", "x", extra={"fields": {"bytes": 123}})
    spent = time.process_time() - started
    logs.clear()
    return spent / lines * 1e6, stream.getvalue().splitlines()[0]


def structlog_formatter() -> logging.Formatter:
    """structlog's stdlib formatter writing ts, level, logger, message, pid, the ids bound
    with structlog.contextvars and `fields`: what thumbnails.core.logs would be with structlog."""
    import structlog
    from structlog import contextvars

    contextvars.bind_contextvars(job_id="7" * 36, event_id="e" * 36, correlation_id="c" * 32)

    def fields(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        record = event.pop("_record")
        event.pop("_from_structlog", None)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = {"ts": f"{ts}.{int(record.msecs):03d}Z", "level": record.levelname,
                "logger": record.name, "message": event.pop("event"), "pid": record.process}
        line.update(event)
        line.update(getattr(record, "fields", None) or {})
        return line

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[contextvars.merge_contextvars],
        processors=[fields, structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer()])


def cpu_per_call(call: Any, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    per_line, first = cpu_per_line(logs.JsonFormatter(), args.lines)
    print(f"thumbnails.core.logs (python-json-logger): {per_line:.1f} µs CPU per line")
    print(f"  {first}")

    def request_ids() -> None:
        logs.start("c" * 32)
        logs.current("correlation_id")
        logs.current("job_id")

    print(f"binding per request (start + 2 current): "
          f"{cpu_per_call(request_ids, args.lines):.2f} µs CPU")
    if importlib.util.find_spec("structlog") is None:
        print("structlog: not installed, not compared")
        return
    per_line, first = cpu_per_line(structlog_formatter(), args.lines)
    print(f"structlog ProcessorFormatter: {per_line:.1f} µs CPU per line")
    print(f"  {first}")


if __name__ == "__main__":
    main()
