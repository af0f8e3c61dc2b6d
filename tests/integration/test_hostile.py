"""Hostile input, case by case, end to end through the Flask test clients (a real Valkey and a
filesystem store) or through thumbnails.core.imaging directly.

- Only the allowlisted parsers (JPEG, PNG, GIF, WebP, BMP, TIFF) ever run: EPS, PDF, SVG, PSD,
  ICO, XBM and every other format Pillow knows are refused as 415 without their plugin being
  asked, and no external program (Ghostscript) is ever started.
- Pixel and frame limits are checked from the header, before any decoding; Pillow's
  decompression-bomb warning is an error.
- Real hostile files (truncated, bad offsets, bad LZW, absurd headers, compressed-text bombs,
  bad markers, bad tiles) give 422 or a failed job, never a 500.
- The client's filename never becomes a storage key; malformed job ids are 404 JSON.
"""

from __future__ import annotations

import io
import json
import struct
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from PIL import EpsImagePlugin, Image, ImageFile, PdfParser

from tests.support.images import encode, kinds, marked, png_bomb
from thumbnails import resize, status, upload
from thumbnails.core import events, imaging
from thumbnails.core.config import Config
from thumbnails.core.errors import (
    ImageTooLarge,
    InvalidImage,
    ThumbnailsError,
    UnsupportedMediaType,
)
from thumbnails.core.imaging import ALLOWED_FORMATS, Limits, ThumbnailOptions
from thumbnails.core.jobs import JobStatus, JobStore

PNG = kinds()["png"][0]


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """conftest's, with the store one folder down: tmp_path holds nothing else, so a test
    can see that nothing was written beside the store."""
    return replace(config, data_dir=tmp_path / "objects")


def post_file(client: FlaskClient, data: bytes, filename: str = "upload",
              **form: str) -> Any:
    return client.post("/jobs", data={"file": (io.BytesIO(data), filename), **form})


def stored(config: Config) -> list[str]:
    root = config.data_dir
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


def job_keys(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter("thumbnails:job:*"))


def assert_json_error(answer: Any, status_code: int, code: str | None = None) -> None:
    assert answer.status_code == status_code, (answer.status_code, answer.data[:300])
    assert answer.mimetype == "application/json"
    assert set(answer.json) == {"error", "message"} and answer.json["message"]
    assert "object at 0x" not in answer.json["message"]  # for people: no Python reprs
    if code is not None:
        assert answer.json["error"] == code, answer.json


def deliver(client: FlaskClient, data: dict[str, Any], path: str = "/") -> Any:
    headers, body = events.to_http(events.new_event(events.IMAGE_UPLOADED, "/test", data))
    return client.post(path, data=body, headers=headers)


# ---------------------------------------------------------------- only allowlisted parsers


def _pillow_writes(fmt: str, mode: str = "RGB", **params: Any) -> Callable[[], bytes]:
    return lambda: encode(Image.new(mode, (16, 16), (200, 30, 30) if mode == "RGB" else 1),
                          fmt, **params)


