"""ThumbnailOptions' quality and gravity, AVIF output, and make_thumbnails' one decode."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile, features

from tests.support.images import BLUE, GREEN, RED, encode
from thumbnails.core.errors import BadRequest
from thumbnails.core.imaging import (
    GRAVITIES,
    OUTPUT_FORMATS,
    Limits,
    ThumbnailOptions,
    make_thumbnail,
    make_thumbnails,
)

LIMITS = Limits()


def decode(data: bytes) -> Image.Image:
    """Open and load image bytes."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_installed_pillow_writes_avif() -> None:
    assert features.check("avif")
    assert OUTPUT_FORMATS["avif"] == ("AVIF", "image/avif")


def test_parse_quality_and_gravity() -> None:
    options = ThumbnailOptions.parse(
        {"format": "avif", "quality": " 42 ", "fit": "cover", "gravity": "NorthEast"}, 1024)
    assert options == ThumbnailOptions(100, 100, "avif", "cover", 42, "northeast")
    assert (options.content_type, options.extension) == ("image/avif", "avif")
    assert ThumbnailOptions.parse({"gravity": "centre"}, 1024).gravity == "center"
    assert ThumbnailOptions.parse({}, 1024).quality is None
    assert set(GRAVITIES) == {"center", "north", "northeast", "east", "southeast", "south",
                              "southwest", "west", "northwest", "smart"}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"format": "jpeg", "quality": "0"}, "quality"),
        ({"format": "jpeg", "quality": "101"}, "quality"),
        ({"format": "jpeg", "quality": "high"}, "quality"),
        ({"format": "webp", "quality": ""}, "quality"),
        ({"format": "png", "quality": "80"}, "quality"),  # PNG is lossless: refused, not ignored
        ({"quality": "80"}, "quality"),  # the default format is png
        ({"gravity": "up"}, "gravity"),
        ({"gravity": ""}, "gravity"),
        ({"format": "heic"}, "format"),
    ],
)
def test_parse_refuses(values: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        ThumbnailOptions.parse(values, 1024)
    assert caught.value.status == 400
    assert caught.value.message.startswith(field)


def test_format_error_lists_every_output_format() -> None:
    with pytest.raises(BadRequest) as caught:
        ThumbnailOptions.parse({"format": "gif"}, 1024)
    for name in ("png", "jpeg", "webp", "avif"):
        assert name in caught.value.message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (ThumbnailOptions(), {"width": 100, "height": 100, "format": "png", "fit": "contain"}),
        (ThumbnailOptions(50, 60, "jpeg", "cover", 70, "south"),
         {"width": 50, "height": 60, "format": "jpeg", "fit": "cover", "quality": 70,
          "gravity": "south"}),
        (ThumbnailOptions(format="avif", gravity="smart"),
         {"width": 100, "height": 100, "format": "avif", "fit": "contain", "gravity": "smart"}),
    ],
)
def test_to_dict_round_trips_new_keys(options: ThumbnailOptions, expected: dict) -> None:
    assert options.to_dict() == expected
    as_strings = {key: str(value) for key, value in options.to_dict().items()}
    assert ThumbnailOptions.parse(as_strings, 1024) == options


# ---------------------------------------------------------------- quality and AVIF


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_quality_changes_the_output_size(fmt: str) -> None:
    """Higher quality keeps more detail: more bytes for the same noisy picture."""
    noisy = Image.effect_noise((256, 256), 60).convert("RGB")
    data = encode(noisy, "PNG")
    low = make_thumbnail(data, ThumbnailOptions(256, 256, fmt, quality=10), LIMITS)
    high = make_thumbnail(data, ThumbnailOptions(256, 256, fmt, quality=95), LIMITS)
    assert len(low.data) < len(high.data)
    assert decode(low.data).format == decode(high.data).format == OUTPUT_FORMATS[fmt][0]


def test_avif_output_keeps_colours_and_alpha() -> None:
    im = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (32, 0, 64, 32))
    result = make_thumbnail(encode(im, "PNG"), ThumbnailOptions(64, 64, "avif", quality=90),
                            LIMITS)
    out = decode(result.data)
    assert (result.content_type, out.format, out.size) == ("image/avif", "AVIF", (64, 32))
    rgba = out.convert("RGBA")
    assert rgba.getpixel((8, 16))[3] == 0
    r, g, b, a = rgba.getpixel((56, 16))
    assert a == 255 and r > 240 and g < 20 and b < 20


# ---------------------------------------------------------------- compass gravity


def nine_patch() -> Image.Image:
    """300x300: a 3x3 grid; the patch at column c, row r has colour PATCH[(c, r)]."""
    im = Image.new("RGB", (300, 300))
    for (column, row), colour in PATCH.items():
        im.paste(colour, (column * 100, row * 100, column * 100 + 100, row * 100 + 100))
    return im


