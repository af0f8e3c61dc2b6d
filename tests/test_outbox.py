"""upload's outbox: events reach the broker after the response, and lost ones are re-sent."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import redis
from images import kinds
from stackutil import poll
from subscriber import Subscriber

from thumbnails import events
from thumbnails.config import Config
from thumbnails.jobs import JobStore
from thumbnails.upload import create_app

PNG = kinds()["png"][0]


def upload_app(redis_url: str, tmp_path: Path, sink: str, retry: float) -> object:
    config = Config(redis_url=redis_url, data_dir=tmp_path, sink_url=sink,
                    outbox_retry_seconds=retry)
    return create_app(config)


def test_event_sent_once_broker_accepts(redis_url: str, redis_client: redis.Redis,
                                        tmp_path: Path,
                                        serve: Callable[[Subscriber], Subscriber]) -> None:
    broker = serve(Subscriber([202]))
    app = upload_app(redis_url, tmp_path, broker.url, retry=30)
    answer = app.test_client().post("/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    assert answer.status_code == 202
    (event,) = poll(lambda: broker.received or None)
    assert event.get_type() == events.IMAGE_UPLOADED
    data = events.data_of(event)
    assert data["job_id"] == answer.json["job_id"] and data["key"].startswith("originals/")
    poll(lambda: JobStore(redis_client).outbox_depth() == 0 or None)
    app.extensions["outbox"].stop()


def test_lost_event_is_sent_again(redis_url: str, redis_client: redis.Redis, tmp_path: Path,
                                  serve: Callable[[Subscriber], Subscriber]) -> None:
    broker = serve(Subscriber([503, 503, 202]))  # the broker refuses twice, then accepts
    app = upload_app(redis_url, tmp_path, broker.url, retry=0.2)
    answer = app.test_client().post("/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    poll(lambda: len(broker.received) >= 3 or None, timeout=20)
    assert {e.get_id() for e in broker.received} == {broker.received[0].get_id()}
    poll(lambda: JobStore(redis_client).outbox_depth() == 0 or None)
    assert answer.json["status"] == "queued"
    app.extensions["outbox"].stop()


def test_sweep_endpoint_sends_what_is_due(redis_url: str, redis_client: redis.Redis,
                                          tmp_path: Path,
                                          serve: Callable[[Subscriber], Subscriber]) -> None:
    broker = serve(Subscriber([202]))
    offline = upload_app(redis_url, tmp_path, "", retry=0)  # no sink, and due at once
    offline.test_client().post("/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    assert JobStore(redis_client).outbox_depth() == 1
    online = upload_app(redis_url, tmp_path, broker.url, retry=30)
    online.extensions["outbox"].stop()  # only the endpoint sends in this test
    swept = online.test_client().post("/outbox/sweep")
    assert swept.json == {"sent": 1, "pending": 0, "requeued": 0, "timed_out": 0,
                          "orphans_deleted": 0, "expired_deleted": 0, "temp_files_removed": 0}
    assert len(broker.received) == 1
