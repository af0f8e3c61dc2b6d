"""Object storage behind one interface: the filesystem (local default) or S3/MinIO."""

from __future__ import annotations

import errno
import io
import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, Expiration, LifecycleConfig, Rule

from .config import Config
from .errors import ObjectNotFound, StorageUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def original_key(job_id: str) -> str:
    """Where a job's original image is stored (never derived from the client's filename)."""
    return f"originals/{job_id}"


def thumbnail_key(job_id: str, attempt: int, extension: str,
                  rendition: str | None = None) -> str:
    """Where one processing attempt of a job stores its thumbnail, or with a rendition name
    (thumbnails.renditions.NAME, safe in a key) that rendition:
    thumbnails/<job id>/<attempt>.<extension> or thumbnails/<job id>/<attempt>-<name>.<extension>
    (one flat folder per job, which delete_prefix empties).
    Each attempt has keys of its own, so an attempt that lost its lease can delete what it
    wrote without touching the winner's; all of a job's thumbnails are under
    thumbnails_prefix(job_id)."""
    if rendition is not None:
        return f"{thumbnails_prefix(job_id)}{attempt}-{rendition}.{extension}"
    return f"{thumbnails_prefix(job_id)}{attempt}.{extension}"


def thumbnails_prefix(job_id: str) -> str:
    """The folder of every thumbnail any attempt of a job wrote."""
    return f"thumbnails/{job_id}/"


# Key prefixes of the objects the service itself writes (the S3 lifecycle rule's filters).
OWN_PREFIXES = ("originals/", "thumbnails/")


# The service's own objects: never a valid reference in another producer's event.
OWN_PREFIXES = ("originals/", "thumbnails/")


def incoming_key_ok(key: str, prefix: str) -> bool:
    """True if `key` may name another producer's object: under `prefix` (INCOMING_PREFIX),
    in plain segments (no "", ".", ".." segment, so no "./", "//" or "../" variant), with no
    backslash, control character or percent sign (no percent-encoded variant either)."""
    if not key.startswith(prefix) or len(key) == len(prefix) or key.startswith(OWN_PREFIXES):
        return False
    if "%" in key or "\\" in key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return False
    return all(segment not in ("", ".", "..") for segment in key.split("/"))


class ObjectStore(Protocol):
    """What the functions need from an object store."""

    bucket: str

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def remove_stale_temp(self, older_than: float) -> int: ...
    def ping(self) -> None: ...


class FilesystemStore:
    """Objects as files under root/bucket/key, written atomically (content types not kept).
    Files being written live in root/.tmp until they are complete, so the sweep finds what a
    killed process left there without walking the whole store."""

    def __init__(self, root: Path, bucket: str) -> None:
        self.bucket = bucket
        self.base = Path(root) / bucket
        self.temp = Path(root) / ".tmp"  # same filesystem as base: os.replace stays atomic

    def _path(self, key: str) -> Path:
        # Keys are ours, never a client's; this is defence in depth against escaping the base.
        if "\\" in key or "\0" in key or ".." in key or "" in key.split("/"):
            raise ValueError(f"bad object key {key!r}")  # also "", "/abs", "a//b", "a/"
        return self.base / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write data under key; readers see the old object or the new one, never a part."""
        path = self._path(key)
        tmp = self.temp / f"{uuid.uuid4().hex}-{path.name}"
        try:
            self.temp.mkdir(parents=True, exist_ok=True)
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

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object in the folder `prefix` ("a/b/"), and the folder; how many."""
        folder = self._path(prefix.rstrip("/"))
        removed = 0
        try:
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:  # a writer just added one: the next purge gets it
                raise StorageUnavailable(f"cannot delete {prefix}: {exc}") from exc
        return removed

    def remove_stale_temp(self, older_than: float) -> int:
        """Delete temporary files not modified for `older_than` seconds (their writer died
        between creating and renaming them); how many."""
        cutoff, removed = time.time() - older_than, 0
        try:
            for entry in os.scandir(self.temp):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageUnavailable(f"cannot clean {self.temp}: {exc}") from exc
        return removed

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
                 secure: bool = False, region: str = "us-east-1", timeout: float = 5.0,
                 retention_seconds: float = 0) -> None:
        check_bucket_name(bucket, strict=True)  # a bad name is a configuration error, not an outage
        self.bucket = bucket
        self.retention_seconds = retention_seconds
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
        if not self._lifecycle_set:
            self._set_lifecycle()
        self._bucket_ready = True

    _lifecycle_set = False

    def lifecycle(self) -> LifecycleConfig:
        """The bucket's lifecycle rules: the service's own objects expire a day after
        RETENTION_SECONDS (rounded up to days, S3's unit), a backstop behind the sweep, which
        deletes them on time; unfinished multipart uploads are aborted after a day."""
        days = math.ceil(self.retention_seconds / 86400) + 1
        rules = [Rule(ENABLED, rule_filter=Filter(prefix=prefix), rule_id=f"expire-{prefix[:-1]}",
                      expiration=Expiration(days=days)) for prefix in OWN_PREFIXES]
        rules.append(Rule(ENABLED, rule_filter=Filter(prefix=""), rule_id="abort-incomplete",
                          abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(1)))
        return LifecycleConfig(rules)

    def _set_lifecycle(self) -> None:
        """Put the lifecycle rules on the bucket (not with RETENTION_SECONDS=0); a store that
        does not support them is only logged: the sweep deletes on time anyway."""
        if self.retention_seconds > 0:
            try:
                self.client.set_bucket_lifecycle(self.bucket, self.lifecycle())
            except S3Error as exc:
                log.warning("bucket %s: lifecycle rules not set (%s: %s); the sweep alone "
                            "deletes expired objects", self.bucket, exc.code, exc.message)
        self._lifecycle_set = True

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

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; how many."""
        def remove() -> int:
            keys = [o.object_name for o in self.client.list_objects(
                self.bucket, prefix=prefix, recursive=True) if o.object_name]
            for key in keys:
                self.client.remove_object(self.bucket, key)
            return len(keys)

        return self._call(f"delete {prefix}*", remove)

    def remove_stale_temp(self, older_than: float) -> int:
        """Nothing to do: S3 writes are atomic, and the lifecycle rule aborts multipart
        uploads a killed process left unfinished."""
        return 0

    def ping(self) -> None:
        """StorageUnavailable unless S3 answers and the bucket exists (created if missing)."""
        self._bucket_ready = False  # always ask S3: readiness must notice a later outage
        self._call("ping", lambda: None)


def open_store(config: Config) -> ObjectStore:
    """The store the configuration asks for."""
    if config.storage_backend == "s3":
        return S3Store(config.s3_endpoint, config.s3_access_key, config.s3_secret_key,
                       config.s3_bucket, secure=config.s3_secure, region=config.s3_region,
                       timeout=config.dependency_timeout_seconds,
                       retention_seconds=config.retention_seconds)
    return FilesystemStore(config.data_dir, config.s3_bucket)
