"""Property-based fuzzing of the two doors hostile input comes through: upload's POST /jobs
and resize's CloudEvent endpoints (Flask test clients on a real Valkey and a filesystem store).

upload: whatever the body, framing, options and Content-Type, the answer is 202 or an honest
4xx (400/413/415/422) with a JSON {"error", "message"} body, never a 5xx; and when it is not
202, nothing was stored and no job exists.
resize: whatever the event (binary, structured or junk), the answer is 2xx or 400 (409 only
as job_busy), never a 5xx; a 2xx body is empty or a valid CloudEvent.

Hypothesis settings: max_examples=600 for the two main properties, 250 for the side ones,
deadline=None (a request's time is not the property). Reproducible: derandomize=True (the
examples are a function of the test's source, the same on every machine and every run) and
database=None (no example database is read or written), so a CI failure is the same failure
on a laptop. A failure prints the generated request (Request repr, body cut at 300 bytes).
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.support.images import (
    animated_gif,
    encode,
    marked,
    palette_transparent,
    png_bomb,
    rgba_png,
)
from thumbnails import resize, upload
from thumbnails.core import events
from thumbnails.core.config import Config

FUZZ = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)
LIGHT = settings(FUZZ, max_examples=250)  # the side properties
MAX_UPLOAD = 48 * 1024  # small, so appended junk crosses it (and the framing allowance)
UPLOAD_STATUSES = {400, 413, 415, 422}
JOB_KEYS = "thumbnails:job:*"


def _images() -> list[bytes]:
    """Small real images of every accepted type, a few at the configured limits."""
    small = marked((48, 36))
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    many = frames * 2  # six frames: over MAX_FRAMES below
    return [
        encode(small, "PNG"),
        encode(small, "JPEG", quality=80),
        encode(small.convert("P"), "GIF"),
        encode(small, "WEBP"),
        encode(small, "BMP"),
        encode(small, "TIFF"),
        encode(small, "TIFF", compression="tiff_lzw"),
        rgba_png(),
        palette_transparent("GIF"),
        animated_gif(),
        encode(many[0], "GIF", save_all=True, append_images=many[1:]),
        encode(many[0], "WEBP", save_all=True, append_images=many[1:]),
        png_bomb(),
        encode(Image.new("L", (1200, 1000)), "PNG"),  # over MAX_PIXELS below
    ]


IMAGES = _images()
MAGIC = [b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\x89PNG\r\n\x1a\n", b"GIF87a",
         b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\xff\xff\xff\xffWEBPVP8X", b"BM",
         b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"%!PS-Adobe-3.0 EPSF-3.0\n",
         b"%PDF-1.4\n", b"<svg ", b"8BPS\x00\x01", b"\x00\x00\x01\x00", b"#define x_width 8\n",
         b"P6\n", b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"qoif", b"icns", b"DDS "]


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """conftest's, with small limits and the store in tmp_path / "objects"."""
    return replace(config, data_dir=tmp_path / "objects", max_upload_bytes=MAX_UPLOAD,
                   max_pixels=1_000_000, max_frames=4, max_dimension=512)


@dataclass(frozen=True, repr=False)
class Request:
    """A generated request; its repr stays short however big the body (for failure reports)."""

    headers: dict[str, str]
    body: bytes
    kind: str

    def __repr__(self) -> str:
        body = repr(self.body[:300]) + (f"... ({len(self.body)} bytes)" if len(self.body) > 300
                                         else "")
        return f"Request(kind={self.kind!r}, headers={self.headers!r}, body={body})"


def stored_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []


# ---------------------------------------------------------------- upload strategies


@st.composite
def mutated_image(draw: st.DrawFn) -> bytes:
    """A real image, then any of: cut short, header bytes flipped, junk appended."""
    data = bytearray(draw(st.sampled_from(IMAGES)))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "append", "pad"]))
        if kind == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif kind == "flip" and data:
            position = draw(st.integers(0, min(len(data), 96) - 1))
            data[position] = draw(st.integers(0, 255))
        elif kind == "append":
            data += draw(st.binary(max_size=64))
        elif kind == "pad":  # big: over MAX_UPLOAD, sometimes over the framing allowance too
            data += draw(st.binary(min_size=1, max_size=8)) * draw(st.integers(1, 20_000))
    return bytes(data)


