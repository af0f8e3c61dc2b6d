"""Every image right: PNG colour type x bit depth x transparency x ICC profile x output format.

The inputs are written byte by byte (images.png_bytes) and the profiles too (icc.py), so the
samples, keys and profiles are exactly known; the expected sRGB values come from icc.py's
plain-Python colour maths, never from Pillow or LittleCMS. test_libvips_agrees_with_the_oracle
checks that oracle against libvips (which decodes PNG with its own loader).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import pytest
import pyvips
from PIL import Image

from tests.support.icc import display_p3_profile, grey_profile, grey_to_srgb, p3_to_srgb
from tests.support.images import banded, png_bytes
from thumbnails.core.imaging import OUTPUT_FORMATS, Limits, ThumbnailOptions, make_thumbnail

Expected = tuple[tuple[float, float, float], int]  # sRGB 0-255 (unrounded), alpha 0-255


@dataclass(frozen=True)
class Case:
    """A banded 64x16 PNG and what each of its four bands must look like in sRGB."""

    data: bytes
    bands: tuple[Expected, ...]


GREY_LEVELS = {1: [0, 1, 0, 1], 2: [0, 1, 2, 3], 4: [0, 5, 10, 15], 8: [0, 60, 200, 255],
               16: [0, 1000, 40000, 65535]}
COLOURS = [(200, 100, 50), (50, 100, 200), (255, 0, 0), (0, 0, 0)]
ALPHAS = [255, 128, 0, 255]
PALETTE = [(200, 100, 50), (50, 100, 200), (255, 0, 0), (0, 128, 0)]
PALETTE_ALPHA = [255, 128, 0]  # shorter than the palette: the last entry stays opaque


def _grey(level: float, profiled: bool) -> tuple[float, float, float]:
    value = grey_to_srgb(level) if profiled else level * 255
    return (value, value, value)


def _colour(rgb: tuple[int, int, int], profiled: bool) -> tuple[float, float, float]:
    return p3_to_srgb(rgb) if profiled else (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def grey_case(depth: int, keyed: bool, profiled: bool) -> Case:
    """Colour type 0; the key (if any) is the third band's level, so 1-bit keys two bands."""
    levels, top = GREY_LEVELS[depth], (1 << depth) - 1
    key = levels[2]
    data = png_bytes(banded([(v,) for v in levels]), depth, 0,
                     trns=struct.pack(">H", key) if keyed else None,
                     icc=grey_profile() if profiled else None)
    bands = tuple((_grey(v / top, profiled), 0 if keyed and v == key else 255) for v in levels)
    return Case(data, bands)


def rgb_case(depth: int, keyed: bool, profiled: bool) -> Case:
    """Colour type 2; the key is the third band's colour (pure red)."""
    scale = 257 if depth == 16 else 1
    samples = [tuple(c * scale for c in colour) for colour in COLOURS]
    data = png_bytes(banded(samples), depth, 2,
                     trns=struct.pack(">3H", *samples[2]) if keyed else None,
                     icc=display_p3_profile() if profiled else None)
    bands = tuple((_colour(colour, profiled), 0 if keyed and i == 2 else 255)
                  for i, colour in enumerate(COLOURS))
    return Case(data, bands)


def palette_case(depth: int, alpha: bool, profiled: bool) -> Case:
    """Colour type 3; tRNS gives palette alphas (1-bit: two entries, alphas 128 and 0)."""
    entries = PALETTE[:2] if depth == 1 else PALETTE
    indices = [0, 1, 0, 1] if depth == 1 else [0, 1, 2, 3]
    alphas = [128, 0] if depth == 1 else PALETTE_ALPHA
    data = png_bytes(banded([(i,) for i in indices]), depth, 3, palette=entries,
                     trns=bytes(alphas) if alpha else None,
                     icc=display_p3_profile() if profiled else None)
    bands = tuple((_colour(entries[i], profiled),
                   (alphas[i] if i < len(alphas) else 255) if alpha else 255) for i in indices)
    return Case(data, bands)


def grey_alpha_case(depth: int, profiled: bool) -> Case:
    """Colour type 4: grey levels 0, 60, 200, 255 (8-bit scale) with alphas ALPHAS."""
    scale = 257 if depth == 16 else 1
    levels = [0, 60, 200, 255]
    data = png_bytes(banded([(v * scale, a * scale) for v, a in zip(levels, ALPHAS, strict=True)]),
                     depth, 4, icc=grey_profile() if profiled else None)
    return Case(data, tuple((_grey(v / 255, profiled), a)
                            for v, a in zip(levels, ALPHAS, strict=True)))


def rgba_case(depth: int, profiled: bool) -> Case:
    """Colour type 6: COLOURS with alphas ALPHAS."""
    scale = 257 if depth == 16 else 1
    samples = [tuple(c * scale for c in (*colour, a)) for colour, a in zip(COLOURS, ALPHAS,
                                                                           strict=True)]
    data = png_bytes(banded(samples), depth, 6, icc=display_p3_profile() if profiled else None)
    return Case(data, tuple((_colour(colour, profiled), a)
                            for colour, a in zip(COLOURS, ALPHAS, strict=True)))


