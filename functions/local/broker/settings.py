"""The local broker's own settings: read from the environment by the broker's processes,
handed to them by `thumbnails dev`; never part of the service's Config."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from thumbnails.core.config import (
    AT_LEAST_1,
    check_ranges,
    environment_names,
    from_environment,
    setting,
    to_environment,
)


@dataclasses.dataclass(frozen=True)
class BrokerSettings:
    """Where the Broker and Trigger manifests are, where each Trigger's Service is locally,
    and how many deliveries each Trigger has in flight."""

    knative_dir: Path = setting("KNATIVE_DIR", Path(__file__).resolve().parents[3] / "knative")
    # Service name -> local URL: "resize=http://127.0.0.1:8082,other=http://..."
    subscribers: str = setting("BROKER_SUBSCRIBERS", "")
    concurrency: int = setting("BROKER_CONCURRENCY", 16, AT_LEAST_1)  # per Trigger

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BrokerSettings:
        """The settings from environment variables; ConfigError naming a bad one."""
        settings = from_environment(cls, os.environ if environ is None else environ)
        check_ranges(settings)
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings (for the broker's processes)."""
        return to_environment(self)


# Environment variable -> BrokerSettings field.
ENVIRONMENT = environment_names(BrokerSettings)
