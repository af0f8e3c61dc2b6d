"""No stranger is trusted (issue 11, section 4): every input from outside is checked against
what the service recorded. Dead letters and foreign events through resize's Flask test client
(a real Valkey, a filesystem store); API keys per client, forged Host headers and URLs through
the real stack (gunicorn processes over HTTP); domain errors logged from the errors table.

What was audited, field by field (sender-controlled values the service derives itself):
- image.uploaded `data.job_id`: only names a job upload created; an unknown one is refused
  (a foreign producer's job id is derived from its event's source and id).
- image.uploaded `data.key`: a foreign event's key must be under INCOMING_PREFIX; a known
  job's key is never read from the event (resize uses the recorded original_key).
- `data.bucket`: must be the configured bucket. `data.options`: parsed and bounded as a form's.
- dead letters: type, id and source must be the job's recorded event's.
- `correlationid`/`traceparent`, X-Request-Id: validated by pattern (thumbnails.core.logs).
- upload's form: the filename is never used; object keys and job ids are the service's.
- Idempotency-Key: hashed, scoped to the API client, fingerprinted (422 on another payload).
- Every URL emitted (Location, links, Link): from STATUS_BASE_URL, never Host/X-Forwarded-*.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask.testing import FlaskClient

from tests.support.images import encode, kinds, marked
from tests.support.stackutil import poll, running_stack
from thumbnails import resize, status, upload
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.jobs import JobStatus, JobStore, job_key
from thumbnails.core.storage import open_store

PNG = kinds()["png"][0]


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """conftest's, with the store in tmp_path / "objects"."""
    return replace(config, data_dir=tmp_path / "objects")


def uploaded(config: Config) -> str:
    answer = upload.create_app(config).test_client().post(
        "/jobs", data={"file": (io.BytesIO(PNG), "a.png")})
    assert answer.status_code == 202, answer.json
    job_id: str = answer.json["job_id"]
    return job_id


def post_event(client: FlaskClient, event: events.CloudEvent, path: str = "/") -> Any:
    headers, body = events.to_http(event)
    return client.post(path, data=body, headers=headers)


def job_keys(client: redis.Redis) -> list[bytes]:
    return sorted(client.scan_iter(match=job_key("*")))


# -- dead letters ----------------------------------------------------------------------------

@pytest.mark.parametrize("forgery", ["other type", "other id", "other source", "all made up"])
def test_a_forged_dead_letter_changes_nothing(config: Config, redis_client: redis.Redis,
                                              forgery: str) -> None:
    """Issue example: resize's /dead-letter took any CloudEvent with a data.job_id (any type,
    any id) and failed that job."""
    job_id = uploaded(config)
    job = JobStore(redis_client).get(job_id)
    assert job is not None
    kind, event_id, source = events.IMAGE_UPLOADED, job.event_id, job.event_source
    if forgery in ("other type", "all made up"):
        kind = events.THUMBNAIL_FAILED
    if forgery in ("other id", "all made up"):
        event_id = str(uuid.uuid4())
    if forgery in ("other source", "all made up"):
        source = "/somebody-else"
    before = redis_client.hgetall(job_key(job_id))
    answer = post_event(resize.create_app(config).test_client(), events.new_event(
        kind, source, {"job_id": job_id}, event_id=event_id,
        extensions={"knativeerrorcode": "500"}), "/dead-letter")
    assert answer.status_code == 400 and answer.json["error"] == "forged_event", answer.json
    assert redis_client.hgetall(job_key(job_id)) == before


def test_the_jobs_own_dead_letter_still_fails_it(config: Config,
                                                 redis_client: redis.Redis) -> None:
    job_id = uploaded(config)
    stored = redis_client.hget(job_key(job_id), "event")
    assert stored is not None
    event = events.from_json(stored)  # the very event upload sent, as Knative dead-letters it
    event = events.new_event(event.get_type(), event.get_source(), events.data_of(event),
                             event_id=event.get_id(), extensions={"knativeerrorcode": "500"})
    answer = post_event(resize.create_app(config).test_client(), event, "/dead-letter")
    assert answer.status_code == 204
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error_code == "delivery_failed"


# -- foreign events ---------------------------------------------------------------------------

def own_objects(job_id: str) -> list[str]:
    return [f"originals/{job_id}", f"thumbnails/{job_id}/1.png", f"thumbnails/{job_id}.png",
            f"./originals/{job_id}",
            f"incoming/../originals/{job_id}", f"incoming/./../originals/{job_id}",
            f"incoming/%2e%2e/originals/{job_id}", f"incoming/%2E%2E%2Foriginals%2F{job_id}",
            f"incoming//../originals/{job_id}", f"/originals/{job_id}", f"originals//{job_id}",
            "incoming/", "incoming/a/./b", "incoming/a\\..\\b", "incoming/a\nb"]


