"""The request the chart's PingSource sends to upload's /sweep, built as Knative's
ping adapter builds it (knative/eventing knative-v1.22.2 pkg/adapter/mtping/runner.go
makeEvent: type dev.knative.sources.ping, source
/apis/v1/namespaces/<namespace>/pingsources/<name>, the spec's data and contentType, a new
id per tick), from the PingSource in knative/, with the CloudEvents SDK in binary mode (what
sdk-go sends)."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.support import k8s

NAMESPACE = "thumbnails"  # the README's: `scripts/deploy.sh` installs there


@functools.cache
def pingsource() -> dict[str, Any]:
    """The PingSource of knative/."""
    (ping,) = k8s.of_kind(k8s.knative_objects(), "PingSource")
    return ping


def ping_request(namespace: str = NAMESPACE, *, event_type: str = "dev.knative.sources.ping",
                 source: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of one tick of the chart's PingSource (type and source as given,
    to forge other ones)."""
    ping = pingsource()
    spec = ping["spec"]
    attributes = {
        "type": event_type,
        "source": source or f"/apis/v1/namespaces/{namespace}/pingsources/"
                            f"{ping['metadata']['name']}",
        "id": str(uuid.uuid4()),
        "datacontenttype": spec["contentType"],
    }
    event = CloudEvent(attributes=attributes, data=spec["data"].encode())
    message = ce_http.to_binary(event, JSONFormat())
    return dict(message.headers), message.body
