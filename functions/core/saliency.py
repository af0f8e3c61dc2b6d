"""Where the subject is: the crop window of gravity=smart. Pure, no I/O.

The measure is libvips' "attention" (the smart crop sharp and imgproxy use too), simplified:
edges (a subject has detail; backgrounds, sky and bokeh are smooth), saturation (subjects
are more colourful than the backdrop), and skin-like tones (people are the usual subject).
An entropy measure was the other candidate; it rewards any texture, so grass, gravel or
sensor noise pull the window as hard as a subject does, and edges plus colour keep that
down. Each cue is normalised to its own maximum, so a cue that is the same everywhere (a
saturated blue sky) adds nothing anywhere, and a cue too weak to be signal (under
_FLOOR) is not amplified into one.

It runs on a copy at most _SIDE pixels on its long side, reduced to one mean per column
(or row): a few hundred numbers to slide a window over, whatever the image's size.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter

_SIDE = 96  # long side of the copy the cues are computed on
_FLOOR = 8.0  # 0-255: a cue whose strongest column mean is below this is noise
# Weights of the cues: edges, saturation, skin.
_WEIGHTS = (1.0, 0.5, 1.0)
# Skin in Pillow's HSV (each 0-255): hue 0-50 degrees, saturation 0.2-0.7, value over 0.35.
_SKIN_HUE = [255 if h <= 50 * 255 // 360 else 0 for h in range(256)]
_SKIN_SATURATION = [255 if 51 <= s <= 179 else 0 for s in range(256)]
_SKIN_VALUE = [255 if v >= 90 else 0 for v in range(256)]


def cues(im: Image.Image) -> list[Image.Image]:
    """The edge, saturation and skin maps (mode L, 0-255) of a small copy of im; transparent
    pixels count for nothing."""
    scale = min(1.0, _SIDE / max(im.size))
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    small = im.resize(size, Image.Resampling.BOX) if size != im.size else im
    rgb = small.convert("RGB")
    edges = rgb.convert("L").filter(ImageFilter.FIND_EDGES)
    hue, saturation, value = rgb.convert("HSV").split()
    colourful = ImageChops.multiply(saturation, value)  # dark pixels' hue and saturation are noise
    skin = ImageChops.multiply(
        ImageChops.multiply(hue.point(_SKIN_HUE), saturation.point(_SKIN_SATURATION)),
        value.point(_SKIN_VALUE))
    maps = [edges, colourful, skin]
    if "A" in small.getbands():
        alpha = small.getchannel("A")
        maps = [ImageChops.multiply(m, alpha) for m in maps]
    return maps


def profile(maps: list[Image.Image], axis: int) -> list[float]:
    """Weighted saliency per column (axis 0) or row (axis 1) of the maps."""
    width, height = maps[0].size
    total = [0.0] * (width if axis == 0 else height)
    for cue_map, weight in zip(maps, _WEIGHTS, strict=True):
        line = cue_map.resize((width, 1) if axis == 0 else (1, height), Image.Resampling.BOX)
        means = [float(v) for v in line.get_flattened_data()]  # type: ignore[union-attr]
        peak = max(means)
        if peak < _FLOOR:
            continue
        for i, mean in enumerate(means):
            total[i] += weight * mean / peak
    return total


def best_offset(scores: list[float], window: float) -> float:
    """Fraction (0-1 of the slack) where a window of that many cells holds the most score.

    The window may be fractional; ties (a featureless image) go to the most central offset.
    """
    cells = len(scores)
    span = max(1, min(cells, round(window)))
    if span >= cells:
        return 0.5
    prefix = [0.0]
    for score in scores:
        prefix.append(prefix[-1] + score)
    slack = cells - span
    best = max(range(slack + 1),
               key=lambda start: (round(prefix[start + span] - prefix[start], 6),
                                  -abs(start - slack / 2)))
    return best / slack


def smart_position(im: Image.Image, crop: tuple[float, float]) -> tuple[float, float]:
    """(fx, fy): where along each axis's slack (0 = left/top, 1 = right/bottom) the crop
    window of crop (width, height) source pixels keeps the most salient part of im."""
    width, height = im.size
    maps = cues(im)
    small_w, small_h = maps[0].size
    fx = fy = 0.5
    if crop[0] < width - 0.5:
        fx = best_offset(profile(maps, 0), crop[0] * small_w / width)
    if crop[1] < height - 0.5:
        fy = best_offset(profile(maps, 1), crop[1] * small_h / height)
    return fx, fy
