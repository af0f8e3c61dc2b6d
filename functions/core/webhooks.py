"""Outgoing webhooks: which callback URLs are allowed (no SSRF), Standard Webhooks signing,
and one POST to the very address that was checked.

Signing follows the Standard Webhooks spec (github.com/standard-webhooks/standard-webhooks,
spec/standard-webhooks.md): headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
`webhook-signature` ("v1," + base64 HMAC-SHA256 over "id.timestamp.body"), the secret
"whsec_" + base64. The `standardwebhooks` package does the signing, so a receiver's
`Webhook(secret).verify(body, headers)` accepts exactly what is sent.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from .errors import BadRequest

SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(BadRequest):
    """A callback URL (or the address its host resolves to) that may not be called."""

    code = "callback_refused"


def check_secret(secret: str) -> None:
    """Raise ValueError unless secret is "whsec_" followed by base64 (the spec's format)."""
    from .config import ConfigError  # config imports this module lazily, not at import time

    if not secret.startswith(SECRET_PREFIX):
        raise ConfigError("WEBHOOK_SECRET must start with 'whsec_' (Standard Webhooks)")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error as exc:
        raise ConfigError("WEBHOOK_SECRET must be 'whsec_' + base64") from exc
    if len(raw) < 24:  # the spec asks for 24 to 64 random bytes
        raise ConfigError("WEBHOOK_SECRET must hold at least 24 bytes (base64 after 'whsec_')")


@dataclass(frozen=True)
class AllowedHosts:
    """WEBHOOK_ALLOWED_HOSTS: comma-separated entries, each a host name pattern (fnmatch:
    `hooks.example.com`, `*.example.com`, `*`) or an IP address or network (`127.0.0.1`,
    `10.1.0.0/16`). A public address is allowed when the URL's host matches a name pattern
    or the address is in a listed network; any other address (loopback, private, link-local,
    multicast, reserved...) only when a listed address or network contains it."""

    names: tuple[str, ...]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, text: str) -> AllowedHosts:
        """Split WEBHOOK_ALLOWED_HOSTS into name patterns and networks."""
        names, networks = [], []
        for entry in (e.strip().lower() for e in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.append(entry)
        return cls(tuple(names), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.networks)

    def name_allowed(self, host: str) -> bool:
        """Whether the host (as written in the URL) may be called at all."""
        host = host.lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(fnmatch.fnmatchcase(host, pattern) for pattern in self.names)
        return self.address_allowed(host, address)

    def address_allowed(self, host: str, address: IPAddress) -> bool:
        """Whether this resolved address of host may be connected to."""
        if any(address in network for network in self.networks):
            return True
        return address.is_global and any(fnmatch.fnmatchcase(host.lower(), p)
                                         for p in self.names)


def check_url(url: str, allowed: AllowedHosts) -> str:
    """Validate a callback_url as given (http/https, a host, no user info, host allowed);
    return it. Raises CallbackRefused (400). The address is checked again at delivery."""
    if not allowed:
        raise CallbackRefused("callback_url is not accepted here (WEBHOOK_ALLOWED_HOSTS is empty)")
    if len(url) > MAX_URL_LENGTH or not url.isascii() or any(c <= " " for c in url):
        raise CallbackRefused(f"callback_url must be an ASCII URL of at most {MAX_URL_LENGTH} "
                              "characters, without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise CallbackRefused(f"callback_url is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("callback_url must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry user info")
    if not allowed.name_allowed(parts.hostname):
        raise CallbackRefused(f"callback_url host {parts.hostname!r} is not in "
                              "WEBHOOK_ALLOWED_HOSTS")
    return url


def resolve(url: str, allowed: AllowedHosts) -> IPAddress:
    """The first address the URL's host resolves to that may be called; CallbackRefused if
    none may (every address is checked, so a name that also resolves to 127.0.0.1 cannot
    smuggle it in by ordering), or if the name does not resolve."""
    parts = urlsplit(check_url(url, allowed))
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CallbackRefused(f"callback host {host!r} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    refused = [a for a in addresses if not allowed.address_allowed(host, a)]
    if refused or not addresses:
        what = refused[0] if refused else "nothing"
        raise CallbackRefused(f"callback host {host!r} resolves to {what}, which "
                              "WEBHOOK_ALLOWED_HOSTS does not name")
    return addresses[0]


def signed_headers(secret: str, message_id: str, body: bytes,
                   now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for one message (id, timestamp, signature)."""
    timestamp = now or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(message_id, timestamp, body.decode())
    return {"webhook-id": message_id, "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature, "Content-Type": "application/json"}


def payload(event_type: str, data: Mapping[str, Any], now: datetime | None = None) -> bytes:
    """The body: {"type", "timestamp" (RFC 3339), "data"}, the spec's recommended shape."""
    timestamp = (now or datetime.now(tz=UTC)).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": event_type, "timestamp": timestamp, "data": dict(data)},
                      separators=(",", ":"), sort_keys=True).encode()


def post(url: str, address: IPAddress, body: bytes, headers: Mapping[str, str],
         timeout: float) -> int:
    """POST body to url over a connection to `address` (the one resolve() checked: no second
    lookup, so no DNS rebinding window); TLS still verifies the URL's host name. No redirects
    are followed. Returns the status code; raises urllib3.exceptions.HTTPError when there is
    no answer."""
    import urllib3  # here: resize only checks callback URLs, and urllib3 costs its cold start

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    kwargs: dict[str, Any] = {"port": port, "timeout": urllib3.Timeout(total=timeout),
                              "retries": False, "maxsize": 1}
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(str(address), server_hostname=host,
                                           assert_hostname=host, cert_reqs="CERT_REQUIRED",
                                           **kwargs)
    else:
        pool = urllib3.HTTPConnectionPool(str(address), **kwargs)
    with pool:
        response = pool.urlopen("POST", target, body=body, redirect=False,
                                headers={**headers, "Host": host_header,
                                         "User-Agent": "knative-thumbnails-webhooks"},
                                preload_content=False)
        response.drain_conn()
        return int(response.status)
