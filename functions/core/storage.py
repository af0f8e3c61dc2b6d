"""Object storage behind one interface: the filesystem (local default) or S3/MinIO."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Protocol

from .config import Config
from .errors import ObjectNotFound, StorageUnavailable

log = logging.getLogger(__name__)


def original_key(job_id: str) -> str:
    """Where a job's original image is stored (never derived from the client's filename)."""
    return f"originals/{job_id}"


def thumbnail_key(job_id: str, extension: str) -> str:
    """Where a job's thumbnail is stored."""
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
    """Objects as files under root/bucket/key, written atomically."""

    def __init__(self, root: Path, bucket: str) -> None:
        self.bucket = bucket
        self.base = Path(root) / bucket

    def _path(self, key: str) -> Path:
        # Keys are ours, never a client's; this is defence in depth.
        if not key or key.startswith("/") or "\\" in key or "\0" in key or ".." in key.split("/"):
            raise ValueError(f"bad object key {key!r}")
        return self.base / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write data under key; readers see the old object or the new one, never a part."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex}")
            try:
                with open(tmp, "xb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound if there is none."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {key}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """True if the object exists."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the object if present."""
        self._path(key).unlink(missing_ok=True)

    def ping(self) -> None:
        """StorageUnavailable unless the root is writable."""
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"filesystem store at {self.base}: {exc}") from exc
        if not os.access(self.base, os.W_OK):
            raise StorageUnavailable(f"filesystem store at {self.base} is not writable")


class S3Store:
    """Objects in an S3 bucket (MinIO or any S3) through the minio SDK."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *,
                 secure: bool = False, region: str = "us-east-1", timeout: float = 5.0) -> None:
        import urllib3
        from minio import Minio

        self.bucket = bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=2, backoff_factor=0.2,
                                  status_forcelist=[500, 502, 503, 504]),
            maxsize=16,
        )
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                            secure=secure, region=region, http_client=http)
        self._bucket_ready = False

    def _call(self, what: str, func, *args, **kwargs):  # type: ignore[no-untyped-def]
        from minio.error import S3Error

        try:
            if not self._bucket_ready:
                self._ensure_bucket()
            return func(*args, **kwargs)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(f"no object for {what}") from exc
            raise StorageUnavailable(f"S3 {what}: {exc.code}: {exc.message}") from exc
        except (OSError, ValueError) as exc:  # urllib3 errors are OSErrors or wrap them
            raise StorageUnavailable(f"S3 {what}: {exc}") from exc
        except Exception as exc:  # urllib3.exceptions.MaxRetryError, HTTPError, ...
            if type(exc).__module__.startswith("urllib3"):
                raise StorageUnavailable(f"S3 {what}: {exc}") from exc
            raise

    def _ensure_bucket(self) -> None:
        from minio.error import S3Error

        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
                log.info("created bucket %s", self.bucket)
            except S3Error as exc:  # another process created it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Upload data under key."""
        import io

        self._call(f"put {key}", self.client.put_object, self.bucket, key, io.BytesIO(data),
                   len(data), content_type=content_type)

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
            self._call(f"stat {key}", self.client.stat_object, self.bucket, key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove the object if present."""
        self._call(f"delete {key}", self.client.remove_object, self.bucket, key)

    def ping(self) -> None:
        """StorageUnavailable unless the bucket answers."""
        self._call("ping", lambda: None)


def open_store(config: Config) -> ObjectStore:
    """The store the configuration asks for."""
    if config.storage_backend == "s3":
        return S3Store(config.s3_endpoint, config.s3_access_key, config.s3_secret_key,
                       config.s3_bucket, secure=config.s3_secure, region=config.s3_region,
                       timeout=config.dependency_timeout_seconds)
    return FilesystemStore(config.data_dir, config.s3_bucket)