file_contents = st.one_of(
    st.binary(min_size=1, max_size=512),
    st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGIC), st.binary(max_size=256)),
    mutated_image(),
    st.sampled_from(IMAGES),
)

option_values = st.one_of(
    st.sampled_from(["1", "64", "512", "513", "0", "-1", "+5", "1e3", " 32 ", "０１", "٣",
                     "png", "PNG", "jpg", "jpeg", "webp", "gif", "contain", "cover", "COVER",
                     "stretch", "", "\x00"]),
    st.text(max_size=20),
)
options = st.dictionaries(st.sampled_from(["width", "height", "format", "fit"]), option_values)
# Mostly valid: the framing fuzz should get past option checks to the image checks.
good_values = {"width": ["1", "64", "512"], "height": ["1", "64", "512"],
               "format": ["png", "jpeg", "jpg", "webp", "WEBP"], "fit": ["contain", "cover"]}
mostly_valid_options = st.fixed_dictionaries({}, optional={
    name: st.one_of(st.sampled_from(values), st.sampled_from(values), st.sampled_from(values),
                    option_values)
    for name, values in good_values.items()})
filenames = st.one_of(st.sampled_from(["a.png", "../../etc/passwd", "a/b", "\x00", "x" * 5000,
                                       "C:\\evil.png", ""]), st.text(min_size=1, max_size=40))


def _quote(value: str) -> bytes:
    return value.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")


def _part(name: str, content: bytes, filename: str | None = None,
          extra: list[bytes] | None = None) -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + _quote(name) + b'"'
    if filename is not None:
        disposition += b'; filename="' + _quote(filename) + b'"'
    return b"\r\n".join([disposition, *(extra or [])]) + b"\r\n\r\n" + content


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)


def _one_in(n: int, draw: st.DrawFn) -> bool:
    """True about once in n draws (st.integers would favour its edge values)."""
    return draw(st.sampled_from([False] * (n - 1) + [True]))


def _header_safe(text: str) -> str:
    """What an HTTP server could hand the app: latin-1, no line breaks or controls."""
    return "".join(c if 32 <= ord(c) <= 255 and c != "\x7f" else "?" for c in text)


# Request headers the functions read besides Content-Type: sometimes sent, often odd.
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
REQUEST_HEADERS = {
    "Idempotency-Key": ["k", "k" * 255, "k" * 256, "", " ", "\x7f", "ü", "a b", "%0A"],
    "X-Request-Id": ["abc", "x" * 128, "x" * 129, "a b", "%0A", "abc%0A", ""],
    "traceparent": [TRACEPARENT, TRACEPARENT.upper(), "00-" + "0" * 32 + "-" + "0" * 16 + "-00",
                    "ff-" + "a" * 32, "junk", ""],
}
# Correlation ids an event may carry (extension attributes): "%0A" is a line break once the
# SDK percent-decodes a binary-mode ce- header.
CORRELATION_VALUES = ["abc", "abc\n", "abc%0A", "x" * 128, "x" * 129, "a b", "",
                      TRACEPARENT, TRACEPARENT + "\n", "00-" + "0" * 32 + "-" + "0" * 16 + "-00"]


# RFC 2046: an unquoted boundary is a token (no tspecials); quoted, it may hold more.
token_boundary = st.one_of(st.just("----fuzzboundary7MA4YWxk"),
                           st.from_regex(r"[A-Za-z0-9'+_.-]{1,70}", fullmatch=True))
odd_boundary = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1,
                       max_size=70)


