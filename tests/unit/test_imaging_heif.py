"""Issue 10, section 2: HEIC/HEIF (pillow-heif) and AVIF (Pillow) in, sniffed from ftyp
brands, with the header limits checked before any decoder runs."""

from __future__ import annotations

import io
import random
import struct
import time

import pillow_heif
import pytest
from PIL import AvifImagePlugin, Image

from tests.support.icc import display_p3_profile, p3_to_srgb
from tests.support.images import BLUE, GREEN, RED, encode, heic, marked
from thumbnails.core import containers
from thumbnails.core.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from thumbnails.core.imaging import (
    ALLOWED_FORMATS,
    ImageInfo,
    Limits,
    ThumbnailOptions,
    inspect,
    make_thumbnail,
    sniff,
)

LIMITS = Limits()


def thumb(data: bytes, **options: object) -> Image.Image:
    result = make_thumbnail(data, ThumbnailOptions(**options), LIMITS)  # type: ignore[arg-type]
    im = Image.open(io.BytesIO(result.data))
    im.load()
    return im.convert("RGB")


def near(actual: tuple[float, ...], expected: tuple[float, ...], tolerance: float) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def avif(image: Image.Image, **params: object) -> bytes:
    return encode(image, "AVIF", quality=90, **params)


WRITERS = {"HEIF": heic, "AVIF": avif}


# ---------------------------------------------------------------- sniffing


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\0" * 16


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "HEIF"),
        (ftyp(b"heix", b"mif1"), "HEIF"),
        (ftyp(b"mif1", b"heic"), "HEIF"),
        (ftyp(b"msf1", b"hevc"), "HEIF"),  # an image sequence
        (ftyp(b"avif", b"mif1", b"miaf"), "AVIF"),
        (ftyp(b"avis", b"msf1"), "AVIF"),
        (ftyp(b"mif1", b"avif", b"miaf"), "AVIF"),
    ],
)
def test_sniffed_from_ftyp_brands(head: bytes, fmt: str) -> None:
    assert sniff(head) == fmt


@pytest.mark.parametrize(
    "head",
    [ftyp(b"mp42", b"isom"), ftyp(b"qt  "), ftyp(b"crx ", b"isom"), ftyp(b"jp2 "),
     b"\0\0\0\x08ftyp", b"\0\0\0\xffftypheic", b"\0\0\0\x0cftypheic"[:10]],
    ids=["mp4", "quicktime", "cr3", "jp2", "empty-ftyp", "ftyp-longer-than-file", "cut"],
)
def test_other_isobmff_is_unsupported(head: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        sniff(head)
    assert "HEIF" in caught.value.message and "AVIF" in caught.value.message


def test_allowlist_error_lists_the_new_formats() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        make_thumbnail(b"not an image at all", ThumbnailOptions(), LIMITS)
    for fmt in ALLOWED_FORMATS:
        assert fmt in caught.value.message


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_thumbnail_of_each(fmt: str) -> None:
    data = WRITERS[fmt](marked())
    assert sniff(data) == fmt
    assert inspect(data, LIMITS) == ImageInfo(fmt, ALLOWED_FORMATS[fmt], 400, 300, 1)
    out = thumb(data)
    assert out.size == (100, 75)
    assert near(out.getpixel((10, 10)), RED, 20) and near(out.getpixel((90, 60)), BLUE, 20)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_orientation_is_applied(fmt: str) -> None:
    """EXIF orientation 6 (pillow-heif turns it into the HEIF irot property; Pillow's AVIF
    writer into irot too): the red top-left quadrant ends top-right."""
    exif = Image.Exif()
    exif[0x0112] = 6
    out = thumb(WRITERS[fmt](marked(), exif=exif.tobytes()))
    assert out.size == (75, 100)
    assert near(out.getpixel((70, 5)), RED, 25), out.getpixel((70, 5))
    assert near(out.getpixel((5, 5)), BLUE, 25), out.getpixel((5, 5))


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_display_p3_profile_to_srgb(fmt: str) -> None:
    colour = (50, 100, 200)
    im = Image.new("RGB", (64, 64), colour)
    plain = Image.open(io.BytesIO(WRITERS[fmt](im))).convert("RGB").getpixel((32, 32))
    assert near(plain, colour, 4)  # what the codec keeps, read without colour management
    out = thumb(WRITERS[fmt](im, icc_profile=display_p3_profile()), width=64, height=64)
    assert near(out.getpixel((32, 32)), p3_to_srgb(plain), 1.5)  # type: ignore[arg-type]


def test_heic_sequence_shows_its_first_image_and_counts_frames() -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in (RED, GREEN, BLUE)]
    data = heic(frames)
    assert inspect(data, LIMITS).frames == 3
    assert near(thumb(data).getpixel((32, 24)), RED, 12)
    with pytest.raises(ImageTooLarge):
        inspect(data, Limits(max_frames=2))
    with pytest.raises(ImageTooLarge):
        make_thumbnail(data, ThumbnailOptions(), Limits(max_frames=2))


