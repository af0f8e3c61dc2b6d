"""Signed, expiring links to a job's thumbnails: for an <img src> that cannot send an API key.

A link is the status path plus `expires` (Unix seconds) and `signature`: an HMAC-SHA256
(itsdangerous.Signer, key LINK_SIGNING_KEY, its own salt) over "<path>?expires=<expires>".
It is valid without a key until it expires; a changed path, expiry or signature, or an
expired link, is refused (403).
"""

from __future__ import annotations

import hashlib
import re
import time

from itsdangerous import Signer

from .errors import Forbidden

SALT = "knative-thumbnails.signed-link"
# The paths a link may be signed for: a job's thumbnail and its renditions.
PATH = re.compile(r"^/jobs/[0-9a-f-]{36}/(thumbnail|thumbnails/[^/]+)\Z")


class LinkSigner:
    """Issues and checks signed links for one key and lifetime (seconds)."""

    def __init__(self, key: str, ttl_seconds: int) -> None:
        self._signer = Signer(key, salt=SALT, digest_method=hashlib.sha256,
                              key_derivation="hmac")
        self.ttl_seconds = ttl_seconds

    def expiry(self, now: float | None = None) -> int:
        """When a link issued now expires (Unix seconds)."""
        return int(now if now is not None else time.time()) + self.ttl_seconds

    def sign(self, path: str, expires: int) -> str:
        """The path with `?expires=...&signature=...` (path as PATH allows, e.g.
        /jobs/<id>/thumbnail)."""
        if not PATH.match(path):
            raise ValueError(f"not a thumbnail path: {path!r}")
        signature = self._signer.get_signature(f"{path}?expires={expires}").decode()
        return f"{path}?expires={expires}&signature={signature}"

    def verify(self, path: str, expires: str | None, signature: str | None,
               now: float | None = None) -> int:
        """Seconds the link has left; Forbidden (403) if it is changed, malformed or expired."""
        if not PATH.match(path) or not expires or not signature:
            raise Forbidden("a signed link needs its path, expires and signature unchanged")
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            raise Forbidden("the link's expires is not a time")
        value = f"{path}?expires={expires}"
        if not self._signer.verify_signature(value.encode(), signature.encode()):
            raise Forbidden("the link's signature does not match (changed, or another key)")
        left = int(expires) - int(now if now is not None else time.time())
        if left <= 0:
            raise Forbidden("the link has expired")
        return left
