"""The whole pipeline with real processes: upload -> broker -> resize -> status, over HTTP."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support.images import GREEN, RED, encode, kinds, marked, png_bomb
from tests.support.servers import S3Server
from tests.support.stackutil import running_stack, submit, wait_terminal
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.storage import open_store

KINDS = kinds()


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def urls(stack_dir: Path) -> Iterator[dict[str, str]]:
    config = Config(max_upload_bytes=2 * 1024 * 1024, max_pixels=20_000_000)
    with running_stack(config, stack_dir) as stack_urls:
        yield stack_urls


def thumbnail_of(urls: dict[str, str], data: bytes, **form: str) -> Image.Image:
    response = submit(urls, data, **form)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert response.json()["status"] == "queued"
    doc = wait_terminal(urls, job_id)
    assert doc["status"] == "succeeded", doc
    got = requests.get(doc["links"]["thumbnail"], timeout=10)
    assert got.status_code == 200
    assert got.headers["Content-Type"] == doc["thumbnail"]["content_type"]
    assert got.headers["ETag"] and "max-age" in got.headers["Cache-Control"]
    image = Image.open(io.BytesIO(got.content))
    image.load()
    return image


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_round_trips(urls: dict[str, str], kind: str) -> None:
    data, expected_size = KINDS[kind]
    image = thumbnail_of(urls, data)
    assert image.format == "PNG"
    assert image.size == expected_size
    assert not image.info.get("icc_profile") and not image.info.get("exif")


def test_orientation_and_colours(urls: dict[str, str]) -> None:
    rotated = thumbnail_of(urls, KINDS["exif_rotated"][0]).convert("RGB")
    # EXIF 6 turns the picture 90° clockwise: the red top-left quadrant ends up top-right.
    assert _near(rotated.getpixel((rotated.width - 5, 5)), RED)
    assert not _near(rotated.getpixel((5, 5)), RED)
    cyan = thumbnail_of(urls, KINDS["cmyk"][0]).convert("RGB").getpixel((50, 25))
    assert cyan[0] < 60 and cyan[1] > 180 and cyan[2] > 180
    grey = thumbnail_of(urls, KINDS["png16"][0]).convert("L").getpixel((50, 30))
    assert 118 <= grey <= 138
    rgba = thumbnail_of(urls, KINDS["rgba"][0])
    assert rgba.mode == "RGBA" and rgba.getpixel((10, 25))[3] == 255
    assert rgba.getpixel((90, 25))[3] == 0
    palette = thumbnail_of(urls, KINDS["palette_transparent"][0]).convert("RGBA")
    assert palette.getpixel((10, 25))[3] == 0 and _near(palette.getpixel((90, 25))[:3], GREEN)
    gif = thumbnail_of(urls, KINDS["gif"][0]).convert("RGB")
    assert _near(gif.getpixel((50, 37)), RED)  # the first frame, not the second


def test_options_jpeg_cover(urls: dict[str, str]) -> None:
    image = thumbnail_of(urls, encode(marked(), "PNG"), width="64", height="64",
                         format="jpeg", fit="cover")
    assert image.format == "JPEG" and image.size == (64, 64)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (b"hello, this is text\n" * 10, 415, "unsupported_type"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', 415,
         "unsupported_type"),
        (b"%PDF-1.4\n%...", 415, "unsupported_type"),
        (KINDS["png"][0][:40], 422, "invalid_image"),
        (png_bomb(), 422, "image_too_large"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024), 413, "too_large"),
    ],
    ids=["empty", "text", "svg", "pdf", "truncated", "bomb", "oversize"],
)
def test_bad_uploads_get_json_4xx(urls: dict[str, str], data: bytes, status: int,
                                  code: str) -> None:
    before = requests.get(f"{urls['status']}/jobs?limit=1", timeout=10).json()
    response = submit(urls, data)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == code and response.json()["message"]
    after = requests.get(f"{urls['status']}/jobs?limit=1", timeout=10).json()
    assert after == before  # nothing was recorded


def test_bad_options_and_missing_file(urls: dict[str, str]) -> None:
    for form in ({"width": "0"}, {"width": "abc"}, {"format": "gif"}, {"fit": "stretch"},
                 {"height": "100000"}):
        response = submit(urls, KINDS["png"][0], **form)
        assert response.status_code == 400 and response.json()["error"] == "bad_request", form
    response = requests.post(f"{urls['upload']}/jobs", data={"x": "1"}, timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


def test_unknown_and_malformed_job_ids(urls: dict[str, str]) -> None:
    for job_id in ("00000000-0000-4000-8000-000000000000", "not-a-job", "x" * 300, "%00"):
        for suffix in ("", "/thumbnail", "/debug"):
            response = requests.get(f"{urls['status']}/jobs/{job_id}{suffix}", timeout=10)
            assert response.status_code == 404, (job_id, suffix)
            assert response.json()["error"] == "not_found"


def test_thumbnail_not_ready_is_409_and_etag_revalidates(urls: dict[str, str]) -> None:
    jpeg = KINDS["jpeg"][0]
    failed = submit(urls, jpeg[: len(jpeg) // 2])  # the header is fine; the data is cut short
    assert failed.status_code == 202, failed.text
    doc = wait_terminal(urls, failed.json()["job_id"])
    assert doc["status"] == "failed" and doc["error"]["code"] == "invalid_image"
    response = requests.get(doc["links"]["thumbnail"], timeout=10)
    assert response.status_code == 409 and response.json()["error"] == "not_ready"
    ok = submit(urls, KINDS["jpeg"][0]).json()
    wait_terminal(urls, ok["job_id"])
    first = requests.get(ok["links"]["thumbnail"], timeout=10)
    again = requests.get(ok["links"]["thumbnail"], headers={"If-None-Match": first.headers["ETag"]},
                         timeout=10)
    assert again.status_code == 304


def test_same_event_twice_gives_one_thumbnail(urls: dict[str, str]) -> None:
    job = submit(urls, KINDS["jpeg"][0]).json()
    wait_terminal(urls, job["job_id"])
    before = requests.get(f"{urls['status']}/jobs/{job['job_id']}/debug", timeout=10).json()
    event = events.new_event(events.IMAGE_UPLOADED, "/test", {
        "job_id": job["job_id"], "bucket": "thumbnails", "key": f"originals/{job['job_id']}"})
    for structured in (False, True):
        headers, body = events.to_http(event, structured=structured)
        reply = requests.post(urls["resize"], data=body, headers=headers, timeout=10)
        assert reply.status_code == 200
        reply_event = events.from_http(reply.headers, reply.content)
        assert reply_event.get_type() == events.THUMBNAIL_GENERATED
        # no callback_url: nothing for status's webhooks Trigger
        assert events.CALLBACK not in reply_event.get_attributes()
    after = requests.get(f"{urls['status']}/jobs/{job['job_id']}/debug", timeout=10).json()
    assert after["attempts"] == before["attempts"] == 1
    assert after["finished_at"] == before["finished_at"]


def test_foreign_producer_event_creates_and_processes_job(urls: dict[str, str],
                                                          stack_dir: Path) -> None:
    # Another producer puts an object in the store, under INCOMING_PREFIX, and announces it
    # through the broker.
    store = open_store(Config(data_dir=stack_dir / "objects"))
    store.put("incoming/other-system/photo.png", KINDS["png"][0], "image/png")
    event = events.new_event(events.IMAGE_UPLOADED, "/other-system", {
        "bucket": "thumbnails", "key": "incoming/other-system/photo.png",
        "options": {"width": "50", "height": "50"}})
    headers, body = events.to_http(event)
    response = requests.post(urls["broker"], data=body, headers=headers, timeout=10)
    assert response.status_code == 202
    new_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"/other-system#{event.get_id()}"))
    doc = wait_terminal(urls, new_id)
    assert doc["status"] == "succeeded" and doc["thumbnail"]["width"] == 50


def test_malformed_events_get_400(urls: dict[str, str]) -> None:
    response = requests.post(urls["resize"], data=b"junk", headers={"Content-Type": "text/plain"},
                             timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "invalid_event"
    for data in ({"job_id": "nope"}, {"key": "originals/missing"}, {}):
        headers, body = events.to_http(events.new_event(events.IMAGE_UPLOADED, "/t", data))
        response = requests.post(urls["resize"], data=body, headers=headers, timeout=10)
        assert response.status_code == 400, data


def test_paging_newest_first(urls: dict[str, str]) -> None:
    ids = [submit(urls, KINDS["tiny"][0]).json()["job_id"] for _ in range(5)]
    first = requests.get(f"{urls['status']}/jobs/?limit=3", timeout=10)
    assert [j["job_id"] for j in first.json()] == ids[::-1][:3]
    cursor = first.headers["X-Next-Cursor"]
    assert 'rel="next"' in first.headers["Link"]
    second = requests.get(f"{urls['status']}/jobs", params={"limit": 2, "cursor": cursor},
                          timeout=10).json()
    assert [j["job_id"] for j in second] == ids[::-1][3:5]
    for bad in ("0", "-1", "abc", "5000"):
        response = requests.get(f"{urls['status']}/jobs", params={"limit": bad}, timeout=10)
        assert response.status_code == 400


def test_debug_endpoint_fields(urls: dict[str, str]) -> None:
    job = submit(urls, KINDS["jpeg"][0]).json()
    wait_terminal(urls, job["job_id"])
    debug = requests.get(f"{urls['status']}/jobs/{job['job_id']}/debug", timeout=10).json()
    assert debug["status"] == "succeeded" and debug["event_id"]
    assert debug["created_at"] <= debug["started_at"] <= debug["finished_at"]
    assert debug["processing_time_ms"] >= 0
    assert set(debug["stages_ms"]) == {"fetch", "decode_resize", "encode", "store"}
    assert all(v is not None and v >= 0 for v in debug["stages_ms"].values())


def test_health_everywhere(urls: dict[str, str]) -> None:
    for part in ("upload", "status", "resize", "broker"):
        assert requests.get(f"{urls[part]}/health", timeout=5).json() == {"status": "ok"}


def _near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def test_s3_backend_end_to_end(seaweedfs: S3Server, tmp_path: Path) -> None:
    config = Config(storage_backend="s3", s3_endpoint=seaweedfs.endpoint,
                    s3_access_key=seaweedfs.access_key, s3_secret_key=seaweedfs.secret_key,
                    s3_bucket="pipeline")
    with running_stack(config, tmp_path) as s3_urls:
        job_id = submit(s3_urls, KINDS["exif_rotated"][0], format="webp").json()["job_id"]
        doc = wait_terminal(s3_urls, job_id)
        assert doc["status"] == "succeeded", doc
        got = requests.get(doc["links"]["thumbnail"], timeout=10)
        image = Image.open(io.BytesIO(got.content))
        assert image.format == "WEBP" and image.size == (75, 100)
    store = open_store(config)  # the objects really are in the S3 bucket
    assert store.exists(f"originals/{job_id}")
    assert store.get(f"thumbnails/{job_id}/1.webp") == got.content  # the first attempt's
    assert not (tmp_path / "objects").exists()


def test_chunked_uploads(urls: dict[str, str]) -> None:
    from urllib3 import encode_multipart_formdata

    def chunked(data: bytes) -> requests.Response:
        body, content_type = encode_multipart_formdata({"file": ("a.png", data)})
        pieces = (body[i:i + 65536] for i in range(0, len(body), 65536))
        return requests.post(f"{urls['upload']}/jobs", data=pieces,
                             headers={"Content-Type": content_type}, timeout=30)

    accepted = chunked(KINDS["png"][0])
    assert accepted.status_code == 202, accepted.text
    assert wait_terminal(urls, accepted.json()["job_id"])["status"] == "succeeded"
    refused = chunked(b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024))
    assert refused.status_code == 413 and refused.json()["error"] == "too_large"
