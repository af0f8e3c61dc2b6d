"""status's HTTP surface: list jobs, show one, serve its thumbnail, debug view."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from thumbnails.core import apidocs, events, retention
from thumbnails.core.config import Config
from thumbnails.core.errors import BadRequest, Forbidden, NotFound, NotReady
from thumbnails.core.jobs import Job, JobStatus
from thumbnails.core.middleware import (
    ADMITTED,
    AUTH_HEADERS,
    OPEN_PATHS,
    allow_cors,
    current_client,
    require_api_key,
)
from thumbnails.core.ranges import integer_in
from thumbnails.core.services import Services
from thumbnails.core.signedlinks import LinkSigner
from thumbnails.core.web import make_app, services_of

from . import callbacks, live, page
from .views import debug_document, job_document

bp = Blueprint("status", __name__)
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
# The broker cannot send an API key. What a stranger can do here: make the service repeat a
# finished job's true result to the job's own callback_url (status.callbacks.deliver).
WEBHOOK_PATHS = ("/webhooks", "/webhooks/dead-letter")
SIGNED_SECONDS_LEFT = "thumbnails.signed_link.seconds_left"  # WSGI environ, set when valid
CACHE_CONTROL = "public, max-age=31536000, immutable"  # a job's thumbnail never changes
# With API keys on: no shared cache may keep it for another client (RFC 9111, 5.2.2.7).
CACHE_CONTROL_AUTHENTICATED = "private, max-age=31536000, immutable"


@bp.get("/jobs")
@bp.get("/jobs/")
def list_jobs() -> Any:
    """Newest first, `limit` per page; the next page's cursor in X-Next-Cursor and Link."""
    limit = _limit(request.args.get("limit"))
    cursor = request.args.get("cursor") or None
    if cursor is not None and (len(cursor) > 80 or ":" not in cursor):
        raise BadRequest("cursor is malformed: pass back the X-Next-Cursor value unchanged")
    services = services_of()
    jobs, next_cursor = services.jobs.page(limit, cursor, current_client())
    response = jsonify([{"job_id": job_id, "status": status} for job_id, status in jobs])
    if next_cursor:
        response.headers["X-Next-Cursor"] = next_cursor
        query = urlencode({"limit": limit, "cursor": next_cursor})
        # From STATUS_BASE_URL (relative without it), never from the request's Host header.
        base = services.config.status_base_url.rstrip("/")
        response.headers["Link"] = f'<{base}/jobs?{query}>; rel="next"'
    if services.config.api_keys:
        response.vary.update(AUTH_HEADERS)
    return response


@bp.get("/jobs/<job_id>")
def show_job(job_id: str) -> Any:
    """One job's document; with `wait=S`, a long poll (thumbnails.status.live); with API
    keys on, signed links to its thumbnails too (the caller got here with a key)."""
    config = services_of().config
    seconds = live.wait_seconds(request.args.get("wait"))
    job = live.long_poll(job_id, seconds) if seconds else None
    signer = _signer() if config.api_keys else None
    return job_document(job or _job(job_id), config.status_base_url, signer)


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Any:
    """Remove the job, its original and its thumbnails: 204, then 404 (also for another API
    client's job)."""
    job = services_of().jobs.get(job_id)
    if job is not None and _another_clients(job):
        raise NotFound(f"no job {job_id[:64]!r}")
    if not retention.delete_job(services_of(), job_id):
        raise NotFound(f"no job {job_id[:64]!r}")
    deleted = Response(status=204)
    del deleted.headers["Content-Type"]  # no body, so no Content-Type
    return deleted


@bp.get("/jobs/<job_id>/thumbnail")
def thumbnail(job_id: str) -> Any:
    """The thumbnail's bytes once the job succeeded (with renditions: the first); 409 before."""
    job = _job(job_id)
    _require_succeeded(job)
    return _image(job.thumbnail_key, job.content_type, job.etag)


@bp.get("/jobs/<job_id>/thumbnails/<name>")
def rendition(job_id: str, name: str) -> Any:
    """One rendition's bytes once the job succeeded; 404 for a name the job did not ask for,
    409 before it is made."""
    job = _job(job_id)
    if name not in job.options.names:
        raise NotFound(f"job {job_id} has no rendition {name[:64]!r}")
    _require_succeeded(job)
    record = next((r for r in job.renditions if r.name == name), None)
    if record is None:  # asked for, yet not recorded: a record older than renditions
        raise NotFound(f"job {job_id} has no rendition {name[:64]!r}")
    return _image(record.key, record.content_type, record.etag)


def _require_succeeded(job: Job) -> None:
    if job.status is not JobStatus.SUCCEEDED:
        detail = f": {job.error_code}" if job.status is JobStatus.FAILED else ""
        raise NotReady(f"job {job.job_id} is {job.status.value}{detail}; no thumbnail")


