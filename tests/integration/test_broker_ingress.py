"""The local broker's ingress (thumbnails.local.broker.ingress): accepts CloudEvents, stores the
ones a Trigger wants in the stream, refuses junk (a real Valkey)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.broker import event, trigger_doc, write_manifests
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.local.broker import STREAM_KEY, group_name
from thumbnails.local.broker.ingress import create_app
from thumbnails.local.broker.settings import BrokerSettings


@pytest.fixture
def ingress(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Any:
    manifests = write_manifests(tmp_path, trigger_doc("t", "s", type_=events.IMAGE_UPLOADED))
    app = create_app(Config(redis_url=redis_url), client=redis_client,
                     settings=BrokerSettings(knative_dir=manifests,
                                             subscribers="s=http://127.0.0.1:9"))
    return app.test_client()


def stored(client: redis.Redis) -> list[events.BaseCloudEvent]:
    return [events.from_json(fields[b"event"]) for _, fields in client.xrange(STREAM_KEY)]


@pytest.mark.parametrize(
    ("path", "structured"),
    [("/", False), ("/", True), ("/default/default", False), ("/default/default", True)],
)
def test_ingress_accepts_and_stores(
    ingress: Any, redis_client: redis.Redis, path: str, structured: bool
) -> None:
    sent = event(job="j1")
    headers, body = events.to_http(sent, structured=structured)
    response = ingress.post(path, data=body, headers=headers)
    assert response.status_code == 202
    (got,) = stored(redis_client)
    assert (got.get_id(), got.get_type(), got.get_source()) == (
        sent.get_id(), sent.get_type(), sent.get_source())
    assert events.data_of(got) == {"job": "j1"}


def test_ingress_creates_the_trigger_groups(ingress: Any, redis_client: redis.Redis) -> None:
    names = [g["name"] for g in redis_client.xinfo_groups(STREAM_KEY)]
    assert names == [group_name("t").encode()]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"junk", {"Content-Type": "text/plain"}),
        (b"{not json", {"Content-Type": "application/cloudevents+json"}),
        (b"{}", {"Content-Type": "application/json", "ce-id": "1"}),  # missing attributes
    ],
    ids=["plain", "bad-structured", "incomplete-binary"],
)
def test_ingress_refuses_junk(
    ingress: Any, redis_client: redis.Redis, body: bytes, headers: dict[str, str]
) -> None:
    response = ingress.post("/", data=body, headers=headers)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_event"
    assert redis_client.xlen(STREAM_KEY) == 0


def test_ingress_does_not_keep_unwanted_events(ingress: Any, redis_client: redis.Redis) -> None:
    headers, body = events.to_http(event("nobody.wants.this"))
    assert ingress.post("/", data=body, headers=headers).status_code == 202
    assert redis_client.xlen(STREAM_KEY) == 0
