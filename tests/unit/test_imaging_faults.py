"""Issue 10, section 1: the four reported faults, and their kinds outside the PNG matrix.

Expected values come from how the inputs were written (images.py, by hand where Pillow
would hide the fault) and from icc.py's colour maths; libvips cross-checks where it can.
"""

from __future__ import annotations

import io
import random
import struct

import pytest
import pyvips
from PIL import Image

from tests.support.icc import (
    CMYK_CORNERS,
    cmyk_profile,
    display_p3_profile,
    grey_profile,
    grey_to_srgb,
    p3_to_srgb,
    srgb_encode,
    srgb_profile,
)
from tests.support.images import (
    BLUE,
    GREEN,
    RED,
    WHITE,
    apng,
    banded,
    encode,
    gif_small_first_frame,
    png_bytes,
    webp_animation,
)
from thumbnails.core.colour import to_srgb
from thumbnails.core.errors import ImageTooLarge, InvalidImage
from thumbnails.core.imaging import Limits, ThumbnailOptions, make_thumbnail

LIMITS = Limits()


def thumb(data: bytes, output: str = "png", size: int = 400, quality: int | None = None,
          ) -> Image.Image:
    """The thumbnail (fit=contain in a size x size box, so small inputs keep their size)."""
    options = ThumbnailOptions(size, size, output, quality=quality)
    im = Image.open(io.BytesIO(make_thumbnail(data, options, LIMITS).data))
    im.load()
    return im


def rgba(im: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int, int]:
    return im.convert("RGBA").getpixel(xy)  # type: ignore[return-value]


def near(actual: tuple[float, ...], expected: tuple[float, ...], tolerance: float) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# ---------------------------------------------------------------- the four reported faults


def test_two_bit_grey_with_a_trns_key() -> None:
    """48x16, stripes at grey levels 0, 2 and 3 of 3, tRNS grey = 2 (the raw 2-bit key)."""
    data = png_bytes(banded([(0,), (2,), (3,)]), 2, 0, trns=struct.pack(">H", 2))
    png = thumb(data)
    assert png.size == (48, 16)
    assert rgba(png, (8, 8)) == (0, 0, 0, 255)
    assert rgba(png, (24, 8))[3] == 0  # the keyed stripe: transparent, not opaque grey 170
    assert rgba(png, (40, 8)) == (255, 255, 255, 255)
    jpeg = thumb(data, "jpeg", quality=95)
    assert near(rgba(jpeg, (24, 8)), (*WHITE, 255), 3)  # on white, as browsers show it
    assert near(rgba(jpeg, (8, 8)), (0, 0, 0, 255), 3)


@pytest.mark.parametrize("profile", [None, "srgb"])
def test_rgb_trns_key_with_and_without_an_srgb_iccp(profile: str | None) -> None:
    """Left half blue, right half red; tRNS key = red. The ICC path must keep the key."""
    data = png_bytes(banded([BLUE, RED], band_width=32), 8, 2, trns=struct.pack(">3H", *RED),
                     icc=srgb_profile() if profile else None)
    png = thumb(data)
    assert near(rgba(png, (16, 8)), (*BLUE, 255), 1)
    assert rgba(png, (48, 8))[3] == 0
    assert near(rgba(thumb(data, "jpeg", quality=95), (48, 8)), (*WHITE, 255), 3)


def test_palette_tagged_display_p3() -> None:
    """Entries (200,100,50) and (50,100,200) in Display P3 are about (215,93,31) and
    (26,102,207) in sRGB (issue 10, "libvips agrees to within 1")."""
    data = png_bytes(banded([(0,), (1,)]), 8, 3, palette=[(200, 100, 50), (50, 100, 200)],
                     icc=display_p3_profile())
    png = thumb(data)
    for x, entry, reported in ((8, (200, 100, 50), (215, 93, 31)),
                               (24, (50, 100, 200), (26, 102, 207))):
        pixel = rgba(png, (x, 8))
        assert near(pixel[:3], reported, 1), pixel
        assert near(pixel[:3], p3_to_srgb(entry), 1), pixel
    vips = pyvips.Image.new_from_buffer(data, "").icc_transform("srgb", embedded=True)
    assert near(tuple(vips(8, 8)), rgba(png, (8, 8))[:3], 1)


def noisy_jpeg(size: tuple[int, int] = (400, 300), **params: object) -> bytes:
    rng = random.Random(10)
    noisy = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    data = encode(noisy.resize((size[0] * 2, size[1] * 2)).resize(size), "JPEG", **params)
    assert data.endswith(b"\xff\xd9")
    return data


