"""CloudEvent types and their HTTP encoding: the one module that names event types."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from .errors import InvalidEvent, PayloadTooLarge

TYPE_PREFIX = "dev.knative-thumbnails"  # the default; EVENT_TYPE_PREFIX changes it
_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class EventTypes:
    """The three event types under one reverse-DNS prefix."""

    prefix: str = TYPE_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"event type prefix must be reverse-DNS, like {TYPE_PREFIX!r}: "
                             f"{self.prefix!r}")

    @property
    def image_uploaded(self) -> str:
        return f"{self.prefix}.image.uploaded"

    @property
    def thumbnail_generated(self) -> str:
        return f"{self.prefix}.thumbnail.generated"

    @property
    def thumbnail_failed(self) -> str:
        return f"{self.prefix}.thumbnail.failed"

    @property
    def all(self) -> tuple[str, str, str]:
        return self.image_uploaded, self.thumbnail_generated, self.thumbnail_failed


DEFAULT_TYPES = EventTypes()
IMAGE_UPLOADED = DEFAULT_TYPES.image_uploaded
THUMBNAIL_GENERATED = DEFAULT_TYPES.thumbnail_generated
THUMBNAIL_FAILED = DEFAULT_TYPES.thumbnail_failed
EVENT_TYPES = DEFAULT_TYPES.all

RESIZE_SOURCE = "/knative-thumbnails/resize"
# Extension attribute carrying the correlation id from the upload request to resize and its
# reply (not the tracing extension's traceparent, which a broker's tracing may rewrite).
CORRELATION_ID = "correlationid"
# Extension attribute ("true") on the thumbnail.generated and thumbnail.failed events of a job
# that has a callback_url. status's webhooks Trigger filters on it (charts/thumbnails
# templates/triggers.yaml), so the broker delivers the other jobs' results to no one who would
# only look them up to find no callback: a delivery, a request and a Redis read less per job.
CALLBACK = "callback"
JSON = "application/json"
_FORMAT = JSONFormat()
# What a PingSource sends (knative/eventing knative-v1.22.2 pkg/adapter/mtping/runner.go
# makeEvent; pkg/apis/sources/v1/ping_lifecycle.go PingSourceEventType, PingSourceSource).
PING_TYPE = "dev.knative.sources.ping"
PING_SOURCE = re.compile(r"^/apis/v1/namespaces/[^/]+/pingsources/[^/]+\Z")

__all__ = [
    "CloudEvent", "DEFAULT_TYPES", "EVENT_TYPES", "EventTypes", "IMAGE_UPLOADED",
    "THUMBNAIL_FAILED", "THUMBNAIL_GENERATED",
    "new_event", "to_http", "from_http", "to_json", "from_json", "reply_id", "is_ping",
]


def new_event(
    event_type: str,
    source: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
    subject: str | None = None,
    extensions: Mapping[str, str] | None = None,
) -> CloudEvent:
    """Build a CloudEvent 1.0 with JSON data."""
    attributes: dict[str, Any] = {
        "type": event_type,
        "source": source,
        "id": event_id or str(uuid.uuid4()),
        "datacontenttype": JSON,
    }
    if subject:
        attributes["subject"] = subject
    attributes.update(extensions or {})
    return CloudEvent(attributes=attributes, data=dict(data))


def is_ping(event: BaseCloudEvent) -> bool:
    """Whether the event has a PingSource's type and source
    (/apis/v1/namespaces/<namespace>/pingsources/<name>)."""
    return event.get_type() == PING_TYPE and PING_SOURCE.match(event.get_source()) is not None


def reply_id(job_id: str, event_type: str) -> str:
    """A deterministic reply event id, so a re-sent reply can be recognised as the same."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job_id}/{event_type}"))


def to_http(event: BaseCloudEvent, *, structured: bool = False) -> tuple[dict[str, str], bytes]:
    """Encode an event as HTTP headers and body, binary mode unless structured is asked for."""
    message = ce_http.to_structured(event, _FORMAT) if structured else ce_http.to_binary(
        event, _FORMAT
    )
    return dict(message.headers), message.body


def from_http(headers: Mapping[str, str], body: bytes,
              max_bytes: int | None = None) -> BaseCloudEvent:
    """Decode an event from an HTTP request in binary or structured mode, or raise InvalidEvent.
    With max_bytes: PayloadTooLarge (413) if its body and ce- headers (names and values)
    together are larger."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if max_bytes is not None:
        size = len(body) + sum(len(k) + len(v) for k, v in lowered.items() if k.startswith("ce-"))
        if size > max_bytes:
            raise PayloadTooLarge(f"the event is {size} bytes, over the limit of {max_bytes}")
    binary = any(k.startswith("ce-") for k in lowered)
    if not binary and not lowered.get("content-type", "").startswith(
        "application/cloudevents+json"
    ):
        raise InvalidEvent("not a CloudEvent: no ce- headers and not application/cloudevents+json")
    if binary:
        lowered = {k: v for k, v in lowered.items() if k.startswith("ce-") or k == "content-type"}
    try:
        event = ce_http.from_http(ce_http.HTTPMessage(headers=lowered, body=body), _FORMAT)
    except (BaseCloudEventException, ValueError, TypeError, KeyError, AttributeError,
            RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise InvalidEvent(f"malformed CloudEvent: {exc}") from exc
    return event


def to_json(event: BaseCloudEvent) -> bytes:
    """Serialise an event in the structured JSON format (for durable storage)."""
    return _FORMAT.write(event)


def from_json(raw: bytes | str) -> BaseCloudEvent:
    """Inverse of to_json."""
    if isinstance(raw, str):
        raw = raw.encode()
    try:
        return _FORMAT.read(None, raw)
    except (BaseCloudEventException, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise InvalidEvent(f"malformed CloudEvent JSON: {exc}") from exc


def data_of(event: BaseCloudEvent) -> dict[str, Any]:
    """The event's data as a dict, or raise InvalidEvent."""
    data = event.get_data()
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InvalidEvent("event data is not JSON (or nested too deep)") from exc
    if not isinstance(data, dict):
        raise InvalidEvent("event data must be a JSON object")
    return data
