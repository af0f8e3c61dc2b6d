"""Configuration: one frozen dataclass built once from the environment.

Each setting is declared once, as a field whose metadata names its environment variable
(`setting`); reading the environment (`from_environment`), handing it to child processes
(`to_environment`) and the table of names (`environment_names`) are derived from the
fields, for Config and for any other settings dataclass (the local broker's)."""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .ranges import Range

_HEX = "0123456789abcdef"
AT_LEAST_1 = Range(int, 1)
AT_LEAST_0 = Range(float, 0)
ABOVE_0 = Range(float, 0, low_open=True)
Settings = TypeVar("Settings")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


# A field's type -> how its variable's text becomes a value (int and float: by its Range).
PARSERS: dict[type, Callable[[str], Any]] = {str: str, bool: _bool, Path: Path}


def setting(env: str, default: Any, allowed: Range | None = None, *, old: str = "") -> Any:
    """A settings field read from the environment variable `env` (an empty one counts as
    unset); `allowed`: the range of a number (default: any of the field's type); `old`: a
    former name of the variable, read when `env` is unset."""
    return dataclasses.field(default=default,
                             metadata={"env": env, "range": allowed, "old": old})


def environment_names(cls: type) -> dict[str, str]:
    """A settings dataclass's environment variable -> field name, in declaration order."""
    return {f.metadata["env"]: f.name for f in dataclasses.fields(cls)}


