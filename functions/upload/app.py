"""upload's HTTP surface: POST /jobs, POST /sweep; the outbox thread that feeds the broker."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from thumbnails.core import apidocs, events
from thumbnails.core.config import Config
from thumbnails.core.errors import BadRequest
from thumbnails.core.links import job_links
from thumbnails.core.metrics import OutboxDepth
from thumbnails.core.middleware import OPEN_PATHS, allow_cors, current_client, require_api_key
from thumbnails.core.outbox import OutboxSender, OutboxThread
from thumbnails.core.services import Services
from thumbnails.core.sweep import Sweeper
from thumbnails.core.web import add_background, make_app, services_of

from . import multipart, notifications
from .submit import submit

bp = Blueprint("upload", __name__)
OLD_SWEEP_PATH = "/outbox/sweep"  # POST /sweep's old path, kept as an alias


@bp.post("/jobs")
@bp.post("/jobs/")
def create_job() -> Any:
    """Take a multipart upload (field 'file') and answer 202 with the job id at once."""
    services = services_of()
    fields, files = multipart.parse(_body(), request.content_type or "")
    if "file" not in files:
        raise BadRequest("multipart/form-data with a 'file' field is required")
    job, event_json = submit(services, files["file"], fields, _idempotency_key(),
                             current_client())
    links = job_links(services.config.status_base_url, job.job_id)
    headers = {"Location": links["self"]}
    if event_json is None:
        headers["Idempotent-Replayed"] = "true"
    elif (outbox := _outbox()) is not None:
        outbox.send_soon(job.job_id, event_json)  # off the request path
    return {"job_id": job.job_id, "status": job.status.value, "links": links}, 202, headers


@bp.post("/notifications/s3")
def bucket_notification() -> Any:
    """MinIO's bucket event notification: a job per new object under INCOMING_PREFIX
    (the same job for a redelivery). 200 with what became of each record."""
    services = services_of()
    notifications.authorize(services, request.headers.get("Authorization", ""))
    doc = request.get_json(silent=True)
    accepted, ignored = notifications.accept(services, doc)
    outbox = _outbox()
    for item in accepted:
        if item.event_json is not None and outbox is not None:
            outbox.send_soon(item.job_id, item.event_json)
    links = services.config.status_base_url
    return {"jobs": [{"job_id": a.job_id, "key": a.key, "created": a.created,
                      "links": job_links(links, a.job_id)} for a in accepted],
            "ignored": ignored}


def _idempotency_key() -> str | None:
    """The Idempotency-Key header, if any (1-255 printable ASCII characters)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all(" " <= c <= "~" for c in key):
        raise BadRequest("Idempotency-Key must be 1-255 printable ASCII characters")
    return key


@bp.post("/sweep")
@bp.post(OLD_SWEEP_PATH)
def sweep() -> Any:
    """The sweep on a PingSource's event: re-emit stale jobs, fail overdue ones, delete
    orphaned originals, re-send events the broker has not accepted. 400 for anything but a
    PingSource's event, 429 within SWEEP_INTERVAL_SECONDS of the last one
    (thumbnails.core.sweep.Sweeper.requested says why). POST /outbox/sweep: its old path."""
    sweeper: Sweeper = current_app.extensions["sweeper"]
    return sweeper.requested(events.from_http(request.headers, request.get_data()))


def _body() -> bytes:
    """The whole body, never more than MAX_CONTENT_LENGTH (413 beyond), chunked or not."""
    limit: int = current_app.config["MAX_CONTENT_LENGTH"]
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge()
    stream = request.environ["wsgi.input"]
    if length is not None:
        data: bytes = stream.read(length)  # one read: cheapest from gunicorn
        return data
    chunks, total = [], 0
    while chunk := stream.read(min(1 << 20, limit + 1 - total)):
        total += len(chunk)
        if total > limit:
            raise RequestEntityTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _outbox() -> OutboxThread | None:
    thread: OutboxThread | None = current_app.extensions.get("outbox")
    return thread


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    """The upload app; with K_SINK set, its outbox thread (started by the serving process:
    thumbnails.core.web.start_background)."""
    app = make_app(__name__, config, services)
    app.register_blueprint(bp)
    app.register_blueprint(apidocs.blueprint("upload"))  # /openapi.json, /docs and its files
    services = app.extensions["services"]
    config = services.config
    app.extensions["metrics"].register(OutboxDepth(services.jobs))  # HLEN at scrape time
    allow_cors(app, config.allowed_origins)
    # A PingSource has no key to send; Sweeper.requested bounds what a stranger can do.
    # MinIO sends its own token (checked by the route), not an API key.
    require_api_key(app, config.api_keys,
                    open_paths=(*OPEN_PATHS, *apidocs.OPEN_PATHS, "/sweep", OLD_SWEEP_PATH,
                                "/notifications/s3"))
    sender = None
    if config.sink_url:
        sender = OutboxSender(services.jobs, config.sink_url, config.sweep_interval_seconds,
                              config.dependency_timeout_seconds)
    sweeper = app.extensions["sweeper"] = Sweeper(services, sender)
    if sender is not None:
        thread = OutboxThread(sender, sweeper.sweep, interval=config.sweep_interval_seconds)
        add_background(app, thread)
        app.extensions["outbox"] = thread
    return app
