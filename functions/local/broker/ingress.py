"""Broker ingress: accept a CloudEvent, store it durably, answer 202."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Response, request

from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import redis_errors
from thumbnails.core.services import redis_client
from thumbnails.core.web import bare_app

from . import STREAM_KEY, group_name
from .settings import BrokerSettings
from .triggers import Trigger, attributes_of, load, parse_subscribers


@redis_errors
def publish(client: redis.Redis, event: events.BaseCloudEvent,
            triggers: list[Trigger]) -> bool:
    """Store an event durably if any Trigger wants it; True if stored.

    An event no Trigger matches would only be acknowledged by every group, and, as in
    Knative, a Trigger created later does not receive earlier events: so it is not kept."""
    if not any(t.matches(attributes_of(event)) for t in triggers):
        return False
    client.xadd(STREAM_KEY, {"event": events.to_json(event)})
    return True


@redis_errors
def ensure_groups(client: redis.Redis, trigger_names: list[str]) -> None:
    """One consumer group per Trigger, created before any event is accepted."""
    for name in trigger_names:
        try:
            client.xgroup_create(STREAM_KEY, group_name(name), id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def create_app(config: Config | None = None, *, client: redis.Redis | None = None,
               settings: BrokerSettings | None = None) -> Flask:
    """The ingress app: POST / or /<namespace>/<broker>. Redis, the event size limit and
    logging as the service's Config has them; the Triggers from the broker's settings."""
    config = config or Config.from_env()
    settings = settings or BrokerSettings.from_env()
    client = client or redis_client(config)
    app = bare_app(__name__, config)
    app.config["MAX_CONTENT_LENGTH"] = config.max_event_bytes  # 413 before reading more
    triggers = load(settings.knative_dir, reachable=parse_subscribers(settings.subscribers))
    ensure_groups(client, [t.name for t in triggers])

    def accept(**_: str) -> Any:
        event = events.from_http(request.headers, request.get_data(), config.max_event_bytes)
        publish(client, event, triggers)
        return Response(status=202)

    app.add_url_rule("/", "accept", accept, methods=["POST"])
    app.add_url_rule("/<namespace>/<broker>", "accept_named", accept, methods=["POST"])
    return app
