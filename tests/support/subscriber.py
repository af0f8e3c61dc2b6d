"""A real HTTP server that records the CloudEvents it receives and answers as scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from thumbnails.core import events


@dataclass
class Subscriber:
    """A real HTTP server that records CloudEvents and answers with scripted statuses."""

    statuses: list[int] = field(default_factory=lambda: [200])
    reply: events.CloudEvent | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    first_delay: float = 0.0  # seconds to stall the first answer (a slow subscriber)
    times: list[float] = field(default_factory=list)  # when each request arrived
    received: list[events.BaseCloudEvent] = field(default_factory=list)
    url: str = ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.times.append(time.monotonic())
        if len(self.times) == 1:
            time.sleep(self.first_delay)
        request = Request(environ)
        self.received.append(events.from_http(dict(request.headers), request.get_data()))
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        if status == 200 and self.reply is not None:
            headers, body = events.to_http(self.reply)
            return Response(body, 200, headers)(environ, start_response)
        return Response(self.body, status, self.headers)(environ, start_response)


@dataclass
class Receiver:
    """A real HTTP server for webhooks: records each request's headers and raw body, answers
    with scripted statuses (the last one repeats). `hook` is a URL on it for callback_url."""

    statuses: list[int] = field(default_factory=lambda: [204])
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.requests.append((dict(request.headers), request.get_data()))
            status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        return Response(b"", status)(environ, start_response)

    @property
    def hook(self) -> str:
        return f"{self.url}/hooks/thumbnails?src=test"


def serving() -> Iterator[Callable[[Any], Any]]:
    """Start subscribers on free loopback ports; shut them all down afterwards."""
    servers = []

    def start(subscriber: Any) -> Any:
        server = make_server("127.0.0.1", 0, subscriber, threaded=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        subscriber.url = f"http://127.0.0.1:{server.server_port}"
        return subscriber

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
