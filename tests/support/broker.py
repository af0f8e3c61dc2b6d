"""Helpers for the local broker's tests: Trigger manifests as documents, events, and
the state of a Trigger's consumer group in the stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.support.subscriber import Subscriber
from thumbnails.core import events
from thumbnails.local.broker import STREAM_KEY, group_name

FAST: dict[str, Any] = {
    "retry": 2, "backoffPolicy": "linear", "backoffDelay": "PT0.01S", "timeout": "PT2S",
}

Serve = Callable[[Subscriber], Subscriber]


def service_ref(name: str, uri: str = "") -> dict[str, Any]:
    """A Knative Destination naming a Service (and optionally a path on it)."""
    ref: dict[str, Any] = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                   "name": name}}
    if uri:
        ref["uri"] = uri
    return ref


def trigger_doc(
    name: str,
    service: str,
    *,
    type_: str | None = None,
    filters: list[dict[str, Any]] | None = None,
    delivery: dict[str, Any] | None = None,
    dead_letter: str | None = None,
    broker: str = "default",
) -> dict[str, Any]:
    """A Trigger manifest as a document (written as YAML by write_manifests)."""
    spec: dict[str, Any] = {"broker": broker, "subscriber": service_ref(service)}
    if type_ is not None:
        spec["filter"] = {"attributes": {"type": type_}}
    if filters is not None:
        spec["filters"] = filters
    if delivery is not None:
        spec["delivery"] = dict(delivery)
        if dead_letter:
            spec["delivery"]["deadLetterSink"] = service_ref(dead_letter)
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name}, "spec": spec}


BROKER_DELIVERY: dict[str, Any] = {
    "retry": 1, "backoffPolicy": "exponential", "backoffDelay": "PT0.01S",
}


def write_manifests(directory: Path, *triggers: dict[str, Any]) -> Path:
    """A knative/ dir: Broker `default` with BROKER_DELIVERY, and the given Triggers."""
    broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
              "metadata": {"name": "default"}, "spec": {"delivery": BROKER_DELIVERY}}
    (directory / "broker.yaml").write_text(yaml.safe_dump(broker))
    (directory / "triggers.yaml").write_text(yaml.safe_dump_all(triggers))
    return directory


def event(type_: str = events.IMAGE_UPLOADED, **data: Any) -> events.CloudEvent:
    return events.new_event(type_, "/test", data or {"n": 1})


def pending(client: redis.Redis, trigger: str) -> int:
    return int(client.xpending(STREAM_KEY, group_name(trigger))["pending"])


def settled(client: redis.Redis, trigger: str, entry_id: bytes) -> bool | None:
    """True once the Trigger's group has read up to entry_id and acknowledged everything."""
    groups = {g["name"]: g for g in client.xinfo_groups(STREAM_KEY)}
    last = groups[group_name(trigger).encode()]["last-delivered-id"]
    return (last == entry_id and pending(client, trigger) == 0) or None