JPEG_KINDS = {
    "baseline": {},
    "progressive": {"progressive": True},
    "restart-markers": {"restart_marker_rows": 1},
    "grey": {},
}


def _jpeg(kind: str) -> bytes:
    if kind == "grey":
        noisy = Image.open(io.BytesIO(noisy_jpeg())).convert("L")
        return encode(noisy, "JPEG")
    return noisy_jpeg(**JPEG_KINDS[kind])  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [400, 60])  # 60: drafted (decoded at 1/4 scale)
@pytest.mark.parametrize("kind", sorted(JPEG_KINDS))
def test_complete_jpeg_missing_only_its_eoi_is_shown_whole(kind: str, size: int) -> None:
    data = _jpeg(kind)
    whole = thumb(data, size=size)
    missing_eoi = thumb(data[:-2], size=size)
    assert missing_eoi.size == whole.size
    assert missing_eoi.tobytes() == whole.tobytes()


@pytest.mark.parametrize("kind", sorted(JPEG_KINDS))
@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99, -3, -4, -12])
def test_really_truncated_jpeg_still_fails(kind: str, cut: float) -> None:
    data = _jpeg(kind)
    end = int(len(data) * cut) if cut > 0 else len(data) + int(cut)
    with pytest.raises(InvalidImage) as caught:
        make_thumbnail(data[:end], ThumbnailOptions(), LIMITS)
    assert type(caught.value) is InvalidImage and caught.value.status == 422


# ---------------------------------------------------------------- ICC in every mode


def _cmyk_patches() -> Image.Image:
    """The 16 CMYK corners of the test profile's grid, one 8x8 patch each, in a row."""
    im = Image.new("CMYK", (128, 8))
    for i, corner in enumerate(sorted(CMYK_CORNERS)):
        im.paste(corner, (8 * i, 0, 8 * i + 8, 8))
    return im


@pytest.mark.parametrize(("fmt", "tolerance"), [("TIFF", 1), ("JPEG", 6)])
def test_cmyk_with_a_profile(fmt: str, tolerance: int) -> None:
    data = encode(_cmyk_patches(), fmt, icc_profile=cmyk_profile(),
                  **({"quality": 98} if fmt == "JPEG" else {}))
    out = thumb(data)
    assert out.mode == "RGB"
    for i, corner in enumerate(sorted(CMYK_CORNERS)):
        assert near(out.getpixel((8 * i + 4, 4)), CMYK_CORNERS[corner], tolerance), corner


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("PNG", {}), ("TIFF", {}), ("JPEG", {"quality": 98}), ("WEBP", {"lossless": True}),
     ("AVIF", {"quality": 100})],
)
def test_rgb_tagged_display_p3_in_every_container(fmt: str, params: dict) -> None:
    colours = [(200, 100, 50), (50, 100, 200), (20, 220, 90), (255, 255, 255)]
    im = Image.new("RGB", (64, 16))
    for i, colour in enumerate(colours):
        im.paste(colour, (16 * i, 0, 16 * i + 16, 16))
    # What the lossy codecs keep of the P3 values, read back without any colour management:
    # the profile must then map exactly those to sRGB.
    stored = Image.open(io.BytesIO(encode(im, fmt, **params))).convert("RGB")
    out = thumb(encode(im, fmt, icc_profile=display_p3_profile(), **params))
    for i, colour in enumerate(colours):
        kept = stored.getpixel((16 * i + 8, 8))
        assert near(kept, colour, 0 if fmt in ("PNG", "TIFF", "WEBP") else 4), (kept, colour)
        assert near(rgba(out, (16 * i + 8, 8))[:3], p3_to_srgb(kept), 1.5), colour


@pytest.mark.parametrize(("fmt", "mode"), [("TIFF", "L"), ("JPEG", "L"), ("TIFF", "LA"),
                                            ("PNG", "LA"), ("TIFF", "I;16")])
def test_grey_modes_with_a_grey_profile(fmt: str, mode: str) -> None:
    levels = [0.0, 0.25, 0.6, 1.0]
    im = Image.new(mode, (64, 16))
    top = 65535 if mode == "I;16" else 255
    for i, level in enumerate(levels):
        value = round(level * top)
        band = Image.new(mode, (16, 16), value if mode != "LA" else (value, 200))
        im.paste(band, (16 * i, 0))  # (pasting a bare value into I;16 writes 0)
    out = thumb(encode(im, fmt, icc_profile=grey_profile()))
    assert out.mode == ("LA" if mode == "LA" else "L")
    for i, level in enumerate(levels):
        pixel = rgba(out, (16 * i + 8, 8))
        expected = grey_to_srgb(round(level * top) / top)
        assert abs(pixel[0] - expected) <= (3 if fmt == "JPEG" else 1.5), (level, pixel)
        assert pixel[3] == (200 if mode == "LA" else 255)


