"""Both object store backends: the filesystem and S3 (moto's server over real HTTP)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from thumbnails.config import Config
from thumbnails.errors import ObjectNotFound, StorageUnavailable
from thumbnails.storage import (
    FilesystemStore,
    ObjectStore,
    S3Store,
    open_store,
    original_key,
    thumbnail_key,
)


def s3_config(endpoint: str, bucket: str) -> Config:
    return Config(storage_backend="s3", s3_endpoint=endpoint, s3_access_key="test",
                  s3_secret_key="test-secret", s3_bucket=bucket)


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    bucket = f"b-{uuid.uuid4().hex[:12]}"  # a fresh bucket: created on first use
    if request.param == "filesystem":
        return open_store(Config(data_dir=tmp_path, s3_bucket=bucket))
    return open_store(s3_config(request.getfixturevalue("s3_endpoint"), bucket))


def test_round_trip_and_overwrite(store: ObjectStore) -> None:
    store.put("originals/a", b"one", "image/png")
    assert store.get("originals/a") == b"one" and store.exists("originals/a")
    store.put("originals/a", b"two", "image/png")
    assert store.get("originals/a") == b"two"
    store.ping()


def test_missing_and_delete(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("originals/none")
    assert not store.exists("originals/none")
    store.put("thumbnails/x.png", b"x", "image/png")
    store.delete("thumbnails/x.png")
    store.delete("thumbnails/x.png")  # idempotent
    assert not store.exists("thumbnails/x.png")


def test_s3_keeps_content_type(s3_endpoint: str) -> None:
    store = open_store(s3_config(s3_endpoint, "types"))
    assert isinstance(store, S3Store)
    store.put("thumbnails/t.webp", b"data", "image/webp")
    assert store.client.stat_object("types", "thumbnails/t.webp").content_type == "image/webp"


def test_s3_outage_is_unavailable() -> None:
    store = open_store(s3_config("127.0.0.1:1", "down"))
    with pytest.raises(StorageUnavailable):
        store.get("originals/x")
    with pytest.raises(StorageUnavailable):
        store.ping()


def test_filesystem_refuses_escaping_keys(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path, "b")
    for key in ("../x", "/etc/passwd", "a/../../x", "a\\b", "a\0b", ""):
        with pytest.raises(ValueError):
            store.put(key, b"x", "image/png")
    store.put("originals/ok", b"x", "image/png")
    assert [p.name for p in (tmp_path / "b" / "originals").iterdir()] == ["ok"]  # no temp files


def test_keys_come_from_job_ids_only() -> None:
    job_id = str(uuid.uuid4())
    assert original_key(job_id) == f"originals/{job_id}"
    assert thumbnail_key(job_id, "png") == f"thumbnails/{job_id}.png"


def test_open_store_follows_config(tmp_path: Path) -> None:
    assert isinstance(open_store(Config(data_dir=tmp_path)), FilesystemStore)
    assert isinstance(open_store(s3_config("127.0.0.1:1", "x")), S3Store)
