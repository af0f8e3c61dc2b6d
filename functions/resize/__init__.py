"""resize: triggered by image.uploaded, makes the thumbnail and answers with a reply event."""

from .app import create_app

__all__ = ["create_app"]