@st.composite
def multipart_request(draw: st.DrawFn) -> Request:
    """A POST /jobs body and Content-Type (kind: how it was framed): mostly well-formed, often
    not."""
    boundary = draw(token_boundary)
    parts: list[bytes] = []
    for _ in range(draw(st.sampled_from([1] * 6 + [2, 0]))):  # two file parts: first wins
        extra = draw(st.sampled_from([[], [b"Content-Type: image/png"],
                                      [b"Content-Type: text/html"], [b"X: \xff\xfe"]]))
        name = draw(st.sampled_from(["file"] * 8 + ["File", "files", ""]))
        parts.append(_part(name, draw(file_contents), draw(filenames), extra))
    for name, value in draw(mostly_valid_options).items():
        for _ in range(draw(st.sampled_from([1, 1, 2]))):  # duplicate fields (first wins)
            parts.append(_part(name, value.encode("utf-8")))
    draw(st.randoms()).shuffle(parts)
    framing = draw(st.sampled_from(
        ["ok"] * 12 + ["odd_boundary", "no_boundary_param", "wrong_boundary", "no_closing",
         "broken_headers", "no_disposition", "cut", "rfc2231_boundary", "quoted_boundary",
         "lf_only", "preamble", "random_content_type", "no_content_type", "not_multipart"]))
    if framing in ("odd_boundary", "quoted_boundary"):
        boundary = draw(odd_boundary)
    delimiter = b"--" + boundary.encode()
    if framing == "broken_headers" and parts:
        index = draw(st.integers(0, len(parts) - 1))
        parts[index] = draw(st.binary(max_size=40)) + parts[index][draw(st.integers(0, 60)):]
    if framing == "no_disposition" and parts:
        parts[0] = b"Content-Type: image/png" + parts[0][parts[0].find(b"\r\n\r\n"):]
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"
    if framing == "no_closing":
        body = body[: -len(delimiter) - 4]
    elif framing == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif framing == "lf_only":
        body = body.replace(b"\r\n", b"\n")
    elif framing == "preamble":
        body = draw(st.binary(max_size=40)) + b"\r\n" + body + draw(st.binary(max_size=40))
    content_type: str | None = f"multipart/form-data; boundary={boundary}"
    if framing == "no_boundary_param":
        content_type = "multipart/form-data"
    elif framing == "wrong_boundary":
        content_type = f"multipart/form-data; boundary={draw(token_boundary)}x"
    elif framing == "rfc2231_boundary":  # boundary*=charset'lang'percent-encoded
        charset = draw(st.sampled_from(["UTF-8", "utf-8", "us-ascii", "ISO-8859-1", "bogus"]))
        encoded = draw(st.sampled_from(["%E2%82%AC", "%F0%9F%92%A3", "%FF%FE", "%E9", "abc",
                                        "%00", "%"]))
        content_type = f"multipart/form-data; boundary*={charset}''{encoded}"
    elif framing == "quoted_boundary":
        quoted = boundary.replace("\\", "\\\\").replace('"', '\\"')
        content_type = f'multipart/form-data; boundary="{quoted}"'
    elif framing == "random_content_type":
        content_type = draw(st.one_of(
            st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
            st.sampled_from(["multipart/form-data; boundary=", "multipart/form-data;;;",
                             "MULTIPART/FORM-DATA; BOUNDARY=" + boundary,
                             "multipart/mixed; boundary=" + boundary,
                             "application/octet-stream", "image/png",
                             "multipart/form-data; boundary=" + boundary + "; boundary=other",
                             "multipart/form-data; boundary=" + "b" * 5000])))
    elif framing == "no_content_type":
        content_type = None
    elif framing == "not_multipart":
        body = draw(file_contents)
        content_type = draw(st.sampled_from(["image/png", "application/octet-stream", ""]))
    headers = {} if content_type is None else {"Content-Type": content_type}
    for name, values in REQUEST_HEADERS.items():
        if _one_in(4, draw):
            headers[name] = draw(st.one_of(st.sampled_from(values), header_text))
    return Request(headers, body, framing)


# ---------------------------------------------------------------- upload property


