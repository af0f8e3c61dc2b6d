"""Object storage behind one interface: the filesystem (local default) or S3/MinIO
(thumbnails.core.s3store, imported only when STORAGE_BACKEND=s3: the minio SDK alone takes
about 120 ms to import, most of a function's cold start)."""

from __future__ import annotations

import errno
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Protocol

from .config import Config
from .errors import ObjectNotFound, StorageUnavailable

log = logging.getLogger(__name__)


def original_key(job_id: str) -> str:
    """Where a job's original image is stored (never derived from the client's filename)."""
    return f"originals/{job_id}"


def thumbnail_key(job_id: str, attempt: int, extension: str,
                  rendition: str | None = None) -> str:
    """Where one processing attempt of a job stores its thumbnail, or with a rendition name
    (thumbnails.core.renditions.NAME, safe in a key) that rendition:
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


def open_store(config: Config) -> ObjectStore:
    """The store the configuration asks for."""
    if config.storage_backend == "s3":
        from .s3store import S3Store

        return S3Store(config.s3_endpoint, config.s3_access_key, config.s3_secret_key,
                       config.s3_bucket, secure=config.s3_secure, region=config.s3_region,
                       timeout=config.dependency_timeout_seconds,
                       retention_seconds=config.retention_seconds)
    return FilesystemStore(config.data_dir, config.s3_bucket)


def __getattr__(name: str) -> object:
    """`thumbnails.core.storage.S3Store`, imported on first use (PEP 562)."""
    if name == "S3Store":
        from .s3store import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