def test_a_profile_for_another_colour_space_is_ignored() -> None:
    """A grey profile on RGB pixels (or an RGB one on grey) describes nothing: sRGB assumed."""
    rgb = encode(Image.new("RGB", (16, 16), (200, 100, 50)), "PNG", icc_profile=grey_profile())
    assert rgba(thumb(rgb), (8, 8)) == (200, 100, 50, 255)
    grey = encode(Image.new("L", (16, 16), 77), "PNG", icc_profile=display_p3_profile())
    assert rgba(thumb(grey), (8, 8)) == (77, 77, 77, 255)


GAMMA_SAMPLES = [(0, 0, 0), (128, 128, 128), (200, 100, 50), (255, 255, 255)]


def gamma_png(colour_type: int, gamma: int | None, **chunks: object) -> bytes:
    """Four bands of GAMMA_SAMPLES as grey (the first sample), RGB, palette or RGBA."""
    if colour_type == 0:
        return png_bytes(banded([(c[0],) for c in GAMMA_SAMPLES]), 8, 0, gamma=gamma,
                         **chunks)  # type: ignore[arg-type]
    if colour_type == 3:
        return png_bytes(banded([(i,) for i in range(4)]), 8, 3, palette=GAMMA_SAMPLES,
                         gamma=gamma, **chunks)  # type: ignore[arg-type]
    samples = [c + (255,) if colour_type == 6 else c for c in GAMMA_SAMPLES]
    return png_bytes(banded(samples), 8, colour_type, gamma=gamma, **chunks)  # type: ignore


@pytest.mark.parametrize("colour_type", [0, 2, 3, 6])
@pytest.mark.parametrize("gamma", [100000, 55556, 50000, 40000])
def test_png_gama_is_converted_to_srgb(colour_type: int, gamma: int) -> None:
    """gAMA alone describes the samples: v ** (100000 / gAMA) is linear light."""
    out = thumb(gamma_png(colour_type, gamma))
    for i, colour in enumerate(GAMMA_SAMPLES):
        sample = colour if colour_type else (colour[0],) * 3
        expected = tuple(255 * srgb_encode((c / 255) ** (100000 / gamma)) for c in sample)
        assert near(rgba(out, (16 * i + 8, 8))[:3], expected, 1), (colour, expected)


@pytest.mark.parametrize(("gamma", "srgb"), [(45455, False), (47000, False), (43500, False),
                                             (55556, True), (None, False)],
                         ids=["1/2.2", "0.47", "0.435", "with-sRGB-chunk", "no-gAMA"])
def test_png_gama_near_srgb_or_overridden_keeps_samples(gamma: int | None, srgb: bool) -> None:
    out = thumb(gamma_png(2, gamma, srgb=srgb))
    for i, colour in enumerate(GAMMA_SAMPLES):
        assert rgba(out, (16 * i + 8, 8))[:3] == colour


def test_png_iccp_takes_precedence_over_gama() -> None:
    out = thumb(png_bytes(banded(GAMMA_SAMPLES), 8, 2, gamma=55556, icc=srgb_profile()))
    for i, colour in enumerate(GAMMA_SAMPLES):
        assert near(rgba(out, (16 * i + 8, 8))[:3], colour, 1)


# ---------------------------------------------------------------- animation canvases


@pytest.mark.parametrize("transparency", [None, 1])
def test_gif_first_frame_smaller_than_its_canvas(transparency: int | None) -> None:
    """Browsers show the canvas outside the first frame as transparent, not as the
    background colour (green here) that Pillow paints."""
    data = gif_small_first_frame((64, 64), (32, 32, 16, 16), transparency)
    png = thumb(data)
    assert png.size == (64, 64)
    assert rgba(png, (40, 40)) == (*RED, 255)
    for xy in ((0, 0), (63, 63), (20, 40), (50, 40), (40, 20), (40, 50)):
        assert rgba(png, xy)[3] == 0, xy
    jpeg = thumb(data, "jpeg", quality=95)
    assert near(rgba(jpeg, (4, 4)), (*WHITE, 255), 3)  # (4, 4): no red in its 16x16 MCU
    assert near(rgba(jpeg, (40, 40)), (*RED, 255), 8)


