"""Error mapping: every error a function answers with, as one JSON shape
`{"error": code, "message": text}` (the codes and statuses come from thumbnails.core.errors)."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from .errors import (
    DependencyUnavailable,
    PayloadTooLarge,
    ThumbnailsError,
    TooManyRequests,
    Unauthorized,
)

log = logging.getLogger(__name__)


def json_error(status: int, code: str, message: str, **headers: str) -> Response:
    """The one shape of every error answer: {"error": code, "message": text}."""
    response = jsonify(error=code, message=message)
    response.status_code = status
    response.headers.update(headers)
    return response


def register(app: Flask) -> None:
    """Answer the project's errors, werkzeug's HTTP errors and anything unexpected (a 500,
    logged with its stack) with json_error."""
    app.register_error_handler(ThumbnailsError, _handle_domain)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(Exception, _handle_unexpected)


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_")


def _handle_domain(exc: ThumbnailsError) -> Response:
    headers = {}
    if isinstance(exc, DependencyUnavailable | TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):  # RFC 9110: a 401 names its scheme
        headers["WWW-Authenticate"] = 'Bearer realm="thumbnails"'
    # Level and words come from the errors table (thumbnails.core.errors), one line per answer.
    log.log(exc.log_level, "%s: %d %s: %s", exc.summary, exc.status, exc.code, exc.message)
    return json_error(exc.status, exc.code, exc.message, **headers)


def _handle_http(exc: HTTPException) -> Response:
    code = PayloadTooLarge.code if exc.code == 413 else _snake(exc.name)
    # Keep what the exception says about itself (Allow on a 405, Content-Range on a 416).
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return json_error(exc.code or 500, code, exc.description or exc.name, **headers)


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("unexpected error")
    return json_error(500, "internal", "internal error")
