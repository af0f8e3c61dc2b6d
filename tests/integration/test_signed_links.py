"""Signed, expiring thumbnail links (issue 12 §4) on the real stack with API keys on: the
job's JSON offers them to a caller with a key; they work without one until they expire;
a changed or expired link answers 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image
from standardwebhooks.webhooks import Webhook

from tests.support.images import encode, marked
from tests.support.stackutil import poll, running_stack
from tests.support.subscriber import Receiver
from thumbnails.core.config import Config
from thumbnails.core.errors import Forbidden
from thumbnails.core.signedlinks import LinkSigner

KEY = "client-key-for-signed-link-tests"
LINK_KEY = "link-signing-key-for-tests-0123456789"
TTL = 4  # seconds: short, so the test sees a link expire
SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    config = Config(api_key_hashes=hashlib.sha256(KEY.encode()).hexdigest(),
                    link_signing_key=LINK_KEY, link_ttl_seconds=TTL,
                    webhook_secret=SECRET, webhook_allowed_hosts="127.0.0.1")
    with running_stack(config, Path(tmp_path_factory.mktemp("links"))) as stack_urls:
        yield stack_urls


def finished_job(urls: dict[str, str], **form: str) -> dict[str, Any]:
    headers = {"X-API-Key": KEY}
    accepted = requests.post(f"{urls['upload']}/jobs", headers=headers, data=form,
                             files={"file": ("a.png", encode(marked((120, 90)), "PNG"))},
                             timeout=10)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]

    def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = requests.get(f"{urls['status']}/jobs/{job_id}", headers=headers,
                                           timeout=10).json()
        return doc if doc["status"] in ("succeeded", "failed") else None

    return poll(done)


def test_a_signed_link_works_without_a_key_until_it_expires(urls: dict[str, str]) -> None:
    before = time.time()
    job = finished_job(urls)
    assert job["status"] == "succeeded"
    links = job["signed_links"]
    assert before + TTL - 1 <= links["expires_at"] <= time.time() + TTL
    url = links["thumbnail"]
    assert requests.get(job["links"]["thumbnail"], timeout=10).status_code == 401  # no key
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    assert Image.open(io.BytesIO(answer.content)).size == (100, 75)
    assert answer.headers["Cache-Control"].startswith("private, max-age=")
    # The signature is HMAC-SHA256 over "<path>?expires=<t>" (itsdangerous, hmac key
    # derivation from the key and the salt): recompute it by hand.
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    salt = b"knative-thumbnails.signed-link"
    derived = hmac.new(LINK_KEY.encode(), salt, hashlib.sha256).digest()
    mac = hmac.new(derived, f"{parts.path}?expires={query['expires']}".encode(),
                   hashlib.sha256).digest()
    assert query["signature"] == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    # Changed: another job's path, a later expiry, a flipped signature character.
    other = finished_job(urls)
    forged = [
        url.replace(job["job_id"], other["job_id"]),
        url.replace(f"expires={query['expires']}", f"expires={int(query['expires']) + 3600}"),
        url[:-1] + ("A" if url[-1] != "A" else "B"),
        f"{parts.scheme}://{parts.netloc}{parts.path}?expires={query['expires']}",
    ]
    for bad in forged:
        refused = requests.get(bad, timeout=10)
        assert refused.status_code == 403, bad
        assert refused.json()["error"] == "forbidden"
    # A signed link opens nothing else: the job's JSON still needs the key.
    signed_doc = f"{urls['status']}/jobs/{job['job_id']}?{parts.query}"
    assert requests.get(signed_doc, timeout=10).status_code == 403
    # Expired: the same link is refused once its time is up.
    poll(lambda: True if requests.get(url, timeout=10).status_code == 403 else None,
         timeout=TTL + 5, interval=0.25)
    assert "expired" in requests.get(url, timeout=10).json()["message"]


def test_renditions_get_signed_links_too(urls: dict[str, str]) -> None:
    asked = [{"name": "w40", "width": 40, "format": "webp"}, {"name": "sq", "width": 30,
                                                             "height": 30, "fit": "cover"}]
    job = finished_job(urls, renditions=json.dumps(asked))
    assert job["status"] == "succeeded", job
    links = job["signed_links"]["renditions"]
    assert set(links) == {"w40", "sq"}
    sizes = {name: Image.open(io.BytesIO(requests.get(link, timeout=10).content)).size
             for name, link in links.items()}
    assert sizes == {"w40": (40, 30), "sq": (30, 30)}
    # A rendition's signature does not open the other rendition.
    swapped = links["w40"].replace("/thumbnails/w40", "/thumbnails/sq")
    assert requests.get(swapped, timeout=10).status_code == 403


def test_a_webhook_carries_signed_links(urls: dict[str, str],
                                        serve: Callable[[Receiver], Receiver]) -> None:
    """A callback receiver has no API key: the job document it gets has signed links."""
    receiver = serve(Receiver())
    job = finished_job(urls, callback_url=receiver.hook)
    assert job["status"] == "succeeded"
    poll(lambda: receiver.requests or None)
    headers, body = receiver.requests[0]
    data = Webhook(SECRET).verify(body, headers)["data"]
    assert data["job_id"] == job["job_id"]
    answer = requests.get(data["signed_links"]["thumbnail"], timeout=10)  # no key
    assert answer.status_code == 200
    assert Image.open(io.BytesIO(answer.content)).size == (100, 75)


def test_the_signer_refuses_malformed_links() -> None:
    signer = LinkSigner("k", 60)
    path = "/jobs/00000000-0000-4000-8000-000000000000/thumbnail"
    link = signer.sign(path, signer.expiry())
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert signer.verify(path, query["expires"], query["signature"]) > 0
    for expires, signature in ((None, query["signature"]), (query["expires"], None),
                               ("-5", query["signature"]), ("1e9", query["signature"]),
                               (query["expires"], "x" * 43)):
        with pytest.raises(Forbidden):
            signer.verify(path, expires, signature)
    with pytest.raises(Forbidden):
        LinkSigner("another key", 60).verify(path, query["expires"], query["signature"])
    with pytest.raises(ValueError):
        signer.sign("/jobs", 1)
