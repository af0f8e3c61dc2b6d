"""Configuration: one frozen dataclass built once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

_HEX = "0123456789abcdef"


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


# Environment variable -> (field name, parser). The one place that names them.
ENVIRONMENT: dict[str, tuple[str, type | object]] = {
    "REDIS_URL": ("redis_url", str),
    "STORAGE_BACKEND": ("storage_backend", str),
    "DATA_DIR": ("data_dir", Path),
    "S3_ENDPOINT": ("s3_endpoint", str),
    "S3_ACCESS_KEY": ("s3_access_key", str),
    "S3_SECRET_KEY": ("s3_secret_key", str),
    "S3_BUCKET": ("s3_bucket", str),
    "S3_SECURE": ("s3_secure", _bool),
    "S3_REGION": ("s3_region", str),
    "K_SINK": ("sink_url", str),
    "STATUS_BASE_URL": ("status_base_url", str),
    "UPLOAD_BASE_URL": ("upload_base_url", str),
    "MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
    "MAX_PIXELS": ("max_pixels", int),
    "MAX_FRAMES": ("max_frames", int),
    "MAX_DIMENSION": ("max_dimension", int),
    "DEBUG_ENDPOINT": ("debug_endpoint", _bool),
    "EVENT_SOURCE": ("event_source", str),
    "EVENT_TYPE_PREFIX": ("event_type_prefix", str),
    "INCOMING_PREFIX": ("incoming_prefix", str),
    "API_KEY_HASHES": ("api_key_hashes", str),
    "LEASE_SECONDS": ("lease_seconds", float),
    "MAX_ATTEMPTS": ("max_attempts", int),
    "SWEEP_INTERVAL_SECONDS": ("sweep_interval_seconds", float),
    "REQUEUE_AFTER_SECONDS": ("requeue_after_seconds", float),
    "JOB_DEADLINE_SECONDS": ("job_deadline_seconds", float),
    "ORPHAN_AFTER_SECONDS": ("orphan_after_seconds", float),
    "RETENTION_SECONDS": ("retention_seconds", float),
    "MAX_EVENT_BYTES": ("max_event_bytes", int),
    "CORS_ORIGINS": ("cors_origins", str),
    "DEPENDENCY_TIMEOUT_SECONDS": ("dependency_timeout_seconds", float),
    "HEADER_TIMEOUT_SECONDS": ("header_timeout_seconds", float),
    "MIN_BODY_RATE": ("min_body_rate", int),
    "EVENTS_STREAM_SECONDS": ("events_stream_seconds", float),
    "LOG_LEVEL": ("log_level", str),
    "KNATIVE_DIR": ("knative_dir", Path),
    "BROKER_SUBSCRIBERS": ("broker_subscribers", str),
    "BROKER_CONCURRENCY": ("broker_concurrency", int),
    "WEBHOOK_SECRET": ("webhook_secret", str),
    "WEBHOOK_ALLOWED_HOSTS": ("webhook_allowed_hosts", str),
    "BUCKET_NOTIFY_TOKEN": ("bucket_notify_token", str),
    "LINK_SIGNING_KEY": ("link_signing_key", str),
    "LINK_TTL_SECONDS": ("link_ttl_seconds", int),
}
# Old environment names still read when the new one is not set: new name -> old name.
RENAMED = {"SWEEP_INTERVAL_SECONDS": "OUTBOX_RETRY_SECONDS"}


@dataclass(frozen=True)
class Config:
    """Everything a function needs to know about its surroundings."""

    redis_url: str = ""  # required by the functions; `thumbnails dev` starts Valkey if empty
    storage_backend: str = "filesystem"  # "filesystem" or "s3"
    data_dir: Path = Path("data/objects")
    s3_endpoint: str = ""  # host:port, e.g. minio:9000
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "thumbnails"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    sink_url: str = ""  # K_SINK: where upload sends its events (the broker)
    status_base_url: str = ""  # public URL of status, for links; relative links if empty
    upload_base_url: str = ""  # public URL of upload, for status's web page; "" = same origin
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_frames: int = 1000
    max_dimension: int = 1024
    debug_endpoint: bool = False
    event_source: str = "/knative-thumbnails/upload"
    event_type_prefix: str = ""  # "" = thumbnails.events.TYPE_PREFIX
    # Where objects another producer names in its image.uploaded events must be.
    incoming_prefix: str = "incoming/"
    api_key_hashes: str = ""  # comma-separated SHA-256 hex digests of API keys; "" = open
    lease_seconds: float = 60.0
    max_attempts: int = 5
    # The sweep (thumbnails.sweep) runs this often in each upload process, and at most this
    # often when asked for (POST /sweep); an event the broker has not accepted is re-sent
    # after this long.
    sweep_interval_seconds: float = 10.0
    # The sweep: re-emit a job left queued (or with an expired lease) this long; fail a job
    # not finished this long after its upload; delete an original that got no job record.
    requeue_after_seconds: float = 120.0
    job_deadline_seconds: float = 900.0
    # Also the age at which the sweep removes a temporary file a killed process left behind.
    orphan_after_seconds: float = 900.0  # beyond any upload request's own time limit
    # A finished job, its original and its thumbnails disappear this long after it finished
    # (0: kept forever).
    retention_seconds: float = 7 * 24 * 3600.0
    # Largest CloudEvent (body plus ce- headers) the broker ingress and resize accept (413).
    max_event_bytes: int = 64 * 1024
    cors_origins: str = ""  # comma-separated origins that may call upload and status
    dependency_timeout_seconds: float = 5.0
    # Slow clients (thumbnails.buffering): a request's headers must arrive within this long,
    # and its body at this many bytes a second at least (after the same allowance).
    header_timeout_seconds: float = 10.0
    min_body_rate: int = 100 * 1024
    # How long one GET /events response lasts before the client reconnects with
    # Last-Event-ID: below status's Knative timeoutSeconds (300 in the chart).
    events_stream_seconds: float = 240.0
    log_level: str = "INFO"
    # Local broker only: where the Trigger manifests are, and Service name -> local URL.
    knative_dir: Path = Path(__file__).resolve().parents[2] / "knative"
    broker_subscribers: str = ""  # "resize=http://127.0.0.1:8082,other=http://..."
    broker_concurrency: int = 16  # deliveries in flight per Trigger
    # Webhooks (thumbnails.webhooks): the Standard Webhooks secret ("whsec_" + base64), and the
    # host patterns a callback_url may name ("" = no callbacks accepted).
    webhook_secret: str = ""
    webhook_allowed_hosts: str = ""
    # MinIO bucket notifications (upload's POST /notifications/s3): the bearer token MinIO
    # sends ("" = endpoint off); new objects under INCOMING_PREFIX become jobs.
    bucket_notify_token: str = ""
    # Signed, expiring thumbnail links (thumbnails.signedlinks): "" = none issued.
    link_signing_key: str = ""
    link_ttl_seconds: int = 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from environment variables, failing fast on bad values."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, (field, parse) in ENVIRONMENT.items():
            raw = environ.get(name) or environ.get(RENAMED.get(name, ""))
            if raw is None or raw == "":
                continue
            try:
                values[field] = parse(raw)  # type: ignore[operator]
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from exc
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent setting."""
        if self.storage_backend not in ("filesystem", "s3"):
            raise ConfigError("STORAGE_BACKEND must be 'filesystem' or 's3'")
        if self.storage_backend == "s3":
            for name in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
                if not getattr(self, ENVIRONMENT[name][0]):
                    raise ConfigError(f"{name} is required when STORAGE_BACKEND=s3")
        for name in ("MAX_UPLOAD_BYTES", "MAX_PIXELS", "MAX_FRAMES", "MAX_DIMENSION",
                     "MAX_ATTEMPTS", "MAX_EVENT_BYTES"):
            if getattr(self, ENVIRONMENT[name][0]) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("LEASE_SECONDS", "SWEEP_INTERVAL_SECONDS", "REQUEUE_AFTER_SECONDS",
                     "JOB_DEADLINE_SECONDS", "ORPHAN_AFTER_SECONDS",
                     "DEPENDENCY_TIMEOUT_SECONDS", "HEADER_TIMEOUT_SECONDS", "MIN_BODY_RATE",
                     "EVENTS_STREAM_SECONDS"):
            if getattr(self, ENVIRONMENT[name][0]) <= 0:
                raise ConfigError(f"{name} must be more than 0")
        if self.retention_seconds < 0:
            raise ConfigError("RETENTION_SECONDS must be 0 (keep forever) or more")
        if (not self.incoming_prefix.endswith("/") or self.incoming_prefix.startswith("/")
                or self.incoming_prefix.startswith(("originals/", "thumbnails/"))):
            raise ConfigError("INCOMING_PREFIX must end with '/', and not be the service's own "
                              "originals/ or thumbnails/")
        if any(len(h) != 64 or h.strip(_HEX) for h in self.api_keys):
            raise ConfigError("API_KEY_HASHES must be comma-separated SHA-256 hex digests")
        if self.webhook_allowed_hosts and not self.webhook_secret:
            raise ConfigError("WEBHOOK_SECRET is required when WEBHOOK_ALLOWED_HOSTS is set")
        if self.webhook_secret:
            from .webhooks import check_secret

            check_secret(self.webhook_secret)
        if self.link_ttl_seconds < 1:
            raise ConfigError("LINK_TTL_SECONDS must be at least 1")
        if self.event_type_prefix:
            from .events import EventTypes  # the SDK's import only when it is needed

            try:
                EventTypes(self.event_type_prefix)
            except ValueError as exc:
                raise ConfigError(f"EVENT_TYPE_PREFIX: {exc}") from exc

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Origins a browser may call upload and status from (CORS); empty: none."""
        return frozenset(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    @property
    def api_keys(self) -> frozenset[str]:
        """The SHA-256 hex digests of the accepted API keys (empty: no key needed)."""
        return frozenset(h.strip().lower() for h in self.api_key_hashes.split(",") if h.strip())

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces this configuration (for child processes)."""
        env: dict[str, str] = {}
        by_field = {field: name for name, (field, _) in ENVIRONMENT.items()}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                env[by_field[f.name]] = "true" if value else "false"
            else:
                env[by_field[f.name]] = str(value)
        return env
