"""What runs around every request of a function: request ids, nosniff, metrics, CORS and
API keys (each installed on an app by the factory helpers or a function's factory)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Collection
from typing import Any

from flask import Flask, Response, request

from . import logs, metrics
from .errors import Unauthorized

# -- request ids --------------------------------------------------------------------------------

# Where a request's start time and ids wait for the metrics and gunicorn's access log
# (thumbnails.core.serving.JsonLogger reads the ids after the app has answered).
STARTED, CORRELATION_ID, JOB_ID = "thumbnails.started", "thumbnails.correlation_id", \
    "thumbnails.job_id"


def track_requests(app: Flask) -> None:
    """Bind each request's correlation id to its log lines and answer with it; nosniff on
    every answer. Install first: every other hook's lines get the ids."""
    # Each request starts with its own ids (no teardown hook clearing them: one call less per
    # request; gunicorn's access lines take their ids from the environ, never from what a
    # thread's last request left behind).
    app.before_request(_start_request)
    app.after_request(_end_request)
    app.after_request(_nosniff)


def _start_request() -> None:
    """Note the start time; bind the request's correlation id (from `traceparent` or
    X-Request-Id, else a new one) to its log lines."""
    environ = request.environ
    environ[STARTED] = time.perf_counter()
    correlation = logs.correlation_from(environ.get("HTTP_TRACEPARENT"),
                                        environ.get("HTTP_X_REQUEST_ID"))
    environ[CORRELATION_ID] = correlation
    logs.start(correlation)


def _end_request(response: Response) -> Response:
    """Answer with the correlation id; hand the ids bound meanwhile to the access log."""
    environ = request.environ
    correlation = logs.current("correlation_id") or environ.get(CORRELATION_ID)
    if correlation:
        environ[CORRELATION_ID] = correlation
        response.headers["X-Request-Id"] = correlation
    job_id = logs.current("job_id")
    if job_id:
        environ[JOB_ID] = job_id
    return response


def _nosniff(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


# -- metrics ------------------------------------------------------------------------------------

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def instrument(app: Flask, function: str) -> None:
    """Count and time every answer of the app (labels: the function, the URL rule, not the
    raw path, and the method); serve GET /metrics. app.extensions["metrics"] is the
    registry /metrics renders: register collectors of the function's own there."""
    registry = app.extensions["metrics"] = metrics.scrape_registry()
    # (rule, method, status) -> the label children to update, looked up once each
    children: dict[tuple[str | None, str, int], tuple[Any, Any]] = {}

    @app.after_request
    def _observe(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        rule = req.url_rule
        method = req.method if req.method in KNOWN_METHODS else "other"
        key = (rule.rule if rule is not None else None, method, response.status_code)
        pair = children.get(key)
        if pair is None:
            route = (rule.rule.rstrip("/") or "/") if rule is not None else "unmatched"
            pair = children[key] = (
                metrics.HTTP_REQUESTS.labels(function, route, method, str(key[2])),
                metrics.HTTP_DURATION.labels(function, route, method))
        pair[0].inc()
        started = req.environ.get(STARTED)
        if started is not None:
            pair[1].observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def _metrics() -> Response:
        body, content_type = metrics.exposition(registry)
        return Response(body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"})


# -- CORS ---------------------------------------------------------------------------------------

CORS_REQUEST_HEADERS = "Content-Type, X-API-Key, Authorization, Idempotency-Key"
CORS_EXPOSED_HEADERS = ("Location, ETag, Link, X-Next-Cursor, Retry-After, Idempotent-Replayed, "
                        "X-Request-Id")


def allow_cors(app: Flask, origins: Collection[str]) -> None:
    """Let browsers on these origins call the app (and only them); nothing when there are none.
    Register before require_api_key: a preflight carries no key."""
    if not origins:
        return

    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return Response(status=204)
        return None

    @app.after_request
    def _cors_headers(response: Response) -> Response:
        response.vary.add("Origin")
        origin = request.headers.get("Origin", "")
        if origin.rstrip("/") in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
                response.headers["Access-Control-Allow-Headers"] = CORS_REQUEST_HEADERS
                response.headers["Access-Control-Max-Age"] = "600"
        return response


# -- API keys -----------------------------------------------------------------------------------

# Set in a request's WSGI environ by a check that admitted it without an API key (status's
# signed thumbnail links); require_api_key lets it through.
ADMITTED = "thumbnails.admitted"
OPEN_PATHS = ("/health", "/ready", "/metrics", "/openapi.json", "/docs")
# Where require_api_key leaves the client a request's key names ("" with keys off).
CLIENT = "thumbnails.client"
AUTH_HEADERS = ("X-API-Key", "Authorization")  # what an answer varies on when keys are on


def require_api_key(app: Flask, digests: Collection[str], open_paths: Collection[str] = OPEN_PATHS,
                    ) -> None:
    """Answer 401 unless the request carries a key whose SHA-256 is one of `digests`
    (X-API-Key or Authorization: Bearer); nothing is checked when there are none."""
    if not digests:
        return

    @app.before_request
    def _check_api_key() -> None:
        if request.path in open_paths or request.environ.get(ADMITTED):
            return
        supplied = request.headers.get("X-API-Key", "")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not supplied and scheme.lower() == "bearer":
            supplied = token.strip()
        digest = hashlib.sha256(supplied.encode()).hexdigest()
        # Compare with every digest, so the time taken says nothing about which one is close.
        matched = [hmac.compare_digest(digest, known) for known in digests]
        if not supplied or not any(matched):
            raise Unauthorized("a valid API key is required (X-API-Key or Authorization: Bearer)")
        request.environ[CLIENT] = client_of(digest)


def client_of(key_digest: str) -> str:
    """The client an API key names, as jobs record it: the first 16 hex digits of the key's
    SHA-256 (enough to tell any configured keys apart; not the key, not its whole hash)."""
    return key_digest[:16]


def current_client() -> str:
    """The client of the current request's API key; "" when keys are off."""
    return str(request.environ.get(CLIENT, ""))
