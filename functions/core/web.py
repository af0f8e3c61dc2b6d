"""The app factories' helpers: a function's Flask app with its probes, services, middleware
and error mapping, and the background threads gunicorn's hooks start and stop.

The factories build apps and nothing else: process-level work (logging setup, gc.freeze,
starting and stopping background threads) is done by gunicorn's hooks (thumbnails.core.serving),
or by whoever runs an app outside gunicorn (start_background, stop_background)."""

from __future__ import annotations

from typing import Any, Protocol

from flask import Blueprint, Flask, current_app

from . import httperrors, middleware
from .config import Config
from .probes import LIVENESS_PATH, READINESS_PATH
from .services import Services, build_services

health = Blueprint("health", __name__)
readiness = Blueprint("readiness", __name__)


@health.get(LIVENESS_PATH)
def liveness() -> Any:
    """Liveness: the process answers."""
    return {"status": "ok"}


@readiness.get(READINESS_PATH)
def ready() -> Any:
    """Readiness: Redis and the object store answer."""
    services = services_of()
    services.jobs.ping()
    services.store.ping()
    return {"status": "ready"}


def bare_app(name: str, config: Config) -> Flask:
    """A Flask app with request ids, JSON errors, nosniff and /health, but no services."""
    app = Flask(name, static_folder=None)  # no implicit /static: each route is ours
    middleware.track_requests(app)
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes + 64 * 1024  # multipart framing
    httperrors.register(app)
    app.register_blueprint(health)
    return app


def make_app(name: str, config: Config | None, services: Services | None) -> Flask:
    """A function's app: bare_app plus its services, /ready and metrics."""
    config = config or (services.config if services else Config.from_env())
    app = bare_app(name, config)
    app.extensions["services"] = services or build_services(config)
    app.register_blueprint(readiness)
    middleware.instrument(app, name.split(".")[1] if name.startswith("thumbnails.") else name)
    return app


def services_of() -> Services:
    """The Services of the app handling the current request."""
    services: Services = current_app.extensions["services"]
    return services


class Background(Protocol):
    """A thread an app needs beside its requests (upload's outbox)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


BACKGROUND = "thumbnails.background"  # app.extensions key: what start_background starts


def add_background(app: Flask, thread: Background) -> None:
    """Have the app's serving process start `thread` once it serves (not the factory: a
    thread started before gunicorn forks would not run in the worker)."""
    app.extensions.setdefault(BACKGROUND, []).append(thread)


def start_background(app: Any) -> None:
    """Start the app's background threads (gunicorn's post_worker_init; tests that run an
    app in their own process). Anything that is not one of our apps has none."""
    for thread in getattr(app, "extensions", {}).get(BACKGROUND, []):
        thread.start()


def stop_background(app: Any) -> None:
    """Stop the app's background threads, in the reverse order of their start."""
    for thread in reversed(getattr(app, "extensions", {}).get(BACKGROUND, [])):
        thread.stop()
