"""upload's outbox: events reach the broker after the response, and lost ones are re-sent."""

from __future__ import annotations

import functools
import io
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from tests.support.gunicornproc import serving_function
from tests.support.images import kinds
from tests.support.pingsource import ping_request
from tests.support.servers import free_port
from tests.support.stackutil import poll
from tests.support.subscriber import Subscriber
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import JobStore
from thumbnails.core.services import build_services
from thumbnails.core.storage import original_key
from thumbnails.core.web import start_background
from thumbnails.upload import create_app

PNG = kinds()["png"][0]
THUMBNAILS = str(Path(sys.executable).with_name("thumbnails"))


def upload_app(redis_url: str, tmp_path: Path, sink: str, retry: float) -> object:
    config = Config(redis_url=redis_url, data_dir=tmp_path, sink_url=sink,
                    sweep_interval_seconds=retry)
    app = create_app(config)
    start_background(app)  # as gunicorn's post_worker_init hook does (thumbnails.core.serving)
    return app


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
    headers, body = ping_request()  # the chart's PingSource
    swept = online.test_client().post("/sweep", headers=headers, data=body)
    assert swept.json == {"sent": 1, "pending": 0, "requeued": 0, "timed_out": 0,
                          "orphans_deleted": 0, "expired_deleted": 0, "temp_files_removed": 0}
    assert len(broker.received) == 1


def test_a_stranger_cannot_sweep_more_often_than_the_timer(redis_url: str,
                                                           redis_client: redis.Redis,
                                                           tmp_path: Path) -> None:
    """upload as its container runs it, no sink (so no timer of its own: every sweep is an
    asked-for one). The chart's PingSource's request sweeps (an orphaned original goes);
    then strangers post forged PingSource events and other requests as fast as they can, and
    Redis, which counts the commands it runs, shows at most one sweep per interval."""
    interval = 1.0
    env = {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "objects"), "LOG_LEVEL": "ERROR",
           # SWEEP_INTERVAL_SECONDS's old name, and below POST /sweep's old path: both kept
           "OUTBOX_RETRY_SECONDS": str(interval), "ORPHAN_AFTER_SECONDS": "0.01"}
    command = [THUMBNAILS, "serve", "upload", "--host", "127.0.0.1", "--workers", "2",
               "--threads", "4"]
    services = build_services(Config.from_env(env))
    orphan = str(uuid.uuid4())  # an upload that died before writing its job record
    services.jobs.note_upload(orphan)
    services.store.put(original_key(orphan), PNG, "image/png")
    assert [p.name for p in tmp_path.rglob("originals/*")] == [orphan]
    with serving_function(command, env, free_port(), tmp_path / "upload.log") as server:
        url = f"{server.url}/outbox/sweep"
        headers, body = ping_request()
        answer = requests.post(url, headers=headers, data=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert list(tmp_path.rglob("originals/*")) == []  # the sweep ran

        forged = [ping_request, functools.partial(ping_request, namespace="elsewhere")]
        others = [lambda: ({}, b""),  # no CloudEvent at all
                  functools.partial(ping_request, event_type=events.IMAGE_UPLOADED),
                  functools.partial(ping_request, source="/knative-thumbnails/upload")]

        def stranger(until: float) -> list[requests.Response]:
            answers = []
            with requests.Session() as session:
                while time.monotonic() < until:
                    for make in forged + others:
                        headers, body = make()
                        answers.append(session.post(url, headers=headers, data=body,
                                                    timeout=10))
            return answers

        # Each sweep asks Redis for the outbox's depth once (HLEN); nothing else does here.
        before = redis_client.info("commandstats")["cmdstat_hlen"]["calls"]
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            answers = [a for batch in pool.map(stranger, [started + 3 * interval] * 4)
                       for a in batch]
        elapsed = time.monotonic() - started
        sweeps = redis_client.info("commandstats")["cmdstat_hlen"]["calls"] - before
    assert 1 <= sweeps <= elapsed // interval + 1, (sweeps, elapsed)
    codes = Counter(a.status_code for a in answers)
    assert codes[200] == sweeps and set(codes) == {200, 400, 429}, codes
    assert codes[400] == len(answers) * len(others) // (len(forged) + len(others))
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["error"] == "too_many_requests"
        assert 1 <= int(refused.headers["Retry-After"]) <= math.ceil(interval)
