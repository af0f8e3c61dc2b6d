"""Broker and Trigger manifests from knative/: filters, subscribers and delivery settings."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cloudevents.core.base import BaseCloudEvent

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 60.0
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class ManifestError(ValueError):
    """A manifest the local broker cannot honour."""


@dataclass(frozen=True)
class Destination:
    """A Knative Destination: a Service by name and/or a URI (relative to the ref if both)."""

    service: str = ""
    uri: str = ""


@dataclass(frozen=True)
class Delivery:
    """A delivery block: how often and how long to try, and where failures go."""

    retry: int = 0
    backoff_policy: str = "exponential"
    backoff_delay: float = 0.2
    timeout: float = DEFAULT_TIMEOUT
    dead_letter_sink: Destination | None = None
    # Knative honours a subscriber's Retry-After only when retryAfterMax is set, up to it.
    retry_after_max: float = 0.0

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before the given retry (1 = first retry)."""
        if self.backoff_policy == "linear":
            return self.backoff_delay * retry_number
        return self.backoff_delay * 2 ** (retry_number - 1)


@dataclass(frozen=True)
class Trigger:
    """One Trigger: which events (filters), to whom, and with which delivery."""

    name: str
    broker: str
    subscriber: Destination
    delivery: Delivery
    attributes: Mapping[str, str] = field(default_factory=dict)
    filters: tuple[Mapping[str, Any], ...] = ()

    def matches(self, attributes: Mapping[str, str]) -> bool:
        """Knative semantics: `filters` (if any) all match, else every exact attribute does."""
        if self.filters:
            return all(_evaluate(expr, attributes) for expr in self.filters)
        return all(value == "" or attributes.get(name) == value
                   for name, value in self.attributes.items())


def attributes_of(event: BaseCloudEvent) -> dict[str, str]:
    """An event's context attributes as the strings filters compare."""
    return {name: str(value) for name, value in event.get_attributes().items()}


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration such as PT0.5S, PT1M or P1DT2H."""
    found = _DURATION.match(text or "")
    if not found or text in ("P", "PT"):
        raise ManifestError(f"not an ISO-8601 duration: {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in found.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def load(directory: Path, broker: str = "default",
         reachable: Mapping[str, str] | None = None) -> list[Trigger]:
    """Every Trigger on `broker` in the directory's manifests, with Broker defaults applied.

    With `reachable` (Service name -> local URL), a Trigger that names a Service with no
    local URL is left out with a warning: Knative too delivers nothing to a Trigger whose
    subscriber does not resolve (the example integration's event-display, say)."""
    documents = [doc for path in sorted(directory.glob("*.y*ml"))
                 if path.name != "kustomization.yaml"
                 for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    broker_delivery = Delivery()
    for doc in documents:
        if doc.get("kind") == "Broker" and doc["metadata"]["name"] == broker:
            broker_delivery = _delivery(doc.get("spec", {}).get("delivery"), Delivery())
    triggers = []
    for doc in documents:
        if doc.get("kind") != "Trigger" or doc.get("spec", {}).get("broker") != broker:
            continue
        spec = doc["spec"]
        triggers.append(Trigger(
            name=doc["metadata"]["name"],
            broker=broker,
            subscriber=_destination(spec["subscriber"]),
            # A Trigger's delivery replaces the Broker's whole, as in Knative.
            delivery=_delivery(spec.get("delivery"), broker_delivery),
            attributes={str(k): str(v) for k, v in
                        ((spec.get("filter") or {}).get("attributes") or {}).items()},
            filters=tuple(_checked(spec.get("filters") or [])),
        ))
    if reachable is None:
        return triggers
    return [t for t in triggers if _reachable(t, reachable)]


def _reachable(trigger: Trigger, reachable: Mapping[str, str]) -> bool:
    services = [d.service for d in (trigger.subscriber, trigger.delivery.dead_letter_sink)
                if d is not None and d.service]
    missing = [s for s in services if s not in reachable]
    if missing:
        log.warning("trigger %s left out: no local URL for Service %s (BROKER_SUBSCRIBERS "
                    "has %s)", trigger.name, ", ".join(missing), sorted(reachable))
    return not missing


def parse_subscribers(text: str) -> dict[str, str]:
    """'resize=http://127.0.0.1:8082,x=http://…' -> {Service name: base URL}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ManifestError(f"BROKER_SUBSCRIBERS must be name=url,…: {text!r}")
    return {name.strip(): url.strip().rstrip("/") for name, url in pairs}


def resolve(destination: Destination, subscribers: Mapping[str, str]) -> str:
    """The URL a Destination stands for on this machine."""
    if not destination.service:
        if not destination.uri.startswith(("http://", "https://")):
            raise ManifestError(f"destination uri must be absolute: {destination.uri!r}")
        return destination.uri
    if destination.service not in subscribers:
        raise ManifestError(f"no local URL for Service {destination.service!r} "
                            f"(BROKER_SUBSCRIBERS has {sorted(subscribers)})")
    base = subscribers[destination.service]
    return base + "/" + destination.uri.lstrip("/") if destination.uri else base


def _destination(spec: Mapping[str, Any]) -> Destination:
    ref = spec.get("ref") or {}
    if ref and ref.get("kind") != "Service":
        raise ManifestError(f"only Service refs are supported locally, not {ref.get('kind')}")
    return Destination(service=ref.get("name", ""), uri=spec.get("uri", ""))


def _delivery(spec: Mapping[str, Any] | None, default: Delivery) -> Delivery:
    if not spec:
        return default
    sink = spec.get("deadLetterSink")
    return Delivery(
        retry=int(spec.get("retry", 0)),
        backoff_policy=spec.get("backoffPolicy", "exponential"),
        backoff_delay=parse_duration(spec["backoffDelay"]) if "backoffDelay" in spec else 0.2,
        timeout=parse_duration(spec["timeout"]) if "timeout" in spec else DEFAULT_TIMEOUT,
        dead_letter_sink=_destination(sink) if sink else None,
        retry_after_max=parse_duration(spec["retryAfterMax"]) if "retryAfterMax" in spec else 0.0,
    )


_DIALECT = {"exact", "prefix", "suffix", "all", "any", "not"}


def _checked(expressions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate filter expressions, nested ones included, and make every value a string."""
    out = []
    for expr in expressions:
        if not isinstance(expr, Mapping) or len(expr) != 1 or set(expr) - _DIALECT:
            raise ManifestError(f"unsupported filter expression {expr!r} "
                                f"(supported: {sorted(_DIALECT)})")
        (kind, arg), = expr.items()
        if kind in ("all", "any"):
            out.append({kind: _checked(arg)})
        elif kind == "not":
            out.append({kind: _checked([arg])[0]})
        elif isinstance(arg, Mapping):
            out.append({kind: {str(name): str(value) for name, value in arg.items()}})
        else:
            raise ManifestError(f"filter {kind} takes attribute: value pairs, not {arg!r}")
    return out


def _evaluate(expr: Mapping[str, Any], attributes: Mapping[str, str]) -> bool:
    (kind, arg), = expr.items()
    if kind == "all":
        return all(_evaluate(e, attributes) for e in arg)
    if kind == "any":
        return any(_evaluate(e, attributes) for e in arg)
    if kind == "not":
        return not _evaluate(arg, attributes)
    test = {"exact": str.__eq__, "prefix": str.startswith, "suffix": str.endswith}[kind]
    return all(name in attributes and test(attributes[name], value)
               for name, value in arg.items())