def from_environment(cls: type[Settings], environ: Mapping[str, str]) -> Settings:
    """An instance of the settings dataclass `cls` from `environ`: the default for what is
    unset or empty; ConfigError naming the variable whose value is malformed."""
    types = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f.metadata["env"]
        raw = environ.get(name) or environ.get(f.metadata["old"] or name)
        if raw is None or raw == "":
            continue
        kind = types[f.name]
        parse = PARSERS.get(kind) or (f.metadata["range"] or Range(kind)).parse
        try:
            values[f.name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
    return cls(**values)


def to_environment(settings: object) -> dict[str, str]:
    """The environment that reproduces these settings (for child processes)."""
    env: dict[str, str] = {}
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        env[f.metadata["env"]] = ("true" if value else "false") if isinstance(value, bool) \
            else str(value)
    return env


def check_ranges(settings: object) -> None:
    """ConfigError naming the first number outside its field's range."""
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        allowed = f.metadata["range"]
        if allowed is not None and not allowed.contains(getattr(settings, f.name)):
            raise ConfigError(f"{f.metadata['env']} must be {allowed.describe()}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a function needs to know about its surroundings."""

    # Required by the functions; `thumbnails dev` starts Valkey if empty.
    redis_url: str = setting("REDIS_URL", "")
    storage_backend: str = setting("STORAGE_BACKEND", "filesystem")  # "filesystem" or "s3"
    data_dir: Path = setting("DATA_DIR", Path("data/objects"))
    s3_endpoint: str = setting("S3_ENDPOINT", "")  # host:port, e.g. minio:9000
    s3_access_key: str = setting("S3_ACCESS_KEY", "")
    s3_secret_key: str = setting("S3_SECRET_KEY", "")
    s3_bucket: str = setting("S3_BUCKET", "thumbnails")
    s3_secure: bool = setting("S3_SECURE", False)
    s3_region: str = setting("S3_REGION", "us-east-1")
    sink_url: str = setting("K_SINK", "")  # where upload sends its events (the broker)
    # Public URL of status, for links; relative links if empty.
    status_base_url: str = setting("STATUS_BASE_URL", "")
    # Public URL of upload, for status's web page; "" = same origin.
    upload_base_url: str = setting("UPLOAD_BASE_URL", "")
    max_upload_bytes: int = setting("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, AT_LEAST_1)
    max_pixels: int = setting("MAX_PIXELS", 50_000_000, AT_LEAST_1)
    max_frames: int = setting("MAX_FRAMES", 1000, AT_LEAST_1)
    max_dimension: int = setting("MAX_DIMENSION", 1024, AT_LEAST_1)
    debug_endpoint: bool = setting("DEBUG_ENDPOINT", False)
    event_source: str = setting("EVENT_SOURCE", "/knative-thumbnails/upload")
    # "" = thumbnails.core.events.TYPE_PREFIX
    event_type_prefix: str = setting("EVENT_TYPE_PREFIX", "")
    # Where objects another producer names in its image.uploaded events must be.
    incoming_prefix: str = setting("INCOMING_PREFIX", "incoming/")
    # Comma-separated SHA-256 hex digests of API keys; "" = open.
    api_key_hashes: str = setting("API_KEY_HASHES", "")
    lease_seconds: float = setting("LEASE_SECONDS", 60.0, ABOVE_0)
    max_attempts: int = setting("MAX_ATTEMPTS", 5, AT_LEAST_1)
    # The sweep (thumbnails.core.sweep) runs this often in each upload process, and at most this
    # often when asked for (POST /sweep); an event the broker has not accepted is re-sent
    # after this long. OUTBOX_RETRY_SECONDS, its old name, is read when it is unset.
    sweep_interval_seconds: float = setting("SWEEP_INTERVAL_SECONDS", 10.0, ABOVE_0,
                                            old="OUTBOX_RETRY_SECONDS")
    # The sweep: re-emit a job left queued (or with an expired lease) this long; fail a job
    # not finished this long after its upload; delete an original that got no job record.
    requeue_after_seconds: float = setting("REQUEUE_AFTER_SECONDS", 120.0, ABOVE_0)
    job_deadline_seconds: float = setting("JOB_DEADLINE_SECONDS", 900.0, ABOVE_0)
    # Also the age at which the sweep removes a temporary file a killed process left behind;
    # beyond any upload request's own time limit.
    orphan_after_seconds: float = setting("ORPHAN_AFTER_SECONDS", 900.0, ABOVE_0)
    # A finished job, its original and its thumbnails disappear this long after it finished
    # (0: kept forever).
    retention_seconds: float = setting("RETENTION_SECONDS", 7 * 24 * 3600.0, AT_LEAST_0)
    # Largest CloudEvent (body plus ce- headers) the broker ingress and resize accept (413).
    max_event_bytes: int = setting("MAX_EVENT_BYTES", 64 * 1024, AT_LEAST_1)
    # Comma-separated origins that may call upload and status.
    cors_origins: str = setting("CORS_ORIGINS", "")
    dependency_timeout_seconds: float = setting("DEPENDENCY_TIMEOUT_SECONDS", 5.0, ABOVE_0)
    # Slow clients (thumbnails.core.buffering): a request's headers must arrive within this long,
    # and its body at this many bytes a second at least (after the same allowance).
    header_timeout_seconds: float = setting("HEADER_TIMEOUT_SECONDS", 10.0, ABOVE_0)
    min_body_rate: int = setting("MIN_BODY_RATE", 100 * 1024, AT_LEAST_1)
    # How long one GET /events response lasts before the client reconnects with
    # Last-Event-ID: below status's Knative timeoutSeconds (300 in the chart).
    events_stream_seconds: float = setting("EVENTS_STREAM_SECONDS", 240.0, ABOVE_0)
    log_level: str = setting("LOG_LEVEL", "INFO")
    # Webhooks (thumbnails.core.webhooks): the Standard Webhooks secret ("whsec_" + base64), and the
    # host patterns a callback_url may name ("" = no callbacks accepted).
    webhook_secret: str = setting("WEBHOOK_SECRET", "")
    webhook_allowed_hosts: str = setting("WEBHOOK_ALLOWED_HOSTS", "")
    # MinIO bucket notifications (upload's POST /notifications/s3): the bearer token MinIO
    # sends ("" = endpoint off); new objects under INCOMING_PREFIX become jobs.
    bucket_notify_token: str = setting("BUCKET_NOTIFY_TOKEN", "")
    # Signed, expiring thumbnail links (thumbnails.core.signedlinks): "" = none issued.
    link_signing_key: str = setting("LINK_SIGNING_KEY", "")
    link_ttl_seconds: int = setting("LINK_TTL_SECONDS", 3600, AT_LEAST_1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from environment variables, failing fast on bad values."""
        config = from_environment(cls, os.environ if environ is None else environ)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent setting."""
        if self.storage_backend not in ("filesystem", "s3"):
            raise ConfigError("STORAGE_BACKEND must be 'filesystem' or 's3'")
        if self.storage_backend == "s3":
            for name in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
                if not getattr(self, ENVIRONMENT[name]):
                    raise ConfigError(f"{name} is required when STORAGE_BACKEND=s3")
        check_ranges(self)
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
        return to_environment(self)


# Environment variable -> Config field: derived from the fields, for tables and checks.
ENVIRONMENT = environment_names(Config)
