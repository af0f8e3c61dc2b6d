"""Object storage behind one interface: the filesystem (local default) or S3/MinIO."""

from __future__ import annotations

import errno
import io
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name

from .config import Config
from .errors import ObjectNotFound, StorageUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def original_key(job_id: str) -> str:
    """Where a job's original image is stored (never derived from the client's filename)."""
    return f"originals/{job_id}"


def thumbnail_key(job_id: str, extension: str, rendition: str | None = None) -> str:
    """Where a job's thumbnail is stored; with a rendition name (thumbnails.renditions.NAME,
    safe in a key), where that rendition is: thumbnails/<job id>/<name>.<extension>."""
    if rendition is not None:
        return f"thumbnails/{job_id}/{rendition}.{extension}"
    return f"thumbnails/{job_id}.{extension}"


class ObjectStore(Protocol):
    """What the functions need from an object store."""

    bucket: str

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def ping(self) -> None: ...


class FilesystemStore:
    """Objects as files under root/bucket/key, written atomically (content types not kept)."""

    def __init__(self, root: Path, bucket: str) -> None:
        self.bucket = bucket
        self.base = Path(root) / bucket

    def _path(self, key: str) -> Path:
        # Keys are ours, never a client's; this is defence in depth against escaping the base.
        if "\\" in key or "\0" in key or ".." in key or "" in key.split("/"):
            raise ValueError(f"bad object key {key!r}")  # also "", "/abs", "a//b", "a/"
        return self.base / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write data under key; readers see the old object or the new one, never a part."""
        path = self._path(key)
        tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                # No fsync: like Redis's AOF everysec, a crash may lose the last second of
                # writes; an fsync per object would make every upload wait for the disk.
                with open(tmp, "xb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)  # only still there if something failed
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound if there is none."""
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """True if the object exists (False for a key no object could have)."""
        try:
            return self._path(key).is_file()
        except ValueError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EINVAL):
                return False  # a name no file can have
            raise StorageUnavailable(f"cannot look up {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        """Remove the object if present."""
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {key}: {exc}") from exc

    def ping(self) -> None:
        """StorageUnavailable unless the bucket directory exists (or can be made), writable."""
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"filesystem store at {self.base}: {exc}") from exc
        if not os.access(self.base, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"filesystem store at {self.base} is not writable")


class S3Store:
    """Objects in an S3 bucket (MinIO or any S3) through the minio SDK; fails fast on outages."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *,
                 secure: bool = False, region: str = "us-east-1", timeout: float = 5.0) -> None:
        check_bucket_name(bucket, strict=True)  # a bad name is a configuration error, not an outage
        self.bucket = bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=2, backoff_factor=0.2,
                                  status_forcelist=[500, 502, 503, 504],
                                  respect_retry_after_header=False),
            maxsize=16,
        )
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                            secure=secure, region=region, http_client=http)
        self._bucket_ready = False  # checked on first use, not here: S3 may be down now

    def _call(self, what: str, action: Callable[[], T]) -> T:
        """Run action with the bucket ensured, mapping S3 and network errors to ours."""
        try:
            if not self._bucket_ready:
                self._ensure_bucket()
            return action()
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(f"no object for {what}") from exc
            if exc.code == "NoSuchBucket":
                self._bucket_ready = False  # deleted behind our back: recreate on next use
            log.warning("S3 %s failed: %s: %s", what, exc.code, exc.message)
            raise StorageUnavailable(f"S3 {what}: {exc.code}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            # MaxRetryError (refused, timed out, 5xx after retries), broken reads, odd replies.
            log.warning("S3 %s failed: %s", what, exc)
            raise StorageUnavailable(f"S3 {what}: {type(exc).__name__}") from exc

    def _ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
                log.info("created bucket %s", self.bucket)
            except S3Error as exc:  # another process may have created it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Upload data under key with its content type."""
        self._call(f"put {key}", lambda: self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type))

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound if there is none."""
        def read() -> bytes:
            response = self.client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(f"get {key}", read)

    def exists(self, key: str) -> bool:
        """True if the object exists."""
        try:
            self._call(f"stat {key}", lambda: self.client.stat_object(self.bucket, key))
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove the object if present."""
        self._call(f"delete {key}", lambda: self.client.remove_object(self.bucket, key))

    def ping(self) -> None:
        """StorageUnavailable unless S3 answers and the bucket exists (created if missing)."""
        self._bucket_ready = False  # always ask S3: readiness must notice a later outage
        self._call("ping", lambda: None)


def open_store(config: Config) -> ObjectStore:
    """The store the configuration asks for."""
    if config.storage_backend == "s3":
        return S3Store(config.s3_endpoint, config.s3_access_key, config.s3_secret_key,
                       config.s3_bucket, secure=config.s3_secure, region=config.s3_region,
                       timeout=config.dependency_timeout_seconds)
    return FilesystemStore(config.data_dir, config.s3_bucket)
