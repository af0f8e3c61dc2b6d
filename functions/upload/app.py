"""upload's HTTP surface: POST /jobs; the outbox thread that feeds the broker."""

from __future__ import annotations

import atexit
from io import BytesIO
from typing import IO, Any

from flask import Blueprint, Flask, Request, request
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
    outbox = services_outbox()
    if outbox is not None:
        outbox.wake()
    links = job_links(services.config.status_base_url, job.job_id)
    body = {"job_id": job.job_id, "status": job.status.value, "links": links}
    return body, 202, {"Location": links["self"]}


@bp.post("/outbox/sweep")
def sweep_outbox() -> Any:
    """Re-send events the broker has not accepted yet (a PingSource calls this in a cluster)."""
    services = services_of()
    sent = _sender(services).send_due() if services.config.sink_url else 0
    return {"sent": sent, "pending": services.jobs.outbox_depth()}


def services_outbox() -> OutboxThread | None:
    """This process's outbox thread, if a sink is configured."""
    from flask import current_app

    thread: OutboxThread | None = current_app.extensions.get("outbox")
    return thread


def _sender(services: Services) -> OutboxSender:
    config = services.config
    return OutboxSender(services.jobs, config.sink_url, config.outbox_retry_seconds,
                        config.dependency_timeout_seconds)


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
    if services.config.sink_url:
        thread = OutboxThread(_sender(services), interval=services.config.outbox_retry_seconds)
        thread.start()
        atexit.register(thread.stop)
        app.extensions["outbox"] = thread
    return app