def test_upload_answers_202_or_honest_4xx_and_stores_nothing_on_refusal(
        config: Config, redis_client: redis.Redis) -> None:
    client = upload.create_app(config).test_client()
    data_dir = config.data_dir

    @FUZZ
    @given(request=multipart_request(), chunked=st.booleans())
    def check(request: Request, chunked: bool) -> None:
        shutil.rmtree(data_dir, ignore_errors=True)
        redis_client.flushdb()
        headers, body = request.headers, request.body
        if chunked:  # no Content-Length: upload reads to the end of the stream itself
            answer = client.post("/jobs", input_stream=io.BytesIO(body), headers=headers,
                                 environ_overrides={"HTTP_TRANSFER_ENCODING": "chunked"})
        else:
            answer = client.post("/jobs", data=body, headers=headers)
        note = f"{request!r}: {answer.status_code} {answer.data[:300]!r}"
        jobs = list(redis_client.scan_iter(JOB_KEYS))
        files = stored_files(data_dir)
        if answer.status_code == 202:
            job_id = answer.json["job_id"]
            assert answer.json["status"] == "queued", note
            assert jobs == [f"thumbnails:job:{job_id}".encode()], note
            assert [p.relative_to(data_dir).as_posix() for p in files] == \
                [f"thumbnails/originals/{job_id}"], note
            return
        assert answer.status_code in UPLOAD_STATUSES, note
        assert answer.mimetype == "application/json", note
        doc = answer.get_json(silent=True)
        assert isinstance(doc, dict) and set(doc) == {"error", "message"}, note
        assert isinstance(doc["error"], str) and doc["error"], note
        assert isinstance(doc["message"], str) and doc["message"], note
        assert jobs == [], note
        assert files == [], note

    check()


def test_upload_random_options_are_validated(config: Config, redis_client: redis.Redis) -> None:
    """A real image with arbitrary option text: 202 only for values the docs allow, else 400."""
    client = upload.create_app(config).test_client()

    @LIGHT
    @given(form=options)
    def check(form: dict[str, str]) -> None:
        redis_client.flushdb()
        answer = client.post("/jobs", data={"file": (io.BytesIO(IMAGES[0]), "a.png"), **form})
        note = f"{form!r}: {answer.status_code} {answer.data[:300]!r}"
        width, height = form.get("width", "100").strip(), form.get("height", "100").strip()
        fmt = form.get("format", "png").strip().lower()
        fit = form.get("fit", "contain").strip().lower()
        valid = (all(v.isascii() and v.isdigit() and 1 <= int(v) <= 512 for v in (width, height))
                 and fmt in ("png", "jpg", "jpeg", "webp") and fit in ("contain", "cover"))
        assert answer.status_code == (202 if valid else 400), note
        if not valid:
            assert answer.json["error"] == "bad_request", note
            assert list(redis_client.scan_iter(JOB_KEYS)) == [], note

    check()


# ---------------------------------------------------------------- resize strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
valid_extension_names = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(
    lambda n: n not in ("id", "source", "type", "specversion", "data", "data_base64"))
extension_names = st.one_of(valid_extension_names,
                            st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                    min_size=0, max_size=25))
@st.composite
def event_data(draw: st.DrawFn, known: dict[str, list[str]]) -> Any:
    """data: an image.uploaded-like object with right or wrong fields, or any JSON at all."""
    if _one_in(10, draw):
        return draw(json_values)
    fields: dict[str, Any] = {}
    choices: dict[str, st.SearchStrategy[Any]] = {
        "job_id": st.one_of(st.sampled_from(known["job_ids"]), st.uuids().map(str),
                            st.uuids().map(lambda u: str(u) + "\n"),
                            st.uuids().map(lambda u: str(u).upper()), json_values),
        "key": st.one_of(st.sampled_from(known["keys"]),
                         st.sampled_from(["../../etc/passwd", "/etc/passwd", "originals/",
                                          "originals//x", "a\\b", "a\x00b", "a" * 300,
                                          "originals/" + "a" * 300, "a/" * 2100, "\ud800"]),
                         st.text(max_size=30), json_values),
        "bucket": st.one_of(st.just("thumbnails"), st.text(max_size=10), json_values),
        "options": st.one_of(
            st.dictionaries(st.sampled_from(["width", "height", "format", "fit", "x"]),
                            st.one_of(option_values, json_values), max_size=4),
            json_values),
        "content_type": st.one_of(st.just("image/png"), json_values),
        "size": json_values,
    }
    for name, strategy in choices.items():
        if draw(st.booleans()):
            fields[name] = draw(strategy)
    return fields


