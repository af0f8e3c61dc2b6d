"""What a browser shows: Chromium's decoding (its own PNG, GIF, WebP and JPEG decoders and
its colour management, skcms) of the same inputs, as the oracle the issue names.

Each input is drawn on an sRGB canvas at its natural size and the canvas read back; the
pixels must agree with the plain-Python oracle of test_imaging_matrix (for the PNG matrix)
and with what make_thumbnail gives (for the animation canvases and the malformed files).
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.images import (
    apng,
    banded,
    encode,
    gif_small_first_frame,
    marked,
    png_bytes,
    webp_animation,
)
from tests.unit.test_imaging_matrix import CASES
from thumbnails.core.imaging import Limits, ThumbnailOptions, make_thumbnail

pytestmark = pytest.mark.browser

BANDS = [(16 * i + 8, 8) for i in range(4)]
DRAW = """
const [data, type, points, done] = [arguments[0], arguments[1], arguments[2], arguments[3]];
const image = new Image();
image.onerror = () => done(null);
image.onload = () => {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d", {colorSpace: "srgb"});
  context.drawImage(image, 0, 0);
  done({size: [canvas.width, canvas.height],
        pixels: points.map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data))});
};
image.src = `data:${type};base64,${data}`;
"""


def shown(browser: WebDriver, data: bytes, mime: str, points: list[tuple[int, int]]
          ) -> tuple[tuple[int, int], list[tuple[int, ...]]] | None:
    """(size, RGBA at each point) as Chromium draws the image; None if it cannot."""
    answer = browser.execute_async_script(DRAW, base64.b64encode(data).decode(), mime,
                                          [list(p) for p in points])
    if answer is None:
        return None
    return tuple(answer["size"]), [tuple(p) for p in answer["pixels"]]  # type: ignore[return-value]


def ours(data: bytes, points: list[tuple[int, int]]) -> list[tuple[int, ...]]:
    """RGBA at each point of make_thumbnail's PNG, at the input's own size."""
    result = make_thumbnail(data, ThumbnailOptions(1024, 1024), Limits())
    im = Image.open(io.BytesIO(result.data)).convert("RGBA")
    return [im.getpixel(p) for p in points]  # type: ignore[misc]


def near(a: tuple[float, ...], b: tuple[float, ...], tolerance: float) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_chromium_agrees_with_the_oracle(browser: WebDriver, name: str) -> None:
    case = CASES[name]
    seen = shown(browser, case.data, "image/png", BANDS)
    assert seen is not None and seen[0] == (64, 16)
    for pixel, ((r, g, b), alpha) in zip(seen[1], case.bands, strict=True):
        assert abs(pixel[3] - alpha) <= 1, (pixel, alpha)
        if alpha == 255:  # the canvas keeps premultiplied colour: exact only when opaque
            assert near(pixel[:3], (r, g, b), 2), (pixel, (r, g, b))


def _cmyk_bands() -> Image.Image:
    im = Image.new("CMYK", (64, 16))
    for i, ink in enumerate([(100, 0, 0, 100), (0, 200, 50, 0), (30, 60, 90, 120),
                             (255, 255, 0, 0)]):
        im.paste(ink, (16 * i, 0, 16 * i + 16, 16))
    return im


@pytest.mark.parametrize(
    ("name", "data", "mime", "points"),
    [
        ("gif-small-first-frame", gif_small_first_frame((64, 64), (32, 32, 16, 16)),
         "image/gif", [(0, 0), (40, 40), (20, 40), (63, 63)]),
        ("gif-small-first-frame-keyed", gif_small_first_frame((64, 64), (32, 32, 16, 16), 1),
         "image/gif", [(0, 0), (40, 40)]),
        ("webp-no-alpha-flag", webp_animation((40, 40), (10, 10, 20, 20), False),
         "image/webp", [(0, 0), (20, 20), (39, 39)]),
        ("webp-covering", webp_animation((40, 40), (0, 0, 40, 40), False), "image/webp",
         [(0, 0), (20, 20)]),
        ("jpeg-cmyk-no-profile", encode(_cmyk_bands(), "JPEG", quality=98), "image/jpeg",
         BANDS),
        ("apng-default-in-animation", apng(True), "image/png", [(20, 15)]),
        *[(f"png-gama-{gamma}", png_bytes(banded([(0, 0, 0), (128, 128, 128), (200, 100, 50),
                                                  (255, 255, 255)]), 8, 2, gamma=gamma),
           "image/png", BANDS) for gamma in (100000, 55556, 50000, 45455, 40000)],
        ("apng-default-outside-animation", apng(False), "image/png", [(20, 15)]),
    ],
)
def test_chromium_agrees_on_canvases_and_gamma(browser: WebDriver, name: str, data: bytes,
                                               mime: str, points: list[tuple[int, int]]
                                               ) -> None:
    seen = shown(browser, data, mime, points)
    assert seen is not None
    for theirs, mine in zip(seen[1], ours(data, points), strict=True):
        assert theirs[3] == mine[3], (name, theirs, mine)
        if mine[3]:
            assert near(theirs, mine, 2), (name, theirs, mine)


def test_chromium_shows_a_jpeg_missing_its_eoi_as_we_do_above_its_last_mcu_row(
        browser: WebDriver) -> None:
    """Chromium (Debian's, drawn to a canvas) shows such a file but for its last row of
    MCUs, which its suspending decoder still waits for; we show that row too, as libvips
    does. Everything Chromium draws agrees with our thumbnail."""
    noisy = Image.effect_noise((96, 64), 60).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "JPEG", quality=90)  # 4:2:0: 16x16 MCUs, the last row is y 48-63
    data = out.getvalue()[:-2]
    points = [(5, 5), (50, 30), (95, 44), (0, 40)]  # (fancy upsampling holds back row 47)
    seen = shown(browser, data, "image/jpeg", points + [(50, 60)])
    assert seen is not None and seen[0] == (96, 64)
    assert seen[1][-1][3] == 0  # the last MCU row: not drawn by Chromium
    for theirs, mine in zip(seen[1][:-1], ours(data, points), strict=True):
        assert near(theirs, mine, 3), (theirs, mine)  # two JPEG decoders' IDCTs


def test_chromium_orients_avif_as_we_do(browser: WebDriver) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Pillow's AVIF writer turns it into irot/imir, which browsers apply
    data = encode(marked((80, 40)), "AVIF", quality=95, exif=exif.tobytes())
    points = [(5, 5), (34, 5), (5, 74), (34, 74)]
    seen = shown(browser, data, "image/avif", points)
    assert seen is not None and seen[0] == (40, 80)
    for theirs, mine in zip(seen[1], ours(data, points), strict=True):
        assert near(theirs, mine, 12), (theirs, mine)