def test_heic_with_alpha() -> None:
    im = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (32, 0, 64, 32))
    result = make_thumbnail(heic(im), ThumbnailOptions(64, 64), LIMITS)
    out = Image.open(io.BytesIO(result.data)).convert("RGBA")
    assert out.getpixel((8, 16))[3] == 0
    assert near(out.getpixel((56, 16)), (255, 0, 0, 255), 12)


# ---------------------------------------------------------------- limits before decoding


def claiming(data: bytes, width: int, height: int) -> bytes:
    """The file with every ispe property patched to claim width x height."""
    out = bytearray(data)
    start = 0
    while (at := out.find(b"ispe", start)) >= 0:
        out[at + 8 : at + 16] = struct.pack(">II", width, height)
        start = at + 4
    assert containers.heif_image_sizes(bytes(out))
    return bytes(out)


@pytest.fixture
def no_decoder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any attempt to open or decode HEIF or AVIF (none must happen for a bomb)."""
    calls: list[str] = []

    def refuse(name: str):  # type: ignore[no-untyped-def]
        def refused(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} must not run")
        return refused

    monkeypatch.setattr(pillow_heif, "open_heif", refuse("open_heif"))
    monkeypatch.setattr(pillow_heif.HeifImageFile, "_open", refuse("HeifImageFile._open"))
    monkeypatch.setattr(AvifImagePlugin.AvifImageFile, "_open", refuse("AvifImageFile._open"))
    return calls


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_header_bomb_is_too_large_before_any_decoder_runs(fmt: str, no_decoder: list[str]
                                                         ) -> None:
    bomb = claiming(WRITERS[fmt](Image.new("RGB", (64, 48), GREEN)), 100_000, 100_000)
    assert len(bomb) < 5000
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        inspect(bomb, LIMITS)
    assert caught.value.status == 422
    with pytest.raises(ImageTooLarge):
        make_thumbnail(bomb, ThumbnailOptions(), LIMITS)
    assert time.perf_counter() - started < 1
    assert no_decoder == []


def test_heic_bomb_past_our_limit_meets_libheifs() -> None:
    """With our pixel limit lifted, libheif's own security limit still answers 422."""
    bomb = claiming(heic(Image.new("RGB", (64, 48), GREEN)), 100_000, 100_000)
    with pytest.raises(ImageTooLarge):
        make_thumbnail(bomb, ThumbnailOptions(), Limits(max_pixels=10**12))


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_garbage_after_ftyp_is_invalid(fmt: str) -> None:
    data = WRITERS[fmt](marked())
    head = data[: struct.unpack(">I", data[:4])[0]]
    for body in (b"", b"\0" * 64, bytes(range(256)) * 4, data[len(head) : len(data) // 2]):
        with pytest.raises(InvalidImage):
            make_thumbnail(head + body, ThumbnailOptions(), LIMITS)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_fuzzed_files_only_raise_domain_errors(fmt: str) -> None:
    """Random byte flips in a HEIC or AVIF: a thumbnail or a 415/422, never another error
    (nor a crash of libheif or libavif, which would end this process)."""
    original = WRITERS[fmt](marked((64, 48)))
    rng = random.Random(fmt)
    outcomes = set()
    for _ in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            make_thumbnail(bytes(data), ThumbnailOptions(32, 32), LIMITS)
            outcomes.add("thumbnail")
        except (InvalidImage, UnsupportedMediaType) as exc:
            outcomes.add(type(exc).__name__)
    assert "thumbnail" in outcomes and outcomes - {"thumbnail"}
