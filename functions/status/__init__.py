"""status: serves job state from Redis and thumbnails from the object store."""

from .app import create_app

__all__ = ["create_app"]
