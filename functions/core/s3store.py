"""The S3/MinIO object store (thumbnails.core.storage.ObjectStore) through the minio SDK: its
own module so that a function on the filesystem store never imports minio."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from typing import TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, Expiration, LifecycleConfig, Rule

from .errors import ObjectNotFound, StorageUnavailable
from .storage import OWN_PREFIXES

log = logging.getLogger(__name__)

T = TypeVar("T")


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