def _psd() -> bytes:
    """A valid-looking Photoshop header: 8BPS, version 1, 3 channels, 16x16, 8-bit RGB."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 16, 16, 8, 3)
    return header + struct.pack(">I", 0) * 3 + struct.pack(">H", 0) + b"\x00" * (16 * 16 * 3)


def _dos_eps() -> bytes:
    """A DOS EPS binary header (C5D0D3C6) pointing at a PostScript section."""
    postscript = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n"
    return struct.pack("<4sIIIIIIH", b"\xc5\xd0\xd3\xc6", 30, len(postscript), 0, 0, 0, 0,
                       0xFFFF) + postscript


FORBIDDEN: dict[str, Callable[[], bytes]] = {
    "eps_crafted": lambda: (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n"
                            b"%%EndComments\n16 16 8 [16 0 0 -16 0 16] {currentfile} image\n"),
    "eps_pillow": _pillow_writes("EPS"),
    "eps_dos_binary": _dos_eps,
    "pdf_crafted": lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n",
    "pdf_pillow": _pillow_writes("PDF"),
    "svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"/>',
    "svg_with_xml_prolog": lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
    "psd": _psd,
    "ico": _pillow_writes("ICO"),
    "cur": lambda: b"\x00\x00\x02\x00\x01\x00" + _pillow_writes("ICO")()[6:],
    "xbm": _pillow_writes("XBM", "1"),
    "xpm": lambda: b'/* XPM */\nstatic char *x[] = {"1 1 1 1", "a c #ff0000", "a"};\n',
    "pcx": _pillow_writes("PCX"),
    "ppm": _pillow_writes("PPM"),
    "pgm_ascii": lambda: b"P2\n2 2\n255\n0 255\n255 0\n",
    "tga": _pillow_writes("TGA"),
    "sgi": _pillow_writes("SGI"),
    "im": _pillow_writes("IM"),
    "dds": _pillow_writes("DDS"),
    "icns": _pillow_writes("ICNS"),
    "qoi": _pillow_writes("QOI"),
    "jpeg2000": _pillow_writes("JPEG2000"),
    # ISOBMFF but neither HEIF nor AVIF (AVIF and HEIC are allowed, see test_imaging_heif.py)
    "mp4": lambda: b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 32,
    "cr3": lambda: b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + b"\x00" * 32,
    "spider": _pillow_writes("SPIDER", "F"),
    "palm": _pillow_writes("PALM", "P"),
    "dib": _pillow_writes("DIB"),  # a BMP without its "BM" file header
    "fits": lambda: b"SIMPLE  =                    T" + b" " * 50 + b"END" + b" " * 77,
    "html": lambda: b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
    "zip": lambda: b"PK\x03\x04" + b"\x00" * 40,
    "gzip_png": lambda: zlib.compress(PNG),
    "elf": lambda: b"\x7fELF\x02\x01\x01" + b"\x00" * 60,
}


def _make_forbidden() -> dict[str, bytes | None]:
    """Made once, before any spy is installed (Pillow's own writers use some of the parsers
    the spy forbids); None where this Pillow build cannot write the format."""
    made: dict[str, bytes | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the IM format
        for kind, make in FORBIDDEN.items():
            try:
                made[kind] = make()
            except (OSError, KeyError, ValueError):
                made[kind] = None
    return made


FORBIDDEN_DATA = _make_forbidden()


class Spy:
    """Records every Pillow opener consulted, every EPS/PDF entry point and every process."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return func(*args, **kwargs)

        return recorded

    def refuse(self, name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            raise AssertionError(f"{name} must never run")

        return refused

    def foreign(self, allowed: set[str]) -> list[str]:
        """Calls other than the openers of the `allowed` formats."""
        return [c for c in self.calls if c.split(":", 1)[1] not in allowed]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    Image.init()
    imaging._register_heif()  # the service registers HEIF on first use: spy on its opener too
    for fmt, (factory, accept) in list(Image.OPEN.items()):
        monkeypatch.setitem(Image.OPEN, fmt, (
            spy.wrap(f"open:{fmt}", factory),
            spy.wrap(f"accept:{fmt}", accept) if accept else None))
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy.refuse("eps:_open"))
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", spy.refuse("eps:load"))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", spy.refuse("eps:Ghostscript"))
    monkeypatch.setattr(PdfParser.PdfParser, "__init__", spy.refuse("pdf:PdfParser"))
    import subprocess

    monkeypatch.setattr(subprocess, "Popen", spy.refuse("process:Popen"))
    opened: list[Any] = []
    real_open = Image.open

    def open_checked(fp: Any, mode: str = "r", formats: Any = None) -> Image.Image:
        opened.append(formats)
        assert formats is not None and set(formats) <= set(ALLOWED_FORMATS), formats
        return real_open(fp, mode, formats)

    monkeypatch.setattr(Image, "open", open_checked)
    spy.opened = opened  # type: ignore[attr-defined]
    return spy


@pytest.mark.parametrize("kind", sorted(FORBIDDEN))
def test_formats_outside_the_allowlist_are_415_and_their_parser_never_runs(
        config: Config, redis_client: redis.Redis, spy: Spy, kind: str) -> None:
    data = FORBIDDEN_DATA[kind]
    if data is None:
        pytest.skip(f"this Pillow cannot write {kind}")
    spy.calls.clear()
    assert_json_error(post_file(upload.create_app(config).test_client(), data, "x.png"), 415,
                      "unsupported_type")
    assert spy.calls == [], spy.calls  # sniffed from magic bytes: no opener even asked
    assert stored(config) == [] and job_keys(redis_client) == []
    for call in (lambda: imaging.inspect(data, Limits()),
                 lambda: imaging.make_thumbnail(data, ThumbnailOptions(), Limits())):
        with pytest.raises(UnsupportedMediaType):
            call()
    assert spy.calls == []


