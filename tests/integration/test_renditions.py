"""Several renditions in one job: the request rules, the job record, and the whole pipeline
(upload -> broker -> resize -> status, and the thumbnail.generated event) over real
processes. Expected sizes are worked out by hand from the box and the source's shape, and
outputs are checked by decoding their bytes."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from PIL import Image

from tests.support.images import RED, encode, marked
from tests.support.servers import S3Server
from tests.support.stackutil import poll, running_stack, submit, wait_terminal
from tests.support.subscriber import Subscriber, serving
from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.errors import BadRequest
from thumbnails.core.imaging import ThumbnailOptions
from thumbnails.core.jobs import Job, JobStatus, JobStore, RenditionRecord
from thumbnails.core.renditions import MAX_RENDITIONS, Rendition, parse_renditions, parse_request
from thumbnails.core.storage import thumbnail_key
from thumbnails.local.broker.settings import BrokerSettings

# ---- the request rules -------------------------------------------------------------------


def test_renditions_parse_with_the_single_thumbnail_defaults() -> None:
    request = parse_request({"renditions": json.dumps([
        {"name": "avatar", "width": 100, "height": 100, "format": "png", "fit": "cover"},
        {"name": "small", "width": "320", "format": "WebP"},
        {"name": "x_2-b", "format": "jpg"}])}, max_dimension=1024)
    assert [r.name for r in request.renditions] == ["avatar", "small", "x_2-b"]
    avatar, small, other = (r.options for r in request.renditions)
    assert (avatar.width, avatar.height, avatar.format, avatar.fit) == (100, 100, "png", "cover")
    assert (small.width, small.height, small.format, small.fit) == (320, 100, "webp", "contain")
    assert (other.width, other.height, other.format) == (100, 100, "jpeg")
    tuned = parse_renditions([_item("t", format="avif", quality=40, fit="cover",
                                    gravity="southeast")], 1024)[0].options
    assert (tuned.format, tuned.quality, tuned.gravity) == ("avif", 40, "southeast")
    # What a job stores reads back to the same request (a list now, not text).
    stored = request.to_dict()
    assert list(stored) == ["renditions"]
    assert parse_request(json.loads(json.dumps(stored)), 1024) == request


def test_without_renditions_the_single_fields_are_as_before() -> None:
    request = parse_request({"width": "64", "format": "jpeg"}, max_dimension=1024)
    assert request.renditions == ()
    assert request.options == ThumbnailOptions.parse({"width": "64", "format": "jpeg"}, 1024)
    assert request.to_dict() == request.options.to_dict()


def _item(name: str = "a", **options: Any) -> dict[str, Any]:
    return {"name": name, **options}


@pytest.mark.parametrize(("raw", "words"), [
    ("not json", "JSON list"),
    ('{"name": "a"}', "JSON list"),
    ("[]", f"1 to {MAX_RENDITIONS}"),
    (json.dumps([_item(f"r{i}") for i in range(MAX_RENDITIONS + 1)]), f"1 to {MAX_RENDITIONS}"),
    (json.dumps([_item("a"), _item("a")]), "used twice"),
    (json.dumps(["a"]), "renditions[0] must be an object"),
    (json.dumps([{"width": 10}]), "renditions[0].name"),
    (json.dumps([_item("Avatar")]), "name"),
    (json.dumps([_item("../x")]), "name"),
    (json.dumps([_item("a b")]), "name"),
    (json.dumps([_item("")]), "name"),
    (json.dumps([_item("-a")]), "name"),
    (json.dumps([_item("a" * 33)]), "name"),
    (json.dumps([_item("a\n")]), "name"),
    (json.dumps([_item(7)]), "name"),
    (json.dumps([_item("ok"), _item("b", width=0)]), "renditions[1] (b): width"),
    (json.dumps([_item("a", width=2000)]), "width"),
    (json.dumps([_item("a", width=True)]), "width"),
    (json.dumps([_item("a", width=10.5)]), "width"),
    (json.dumps([_item("a", format="gif")]), "format"),
    (json.dumps([_item("a", fit="stretch")]), "fit"),
    (json.dumps([_item("a", colour="red")]), "unknown keys 'colour'"),
    (json.dumps([_item("a", quality=50)]), "renditions[0] (a): quality"),  # png: lossless
    (json.dumps([_item("a", format="webp", quality=101)]), "quality"),
    (json.dumps([_item("a", gravity="up")]), "gravity"),
    ("[" * 100_000 + "]" * 100_000, "JSON list"),
])
def test_bad_renditions_lists_are_refused(raw: str, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request({"renditions": raw}, max_dimension=1024)
    assert caught.value.status == 400 and words in caught.value.message, caught.value.message


def test_renditions_and_single_fields_together_are_refused() -> None:
    with pytest.raises(BadRequest, match="not both"):
        parse_request({"renditions": json.dumps([_item()]), "width": "10"}, 1024)


def test_the_longest_list_and_name_are_accepted() -> None:
    items = [_item(f"{i}" + "x" * 31) for i in range(MAX_RENDITIONS)]
    assert len(parse_renditions(items, 1024)) == MAX_RENDITIONS


def test_rendition_keys_sit_beside_the_single_thumbnails() -> None:
    job_id = str(uuid.uuid4())
    assert thumbnail_key(job_id, 1, "webp", "small") == f"thumbnails/{job_id}/1-small.webp"
    assert thumbnail_key(job_id, 1, "png") == f"thumbnails/{job_id}/1.png"


def test_the_job_record_keeps_its_renditions(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    request = parse_request({"renditions": [_item("a"), _item("b", format="webp")]}, 1024)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time(), options=request)
    store.create(job, b"{}", check_at=job.created_at + 60)
    assert store.get(job.job_id) == job
    records = [RenditionRecord("a", "thumbnails/x/a.png", "image/png", 100, 75, 812, "ab"),
               RenditionRecord("b", "thumbnails/x/b.webp", "image/webp", 100, 75, 90, "cd")]
    store.claim(job.job_id, "t", 30, 5)
    assert store.finish(job.job_id, "t", JobStatus.SUCCEEDED, renditions=records)
    loaded = store.get(job.job_id)
    assert loaded is not None and loaded.renditions == records
    assert isinstance(loaded.renditions[0], RenditionRecord)
    assert Rendition("a", ThumbnailOptions()).to_dict()["name"] == "a"


def test_the_job_record_stores_its_options_as_compact_json(redis_client: redis.Redis) -> None:
    """Typed in the Job (a Request), stored as the JSON records always held, so a record
    written before the options were typed reads back the same."""
    store = JobStore(redis_client)
    request = parse_request({"renditions": '[{"name": "a", "width": "64", "format": "jpg"}]'},
                            1024)
    job = Job(job_id=str(uuid.uuid4()), created_at=time.time(), options=request)
    store.create(job, b"{}", check_at=job.created_at + 60)
    stored = redis_client.hget(f"thumbnails:job:{job.job_id}", "options")
    assert stored == (b'{"renditions":[{"fit":"contain","format":"jpeg","height":100,'
                      b'"name":"a","width":64}]}')
    loaded = store.get(job.job_id)
    assert loaded is not None and loaded.options.names == ["a"]
    assert loaded.options.renditions[0].options == ThumbnailOptions(width=64, format="jpeg")
    redis_client.hset(f"thumbnails:job:{job.job_id}", "options",
                      '{"fit":"cover","gravity":"north","height":50,"quality":70,'
                      '"format":"webp","width":40}')
    old = store.get(job.job_id)
    assert old is not None and old.options.names == [] and old.options.options == \
        ThumbnailOptions(width=40, height=50, format="webp", fit="cover", quality=70,
                         gravity="north")


def test_a_lowered_max_dimension_is_checked_on_the_typed_options() -> None:
    single = parse_request({"width": "800"}, 1024)
    single.check(800)
    with pytest.raises(BadRequest, match=r"^width must be an integer from 1 to 400"):
        single.check(400)
    named = parse_request({"renditions": [_item("ok"), _item("wide", height=900)]}, 1024)
    with pytest.raises(BadRequest, match=r"^renditions\[1\] \(wide\): height must be an "
                                         r"integer from 1 to 500 \(got 900\)"):
        named.check(500)


# ---- end to end --------------------------------------------------------------------------

pipeline = pytest.mark.integration
SOURCE = marked((400, 300))  # blue, with a red top-left quadrant
# name -> (request item, expected (width, height), Pillow format of the bytes): sizes worked
# out by hand: cover fills the box exactly; contain scales 400x300 by min(w/400, h/300, 1).
ASKED = {
    "avatar": ({"width": 100, "height": 100, "format": "png", "fit": "cover",
                "gravity": "north"}, (100, 100), "PNG"),
    "small": ({"width": 320, "height": 320, "format": "webp"}, (320, 240), "WEBP"),
    "medium": ({"width": 200, "height": 200, "format": "jpeg", "quality": 50}, (200, 150),
               "JPEG"),
    "large": ({"width": 1024, "height": 1024, "format": "avif"}, (400, 300), "AVIF"),
}
MIME = {"PNG": "image/png", "WEBP": "image/webp", "JPEG": "image/jpeg", "AVIF": "image/avif"}


@pytest.fixture(scope="module")
def display() -> Iterator[Subscriber]:
    """A recording subscriber standing in for the example integration's event-display."""
    servers = serving()
    start = next(servers)
    yield start(Subscriber())
    next(servers, None)


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local stack's data directory (its filesystem store is under it)."""
    return Path(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def urls(stack_dir: Path, display: Subscriber) -> Iterator[dict[str, str]]:
    broker = BrokerSettings(subscribers=f"event-display={display.url}")
    with running_stack(Config(), stack_dir, broker=broker) as stack_urls:
        yield stack_urls


def renditions_field(asked: dict[str, tuple[dict[str, Any], Any, str]]) -> str:
    return json.dumps([{"name": name, **item} for name, (item, _, _) in asked.items()])


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pipeline
def test_three_renditions_end_to_end(urls: dict[str, str], display: Subscriber) -> None:
    accepted = submit(urls, encode(SOURCE, "PNG"), renditions=renditions_field(ASKED))
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    doc = wait_terminal(urls, job_id)
    assert doc["status"] == "succeeded", doc
    assert [r["name"] for r in doc["options"]["renditions"]] == list(ASKED)
    asked = {r["name"]: r for r in doc["options"]["renditions"]}
    assert asked["avatar"]["gravity"] == "north" and asked["medium"]["quality"] == 50
    listed = {r["name"]: r for r in doc["renditions"]}
    assert list(listed) == list(ASKED)  # in the order asked
    bodies = {}
    for name, (_, size, pillow_format) in ASKED.items():
        got = requests.get(listed[name]["url"], timeout=10)
        assert got.status_code == 200, got.text
        assert got.headers["Content-Type"] == MIME[pillow_format] == listed[name]["content_type"]
        assert "immutable" in got.headers["Cache-Control"]
        image = decoded(got.content)
        assert image.format == pillow_format and image.size == size, name
        assert (listed[name]["width"], listed[name]["height"]) == size
        assert listed[name]["size"] == len(got.content)
        again = requests.get(listed[name]["url"], timeout=10,
                             headers={"If-None-Match": got.headers["ETag"]})
        assert again.status_code == 304 and again.headers["ETag"] == got.headers["ETag"]
        bodies[name] = got.content
    assert len({r.headers["ETag"] for r in (requests.get(listed[n]["url"], timeout=10)
                                            for n in ASKED)}) == len(ASKED)
    # The cover crop keeps the centre: its top-left corner is still in the red quadrant.
    avatar = decoded(bodies["avatar"]).convert("RGB")
    assert all(abs(a - b) <= 40 for a, b in zip(avatar.getpixel((10, 10)), RED, strict=True))
    # /thumbnail is the first rendition, and "thumbnail" describes it.
    first = requests.get(doc["links"]["thumbnail"], timeout=10)
    assert first.content == bodies["avatar"]
    assert doc["thumbnail"] == {k: listed["avatar"][k]
                                for k in ("content_type", "width", "height", "size")}

    def generated() -> events.BaseCloudEvent | None:
        return next((e for e in list(display.received) if e.get_subject() == job_id
                     and e.get_type() == events.THUMBNAIL_GENERATED), None)

    event = poll(generated, timeout=30)
    data = events.data_of(event)
    assert [r["name"] for r in data["renditions"]] == list(ASKED)
    for item in data["renditions"]:
        name = item["name"]
        assert item["bucket"] == "thumbnails"
        assert item["key"].startswith(f"thumbnails/{job_id}/1-{name}.")  # the first attempt
        assert (item["width"], item["height"]) == ASKED[name][1]
        assert item["content_type"] == MIME[ASKED[name][2]]
        assert item["size"] == len(bodies[name])
        assert item["url"] == listed[name]["url"]


@pipeline
def test_unknown_names_404_and_unready_renditions_409(urls: dict[str, str]) -> None:
    jpeg = encode(SOURCE, "JPEG", quality=90)
    broken = submit(urls, jpeg[: len(jpeg) // 2], renditions=renditions_field(ASKED))
    assert broken.status_code == 202, broken.text
    doc = wait_terminal(urls, broken.json()["job_id"])
    assert doc["status"] == "failed" and "renditions" not in doc
    base = doc["links"]["self"]
    not_ready = requests.get(f"{base}/thumbnails/avatar", timeout=10)
    assert not_ready.status_code == 409 and not_ready.json()["error"] == "not_ready"
    for name in ("nope", "Avatar", "avatar.png", "%2e%2e"):
        unknown = requests.get(f"{base}/thumbnails/{name}", timeout=10)
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found", name
    single = submit(urls, encode(SOURCE, "PNG")).json()
    assert wait_terminal(urls, single["job_id"])["status"] == "succeeded"
    assert requests.get(f"{single['links']['self']}/thumbnails/avatar",
                        timeout=10).status_code == 404


@pipeline
@pytest.mark.parametrize(("form", "words"), [
    ({"renditions": json.dumps([_item(f"r{i}") for i in range(MAX_RENDITIONS + 1)])},
     "1 to 8"),
    ({"renditions": json.dumps([_item("a"), _item("a")])}, "used twice"),
    ({"renditions": json.dumps([_item("a/b")])}, "name"),
    ({"renditions": json.dumps([_item("a", width="wide")])}, "width"),
    ({"renditions": "[{"}, "JSON list"),
    ({"renditions": json.dumps([_item("a")]), "format": "webp"}, "not both"),
], ids=["too-many", "duplicate", "bad-name", "bad-item", "not-json", "both"])
def test_bad_renditions_get_400_and_store_nothing(urls: dict[str, str], form: dict[str, str],
                                                  words: str) -> None:
    before = requests.get(f"{urls['status']}/jobs?limit=1", timeout=10).json()
    response = submit(urls, encode(SOURCE, "PNG"), **form)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request" and words in response.json()["message"]
    assert requests.get(f"{urls['status']}/jobs?limit=1", timeout=10).json() == before


@pipeline
def test_another_producers_event_may_ask_for_renditions(urls: dict[str, str],
                                                        stack_dir: Path) -> None:
    from thumbnails.core.storage import open_store

    # Another producer's objects live under INCOMING_PREFIX (never the service's own).
    store = open_store(Config(data_dir=stack_dir / "objects"))  # the stack's filesystem store
    store.put("incoming/source.png", encode(SOURCE, "PNG"), "image/png")
    event = events.new_event(events.IMAGE_UPLOADED, "/other-system", {
        "bucket": "thumbnails", "key": "incoming/source.png",
        "options": {"renditions": [{"name": "tiny", "width": 40, "height": 40},
                                   {"name": "wide", "width": 80, "format": "webp"}]}})
    headers, body = events.to_http(event)
    assert requests.post(urls["broker"], data=body, headers=headers, timeout=10).status_code == 202
    doc = wait_terminal(urls, str(uuid.uuid5(uuid.NAMESPACE_URL,
                                             f"/other-system#{event.get_id()}")))
    assert doc["status"] == "succeeded", doc
    # 400x300 inside 40x40 is 40x30; inside 80x100, 80x60.
    assert [(r["name"], r["width"], r["height"]) for r in doc["renditions"]] == [
        ("tiny", 40, 30), ("wide", 80, 60)]
    wide = decoded(requests.get(doc["renditions"][1]["url"], timeout=10).content)
    assert wide.format == "WEBP" and wide.size == (80, 60)
    bad = events.new_event(events.IMAGE_UPLOADED, "/other-system", {
        "bucket": "thumbnails", "key": "incoming/source.png",
        "options": {"renditions": [{"name": "x y"}]}})
    headers, body = events.to_http(bad)
    refused = requests.post(urls["resize"], data=body, headers=headers, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_event"


def test_renditions_this_deployment_refuses_fail_the_job(redis_url: str,
                                                         redis_client: redis.Redis,
                                                         tmp_path: Path) -> None:
    """A job whose renditions were fine at upload, processed after MAX_DIMENSION was lowered:
    the job fails (bad_request) and resize answers 200 with thumbnail.failed, not a 5xx the
    broker would retry."""
    from thumbnails import resize, upload

    wide = [{"name": "wide", "width": 800, "height": 800}]
    accepted = upload.create_app(Config(redis_url=redis_url, data_dir=tmp_path)).test_client() \
        .post("/jobs", data={"file": (io.BytesIO(encode(SOURCE, "PNG")), "a.png"),
                             "renditions": json.dumps(wide)})
    assert accepted.status_code == 202, accepted.json
    job_id = accepted.json["job_id"]
    lowered = Config(redis_url=redis_url, data_dir=tmp_path, max_dimension=400)
    event = events.new_event(events.IMAGE_UPLOADED, "/test", {"job_id": job_id})
    headers, body = events.to_http(event)
    answer = resize.create_app(lowered).test_client().post("/", data=body, headers=headers)
    assert answer.status_code == 200 and answer.headers["ce-type"] == events.THUMBNAIL_FAILED
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error_code == "bad_request" and "renditions[0] (wide): width" in job.error_message


@pipeline
def test_renditions_are_stored_in_s3(seaweedfs: S3Server, tmp_path: Path) -> None:
    """The S3 path (the session's SeaweedFS, as for the pipeline's S3 test): each rendition
    is its own object under thumbnails/<job id>/, and is what status serves."""
    from thumbnails.core.storage import open_store

    config = Config(storage_backend="s3", s3_endpoint=seaweedfs.endpoint,
                    s3_access_key=seaweedfs.access_key, s3_secret_key=seaweedfs.secret_key,
                    s3_bucket="renditions")
    asked = {name: ASKED[name] for name in ("avatar", "small")}
    with running_stack(config, tmp_path) as s3_urls:
        accepted = submit(s3_urls, encode(SOURCE, "JPEG", quality=90),
                          renditions=renditions_field(asked))
        job_id = accepted.json()["job_id"]
        doc = wait_terminal(s3_urls, job_id)
        assert doc["status"] == "succeeded", doc
        served = {r["name"]: requests.get(r["url"], timeout=10).content for r in doc["renditions"]}
    store = open_store(config)
    for name, (_, size, pillow_format) in asked.items():
        key = thumbnail_key(job_id, 1, pillow_format.lower(), name)  # the first attempt
        assert store.get(key) == served[name]
        image = decoded(served[name])
        assert (image.format, image.size) == (pillow_format, size)