def test_a_foreign_event_cannot_name_the_services_own_objects(
        config: Config, redis_client: redis.Redis) -> None:
    """Issue example: a producer's image.uploaded naming another job's original or thumbnail
    (and ./ variants) copied that image into a new job."""
    job_id = uploaded(config)
    client = resize.create_app(config).test_client()
    assert post_event(client, events.new_event(events.IMAGE_UPLOADED, "/t", {
        "job_id": job_id})).status_code == 200  # now its thumbnail exists too
    assert open_store(config).exists(f"thumbnails/{job_id}/1.png")  # the first attempt's
    before = job_keys(redis_client)
    for key in own_objects(job_id):
        answer = post_event(client, events.new_event(events.IMAGE_UPLOADED, "/other-system", {
            "bucket": "thumbnails", "key": key}))
        assert answer.status_code == 400, (key, answer.json)
        assert answer.json["error"] in ("forged_event", "invalid_event"), (key, answer.json)
    assert job_keys(redis_client) == before


def test_a_foreign_event_under_the_incoming_prefix_makes_a_job(
        config: Config, redis_client: redis.Redis, tmp_path: Path) -> None:
    own_prefix = Config(redis_url=config.redis_url, data_dir=config.data_dir,
                        incoming_prefix="drop/box/")
    open_store(own_prefix).put("drop/box/cat.png", PNG, "image/png")
    client = resize.create_app(own_prefix).test_client()
    refused = post_event(client, events.new_event(events.IMAGE_UPLOADED, "/o", {
        "key": "incoming/cat.png"}))  # not the configured prefix
    assert refused.status_code == 400
    answer = post_event(client, events.new_event(events.IMAGE_UPLOADED, "/o", {
        "key": "drop/box/cat.png"}))
    assert answer.status_code == 200, answer.json
    reply = events.from_http(dict(answer.headers), answer.data)
    assert reply.get_type() == events.THUMBNAIL_GENERATED


def test_an_event_naming_an_unknown_job_id_creates_nothing(
        config: Config, redis_client: redis.Redis) -> None:
    """Found in the audit: an event with a data.job_id no job has made resize create a job
    under the sender's id. Job ids are upload's to hand out."""
    open_store(config).put("incoming/cat.png", PNG, "image/png")
    chosen = str(uuid.uuid4())
    answer = post_event(resize.create_app(config).test_client(), events.new_event(
        events.IMAGE_UPLOADED, "/o", {"job_id": chosen, "key": "incoming/cat.png"}))
    assert answer.status_code == 400 and answer.json["error"] == "forged_event"
    assert job_keys(redis_client) == []


def test_incoming_prefix_must_not_be_the_services_own() -> None:
    from thumbnails.core.config import ConfigError

    for bad in ("originals/", "thumbnails/x/", "incoming", "/incoming/"):
        with pytest.raises(ConfigError, match="INCOMING_PREFIX"):
            Config.from_env({"INCOMING_PREFIX": bad})


# -- logging from the errors table ------------------------------------------------------------