@pytest.mark.parametrize("magic", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a",
                                   b"RIFF\x00\x01\x00\x00WEBP", b"BM", b"II*\x00", b"MM\x00*"])
def test_allowlisted_magic_with_eps_or_pdf_inside_only_asks_that_one_parser(
        spy: Spy, magic: bytes) -> None:
    """A polyglot: allowlisted magic bytes, then an EPS/PDF body. Only the sniffed format's
    plugin is consulted (422), never EPS, PDF or Ghostscript."""
    sniffed = imaging.sniff(magic)
    for payload in (FORBIDDEN_DATA["eps_pillow"], FORBIDDEN_DATA["pdf_pillow"]):
        assert payload is not None
        spy.calls.clear()
        with pytest.raises(InvalidImage):
            imaging.make_thumbnail(magic + payload, ThumbnailOptions(), Limits())
        assert spy.foreign({sniffed}) == [], spy.calls
        assert spy.opened[-1] == [sniffed]  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", sorted(ALLOWED_FORMATS))
def test_a_valid_image_consults_only_its_own_plugin(spy: Spy, fmt: str) -> None:
    data = encode(marked((40, 30)), fmt)
    imaging.make_thumbnail(data, ThumbnailOptions(width=16, height=16), Limits())
    assert spy.calls and spy.foreign({fmt}) == [], spy.calls


def test_mpo_is_decoded_as_the_jpeg_it_is_with_the_frame_limit(config: Config) -> None:
    """MPO (multi-picture JPEG, from cameras) starts with JPEG magic; Pillow's JPEG plugin hands
    it to its MPO subclass, which uses the same JPEG decoder. It counts as frames."""
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert data[:3] == b"\xff\xd8\xff"
    result = imaging.make_thumbnail(data, ThumbnailOptions(width=40, height=30), Limits())
    assert result.source.format == "JPEG" and result.source.frames == 3
    red = Image.open(io.BytesIO(result.data)).convert("RGB").getpixel((20, 15))
    assert red[0] > 200 and red[2] < 50  # the first picture
    with pytest.raises(ImageTooLarge):
        imaging.inspect(data, Limits(max_frames=2))


# ---------------------------------------------------------------- limits before decoding


def _gif_claiming(width: int, height: int) -> bytes:
    """A tiny GIF whose screen and image descriptor claim width x height."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
            + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00;")


def _many_frame_gif(count: int) -> bytes:
    """A 1x1 GIF with `count` minimal frames (16 bytes each)."""
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return (b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
            + frame * count + b";")


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails the test's expectations if any pixel data is decoded."""
    loads: list[str] = []
    real_load = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        loads.append(type(self).__name__)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return loads


@pytest.mark.parametrize("bomb", [png_bomb(100_000, 100_000), png_bomb(1, 2**31 - 1),
                                  _gif_claiming(65_535, 65_535)],
                         ids=["png_100000x100000", "png_1x2147483647", "gif_65535x65535"])
def test_pixel_bomb_is_422_from_the_header_without_decoding(
        config: Config, redis_client: redis.Redis, no_decoding: list[str], bomb: bytes) -> None:
    client = upload.create_app(config).test_client()
    started = time.perf_counter()
    answer = post_file(client, bomb)
    assert time.perf_counter() - started < 2.0
    assert_json_error(answer, 422, "image_too_large")
    assert no_decoding == [] and stored(config) == [] and job_keys(redis_client) == []


def test_pixel_limit_is_the_configured_one(config: Config, redis_client: redis.Redis,
                                           no_decoding: list[str]) -> None:
    small = Config(redis_url=config.redis_url, data_dir=config.data_dir, max_pixels=1_000)
    client = upload.create_app(small).test_client()
    assert_json_error(post_file(client, encode(Image.new("L", (40, 26)), "PNG")), 422,
                      "image_too_large")  # 1040 pixels
    assert no_decoding == []
    assert post_file(client, encode(Image.new("L", (40, 25)), "PNG")).status_code == 202


