"""The clients a function uses, built once at the process boundary and handed to the app."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from .config import Config, ConfigError
from .events import TYPE_PREFIX, EventTypes
from .imaging import Limits
from .jobs import JobStore
from .storage import ObjectStore, open_store


@dataclass
class Services:
    """Configuration plus the clients built from it."""

    config: Config
    jobs: JobStore
    store: ObjectStore

    @property
    def limits(self) -> Limits:
        """Image limits from the configuration."""
        return Limits(max_pixels=self.config.max_pixels, max_frames=self.config.max_frames)

    @property
    def event_types(self) -> EventTypes:
        """The event types under the configured prefix."""
        return EventTypes(self.config.event_type_prefix or TYPE_PREFIX)


def redis_client(config: Config) -> redis.Redis:
    """A Redis client whose every call times out instead of hanging."""
    if not config.redis_url:
        raise ConfigError("REDIS_URL is required (e.g. redis://127.0.0.1:6379/0)")
    timeout = config.dependency_timeout_seconds
    return redis.Redis.from_url(
        config.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def build_services(config: Config) -> Services:
    """Connect to Redis and the object store as the configuration says."""
    return Services(config=config, jobs=JobStore(redis_client(config), config.retention_seconds),
                    store=open_store(config))