@pytest.mark.parametrize("alpha_flag", [False, True])
def test_animated_webp_frame_smaller_than_its_canvas(alpha_flag: bool) -> None:
    """Without the VP8X alpha flag the uncovered canvas is still transparent (libvips agrees);
    Pillow alone decodes it as opaque black."""
    data = webp_animation((40, 40), (10, 10, 20, 20), alpha_flag)
    vips = pyvips.Image.new_from_buffer(data, "")
    assert vips.bands == 4 and vips(0, 0)[3] == 0 and vips(20, 20) == [*RED, 255]
    png = thumb(data)
    assert rgba(png, (20, 20)) == (*RED, 255)
    assert rgba(png, (0, 0))[3] == 0 and rgba(png, (39, 39))[3] == 0


def test_animated_webp_covering_its_canvas_stays_opaque() -> None:
    png = thumb(webp_animation((40, 40), (0, 0, 40, 40), alpha_flag=False, colour=BLUE))
    assert png.mode == "RGB"
    assert png.getpixel((0, 0)) == BLUE


@pytest.mark.parametrize(("default_in_animation", "first"), [(True, RED), (False, GREEN)])
def test_apng_shows_its_first_animation_frame(default_in_animation: bool,
                                              first: tuple[int, int, int]) -> None:
    """A default image outside the animation is for viewers without APNG support; browsers
    show the animation's first frame (test_imaging_browser checks Chromium does)."""
    out = thumb(apng(default_in_animation))
    assert rgba(out, (20, 15)) == (*first, 255)


# ---------------------------------------------------------------- slightly malformed files


def test_png_without_iend_is_shown() -> None:
    data = png_bytes(banded([(10, 20, 30), (200, 100, 50)]), 8, 2, iend=False)
    assert not data.endswith(b"IEND\xaeB`\x82")
    out = thumb(data)
    assert rgba(out, (8, 8)) == (10, 20, 30, 255) and rgba(out, (24, 8)) == (200, 100, 50, 255)


def test_gif_without_its_trailer_is_shown() -> None:
    data = gif_small_first_frame((20, 20), (0, 0, 20, 20))
    assert data.endswith(b";")
    assert rgba(thumb(data[:-1]), (10, 10)) == (*RED, 255)


def test_jpeg_with_bytes_after_eoi_is_shown() -> None:
    data = noisy_jpeg()
    assert thumb(data + b"\x00" * 100 + b"trailing junk").tobytes() == thumb(data).tobytes()


def test_jpeg_eoi_repair_keeps_the_pixel_limit() -> None:
    data = noisy_jpeg()[:-2]
    with pytest.raises(ImageTooLarge):
        make_thumbnail(data, ThumbnailOptions(), Limits(max_pixels=1000))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_profile_applied_after_a_large_reduction(fmt: str) -> None:
    """The profile is applied to the thumbnail, not to the full-size decode (for speed): flat
    areas come out as the oracle says all the same."""
    colours = [(200, 100, 50), (50, 100, 200), (20, 220, 90), (255, 255, 255)]
    im = Image.new("RGB", (1600, 400))
    for i, colour in enumerate(colours):
        im.paste(colour, (400 * i, 0, 400 * i + 400, 400))
    params = {"quality": 98} if fmt == "JPEG" else {}
    stored = Image.open(io.BytesIO(encode(im, fmt, **params))).convert("RGB")
    out = thumb(encode(im, fmt, icc_profile=display_p3_profile(), **params), size=100)
    assert out.size == (100, 25)
    for i in range(4):
        kept = stored.getpixel((400 * i + 200, 200))
        assert near(rgba(out, (25 * i + 12, 12))[:3], p3_to_srgb(kept), 1.5), colours[i]


@pytest.mark.parametrize(("mode", "key"), [("RGB", (255, 0, 0)), ("L", (7,)), ("I;16", (7,))])
def test_to_srgb_leaves_its_input_alone(mode: str, key: tuple[int, ...]) -> None:
    im = Image.new(mode, (4, 4), key if mode == "RGB" else key[0])
    before = (im.mode, im.tobytes())
    out = to_srgb(im, key)
    assert (im.mode, im.tobytes()) == before
    assert out.mode in ("LA", "RGBA") and out.getchannel("A").getextrema() == (0, 0)