def _image(key: str, content_type: str, etag: str) -> Response:
    """Stored image bytes, immutable: ETag, a year's Cache-Control (private with API keys
    on, and only while a signed link lasts), 304 on If-None-Match."""
    quoted = f'"{etag}"'
    keys_on = bool(services_of().config.api_keys)
    left = request.environ.get(SIGNED_SECONDS_LEFT)
    if left is not None:  # a signed link: this browser only, and not past the link's end
        cache = f"private, max-age={left}"
    else:
        cache = CACHE_CONTROL_AUTHENTICATED if keys_on else CACHE_CONTROL
    headers = {"ETag": quoted, "Cache-Control": cache}
    if keys_on:
        headers["Vary"] = ", ".join(AUTH_HEADERS)
    if quoted in request.headers.get("If-None-Match", ""):
        return Response(status=304, headers=headers)
    data = services_of().store.get(key)
    return Response(data, 200, headers, mimetype=content_type)


@bp.get("/jobs/<job_id>/debug")
def debug(job_id: str) -> Any:
    """Timings and ids for incident debugging; 404 unless DEBUG_ENDPOINT is on."""
    if not services_of().config.debug_endpoint:
        raise NotFound("the debug endpoint is disabled (set DEBUG_ENDPOINT=true)")
    return debug_document(_job(job_id))


@bp.post("/webhooks")
def deliver_webhook() -> Any:
    """The Trigger on thumbnail.generated and thumbnail.failed: POST the job's result to its
    callback_url (status.callbacks.deliver). 204 when done or nothing to do (a 2xx answer to
    the broker must be empty or a CloudEvent), 502 when the receiver did not take it (the
    broker retries), 400 for an event that is not a finished job's."""
    event = events.from_http(request.headers, request.get_data())
    config = services_of().config
    # With API keys on, the receiver gets signed links too: it has no key of ours to send.
    signer = _signer() if config.api_keys else None
    callbacks.deliver(services_of(), event,
                      lambda job: job_document(job, config.status_base_url, signer))
    return Response(status=204)


@bp.post("/webhooks/dead-letter")
def webhook_dead_letter() -> Any:
    """The webhook Trigger's dead-letter sink: note on the job that the retries ran out."""
    callbacks.gave_up(services_of(), events.from_http(request.headers, request.get_data()))
    return Response(status=204)


def _signer() -> LinkSigner | None:
    signer: LinkSigner | None = current_app.extensions.get("link_signer")
    return signer


def _check_signed_link() -> None:
    """A request with `signature` or `expires`: a signed link, admitted without an API key
    when it is valid (thumbnails.core.signedlinks), 403 when it is not."""
    signer = _signer()
    if signer is None or not ("signature" in request.args or "expires" in request.args):
        return
    if request.method not in ("GET", "HEAD"):
        raise Forbidden("signed links are for GET")
    left = signer.verify(request.path, request.args.get("expires"),
                         request.args.get("signature"))
    request.environ[ADMITTED] = True
    request.environ[SIGNED_SECONDS_LEFT] = left


def _job(job_id: str) -> Job:
    """The job, or NotFound: also when another API client created it (keys on), unless a
    signed link for this path admitted the request. A job made by another producer's event
    belongs to no client: every key sees it."""
    job = services_of().jobs.get(job_id)
    # A signed link for this path admits the request whoever's job it is.
    if job is None or (_another_clients(job) and not request.environ.get(ADMITTED)):
        raise NotFound(f"no job {job_id[:64]!r}")
    return job


def _another_clients(job: Job) -> bool:
    """Whether another API client created the job (only while keys are on: with them off,
    every job is everyone's, as the list shows)."""
    keys_on = bool(services_of().config.api_keys)
    return keys_on and bool(job.client) and job.client != current_client()


def _limit(raw: str | None) -> int:
    return DEFAULT_LIMIT if raw is None else integer_in(raw, "limit", 1, MAX_LIMIT)


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    """The status app."""
    app = make_app(__name__, config, services)
    app.register_blueprint(bp)
    app.register_blueprint(apidocs.blueprint("status"))  # /openapi.json, /docs and its files
    app.register_blueprint(page.bp)  # GET /: the web page
    config = app.extensions["services"].config
    if config.link_signing_key:
        app.extensions["link_signer"] = LinkSigner(config.link_signing_key,
                                                   config.link_ttl_seconds)
        app.before_request(_check_signed_link)  # before the key check, which it may waive
    live.install(app)  # GET /events, and the listener behind ?wait=
    allow_cors(app, app.extensions["services"].config.allowed_origins)
    require_api_key(app, app.extensions["services"].config.api_keys,
                    open_paths=(*OPEN_PATHS, *apidocs.OPEN_PATHS, *page.OPEN_PATHS,
                                *WEBHOOK_PATHS))
    return app
