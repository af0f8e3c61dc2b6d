"""Broker ingress: accept a CloudEvent, store it durably, answer 202."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Response, request

from thumbnails import events
from thumbnails.config import Config
from thumbnails.jobs import redis_errors
from thumbnails.services import redis_client
from thumbnails.web import bare_app

from . import STREAM_KEY, group_name
from .triggers import load


@redis_errors
def publish(client: redis.Redis, event: events.BaseCloudEvent) -> str:
    """Append an event to the broker's stream; its id once stored."""
    return client.xadd(STREAM_KEY, {"event": events.to_json(event)}).decode()


@redis_errors
def ensure_groups(client: redis.Redis, trigger_names: list[str]) -> None:
    """One consumer group per Trigger, created before any event is accepted."""
    for name in trigger_names:
        try:
            client.xgroup_create(STREAM_KEY, group_name(name), id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def create_app(config: Config | None = None, *, client: redis.Redis | None = None) -> Flask:
    """The ingress app: POST / or /<namespace>/<broker>."""
    config = config or Config.from_env()
    client = client or redis_client(config)
    app = bare_app(__name__, config)
    ensure_groups(client, [t.name for t in load(config.knative_dir)])

    def accept(**_: str) -> Any:
        event = events.from_http(request.headers, request.get_data())
        publish(client, event)
        return Response(status=202)

    app.add_url_rule("/", "accept", accept, methods=["POST"])
    app.add_url_rule("/<namespace>/<broker>", "accept_named", accept, methods=["POST"])
    return app
