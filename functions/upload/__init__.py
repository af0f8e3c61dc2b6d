"""upload: takes an image, stores it, records the job and emits image.uploaded."""

from .app import create_app

__all__ = ["create_app"]