def test_decompression_bomb_warning_is_an_error(config: Config, redis_client: redis.Redis,
                                                no_decoding: list[str]) -> None:
    """Our own limit lifted: Pillow's warning (over MAX_IMAGE_PIXELS) and error (over twice
    that) both become 422 image_too_large, still before decoding."""
    lifted = Config(redis_url=config.redis_url, data_dir=config.data_dir, max_pixels=10**12)
    client = upload.create_app(lifted).test_client()
    warned = png_bomb(10_000, 10_000)  # 1e8 pixels: between 89.5M and 179M, a warning
    assert Image.MAX_IMAGE_PIXELS is not None and \
        Image.MAX_IMAGE_PIXELS < 10**8 < 2 * Image.MAX_IMAGE_PIXELS
    for data in (warned, png_bomb(20_000, 20_000)):
        answer = post_file(client, data)
        assert_json_error(answer, 422, "image_too_large")
        assert "decompression bomb" in answer.json["message"]
    assert no_decoding == [] and job_keys(redis_client) == []


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_frame_limit(config: Config, redis_client: redis.Redis, fmt: str) -> None:
    four = Config(redis_url=config.redis_url, data_dir=config.data_dir, max_frames=4)
    client = upload.create_app(four).test_client()
    frames = [Image.new("RGB", (20, 10), (40 * i, 0, 0)) for i in range(5)]
    too_many = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    assert_json_error(post_file(client, too_many), 422, "image_too_large")
    assert stored(four) == [] and job_keys(redis_client) == []
    enough = encode(frames[0], fmt, save_all=True, append_images=frames[1:4])
    assert post_file(client, enough).status_code == 202


def test_frame_limit_on_a_gif_of_100000_frames_is_quick(config: Config) -> None:
    """Frames are counted by walking the file (Pillow has no shortcut); the walk is bounded by
    the upload limit. 100,000 frames (1.6 MB) take a fraction of a second."""
    client = upload.create_app(config).test_client()
    started = time.perf_counter()
    answer = post_file(client, _many_frame_gif(100_000))
    assert_json_error(answer, 422, "image_too_large")
    assert "100000 frames" in answer.json["message"]
    assert time.perf_counter() - started < 5.0


# ---------------------------------------------------------------- real hostile files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with(*chunks: bytes) -> bytes:
    raw = encode(Image.new("RGB", (8, 8)), "PNG")
    return raw[:33] + b"".join(chunks) + raw[33:]  # right after IHDR


def _patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _tiff(entries: list[tuple[int, int, int, int]], next_ifd: int = 0, tail: bytes = b"") -> bytes:
    """A little-endian TIFF with one IFD at offset 8 (SHORT or LONG values inline)."""
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, count, value in sorted(entries):
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        out += struct.pack("<HHI", tag, kind, count) + packed
    return out + struct.pack("<I", next_ifd) + tail


_STRIPS = [(256, 3, 1, 16), (257, 3, 1, 16), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
           (273, 4, 1, 200), (277, 3, 1, 1), (278, 3, 1, 16), (279, 4, 1, 256)]
_TILES = [e for e in _STRIPS if e[0] not in (273, 278, 279)] + [(324, 4, 1, 200),
                                                                (325, 4, 1, 100)]


def _with(entries: list[tuple[int, int, int, int]], **changes: int) -> list[tuple[int, int, int,
                                                                                   int]]:
    tags = {int(k[1:]): v for k, v in changes.items()}
    return [(t, k, c, tags.get(t, v)) for t, k, c, v in entries] + [
        (t, 3, 1, v) for t, v in tags.items() if t not in {e[0] for e in entries}]


