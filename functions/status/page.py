"""status's web page: GET / (upload images, watch jobs, see a job's timings) and its two
static files. Plain HTML, CSS and JavaScript in static/: no build step, nothing fetched
from anywhere else. The page calls status's API on its own origin and POSTs images to
upload at UPLOAD_BASE_URL ("" = this origin; another origin needs CORS_ORIGINS there)."""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, send_from_directory

from thumbnails.config import Config
from thumbnails.formats import TYPE_EXTENSIONS
from thumbnails.statuses import TERMINAL, JobStatus
from thumbnails.web import services_of

STATIC = Path(__file__).with_name("static")
ASSETS = ("app.css", "app.js")
# Open even when API keys are configured: the page itself holds nothing; it asks for a
# key and sends it (X-API-Key) with every API call.
OPEN_PATHS = ("/", *(f"/static/{name}" for name in ASSETS))

bp = Blueprint("page", __name__)


@bp.get("/")
def index() -> Any:
    """The page, with this deployment's settings in data attributes."""
    config = services_of().config
    values = {
        "upload_url": config.upload_base_url.rstrip("/"),
        "key_required": "true" if config.api_keys else "false",
        "max_upload_bytes": str(config.max_upload_bytes),
        "max_dimension": str(config.max_dimension),
        # Facts the service keeps in one place (thumbnails.statuses, thumbnails.formats).
        "statuses": json.dumps([s.value for s in JobStatus]),  # in a job's order
        "terminal_statuses": json.dumps(sorted(TERMINAL)),
        "extensions": json.dumps(TYPE_EXTENSIONS, sort_keys=True),
    }
    html = _template()
    for name, value in values.items():
        html = html.replace("{{" + name + "}}", escape(value, quote=True))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(config)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/static/<any(" + ", ".join(ASSETS) + "):name>")
def asset(name: str) -> Any:
    """app.css and app.js (revalidated each time: a new release is seen at once)."""
    response = send_from_directory(STATIC, name, max_age=0)
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


@cache
def _template() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")
