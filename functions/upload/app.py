"""upload's HTTP surface: POST /jobs; the outbox thread that feeds the broker."""

from __future__ import annotations

import atexit
from typing import Any

from flask import Blueprint, Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from thumbnails.config import Config
from thumbnails.errors import BadRequest
from thumbnails.links import job_links
from thumbnails.outbox import OutboxSender, OutboxThread
from thumbnails.services import Services
from thumbnails.web import OPEN_PATHS, freeze_heap, make_app, require_api_key, services_of

from . import multipart
from .submit import submit

bp = Blueprint("upload", __name__)


@bp.post("/jobs")
@bp.post("/jobs/")
def create_job() -> Any:
    """Take a multipart upload (field 'file') and answer 202 with the job id at once."""
    services = services_of()
    fields, files = multipart.parse(_body(), request.content_type or "")
    if "file" not in files:
        raise BadRequest("multipart/form-data with a 'file' field is required")
    job, event_json = submit(services, files["file"], fields)
    outbox = _outbox()
    if outbox is not None:
        outbox.send_soon(job.job_id, event_json)  # off the request path
    links = job_links(services.config.status_base_url, job.job_id)
    body = {"job_id": job.job_id, "status": job.status.value, "links": links}
    return body, 202, {"Location": links["self"]}


@bp.post("/outbox/sweep")
def sweep_outbox() -> Any:
    """Re-send events the broker has not accepted yet (a PingSource calls this in a cluster)."""
    outbox = _outbox()
    sent = outbox.sender.send_due() if outbox is not None else 0
    return {"sent": sent, "pending": services_of().jobs.outbox_depth()}


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
    """The upload app; starts the outbox thread when K_SINK is set."""
    app = make_app(__name__, config, services)
    app.register_blueprint(bp)
    services = app.extensions["services"]
    config = services.config
    # The sweep only re-sends what is due, and a PingSource has no key to send.
    require_api_key(app, config.api_keys, open_paths=(*OPEN_PATHS, "/outbox/sweep"))
    if config.sink_url:
        sender = OutboxSender(services.jobs, config.sink_url, config.outbox_retry_seconds,
                              config.dependency_timeout_seconds)
        thread = OutboxThread(sender, interval=config.outbox_retry_seconds)
        thread.start()
        atexit.register(thread.stop)
        app.extensions["outbox"] = thread
    freeze_heap()
    return app
