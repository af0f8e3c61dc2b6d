"""upload's HTTP surface: POST /jobs; the outbox thread that feeds the broker."""

from __future__ import annotations

import atexit
from io import BytesIO
from typing import IO, Any

from flask import Blueprint, Flask, Request, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from thumbnails.config import Config
from thumbnails.errors import BadRequest
from thumbnails.links import job_links
from thumbnails.outbox import OutboxSender, OutboxThread
from thumbnails.services import Services
from thumbnails.web import make_app, services_of

from .submit import submit

bp = Blueprint("upload", __name__)


@bp.post("/jobs")
@bp.post("/jobs/")
def create_job() -> Any:
    """Take a multipart upload (field 'file') and answer 202 with the job id at once."""
    services = services_of()
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("multipart/form-data with a 'file' field is required")
    job = submit(services, upload.read(), request.form)
    outbox = _outbox()
    if outbox is not None:
        outbox.wake()  # the event goes out after this response, never before it
    links = job_links(services.config.status_base_url, job.job_id)
    body = {"job_id": job.job_id, "status": job.status.value, "links": links}
    return body, 202, {"Location": links["self"]}


@bp.post("/outbox/sweep")
def sweep_outbox() -> Any:
    """Re-send events the broker has not accepted yet (a PingSource calls this in a cluster)."""
    outbox = _outbox()
    sent = outbox.sender.send_due() if outbox is not None else 0
    return {"sent": sent, "pending": services_of().jobs.outbox_depth()}


def _outbox() -> OutboxThread | None:
    thread: OutboxThread | None = current_app.extensions.get("outbox")
    return thread


class UploadRequest(Request):
    """Reads a (size-capped) upload in one piece and keeps its files in memory.

    gunicorn hands a body over most cheaply in one read, and werkzeug's default spills
    files over 500 KiB to a temporary file on disk: both cost more than the upload's
    own work for a typical photo."""

    def _get_stream_for_parsing(self) -> IO[bytes]:
        length = self.content_length
        if length is None or getattr(self, "_cached_data", None) is not None:
            return super()._get_stream_for_parsing()  # chunked: werkzeug enforces the cap
        if self.max_content_length is not None and length > self.max_content_length:
            raise RequestEntityTooLarge()
        return BytesIO(self.environ["wsgi.input"].read(length))

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> IO[bytes]:
        return BytesIO()


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    """The upload app; starts the outbox thread when K_SINK is set."""
    app = make_app(__name__, config, services)
    app.request_class = UploadRequest
    app.register_blueprint(bp)
    services = app.extensions["services"]
    config = services.config
    if config.sink_url:
        sender = OutboxSender(services.jobs, config.sink_url, config.outbox_retry_seconds,
                              config.dependency_timeout_seconds)
        thread = OutboxThread(sender, interval=config.outbox_retry_seconds)
        thread.start()
        atexit.register(thread.stop)
        app.extensions["outbox"] = thread
    return app
