"""Both object store backends: the filesystem and S3 (SeaweedFS, a real S3 server, over HTTP)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from minio.error import S3Error

from tests.support.servers import S3Server, free_port, seaweedfs_s3_server
from thumbnails.core.config import Config
from thumbnails.core.errors import ObjectNotFound, StorageUnavailable
from thumbnails.core.storage import (
    FilesystemStore,
    ObjectStore,
    S3Store,
    open_store,
    original_key,
    thumbnail_key,
    thumbnails_prefix,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB with every byte value


def s3_config(server: S3Server, bucket: str) -> Config:
    """An S3 configuration for this server and bucket."""
    return Config(storage_backend="s3", s3_endpoint=server.endpoint,
                  s3_access_key=server.access_key, s3_secret_key=server.secret_key,
                  s3_bucket=bucket, dependency_timeout_seconds=2)


def nowhere() -> S3Server:
    """An S3 endpoint where nothing listens (any keys)."""
    return S3Server(f"127.0.0.1:{free_port()}", "test", "test-secret")


def fresh_bucket() -> str:
    return f"b-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A store of each backend on a bucket that does not exist yet."""
    if request.param == "filesystem":
        return open_store(Config(data_dir=tmp_path, s3_bucket=fresh_bucket()))
    return open_store(s3_config(request.getfixturevalue("seaweedfs"), fresh_bucket()))


def bucket_exists(store: ObjectStore) -> bool:
    if isinstance(store, S3Store):
        return store.client.bucket_exists(store.bucket)
    assert isinstance(store, FilesystemStore)
    return store.base.is_dir()


def test_round_trip(store: ObjectStore) -> None:
    store.put("originals/a", PAYLOAD, "application/octet-stream")
    assert store.get("originals/a") == PAYLOAD
    store.put("thumbnails/empty.png", b"", "image/png")
    assert store.get("thumbnails/empty.png") == b""


def test_overwrite_replaces_the_object(store: ObjectStore) -> None:
    store.put("originals/a", b"one", "image/png")
    store.put("originals/a", b"two", "image/png")
    assert store.get("originals/a") == b"two"


def test_missing_object(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("originals/none")
    assert not store.exists("originals/none")


def test_exists(store: ObjectStore) -> None:
    store.put("thumbnails/x.png", b"x", "image/png")
    assert store.exists("thumbnails/x.png")
    assert not store.exists("thumbnails/y.png")
    assert not store.exists("thumbnails")  # a prefix is not an object


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("thumbnails/x.png", b"x", "image/png")
    store.delete("thumbnails/x.png")
    store.delete("thumbnails/x.png")
    store.delete("originals/never-there")
    assert not store.exists("thumbnails/x.png")
    with pytest.raises(ObjectNotFound):
        store.get("thumbnails/x.png")


def test_bucket_created_when_missing(store: ObjectStore) -> None:
    assert not bucket_exists(store)
    store.ping()
    assert bucket_exists(store)
    store.put("originals/a", b"a", "image/png")
    assert store.get("originals/a") == b"a"


def test_s3_tolerates_a_bucket_created_meanwhile(seaweedfs: S3Server,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = s3_config(seaweedfs, fresh_bucket())
    open_store(config).ping()  # another process wins the race
    late = open_store(config)
    assert isinstance(late, S3Store)
    # What the real server answers the loser's make_bucket (S3 itself does so outside
    # us-east-1; SeaweedFS in every region): the store must take it as success.
    with pytest.raises(S3Error) as refused:
        late.client.make_bucket(config.s3_bucket)
    assert refused.value.code == "BucketAlreadyOwnedByYou"
    monkeypatch.setattr(late.client, "bucket_exists", lambda name: False)
    late.put("originals/a", b"a", "image/png")
    assert late.get("originals/a") == b"a"


def test_s3_keeps_content_type(seaweedfs: S3Server) -> None:
    store = open_store(s3_config(seaweedfs, fresh_bucket()))
    assert isinstance(store, S3Store)
    store.put("thumbnails/t.webp", b"data", "image/webp")
    assert store.client.stat_object(store.bucket, "thumbnails/t.webp").content_type == "image/webp"


def test_s3_outage_is_unavailable_quickly() -> None:
    started = time.monotonic()
    store = open_store(s3_config(nowhere(), "down"))
    for call in (lambda: store.get("originals/x"), lambda: store.exists("originals/x"),
                 lambda: store.put("originals/x", b"x", "image/png"),
                 lambda: store.delete("originals/x"), store.ping):
        with pytest.raises(StorageUnavailable):
            call()
    assert time.monotonic() - started < 30


class Always503(BaseHTTPRequestHandler):
    """An overloaded S3: every request gets 503 Service Unavailable."""

    def _reply(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_DELETE = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_s3_server_errors_are_unavailable() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Always503)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        busy = S3Server(f"127.0.0.1:{server.server_port}", "test", "test-secret")
        store = open_store(s3_config(busy, "busy"))
        with pytest.raises(StorageUnavailable):
            store.get("originals/x")
        with pytest.raises(StorageUnavailable):
            store.ping()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_s3_ping_notices_a_later_outage() -> None:
    with seaweedfs_s3_server() as server:  # its own server, to stop: not the session's
        store = open_store(s3_config(server, fresh_bucket()))
        store.put("originals/a", b"a", "image/png")
        store.ping()
    with pytest.raises(StorageUnavailable):
        store.ping()
    with pytest.raises(StorageUnavailable):
        store.get("originals/a")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a\\b", "a\0b", "",
                                 "a//b", "originals/"])
def test_filesystem_refuses_bad_keys(tmp_path: Path, key: str) -> None:
    store = FilesystemStore(tmp_path, "b")
    with pytest.raises(ValueError):
        store.put(key, b"x", "image/png")
    with pytest.raises(ValueError):
        store.get(key)
    with pytest.raises(ValueError):
        store.delete(key)
    assert not store.exists(key)  # no object can have such a key
    assert not (tmp_path.parent / "x").exists()


def test_filesystem_leaves_no_temp_files(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path, "b")
    for i in range(5):
        store.put("originals/a", b"x" * i, "image/png")
        store.put(f"thumbnails/{i}.png", b"y", "image/png")
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["b/originals/a"] + [f"b/thumbnails/{i}.png" for i in range(5)]


def test_filesystem_failed_write_keeps_the_old_object(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemStore(tmp_path, "b")
    store.put("originals/a", b"old", "image/png")

    def fail(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StorageUnavailable):
        store.put("originals/a", b"new", "image/png")
    monkeypatch.undo()
    assert store.get("originals/a") == b"old"
    assert [p.name for p in (tmp_path / "b" / "originals").iterdir()] == ["a"]


def test_keys_come_from_job_ids_only() -> None:
    job_id = str(uuid.uuid4())
    assert original_key(job_id) == f"originals/{job_id}"
    assert thumbnail_key(job_id, 2, "png") == f"thumbnails/{job_id}/2.png"
    assert thumbnail_key(job_id, 2, "png").startswith(thumbnails_prefix(job_id))


def test_open_store_follows_config(tmp_path: Path) -> None:
    local = open_store(Config(data_dir=tmp_path, s3_bucket="pics"))
    assert isinstance(local, FilesystemStore)
    assert local.bucket == "pics" and local.base == tmp_path / "pics"
    remote = open_store(s3_config(nowhere(), "pics"))  # no connection yet
    assert isinstance(remote, S3Store) and remote.bucket == "pics"
    with pytest.raises(ValueError):  # S3 would refuse the name: fail at startup
        open_store(s3_config(nowhere(), "Not_A_Bucket"))
