"""status's web page: GET / (upload images, watch jobs, see a job's timings) and its files.

Plain HTML, CSS and JavaScript: no build step, nothing fetched from anywhere else. The page
is the Jinja template templates/index.html; its script and style are Flask's static folder
(static/, served at /static/<filename>). The page calls status's API on its own origin and
POSTs images to upload at UPLOAD_BASE_URL ("" = this origin; another origin needs
CORS_ORIGINS there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template

from thumbnails.core.config import Config
from thumbnails.core.formats import TYPE_EXTENSIONS
from thumbnails.core.statuses import TERMINAL, JobStatus
from thumbnails.core.web import services_of

STATIC = Path(__file__).with_name("static")

bp = Blueprint("page", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

# Open even when API keys are configured: the page itself holds nothing; it asks for a
# key and sends it (X-API-Key) with every API call.
OPEN_PATHS = ("/", *(f"{bp.static_url_path}/{p.name}" for p in sorted(STATIC.iterdir())))


@bp.get("/")
def index() -> Any:
    """The page, with this deployment's settings in data attributes (escaped by Jinja)."""
    config = services_of().config
    html = render_template(
        "index.html",
        upload_url=config.upload_base_url.rstrip("/"),
        key_required="true" if config.api_keys else "false",
        max_upload_bytes=config.max_upload_bytes,
        max_dimension=config.max_dimension,
        # Facts the service keeps in one place (thumbnails.core.statuses, thumbnails.core.formats).
        statuses=json.dumps([s.value for s in JobStatus]),  # in a job's order
        terminal_statuses=json.dumps(sorted(TERMINAL)),
        extensions=json.dumps(TYPE_EXTENSIONS, sort_keys=True),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(config)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.after_request
def revalidate(response: Response) -> Response:
    """The page, app.css and app.js are revalidated on every use: a release is seen at once
    (the static files still answer 304 to a conditional request)."""
    response.headers["Cache-Control"] = "no-cache"
    return response


def content_security_policy(config: Config) -> str:
    """Only this origin's script and style; API calls here and to upload; blob: images
    (thumbnails are fetched with the key, then shown from memory)."""
    connect = "'self'"
    if config.upload_base_url:
        parts = urlsplit(config.upload_base_url)
        connect += f" {parts.scheme}://{parts.netloc}"
    return (f"default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src 'self' blob: data:; connect-src {connect}; base-uri 'none'; "
            f"form-action 'none'; frame-ancestors 'none'")