@st.composite
def event_request(draw: st.DrawFn, known: dict[str, list[str]]) -> Request:
    """A CloudEvent in binary or structured mode, or junk (kind says which)."""
    mode = draw(st.sampled_from(["binary", "binary", "structured", "structured", "junk"]))
    attributes: dict[str, Any] = {
        "specversion": draw(st.sampled_from(["0.3", "", "2.0"]) if _one_in(8, draw)
                            else st.just("1.0")),
        "id": draw(st.text(max_size=20) if _one_in(4, draw) else st.uuids().map(str)),
        "source": draw(st.sampled_from(["/test", "/other", "", "x", "%", " "]) if _one_in(4, draw)
                       else st.sampled_from(["/test", "/other"])),
        "type": draw(st.sampled_from([events.THUMBNAIL_GENERATED, "x", ""]) if _one_in(6, draw)
                     else st.just(events.IMAGE_UPLOADED)),
    }
    for name in ("specversion", "id", "source", "type"):
        if _one_in(16, draw):
            del attributes[name]
    names = extension_names if _one_in(4, draw) else valid_extension_names
    extensions = draw(st.dictionaries(names, header_text, max_size=3))
    for name in ("correlationid", "traceparent"):
        if _one_in(3, draw):
            extensions[name] = draw(st.sampled_from(CORRELATION_VALUES))
    data_kind = draw(st.sampled_from(["object"] * 6 + ["bytes", "deep", "none"]))
    data: Any = draw(event_data(known)) if data_kind == "object" else None
    raw = json.dumps(data).encode() if data_kind == "object" else b""
    if data_kind == "bytes":
        raw = draw(st.binary(max_size=64))
    elif data_kind == "deep":  # nesting deeper than any parser's recursion limit
        depth = draw(st.sampled_from([50, 3_000, 20_000]))
        raw = draw(st.sampled_from([b"[" * depth + b"]" * depth,
                                    b'{"a":' * depth + b"1" + b"}" * depth]))
    if mode == "binary":
        headers = {f"ce-{k}": _header_safe(str(v)) for k, v in attributes.items()}
        headers.update({f"ce-{k}": _header_safe(v) for k, v in extensions.items()})
        content_type = draw(st.sampled_from(["application/json"] * 4 + [
            "application/json; charset=utf-8", "text/plain", "application/octet-stream",
            "application/cloudevents+json", None]))
        if content_type is not None:
            headers["Content-Type"] = content_type
        return Request(headers, raw, mode)
    if mode == "structured":
        document: dict[str, Any] = {**attributes, **extensions}
        if _one_in(4, draw):
            for name in draw(st.lists(st.sampled_from(["id", "source", "type", "specversion",
                                                       "subject", "time"]), max_size=2)):
                document[name] = draw(json_values)  # wrong types for attributes
        body = json.dumps(document).encode()
        if data_kind == "object":
            document["data"] = data
            body = json.dumps(document).encode()
        elif data_kind == "bytes":
            document["data_base64"] = draw(st.one_of(st.text(max_size=20),
                                                     st.binary(max_size=20).map(bytes.hex)))
            body = json.dumps(document).encode()
        elif data_kind == "deep":
            body = body[:-1] + b', "data": ' + raw + b"}"
        if _one_in(8, draw):
            body = body[: draw(st.integers(1, len(body)))]
        content_type = draw(st.sampled_from([
            "application/cloudevents+json", "application/cloudevents+json; charset=utf-8",
            "application/cloudevents+json; charset=utf-16", "application/cloudevents+jsonx"]))
        return Request({"Content-Type": content_type}, body, mode)
    headers = draw(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True),
                                   header_text, max_size=4))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["application/cloudevents+json",
                                                        "application/json", "text/plain"]))
    if draw(st.booleans()):
        headers["ce-" + draw(extension_names)] = draw(header_text)
    for name, values in REQUEST_HEADERS.items():
        if _one_in(4, draw):
            headers[name] = draw(st.sampled_from(values))
    return Request(headers, draw(st.binary(max_size=200)), mode)