def test_each_domain_error_is_logged_with_its_own_words(
        redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue example: a 401 was logged as "dependency unavailable", and 503s not at all."""
    keyed = Config(redis_url=redis_url, data_dir=tmp_path,
                   api_key_hashes=hashlib.sha256(b"k").hexdigest())
    down = Config(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path,
                  dependency_timeout_seconds=0.5)
    with caplog.at_level(logging.INFO, logger="thumbnails.core.httperrors"):
        assert status.create_app(keyed).test_client().get("/jobs").status_code == 401
        assert status.create_app(down).test_client().get("/ready").status_code == 503
        assert status.create_app(keyed).test_client().get(
            f"/jobs/{uuid.uuid4()}", headers={"X-API-Key": "k"}).status_code == 404
    lines = [(r.levelno, r.getMessage()) for r in caplog.records
             if r.name == "thumbnails.core.httperrors"]
    assert len(lines) == 3, lines
    (unauthorized_level, unauthorized), (down_level, unavailable), (_, not_found) = lines
    assert unauthorized_level == logging.WARNING
    assert unauthorized.startswith("unauthorized request refused: 401 unauthorized")
    assert "dependency" not in unauthorized
    assert down_level == logging.WARNING
    assert unavailable.startswith("dependency unavailable: 503 redis_unavailable")
    assert not_found.startswith("not found: 404 not_found")


# -- per-client API keys and emitted URLs, on the real stack -----------------------------------

KEYS = {"alice": "alice's key, long enough", "bob": "bob's key, long enough too"}
FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
          "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example;proto=https"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    hashes = ",".join(hashlib.sha256(k.encode()).hexdigest() for k in KEYS.values())
    with running_stack(Config(api_key_hashes=hashes),
                       Path(tmp_path_factory.mktemp("keyed"))) as urls:
        yield urls


def as_(who: str, **headers: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[who], **headers}


def post(urls: dict[str, str], who: str, data: bytes, *, idempotency: str | None = None,
         width: str = "100", **headers: str) -> requests.Response:
    extra = {"Idempotency-Key": idempotency} if idempotency else {}
    return requests.post(f"{urls['upload']}/jobs", files={"file": ("a.png", data)},
                         data={"width": width}, headers=as_(who, **extra, **headers),
                         timeout=30)


def succeeded(urls: dict[str, str], who: str, job_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        doc: dict[str, Any] = requests.get(f"{urls['status']}/jobs/{job_id}",
                                           headers=as_(who), timeout=10).json()
        return doc if doc.get("status") in ("succeeded", "failed") else None

    doc = poll(check, timeout=30)
    assert doc["status"] == "succeeded", doc
    return doc


def listed(urls: dict[str, str], who: str) -> list[str]:
    answer = requests.get(f"{urls['status']}/jobs", params={"limit": 1000}, headers=as_(who),
                          timeout=10)
    assert answer.status_code == 200
    return [item["job_id"] for item in answer.json()]


def test_another_clients_idempotency_key_is_a_new_job(keyed: dict[str, str]) -> None:
    """Issue example: with several keys, a client could replay another client's
    Idempotency-Key and get its job, list its jobs and download its thumbnails."""
    image = encode(marked((80, 60)), "PNG")
    key = f"order-{uuid.uuid4()}"
    alices = post(keyed, "alice", image, idempotency=key)
    assert alices.status_code == 202
    alice_job = alices.json()["job_id"]
    bobs = post(keyed, "bob", image, idempotency=key)
    assert bobs.status_code == 202 and "Idempotent-Replayed" not in bobs.headers
    bob_job = bobs.json()["job_id"]
    assert bob_job != alice_job
    succeeded(keyed, "alice", alice_job)
    for path in ("", "/thumbnail", "/debug"):
        answer = requests.get(f"{keyed['status']}/jobs/{alice_job}{path}", headers=as_("bob"),
                              timeout=10)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found", path
    assert alice_job in listed(keyed, "alice") and bob_job not in listed(keyed, "alice")
    assert bob_job in listed(keyed, "bob") and alice_job not in listed(keyed, "bob")
    # Alice's own replay is still hers.
    again = post(keyed, "alice", image, idempotency=key)
    assert again.status_code == 202 and again.json()["job_id"] == alice_job
    assert again.headers["Idempotent-Replayed"] == "true"


def test_an_idempotency_key_reused_with_another_payload_is_422(keyed: dict[str, str]) -> None:
    key = f"order-{uuid.uuid4()}"
    first = post(keyed, "alice", encode(marked((80, 60)), "PNG"), idempotency=key)
    assert first.status_code == 202
    for other in ({"data": encode(marked((81, 60)), "PNG")},  # another file
                  {"data": encode(marked((80, 60)), "PNG"), "width": "50"}):  # other options
        answer = post(keyed, "alice", idempotency=key, **other)  # type: ignore[arg-type]
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "idempotency_key_reused"


def test_authenticated_thumbnails_are_private(keyed: dict[str, str]) -> None:
    job_id = post(keyed, "alice", encode(marked((64, 64)), "PNG")).json()["job_id"]
    succeeded(keyed, "alice", job_id)
    answer = requests.get(f"{keyed['status']}/jobs/{job_id}/thumbnail", headers=as_("alice"),
                          timeout=10)
    assert answer.status_code == 200
    cache_control = {d.strip() for d in answer.headers["Cache-Control"].split(",")}
    assert "private" in cache_control and "public" not in cache_control
    vary = {v.strip().lower() for v in answer.headers["Vary"].split(",")}
    assert {"x-api-key", "authorization"} <= vary


def test_emitted_urls_come_from_configuration_not_the_host_header(
        keyed: dict[str, str]) -> None:
    """Location, links and the paging Link header: from STATUS_BASE_URL (the stack sets it),
    whatever Host or X-Forwarded-* a client sends."""
    for _ in range(2):
        created = post(keyed, "alice", encode(marked((32, 32)), "PNG"), **FORGED)
        assert created.status_code == 202
        assert created.headers["Location"].startswith(keyed["status"] + "/jobs/")
        assert all(link.startswith(keyed["status"] + "/") for link in
                   created.json()["links"].values())
    page = requests.get(f"{keyed['status']}/jobs", params={"limit": 1},
                        headers=as_("alice", **FORGED), timeout=10)
    assert page.status_code == 200
    assert page.headers["Link"].startswith(f"<{keyed['status']}/jobs?"), page.headers["Link"]
    job_id = page.json()[0]["job_id"]
    doc = requests.get(f"{keyed['status']}/jobs/{job_id}", headers=as_("alice", **FORGED),
                       timeout=10).json()
    assert all(link.startswith(keyed["status"] + "/") for link in doc["links"].values())
    assert "evil" not in repr(page.headers) + repr(doc)
