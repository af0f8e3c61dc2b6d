"""MinIO bucket notifications as a producer (issue 12 §3): MinIO-shaped webhook payloads to
upload's POST /notifications/s3, against the session's real S3 server (SeaweedFS), end to end to a
succeeded job; redelivery makes no duplicate; the token is checked."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from PIL import Image

from tests.support.images import encode, marked
from tests.support.servers import S3Server
from tests.support.stackutil import all_jobs, running_stack, wait_terminal
from thumbnails.core.config import Config
from thumbnails.core.storage import open_store
from thumbnails.upload import create_app as upload_app
from thumbnails.upload.notifications import job_id_of

TOKEN = "minio-notify-token-for-tests"
BUCKET = "notified"


def minio_notification(bucket: str, key: str, etag: str, size: int,
                       event_name: str = "s3:ObjectCreated:Put",
                       version_id: str = "") -> dict[str, Any]:
    """One request of MinIO's webhook target: `{"EventName", "Key", "Records": [event]}`
    with the S3-shaped event of minio/minio internal/event/event.go (field names and
    omitempty as there; the object key URL-encoded as url.QueryEscape does, "+" for a
    space), as internal/event/target/webhook.go `send` marshals it."""
    obj: dict[str, Any] = {"key": quote_plus(key), "size": size, "eTag": etag,
                           "contentType": "image/png",
                           "userMetadata": {"content-type": "image/png"},
                           "sequencer": "17C4E9B5B7F5AB32"}
    if version_id:
        obj["versionId"] = version_id
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2026-11-30T11:30:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"principalId": "minioadmin", "region": "",
                              "sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af92511"
                                           "48b658df7ac2e3e8",
                             "x-amz-request-id": "17C4E9B5B7E1A9F0",
                             "x-minio-deployment-id": "0170a4cc-dca6-4e72-86f1-c0cc760dff7f",
                             "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj},
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) "
                   "minio-go/v7.0.70 mc/RELEASE.2024-10-02T08-27-28Z"},
    }
    return {"EventName": event_name, "Key": f"{bucket}/{key}", "Records": [record]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, seaweedfs: S3Server
          ) -> Iterator[tuple[dict[str, str], Config]]:
    config = Config(storage_backend="s3", s3_endpoint=seaweedfs.endpoint,
                    s3_access_key=seaweedfs.access_key, s3_secret_key=seaweedfs.secret_key,
                    s3_bucket=BUCKET, bucket_notify_token=TOKEN)
    with running_stack(config, Path(tmp_path_factory.mktemp("notify"))) as urls:
        yield urls, config


def notify(urls: dict[str, str], doc: Any, token: str = TOKEN) -> requests.Response:
    return requests.post(f"{urls['upload']}/notifications/s3", data=json.dumps(doc),
                         headers={"Content-Type": "application/json",
                                  "Authorization": f"Bearer {token}"}, timeout=10)


def put_object(config: Config, key: str, data: bytes) -> str:
    """Store an object as a MinIO client would; its ETag (the MD5 the S3 server reports)."""
    store = open_store(config)
    store.put(key, data, "image/png")
    stat = store.client.stat_object(BUCKET, key)  # type: ignore[attr-defined]
    return str(stat.etag)


def test_a_new_object_becomes_a_succeeded_job_once(stack: tuple[dict[str, str], Config]
                                                   ) -> None:
    urls, config = stack
    key = f"incoming/holiday photos/{uuid.uuid4().hex}+1.png"  # a space and a plus in it
    data = encode(marked((300, 200)), "PNG")
    etag = put_object(config, key, data)
    doc = minio_notification(BUCKET, key, etag, len(data))
    first = notify(urls, doc)
    assert first.status_code == 200, first.text
    (item,) = first.json()["jobs"]
    assert item["created"] and item["key"] == key
    expected_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{BUCKET}/{key}?eTag={etag}"))
    assert item["job_id"] == expected_id == job_id_of(BUCKET, key, "", etag)
    job = wait_terminal(urls, item["job_id"])
    assert job["status"] == "succeeded", job
    thumb = requests.get(f"{urls['status']}/jobs/{item['job_id']}/thumbnail", timeout=10)
    assert Image.open(io.BytesIO(thumb.content)).size == (100, 67)  # 300x200 inside 100x100
    # MinIO redelivers (at least once): the same job, nothing new.
    again = notify(urls, doc)
    assert again.json()["jobs"] == [{**item, "created": False}]
    listed = [j for j in all_jobs(urls) if j == item["job_id"]]
    assert listed == [item["job_id"]]
    assert wait_terminal(urls, item["job_id"])["status"] == "succeeded"


def test_a_new_version_is_a_new_job(stack: tuple[dict[str, str], Config]) -> None:
    urls, config = stack
    key = f"incoming/{uuid.uuid4().hex}.png"
    data = encode(marked((80, 60)), "PNG")
    etag = put_object(config, key, data)
    ids = {notify(urls, minio_notification(BUCKET, key, etag, len(data),
                                           version_id=v)).json()["jobs"][0]["job_id"]
           for v in ("v1", "v2", "v1")}
    assert len(ids) == 2
    for job_id in ids:
        assert wait_terminal(urls, job_id)["status"] == "succeeded"


def test_other_events_buckets_and_keys_are_ignored(stack: tuple[dict[str, str], Config]
                                                   ) -> None:
    urls, _ = stack
    before = all_jobs(urls)
    for doc in (
        minio_notification(BUCKET, "incoming/a.png", "e", 1, "s3:ObjectRemoved:Delete"),
        minio_notification(BUCKET, "incoming/a.png", "e", 1, "s3:ObjectAccessed:Get"),
        minio_notification("another-bucket", "incoming/a.png", "e", 1),
        minio_notification(BUCKET, "elsewhere/a.png", "e", 1),
        minio_notification(BUCKET, "thumbnails/x.png", "e", 1),  # the service's own
    ):
        answer = notify(urls, doc)
        assert answer.status_code == 200 and answer.json() == {"jobs": [], "ignored": 1}
    assert all_jobs(urls) == before


def test_the_token_is_required(stack: tuple[dict[str, str], Config]) -> None:
    urls, _ = stack
    doc = minio_notification(BUCKET, "incoming/x.png", "e", 1)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = requests.post(f"{urls['upload']}/notifications/s3", json=doc,
                               headers=headers, timeout=10)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"


@pytest.mark.parametrize("doc", [
    "not json", [], {"Records": "x"}, {"Records": [1]}, {"Records": [{"eventName": 3}]},
    {"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {}}}]},
    {"Records": [{"eventName": "s3:ObjectCreated:Put",
                  "s3": {"bucket": {"name": BUCKET}, "object": {"key": "k", "size": "1"}}}]},
])
def test_malformed_notifications_are_400(stack: tuple[dict[str, str], Config],
                                         doc: Any) -> None:
    urls, _ = stack
    answer = notify(urls, doc)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"


def test_the_endpoint_is_off_without_a_token(tmp_path: Path) -> None:
    """No BUCKET_NOTIFY_TOKEN: 404, whatever is sent (upload's app; its Redis a closed port,
    never reached)."""
    config = Config(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path,
                    dependency_timeout_seconds=0.5)
    client = upload_app(config).test_client()
    doc = minio_notification("thumbnails", "incoming/a.png", "e", 1)
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN}"}):
        answer = client.post("/notifications/s3", json=doc, headers=headers)
        assert answer.status_code == 404 and answer.get_json()["error"] == "not_found"