PATCH = {(c, r): (c * 120, r * 120, 255 - 60 * (c + r)) for c in range(3) for r in range(3)}
# gravity -> the grid patch a 100x100 cover of a 300x300 image (no scaling) must show.
COMPASS = {"center": (1, 1), "north": (1, 0), "northeast": (2, 0), "east": (2, 1),
           "southeast": (2, 2), "south": (1, 2), "southwest": (0, 2), "west": (0, 1),
           "northwest": (0, 0)}


@pytest.mark.parametrize("gravity", sorted(COMPASS))
def test_compass_gravity_picks_the_patch(gravity: str) -> None:
    # The image is resized to 300x100 wide so one axis has no slack, then to a square crop.
    data = encode(nine_patch(), "PNG")
    result = make_thumbnail(data, ThumbnailOptions(100, 100, "png", "cover", None, gravity),
                            LIMITS)
    out = decode(result.data).convert("RGB")
    assert out.size == (100, 100)
    # 300x300 into 100x100 scales by 1/3, nothing cropped: every gravity shows the whole grid.
    assert out.getpixel((50, 50)) == PATCH[(1, 1)]
    wide = encode(nine_patch().resize((900, 300), Image.Resampling.NEAREST), "PNG")
    out = decode(make_thumbnail(wide, ThumbnailOptions(100, 100, "png", "cover", None, gravity),
                                LIMITS).data).convert("RGB")
    column = COMPASS[gravity][0]
    for row in range(3):
        # the crop is one patch column wide (300 px of 900), and all three rows high
        assert out.getpixel((50, row * 33 + 16)) == PATCH[(column, row)], (gravity, row)
    tall = encode(nine_patch().resize((300, 900), Image.Resampling.NEAREST), "PNG")
    out = decode(make_thumbnail(tall, ThumbnailOptions(100, 100, "png", "cover", None, gravity),
                                LIMITS).data).convert("RGB")
    row = COMPASS[gravity][1]
    for column in range(3):
        assert out.getpixel((column * 33 + 16, 50)) == PATCH[(column, row)], (gravity, column)


def test_gravity_is_ignored_by_contain() -> None:
    data = encode(nine_patch(), "PNG")
    outs = {make_thumbnail(data, ThumbnailOptions(150, 150, gravity=g), LIMITS).data
            for g in COMPASS}
    assert len(outs) == 1


# ---------------------------------------------------------------- make_thumbnails


def test_make_thumbnails_decodes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def counting(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        if self.tile:  # load() returns at once when there is nothing left to decode
            loads.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    im = Image.new("RGB", (1600, 1200), BLUE)
    im.paste(RED, (0, 0, 800, 600))
    data = encode(im, "JPEG", quality=95)
    asked = [
        ThumbnailOptions(100, 100, "png", "cover"),
        ThumbnailOptions(320, 320, "webp"),
        ThumbnailOptions(1024, 1024, "avif", quality=50),
    ]
    results = make_thumbnails(data, asked, LIMITS)
    assert len(loads) == 1
    # drafted for the largest output: 1024 wide needs the full 1600x1200 (no 1/2 scale fits)
    assert loads == [(1600, 1200)]
    assert [(r.content_type, r.width, r.height) for r in results] == [
        ("image/png", 100, 100), ("image/webp", 320, 240), ("image/avif", 1024, 768)]
    for result in results:
        out = decode(result.data).convert("RGB")
        assert out.size == (result.width, result.height)
        assert all(abs(a - b) < 30 for a, b in zip(out.getpixel((5, 5)), RED, strict=True))
        assert all(abs(a - b) < 30 for a, b in
                   zip(out.getpixel((out.width - 5, out.height - 5)), BLUE, strict=True))
        assert result.source.width == 1600 and result.encode_ms > 0


def test_make_thumbnails_counts_the_decode_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared decode's time is in the first result only: a clock that ticks 1 ms per
    reading, and a decode that takes 1 s of it, make that exact (no real timings)."""
    from thumbnails.core import imaging

    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            self.now += 0.001
            return self.now

    clock, decode = Clock(), imaging._decode

    def slow_decode(*args: object) -> object:
        clock.now += 1.0
        return decode(*args)

    monkeypatch.setattr(imaging, "time", clock)
    monkeypatch.setattr(imaging, "_decode", slow_decode)
    data = encode(Image.new("RGB", (1200, 900), GREEN), "PNG")
    first, second = make_thumbnails(
        data, [ThumbnailOptions(50, 50), ThumbnailOptions(60, 60)], LIMITS)
    alone = make_thumbnail(data, ThumbnailOptions(60, 60), LIMITS)
    # the shared decode is counted once, in the first result asked for
    assert first.decode_ms >= 1000 > 10 > second.decode_ms
    assert alone.decode_ms >= 1000


def test_make_thumbnails_needs_options() -> None:
    with pytest.raises(BadRequest):
        make_thumbnails(encode(Image.new("RGB", (4, 4)), "PNG"), [], LIMITS)