# ---------------------------------------------------------------- resize property


@pytest.fixture
def known_jobs(config: Config) -> dict[str, list[str]]:
    """Real jobs to aim events at: one that will succeed, one whose image is cut short."""
    client = upload.create_app(config).test_client()
    jpeg = encode(marked(), "JPEG", quality=90)  # cut in half: the header still parses
    ids = []
    for data in (IMAGES[0], jpeg[: len(jpeg) // 2]):
        answer = client.post("/jobs", data={"file": (io.BytesIO(data), "a")})
        assert answer.status_code == 202, answer.data
        ids.append(answer.json["job_id"])
    return {"job_ids": ids, "keys": [f"originals/{i}" for i in ids]}


def _check_reply(path: str, status: int, headers: dict[str, str], body: bytes,
                 note: str) -> None:
    if path == "/dead-letter":
        assert status in (204, 400), note
    else:
        assert status in (200, 400, 409), note
    if status == 409:
        assert json.loads(body)["error"] == "job_busy", note
    if status >= 400:
        doc = json.loads(body)
        assert set(doc) == {"error", "message"}, note
        return
    if body or path == "/":
        reply = events.from_http(headers, body)  # InvalidEvent if not a CloudEvent
        assert reply.get_type() in (events.THUMBNAIL_GENERATED, events.THUMBNAIL_FAILED), note
        assert reply.get_source() == events.RESIZE_SOURCE, note
        doc = events.data_of(reply)
        assert doc["status"] in ("succeeded", "failed"), note


def test_resize_answers_2xx_or_400_to_any_event(config: Config,
                                                known_jobs: dict[str, list[str]]) -> None:
    app = resize.create_app(config)
    client, limit = app.test_client(), app.config["MAX_CONTENT_LENGTH"]

    @FUZZ
    @given(request=event_request(known_jobs), path=st.sampled_from(["/", "/", "/", "/dead-letter"]))
    def check(request: Request, path: str) -> None:
        headers, body = request.headers, request.body
        answer = client.post(path, data=body, headers=headers)
        note = f"{path} {request!r}: {answer.status_code} {answer.data[:300]!r}"
        if answer.status_code == 413:  # an honest answer to a body over the limit
            assert len(body) > limit, note
            return
        _check_reply(path, answer.status_code, dict(answer.headers), answer.data, note)

    check()


def test_resize_handles_each_known_job_once(config: Config, redis_client: redis.Redis,
                                            known_jobs: dict[str, list[str]]) -> None:
    """Hostile events never change a finished job: after the fuzz, each is still as first done."""
    client = resize.create_app(config).test_client()

    def deliver(job_id: str) -> Any:
        event = events.new_event(events.IMAGE_UPLOADED, "/t", {"job_id": job_id})
        headers, body = events.to_http(event)
        return client.post("/", data=body, headers=headers)

    first = [deliver(job_id).status_code for job_id in known_jobs["job_ids"]]
    assert first == [200, 200]
    before = {j: redis_client.hgetall(f"thumbnails:job:{j}") for j in known_jobs["job_ids"]}

    @LIGHT
    @given(request=event_request(known_jobs))
    def check(request: Request) -> None:
        client.post("/", data=request.body, headers=request.headers)

    check()
    after = {j: redis_client.hgetall(f"thumbnails:job:{j}") for j in known_jobs["job_ids"]}
    assert after == before


def test_fuzz_strategies_reach_every_branch() -> None:
    """Guard against a strategy that silently stopped generating what it claims to: for each
    kind, Hypothesis searches until it generates one (NoSuchExample if it never does)."""
    search = settings(max_examples=2000, database=None, deadline=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    for kind in ("ok", "odd_boundary", "no_boundary_param", "wrong_boundary", "no_closing",
                 "broken_headers", "no_disposition", "cut", "rfc2231_boundary",
                 "quoted_boundary", "lf_only", "preamble", "random_content_type",
                 "no_content_type", "not_multipart"):
        found = find(multipart_request(), lambda request, kind=kind: request.kind == kind,
                     settings=search)
        assert found.kind == kind