def _hostile() -> dict[str, bytes]:
    bomb = zlib.compress(b"\0" * (64 << 20), 9)  # 64 MB of text in ~64 KB
    bmp = encode(Image.new("RGB", (4, 4)), "BMP")
    gif = encode(Image.new("P", (16, 16)), "GIF")
    lzw = gif.index(b",") + 10  # the LZW minimum code size byte
    jpeg = encode(marked((64, 64)), "JPEG")
    big_jpeg = encode(marked((400, 300)), "JPEG", quality=90)
    sof = jpeg.index(b"\xff\xc0") + 5  # height, width
    tiff = encode(Image.new("RGB", (16, 16)), "TIFF")
    return {
        # PNG: compressed text and ICC bombs, a chunk length past the end, a bad CRC
        "png_iccp_bomb": _png_with(_chunk(b"iCCP", b"p\0\0" + bomb)),
        "png_ztxt_bomb": _png_with(_chunk(b"zTXt", b"k\0\0" + bomb)),
        "png_itxt_bomb": _png_with(_chunk(b"iTXt", b"k\0\1\0\0\0" + bomb)),
        "png_chunk_length_2gb": _png_with(b"\x7f\xff\xff\xfftEXt"),
        "png_bad_crc": _png_with(b"\0\0\0\4tEXta\0bc\0\0\0\0"),
        "png_no_idat": encode(Image.new("RGB", (8, 8)), "PNG")[:33] + _chunk(b"IEND", b""),
        "png_idat_garbage": _png_with(_chunk(b"IDAT", b"\xff" * 64))[:33]
        + _chunk(b"IDAT", b"\xff" * 64) + _chunk(b"IEND", b""),
        "png_bad_bit_depth": _patched(PNG, 24, ">B", 7)[:29]
        + struct.pack(">I", zlib.crc32(_patched(PNG, 24, ">B", 7)[12:29])) + PNG[33:],
        # BMP: absurd dimensions, depths, offsets, palette sizes, compression
        "bmp_2gb_by_2gb": _patched(bmp, 18, "<ii", 2**31 - 1, 2**31 - 1),
        "bmp_negative_width": _patched(bmp, 18, "<i", -5),
        "bmp_min_int_height": _patched(bmp, 22, "<i", -(2**31)),
        "bmp_zero_bpp": _patched(bmp, 28, "<H", 0),
        "bmp_header_size_4gb": _patched(bmp, 14, "<I", 0xFFFFFFF0),
        "bmp_pixel_offset_4gb": _patched(bmp, 10, "<I", 0xFFFFFFF0),
        "bmp_rle8_with_24bpp": _patched(bmp, 30, "<I", 1),
        "bmp_palette_268M": _patched(encode(Image.new("P", (4, 4)), "BMP"), 46, "<I", 0xFFFFFFF),
        # GIF: bad LZW streams, a frame far bigger than the screen, a zero screen
        "gif_lzw_code_size_12": _patched(gif, lzw, "<B", 12),
        "gif_lzw_code_size_0": _patched(gif, lzw, "<B", 0),
        "gif_lzw_garbage": gif[:lzw + 2] + b"\xff\xff\xff\xff" + gif[lzw + 6:],
        "gif_frame_65535_square": _patched(gif, gif.index(b",") + 5, "<HH", 65535, 65535),
        "gif_zero_screen": _patched(gif, 6, "<HH", 0, 0),
        "gif_no_image": gif[:gif.index(b",")] + b";",
        # JPEG: bad markers, sizes, tables, segments
        "jpeg_zero_size": _patched(jpeg, sof, ">HH", 0, 0),
        "jpeg_65535_square": _patched(jpeg, sof, ">HH", 65535, 65535),
        "jpeg_bad_dqt_length": jpeg.replace(b"\xff\xdb\x00\x43", b"\xff\xdb\x00\x02", 1),
        "jpeg_bad_huffman_table": jpeg.replace(b"\xff\xc4", b"\xff\xc4\x00\x03\x10", 1),
        "jpeg_segment_length_1": jpeg[:2] + b"\xff\xe1\x00\x01" + jpeg[2:],
        "jpeg_app1_past_the_end": jpeg[:2] + b"\xff\xe1\xff\xffExif\0\0" + b"\0" * 10,
        "jpeg_exif_bad_ifd_offset": jpeg[:2] + b"\xff\xe1\x00\x20Exif\0\0II*\x00\xff\xff\xff\x7f"
        + b"\0" * 16 + jpeg[2:],
        "jpeg_only_soi": b"\xff\xd8\xff",
        "jpeg_sos_without_sof": b"\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\0" * 50
        + b"\xff\xd9",
        "jpeg_truncated_header": jpeg[: len(jpeg) - 200],
        "jpeg_truncated_scan": big_jpeg[: len(big_jpeg) // 2],
        # TIFF: bad offsets, strips, tiles, depths, loops, unknown compression
        "tiff_ifd_offset_4gb": _patched(tiff, 4, "<I", 0xFFFFFF00),
        "tiff_ifd_inside_header": _patched(tiff, 4, "<I", 4),
        "tiff_strip_offset_4gb": _tiff(_with(_STRIPS, t273=0xFFFFFF00)),
        "tiff_strip_bytes_4gb": _tiff(_with(_STRIPS, t279=0xFFFFFFF0), tail=b"\0" * 500),
        "tiff_tile_size_zero": _tiff(_with(_TILES, t322=0, t323=0), tail=b"\0" * 500),
        "tiff_tile_size_65535": _tiff(_with(_TILES, t322=65535, t323=65535), tail=b"\0" * 500),
        "tiff_tile_size_7": _tiff(_with(_TILES, t322=7, t323=7), tail=b"\0" * 500),
        "tiff_ifd_loop": _tiff(_STRIPS, next_ifd=8, tail=b"\0" * 500),
        "tiff_bits_per_sample_0": _tiff(_with(_STRIPS, t258=0), tail=b"\0" * 500),
        "tiff_bits_per_sample_64": _tiff(_with(_STRIPS, t258=64), tail=b"\0" * 500),
        "tiff_samples_per_pixel_65535": _tiff(_with(_STRIPS, t277=65535), tail=b"\0" * 500),
        "tiff_rows_per_strip_0": _tiff(_with(_STRIPS, t278=0), tail=b"\0" * 500),
        "tiff_jpeg_compression_garbage": _tiff(_with(_STRIPS, t259=7), tail=b"\xff" * 500),
        "tiff_lzw_garbage": _tiff(_with(_STRIPS, t259=5), tail=b"\xff" * 500),
        "tiff_unknown_compression": _tiff(_with(_STRIPS, t259=9999), tail=b"\xff" * 500),
        "tiff_lab_photometric": _tiff(_with(_STRIPS, t262=8), tail=b"\0" * 500),
        "tiff_orientation_99": _tiff(_with(_STRIPS, t274=99), tail=b"\0" * 500),
        "tiff_tag_count_2g": _tiff(_STRIPS + [(700, 1, 0x7FFFFFFF, 300)], tail=b"\0" * 500),
        "bigtiff_garbage": b"II+\x00\x08\x00\x00\x00" + b"\xff" * 100,
        # WebP: garbage bitstreams, absurd sizes, a RIFF length past the end
        "webp_vp8_garbage": b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\xff" * 50,
        "webp_vp8l_16384_square": b"RIFF\x20\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\xff\xff"
        b"\xff\xff" + b"\0" * 20,
        "webp_vp8x_riff_4gb": b"RIFF\xff\xff\xff\xffWEBPVP8X\x0a\x00\x00\x00" + b"\0" * 4
        + b"\xff" * 6,
        "webp_animation_no_frames": b"RIFF\x1e\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\0\0\0"
        + b"\x0f\x00\x00\x0f\x00\x00ANIM\x06\x00\x00\x00\0\0\0\0\0\0",
    }


HOSTILE = _hostile()
# Rejected from the header alone (upload answers 422): the rest pass the header checks and
# fail when resize decodes them (a failed job, still 200) or decode to something after all.
HEADER_REJECTED = {
    "png_iccp_bomb", "png_ztxt_bomb", "png_itxt_bomb", "png_chunk_length_2gb", "png_bad_crc",
    "bmp_2gb_by_2gb", "bmp_negative_width", "bmp_min_int_height", "bmp_zero_bpp",
    "bmp_header_size_4gb", "bmp_palette_268M", "gif_frame_65535_square", "jpeg_zero_size",
    "jpeg_65535_square", "jpeg_app1_past_the_end", "jpeg_only_soi", "jpeg_sos_without_sof",
    "tiff_ifd_offset_4gb", "tiff_ifd_inside_header", "tiff_bits_per_sample_0",
    "tiff_bits_per_sample_64", "tiff_samples_per_pixel_65535", "tiff_unknown_compression",
    "tiff_lab_photometric", "bigtiff_garbage", "webp_vp8_garbage", "webp_vp8l_16384_square",
    "webp_vp8x_riff_4gb", "gif_no_image", "jpeg_truncated_header", "png_bad_bit_depth",
    "webp_animation_no_frames",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_through_imaging_only_raises_domain_errors(name: str) -> None:
    data = HOSTILE[name]
    try:
        info = imaging.inspect(data, Limits())
    except InvalidImage:
        assert name in HEADER_REJECTED, f"{name}: now rejected from its header"
        return
    assert name not in HEADER_REJECTED, f"{name}: passed the header checks: {info}"
    try:
        imaging.make_thumbnail(data, ThumbnailOptions(), Limits())
    except InvalidImage as exc:
        assert isinstance(exc.__cause__, Exception) or exc.__cause__ is None
    except ThumbnailsError as exc:  # pragma: no cover - reported with the test id
        pytest.fail(f"{name}: {type(exc).__name__} {exc.status}: {exc.message}")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_end_to_end_is_422_or_a_finished_job_never_500(
        config: Config, redis_client: redis.Redis, name: str) -> None:
    data = HOSTILE[name]
    answer = post_file(upload.create_app(config).test_client(), data)
    if answer.status_code != 202:
        assert_json_error(answer, 422)
        assert name in HEADER_REJECTED
        assert stored(config) == [] and job_keys(redis_client) == []
        return
    job_id = answer.json["job_id"]
    reply = deliver(resize.create_app(config).test_client(), {"job_id": job_id})
    assert reply.status_code == 200, reply.data[:300]
    doc = events.data_of(events.from_http(dict(reply.headers), reply.data))
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.status.terminal and job.status.value == doc["status"]
    if job.status is JobStatus.FAILED:
        assert job.error_code in ("invalid_image", "image_too_large"), job.error_code
        assert "object at 0x" not in job.error_message  # shown to clients: no Python reprs


# ---------------------------------------------------------------- filenames and keys


@pytest.mark.parametrize("filename", [
    "../../etc/passwd", "../../../../../../tmp/evil.png", "/etc/passwd", "a/b", "a\\b",
    "C:\\Windows\\evil.png", "\x00", "a\x00.png", "x" * 10_000, "..", ".", "originals/other",
    "thumbnails/x.png", "%2e%2e%2fetc", "ﾠ../ünïcødé‮gnp.exe", "\r\nX-Injected: 1", "",
])
def test_the_clients_filename_never_becomes_a_storage_key(
        config: Config, redis_client: redis.Redis, filename: str) -> None:
    answer = post_file(upload.create_app(config).test_client(), PNG, filename)
    if filename == "\r\nX-Injected: 1":
        # A raw line break (werkzeug's test client does not escape it; browsers send %0D%0A)
        # breaks the part's headers: a malformed part, refused.
        assert_json_error(answer, 400, "bad_request")
        assert stored(config) == [] and job_keys(redis_client) == []
        return
    assert answer.status_code == 202, answer.data
    job_id = answer.json["job_id"]
    assert stored(config) == [f"thumbnails/originals/{job_id}"]
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.original_key == f"originals/{job_id}"
    outbox = [json.loads(v) for v in redis_client.hvals("thumbnails:outbox")]
    assert [e["data"]["key"] for e in outbox] == [f"originals/{job_id}"]
    everything = [p for p in config.data_dir.parent.rglob("*") if p.is_file()]
    assert [p.name for p in everything] == [job_id]  # nothing written anywhere else


# ---------------------------------------------------------------- job ids


BAD_IDS = [
    "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..", "%2e%2e", ".", "%00",
    "%0a", "%ff%fe", "%C3%A9", "é", "%E2%80%AE", "%F0%9F%92%A3" * 20, "x" * 10_000, "*", "%3F",
    "thumbnails:jobs", "00000000-0000-4000-8000-000000000000",
    "00000000-0000-4000-8000-00000000000G", "00000000-0000-4000-8000-000000000000%0A",
    "00000000-0000-4000-8000-000000000000%20", "%2000000000-0000-4000-8000-000000000000",
    "{job}", "%7Bjob%7D", "null", "-1", "1e9999",
]


@pytest.mark.parametrize("job_id", BAD_IDS)
def test_malformed_job_ids_in_status_paths_are_404_json(config: Config, job_id: str) -> None:
    on = Config(redis_url=config.redis_url, data_dir=config.data_dir, debug_endpoint=True)
    client = status.create_app(on).test_client()
    for suffix in ("", "/thumbnail", "/debug"):
        answer = client.get(f"/jobs/{job_id}{suffix}")
        assert answer.status_code in (400, 404), (job_id, suffix, answer.status_code)
        assert_json_error(answer, answer.status_code)


def test_path_traversal_in_status_paths_reaches_no_file(config: Config, tmp_path: Path) -> None:
    secret = config.data_dir / "thumbnails" / "secret"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"do not serve")
    client = status.create_app(config).test_client()
    for path in ("/jobs/../thumbnails/secret", "/jobs/..%2Fthumbnails%2Fsecret/thumbnail",
                 "/jobs/%2e%2e/%2e%2e/thumbnails/secret", "/jobs/..;/thumbnails/secret"):
        answer = client.get(path)
        assert answer.status_code in (400, 404) and b"do not serve" not in answer.data, path


@pytest.mark.parametrize("job_id", [
    "not-a-job", "../../etc/passwd", "00000000-0000-4000-8000-00000000000G",
    "00000000-0000-4000-8000-000000000000 ", "ＡＡＡＡＡＡＡＡ-0000-4000-8000-000000000000",
    "00000000-0000-4000-8000-000000000000\n",
])
def test_malformed_job_ids_in_events_are_400(config: Config, redis_client: redis.Redis,
                                             job_id: str) -> None:
    """An event's data.job_id must be a job id: not one with a trailing newline either (the
    id becomes a Redis key, a storage key and a URL path segment)."""
    original = post_file(upload.create_app(config).test_client(), PNG).json["job_id"]
    answer = deliver(resize.create_app(config).test_client(),
                     {"job_id": job_id, "key": f"originals/{original}"})
    assert_json_error(answer, 400, "invalid_event")
    assert job_keys(redis_client) == [f"thumbnails:job:{original}".encode()]


def test_event_key_with_an_overlong_name_is_400(config: Config, redis_client: redis.Redis
                                                ) -> None:
    """A foreign producer's event naming an object no store could hold (a path component over
    255 bytes, or a path over 4096) is malformed: 400, not 500."""
    post_file(upload.create_app(config).test_client(), PNG)  # the bucket's folders exist
    client = resize.create_app(config).test_client()
    for key in ("incoming/" + "a" * 300, "incoming/" + "a/" * 2100 + "a"):
        assert_json_error(deliver(client, {"key": key}), 400, "invalid_event")


@pytest.mark.parametrize("path", ["/", "/dead-letter"])
@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_deeply_nested_event_json_is_400(config: Config, path: str, structured: bool) -> None:
    """JSON nested deeper than the parser's recursion limit (a 40 KB body) is malformed."""
    client = resize.create_app(config).test_client()
    deep = b"[" * 20_000 + b"]" * 20_000
    if structured:
        headers = {"Content-Type": "application/cloudevents+json"}
        body = (b'{"specversion":"1.0","id":"1","source":"/t","type":"'
                + events.IMAGE_UPLOADED.encode() + b'","data":' + deep + b"}")
    else:
        headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t",
                   "ce-type": events.IMAGE_UPLOADED, "Content-Type": "application/json"}
        body = deep
    assert_json_error(client.post(path, data=body, headers=headers), 400, "invalid_event")


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary*=UTF-8''%E2%82%AC",
    "multipart/form-data; boundary*=utf-8''%F0%9F%92%A3",
])
def test_rfc2231_boundary_outside_latin1_is_400(config: Config, redis_client: redis.Redis,
                                                content_type: str) -> None:
    """RFC 2231 lets a parameter carry any character (boundary*=UTF-8''%E2%82%AC is '€');
    a boundary the body cannot contain is a malformed request, not a 500."""
    body = "--€\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n".encode()
    answer = upload.create_app(config).test_client().post(
        "/jobs", data=body + PNG + "\r\n--€--\r\n".encode(),
        headers={"Content-Type": content_type})
    assert answer.status_code in (202, 400), answer.data
    if answer.status_code == 400:
        assert_json_error(answer, 400, "bad_request")
        assert stored(config) == [] and job_keys(redis_client) == []


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
@pytest.mark.parametrize("path", ["/", "/dead-letter"])
def test_correlation_id_with_a_line_break_is_not_a_500(config: Config, path: str,
                                                       structured: bool) -> None:
    """An event's correlationid extension ending in a line break ("abc%0A" in a binary-mode
    ce- header, which the SDK percent-decodes; "abc\\n" in structured mode) is not a valid
    id: it must not be echoed into the X-Request-Id response header (werkzeug refuses a header
    with a line break, turning the answer into a 500 after the job is done)."""
    job_id = post_file(upload.create_app(config).test_client(), PNG).json["job_id"]
    job = JobStore(redis.Redis.from_url(config.redis_url)).get(job_id)
    assert job is not None  # a dead letter must carry the job's own event (id and source)
    event = events.new_event(events.IMAGE_UPLOADED, job.event_source, {"job_id": job_id},
                             event_id=job.event_id,
                             extensions={events.CORRELATION_ID: "abc\n"})
    headers, body = events.to_http(event, structured=structured)
    if not structured:
        assert headers["ce-correlationid"] == "abc%0A"  # what goes over the wire
    answer = resize.create_app(config).test_client().post(path, data=body, headers=headers)
    assert answer.status_code == (200 if path == "/" else 204), answer.data[:300]
    assert "\n" not in answer.headers.get("X-Request-Id", "")


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    """Every case here is quick; a slow one means something decoded what it should not."""
    started = time.monotonic()
    yield
    assert time.monotonic() - started < 20, "a hostile-input case took over 20 s"


def test_uuid_ids_are_what_upload_hands_out(config: Config) -> None:
    job_id = post_file(upload.create_app(config).test_client(), PNG).json["job_id"]
    assert str(uuid.UUID(job_id)) == job_id