def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for profiled in (False, True):
        icc_name = "icc" if profiled else "noicc"
        for depth in (1, 2, 4, 8, 16):
            for keyed in (False, True):
                cases[f"grey{depth}-{'key' if keyed else 'opaque'}-{icc_name}"] = grey_case(
                    depth, keyed, profiled)
        for depth in (8, 16):
            for keyed in (False, True):
                cases[f"rgb{depth}-{'key' if keyed else 'opaque'}-{icc_name}"] = rgb_case(
                    depth, keyed, profiled)
            cases[f"greyalpha{depth}-alpha-{icc_name}"] = grey_alpha_case(depth, profiled)
            cases[f"rgba{depth}-alpha-{icc_name}"] = rgba_case(depth, profiled)
        for depth in (1, 2, 4, 8):
            for alpha in (False, True):
                cases[f"palette{depth}-{'alpha' if alpha else 'opaque'}-{icc_name}"] = (
                    palette_case(depth, alpha, profiled))
    return cases


CASES = _cases()
# Per output format: encoder quality, and how far a channel may land from the expected value
# (lossless PNG: LittleCMS's 8-bit rounding; the lossy formats: their own loss on flat colour).
OUTPUTS = {"png": (None, 2), "jpeg": (95, 4), "webp": (95, 5), "avif": (90, 6)}


def expected_pixel(expected: Expected, output: str) -> tuple[float, float, float, float]:
    """What a browser shows: alpha kept, or, in JPEG (no alpha), composited on white."""
    (r, g, b), alpha = expected
    if output == "jpeg":
        mix = alpha / 255
        return (r * mix + 255 * (1 - mix), g * mix + 255 * (1 - mix), b * mix + 255 * (1 - mix),
                255)
    return (r, g, b, alpha)


def band_pixels(data: bytes) -> list[tuple[int, int, int, int]]:
    """The RGBA pixel at the centre of each of the four bands of a 64x16 output."""
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.size == (64, 16)
    rgba = im.convert("RGBA")
    return [rgba.getpixel((16 * i + 8, 8)) for i in range(4)]  # type: ignore[misc]


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_matrix(name: str, output: str) -> None:
    case = CASES[name]
    quality, tolerance = OUTPUTS[output]
    options = ThumbnailOptions(64, 64, output, quality=quality)
    result = make_thumbnail(case.data, options, Limits())
    assert result.content_type == OUTPUT_FORMATS[output][1]
    for band, (actual, expected) in enumerate(zip(band_pixels(result.data), case.bands,
                                                  strict=True)):
        want = expected_pixel(expected, output)
        alpha_tolerance = 0 if output in ("png", "webp") else tolerance
        assert abs(actual[3] - want[3]) <= alpha_tolerance, (band, actual, want)
        if want[3] == 0:
            continue  # a fully transparent pixel has no colour to show
        # a half-transparent pixel's colour is stored less exactly by the lossy encoders
        slack = tolerance if want[3] == 255 or output == "png" else 2 * tolerance
        assert all(abs(a - w) <= slack for a, w in zip(actual[:3], want[:3], strict=True)), (
            band, actual, want)


def test_the_matrix_covers_every_png_kind() -> None:
    """Colour types 0, 2, 3, 4, 6 at every depth the spec allows for each, with and without
    transparency and a profile: 52 inputs, each through 4 output formats."""
    kinds = {(data[24], data[25]) for data in (case.data for case in CASES.values())}
    assert kinds == {(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3),
                     (4, 3), (8, 3), (8, 4), (16, 4), (8, 6), (16, 6)}
    assert len(CASES) == 52


@pytest.mark.parametrize("name", sorted(CASES))
def test_libvips_agrees_with_the_oracle(name: str) -> None:
    """libvips (its own PNG loader, LittleCMS for ICC) shows each input as the oracle says."""
    case = CASES[name]
    image = pyvips.Image.new_from_buffer(case.data, "")
    if image.get_typeof("icc-profile-data"):
        image = image.icc_transform("srgb", embedded=True, intent="perceptual")
    image = image.colourspace("srgb")
    if image.format != "uchar":
        image = (image / 257).cast("uchar") if image.format == "ushort" else image.cast("uchar")
    if not image.hasalpha():
        image = image.bandjoin(255)
    for band, expected in enumerate(case.bands):
        pixel = image(16 * band + 8, 8)
        (r, g, b), alpha = expected
        assert abs(pixel[3] - alpha) <= 1, (band, pixel, expected)
        if alpha:
            assert all(abs(p - w) <= 1.5 for p, w in zip(pixel[:3], (r, g, b), strict=True)), (
                band, pixel, expected)
