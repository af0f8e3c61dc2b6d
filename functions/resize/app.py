"""resize's HTTP surface: a CloudEvent in, a reply CloudEvent out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request

from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.services import Services
from thumbnails.core.web import make_app, services_of

from .worker import handle_dead_letter, handle_uploaded

bp = Blueprint("resize", __name__)


@bp.post("/")
def receive() -> Any:
    """Process an image.uploaded event; answer 200 with the reply event (binary mode)."""
    services = services_of()
    event = events.from_http(request.headers, request.get_data(), services.config.max_event_bytes)
    reply = handle_uploaded(services, event)
    headers, body = events.to_http(reply)
    return Response(body, 200, headers)


@bp.post("/dead-letter")
def dead_letter() -> Any:
    """Events the broker could not deliver: mark their jobs failed."""
    services = services_of()
    handle_dead_letter(services, events.from_http(request.headers, request.get_data(),
                                                  services.config.max_event_bytes))
    return Response(status=204)


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    """The resize app."""
    app = make_app(__name__, config, services)
    # Events, not uploads, come here: a larger body is refused before it is read (413).
    app.config["MAX_CONTENT_LENGTH"] = app.extensions["services"].config.max_event_bytes
    app.register_blueprint(bp)
    return app
