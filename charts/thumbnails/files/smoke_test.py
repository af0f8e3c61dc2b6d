"""`helm test` smoke test: upload a generated PNG, wait for its thumbnail, check its size.

Runs in the functions' image (Python and Pillow, standard library only otherwise).
Usage: smoke_test.py UPLOAD_URL STATUS_URL DEADLINE_SECONDS [API_KEY_FILE]
"""

from __future__ import annotations

import io
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from PIL import Image

WIDTH, HEIGHT = 640, 480  # thumbnails fit inside 100x100 by default: expect 100x75
BOX = 100


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
            method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one HTTP request; error statuses are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def png() -> bytes:
    """A small gradient PNG made here, so the test needs no fixture file."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    image.putdata([(x % 256, y % 256, (x + y) % 256)
                   for y in range(HEIGHT) for x in range(WIDTH)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, and its Content-Type."""
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\n".encode(),
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode(),
        f"Content-Type: {content_type}\r\n\r\n".encode(),
        content,
        f"\r\n--{boundary}--\r\n".encode(),
    ])
    return body, f"multipart/form-data; boundary={boundary}"


def main(upload_url: str, status_url: str, deadline_seconds: str, key_file: str = "") -> int:
    key = Path(key_file).read_text().strip() if key_file and Path(key_file).is_file() else ""
    auth = {"X-API-Key": key} if key else {}
    body, content_type = multipart("file", "smoke.png", png(), "image/png")
    code, _, answer = request(f"{upload_url}/jobs", body,
                              {"Content-Type": content_type, **auth}, "POST")
    print(f"POST {upload_url}/jobs -> {code} {answer[:300]!r}")
    if code != 202:
        return 1
    job_id = json.loads(answer)["job_id"]

    deadline = time.monotonic() + float(deadline_seconds)
    status = "queued"
    while time.monotonic() < deadline:
        # A long poll: answers when the job ends, or after `wait` seconds.
        wait = max(1, min(20, int(deadline - time.monotonic())))
        code, _, answer = request(f"{status_url}/jobs/{job_id}?wait={wait}", headers=auth)
        status = json.loads(answer).get("status", "") if code == 200 else f"HTTP {code}"
        if status in ("succeeded", "failed"):
            break
        if code != 200:
            time.sleep(2)  # no answer from status yet: try again shortly
    print(f"job {job_id}: {status} ({answer[:300]!r})")
    if status != "succeeded":
        return 1

    code, headers, thumbnail = request(f"{status_url}/jobs/{job_id}/thumbnail", headers=auth)
    if code != 200:
        print(f"GET thumbnail -> {code} {thumbnail[:300]!r}")
        return 1
    size = Image.open(io.BytesIO(thumbnail)).size
    expected = (BOX, round(BOX * HEIGHT / WIDTH))
    print(f"thumbnail: {headers.get('Content-Type')} {size[0]}x{size[1]}, "
          f"{len(thumbnail)} bytes (expected {expected[0]}x{expected[1]})")
    return 0 if abs(size[0] - expected[0]) <= 1 and abs(size[1] - expected[1]) <= 1 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
