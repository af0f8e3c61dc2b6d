"""No polling needed: the long poll's `wait` (GET /jobs/{id}?wait=S) and GET /events
(Server-Sent Events), both fed by thumbnails.core.changes.

Long-lived responses under Knative (knative/serving knative-v1.23.0): the queue-proxy
(pkg/queue/sharedmain/handlers.go mainHandler) and the activator (cmd/activator/main.go)
each wrap the request in pkg/http/handler/timeout.go's timeoutHandler with the revision's
timeoutSeconds (the whole request, default 300, at most max-revision-timeout-seconds 600),
responseStartTimeoutSeconds (until the first byte is written; defaults to timeoutSeconds)
and idleTimeoutSeconds (since the last write; 0 = none). Whichever runs out first ends the
request: a 504 "request timeout" if nothing was written yet, else the stream is cut. Both
proxy with Go's httputil.ReverseProxy, which flushes text/event-stream at once. So: a long
poll answers within MAX_WAIT_SECONDS, under the chart's responseStartTimeoutSeconds for
status (75); an event stream writes `retry:` at once, a keep-alive comment every
KEEPALIVE_SECONDS (under any idle timeout of 15 s or more) and ends itself after
EVENTS_STREAM_SECONDS (240), under status's timeoutSeconds (300); the client reconnects with
Last-Event-ID and misses nothing. The queue-proxy counts each waiting request against
containerConcurrency, so the chart adds waitingSlots to status's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request, stream_with_context

from thumbnails.core import metrics
from thumbnails.core.changes import MAX_WAIT_SECONDS, ChangeHub, hub_client
from thumbnails.core.errors import BadRequest, RedisUnavailable
from thumbnails.core.jobs import JOB_ID, Job
from thumbnails.core.probeworker import waiting_slot
from thumbnails.core.ranges import Range
from thumbnails.core.web import services_of

log = logging.getLogger(__name__)
WAIT = Range(float, 0, MAX_WAIT_SECONDS, low_open=True, unit="seconds")
bp = Blueprint("live", __name__)
U64_MAX = 2**64 - 1
MAX_FILTER_IDS = 50  # job_id parameters one stream takes (a request line under 4 KiB)
# A stream on a usual request thread (every waiting slot taken) sends what is there and
# ends: the client reconnects (SSE retry) and may find a waiting slot then.
SHORT_STREAM_SECONDS = 0.0


def install(app: Flask) -> None:
    """Register GET /events and the process's ChangeHub (its listener starts on first use)."""
    config = app.extensions["services"].config
    app.extensions["changes"] = ChangeHub(hub_client(config.redis_url,
                                                     config.dependency_timeout_seconds))
    app.register_blueprint(bp)


def hub() -> ChangeHub:
    """The ChangeHub of the app handling the current request."""
    changes: ChangeHub = current_app.extensions["changes"]
    return changes


def wait_seconds(raw: str | None) -> float:
    """The `wait` query parameter: seconds, 0 < S <= MAX_WAIT_SECONDS (0.0: absent);
    BadRequest otherwise."""
    if raw is None:
        return 0.0
    try:  # also refuses nan and inf
        return float(WAIT.parse(raw))
    except ValueError as exc:
        raise BadRequest(f"wait {exc}") from None


def long_poll(job_id: str, seconds: float) -> Job | None:
    """The job as soon as it has succeeded or failed, or after `seconds` as it is then;
    at once on a usual request thread (see thumbnails.core.probeworker). None: no such job."""
    jobs = services_of().jobs
    if not waiting_slot() or not JOB_ID.match(job_id):
        return jobs.get(job_id)
    with metrics.WAITING.labels("long_poll").track_inprogress():
        return hub().wait_finished(job_id, seconds, lambda: jobs.get(job_id))


@bp.get("/events")
def events() -> Any:
    """Server-Sent Events, one `job` event per state change (data: job_id, status, at in
    seconds since the epoch), id = the Redis stream id; `job_id` (repeatable) filters;
    Last-Event-ID (header, or `last_event_id` parameter) resumes after that event."""
    job_ids = request.args.getlist("job_id")
    if len(job_ids) > MAX_FILTER_IDS or not all(JOB_ID.match(j) for j in job_ids):
        raise BadRequest(f"job_id must be job ids (at most {MAX_FILTER_IDS})")
    last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if last_id is not None and not _stream_id(last_id):
        raise BadRequest("Last-Event-ID must be an event id this stream sent (<ms>-<seq>)")
    changes = hub()
    changes.start()  # a Redis outage is a 503 here, before the stream starts
    seconds = services_of().config.events_stream_seconds if waiting_slot() \
        else SHORT_STREAM_SECONDS
    body = _ended_on_outage(changes.stream(last_id, frozenset(job_ids), seconds))
    return Response(stream_with_context(body), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _stream_id(text: str) -> bool:
    """A Redis stream id `<ms>-<seq>`, each part an unsigned 64-bit number, below the
    largest (after which nothing can come)."""
    ms, dash, seq = text.partition("-")
    if not (dash and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()
            and len(text) <= 41):
        return False
    return (int(ms), int(seq)) < (U64_MAX, U64_MAX) and int(seq) <= U64_MAX


def _ended_on_outage(body: Iterator[str]) -> Iterator[str]:
    """The stream, ended cleanly if Redis fails after it started (the client reconnects
    with Last-Event-ID then) instead of a broken chunked response."""
    waiting = metrics.WAITING.labels("stream")
    waiting.inc()
    try:
        yield from body
    except RedisUnavailable as exc:
        log.warning("event stream ended: %s", exc.message)
    finally:
        waiting.dec()
