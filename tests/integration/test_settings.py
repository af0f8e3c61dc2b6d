"""Settings a deployment changes: API keys on upload and status, and the event type prefix
(Flask test clients on a real Valkey and a filesystem store)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.images import kinds
from tests.support.pingsource import ping_request
from thumbnails import resize, status, upload
from thumbnails.core import events
from thumbnails.core.config import Config, ConfigError
from thumbnails.core.jobs import OUTBOX_KEY

PNG = kinds()["png"][0]
KEY = "s3cret-key"
OTHER_KEY = "another-key"
DIGESTS = ",".join(hashlib.sha256(k.encode()).hexdigest() for k in (KEY, OTHER_KEY))


@pytest.fixture
def keyed(config: Config) -> Config:
    """conftest's config with API keys on."""
    return replace(config, api_key_hashes=DIGESTS)


def post_image(client: FlaskClient, **headers: str) -> TestResponse:
    return client.post("/jobs", data={"file": (io.BytesIO(PNG), "a.png")}, headers=headers)


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""},
                                     {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {KEY}"}],
                         ids=["none", "wrong", "empty", "wrong-bearer", "not-bearer"])
def test_missing_or_wrong_key_is_401_json(keyed: Config, headers: dict[str, str]) -> None:
    answer = post_image(upload.create_app(keyed).test_client(), **headers)
    assert answer.status_code == 401
    assert answer.json["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
    listing = status.create_app(keyed).test_client().get("/jobs", headers=headers)
    assert listing.status_code == 401 and listing.json["error"] == "unauthorized"


def test_either_key_works_in_either_header(keyed: Config) -> None:
    client = upload.create_app(keyed).test_client()
    first = post_image(client, **{"X-API-Key": KEY})
    second = post_image(client, Authorization=f"Bearer {OTHER_KEY}")
    assert first.status_code == second.status_code == 202
    job_id = first.json["job_id"]
    answer = status.create_app(keyed).test_client().get(f"/jobs/{job_id}",
                                                        headers={"X-API-Key": KEY})
    assert answer.status_code == 200 and answer.json["job_id"] == job_id


def test_probes_and_the_outbox_sweep_need_no_key(keyed: Config) -> None:
    up, st = upload.create_app(keyed).test_client(), status.create_app(keyed).test_client()
    assert up.get("/health").status_code == st.get("/health").status_code == 200
    assert up.get("/ready").status_code == st.get("/ready").status_code == 200
    headers, body = ping_request()
    assert up.post("/outbox/sweep", headers=headers, data=body).status_code == 200  # old path
    # POST /sweep is open too, and the same route: within the interval it answers 429.
    assert up.post("/sweep", headers=headers, data=body).status_code == 429


def test_the_sweep_interval_falls_back_to_its_old_name() -> None:
    assert Config.from_env({}).sweep_interval_seconds == 10.0
    assert Config.from_env({"OUTBOX_RETRY_SECONDS": "3"}).sweep_interval_seconds == 3.0
    both = Config.from_env({"SWEEP_INTERVAL_SECONDS": "4", "OUTBOX_RETRY_SECONDS": "3"})
    assert both.sweep_interval_seconds == 4.0
    assert Config.from_env({"OUTBOX_RETRY_SECONDS": "3"}).to_env()["SWEEP_INTERVAL_SECONDS"] \
        == "3.0"
    with pytest.raises(ConfigError, match="SWEEP_INTERVAL_SECONDS"):
        Config.from_env({"OUTBOX_RETRY_SECONDS": "0"})


def test_without_digests_nothing_is_checked(redis_url: str, redis_client: redis.Redis,
                                            tmp_path: Path) -> None:
    answer = post_image(upload.create_app(Config(redis_url=redis_url, data_dir=tmp_path))
                        .test_client())
    assert answer.status_code == 202


@pytest.mark.parametrize("digests", ["abc", "g" * 64, hashlib.sha256(b"k").hexdigest() + ",x"])
def test_malformed_digests_are_a_configuration_error(digests: str) -> None:
    with pytest.raises(ConfigError, match="API_KEY_HASHES"):
        Config.from_env({"API_KEY_HASHES": digests})


def test_the_event_type_prefix_names_every_event(redis_url: str, redis_client: redis.Redis,
                                                 tmp_path: Path) -> None:
    config = Config(redis_url=redis_url, data_dir=tmp_path, event_type_prefix="com.example.thumbs")
    types = events.EventTypes("com.example.thumbs")
    assert types.all == ("com.example.thumbs.image.uploaded",
                         "com.example.thumbs.thumbnail.generated",
                         "com.example.thumbs.thumbnail.failed")
    job_id = post_image(upload.create_app(config).test_client()).json["job_id"]
    queued = events.from_json(redis_client.hget(OUTBOX_KEY, job_id))
    assert queued.get_type() == types.image_uploaded

    worker = resize.create_app(config).test_client()
    default_typed = events.new_event(events.IMAGE_UPLOADED, "/t", {"job_id": job_id})
    headers, body = events.to_http(default_typed)
    assert worker.post("/", data=body, headers=headers).status_code == 400  # not ours
    headers, body = events.to_http(queued)
    answer = worker.post("/", data=body, headers=headers)
    assert answer.status_code == 200
    assert answer.headers["ce-type"] == types.thumbnail_generated


@pytest.mark.parametrize("prefix", ["Upper.Case", "trailing.", "spaces in", ".leading"])
def test_a_malformed_prefix_is_a_configuration_error(prefix: str) -> None:
    with pytest.raises(ConfigError, match="EVENT_TYPE_PREFIX"):
        Config.from_env({"EVENT_TYPE_PREFIX": prefix})


def test_cors_only_for_configured_origins(redis_url: str, redis_client: redis.Redis,
                                          tmp_path: Path) -> None:
    config = Config(redis_url=redis_url, data_dir=tmp_path, api_key_hashes=DIGESTS,
                    cors_origins="https://app.example, https://admin.example/")
    for app in (upload.create_app(config), status.create_app(config)):
        client = app.test_client()
        preflight = client.options("/jobs", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key"})
        assert preflight.status_code == 204  # no key needed for a preflight
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "X-API-Key" in preflight.headers["Access-Control-Allow-Headers"]
        refused = client.options("/jobs", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in refused.headers
        answer = client.get("/health", headers={"Origin": "https://admin.example"})
        assert answer.headers["Access-Control-Allow-Origin"] == "https://admin.example"
        assert "Location" in answer.headers["Access-Control-Expose-Headers"]
        assert "Origin" in answer.headers["Vary"]
    listed = status.create_app(config).test_client().get(
        "/jobs", headers={"Origin": "https://app.example", "X-API-Key": KEY})
    assert listed.status_code == 200
    assert listed.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_no_cors_headers_without_configured_origins(redis_url: str, redis_client: redis.Redis,
                                                    tmp_path: Path) -> None:
    client = status.create_app(Config(redis_url=redis_url, data_dir=tmp_path)).test_client()
    answer = client.get("/jobs", headers={"Origin": "https://app.example"})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers
