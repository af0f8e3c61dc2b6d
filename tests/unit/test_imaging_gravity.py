"""Issue 10, section 3: gravity=smart keeps an off-centre subject that gravity=center cuts.

Scenes are generated: a smooth or faintly noisy backdrop and one subject of a known colour
set at a known place, so the thumbnail can be checked by counting the subject's pixels.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import pytest
from PIL import Image, ImageDraw

from thumbnails.core.imaging import Limits, ThumbnailOptions, make_thumbnail
from thumbnails.core.saliency import best_offset

SKIN = (224, 172, 138)
Scene = tuple[Image.Image, Callable[[tuple[int, ...]], bool]]


def backdrop(size: tuple[int, int]) -> Image.Image:
    """A soft blue-grey gradient with faint noise: what a wall or a sky looks like."""
    ramp = Image.linear_gradient("L").resize(size).point(lambda v: 110 + v // 5)
    tinted = Image.merge("RGB", (ramp.point(lambda v: v - 10), ramp, ramp.point(lambda v: v + 12)))
    noise = Image.effect_noise(size, 40).convert("RGB")
    return Image.blend(tinted, noise, 0.06)


def checkerboard_scene(size: tuple[int, int], box: tuple[int, int, int, int]) -> Scene:
    """A black-and-white checkerboard (all edges, no colour) on the backdrop."""
    im = backdrop(size)
    draw = ImageDraw.Draw(im)
    left, top, right, bottom = box
    step = 10
    for y in range(top, bottom, step):
        for x in range(left, right, step):
            black = ((x - left) // step + (y - top) // step) % 2 == 0
            draw.rectangle((x, y, min(x + step, right) - 1, min(y + step, bottom) - 1),
                           fill=(0, 0, 0) if black else (255, 255, 255))
    return im, lambda p: max(p[:3]) < 45 or min(p[:3]) > 215


def colour_scene(size: tuple[int, int], box: tuple[int, int, int, int]) -> Scene:
    """A saturated red disc (smooth: colour is its only cue) on the backdrop."""
    im = backdrop(size)
    ImageDraw.Draw(im).ellipse(box, fill=(230, 30, 40))
    return im, lambda p: p[0] > 180 and p[1] < 90 and p[2] < 90


def face_scene(size: tuple[int, int], box: tuple[int, int, int, int]) -> Scene:
    """A skin-toned oval with two dark eyes and a mouth on the backdrop."""
    im = backdrop(size)
    draw = ImageDraw.Draw(im)
    draw.ellipse(box, fill=SKIN)
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    for cx in (left + w * 0.33, left + w * 0.67):
        draw.ellipse((cx - w * 0.06, top + h * 0.35, cx + w * 0.06, top + h * 0.45), fill=(40,) * 3)
    draw.rectangle((left + w * 0.35, top + h * 0.7, left + w * 0.65, top + h * 0.74),
                   fill=(150, 60, 60))
    return im, lambda p: all(abs(a - b) <= 30 for a, b in zip(p[:3], SKIN, strict=True))


def cutout_scene(size: tuple[int, int], box: tuple[int, int, int, int]) -> Scene:
    """A green square on a transparent canvas whose hidden colours are loud noise: what is
    transparent must not count, however busy its colour channels."""
    rng = random.Random(3)
    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    im = noise.convert("RGBA")
    im.putalpha(0)
    im.paste((40, 200, 60, 255), box)
    return im, lambda p: p[3] > 200 and p[1] > 150 and p[0] < 100


SCENES = {"checkerboard": checkerboard_scene, "colour": colour_scene, "face": face_scene,
          "cutout": cutout_scene}
# (image size, subject box): subjects off centre but not at the edge, both axes.
PLACES = {
    "left": ((900, 300), (80, 75, 230, 225)),
    "right": ((900, 300), (640, 60, 790, 210)),
    "top": ((300, 900), (70, 90, 220, 240)),
    "bottom": ((300, 900), (90, 650, 240, 800)),
}


def subject_pixels(data: bytes, is_subject: Callable[[tuple[int, ...]], bool]) -> int:
    im = Image.open(io.BytesIO(data)).convert("RGBA")
    return sum(1 for p in im.get_flattened_data() if is_subject(p))  # type: ignore[arg-type]


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("scene", sorted(SCENES))
def test_smart_keeps_the_subject_that_center_cuts(scene: str, place: str) -> None:
    size, box = PLACES[place]
    im, is_subject = SCENES[scene](size, box)
    data = _png(im)
    whole = subject_pixels(make_thumbnail(data, ThumbnailOptions(300, 300), Limits()).data,
                           is_subject)  # the whole image at 1/3 scale: every subject pixel
    assert whole > 1000

    def kept(gravity: str) -> int:
        options = ThumbnailOptions(100, 100, "png", "cover", None, gravity)
        return subject_pixels(make_thumbnail(data, options, Limits()).data, is_subject)

    # 100x100 from 900x300 is a 300x300 window at 1/3 scale: the same pixel scale as `whole`.
    assert kept("center") < 0.2 * whole
    assert kept("smart") > 0.9 * whole


def _png(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG", compress_level=1)
    return out.getvalue()


def test_smart_on_a_featureless_image_is_the_centre_crop() -> None:
    data = _png(Image.new("RGB", (900, 300), (120, 130, 140)))
    smart = make_thumbnail(data, ThumbnailOptions(100, 100, "png", "cover", None, "smart"),
                           Limits())
    center = make_thumbnail(data, ThumbnailOptions(100, 100, "png", "cover"), Limits())
    assert smart.data == center.data


def test_smart_without_slack_is_the_whole_image() -> None:
    im, _ = colour_scene((300, 300), (10, 10, 60, 60))
    options = [ThumbnailOptions(100, 100, "png", "cover", None, g) for g in ("smart", "center")]
    smart, center = (make_thumbnail(_png(im), o, Limits()).data for o in options)
    assert smart == center


@pytest.mark.parametrize(
    ("scores", "window", "expected"),
    [
        ([0, 0, 0, 9, 9, 0, 0, 0, 0, 0], 2, 3 / 8),
        ([9, 0, 0, 0, 0, 0], 3, 0.0),
        ([0, 0, 0, 0, 0, 9], 3, 1.0),
        ([1, 1, 1, 1, 1, 1], 2, 0.5),  # a tie goes to the centre
        ([5, 5], 2, 0.5),  # no slack
        ([1, 2, 3], 7.5, 0.5),
    ],
)
def test_best_offset(scores: list[float], window: float, expected: float) -> None:
    assert best_offset(scores, window) == pytest.approx(expected)
