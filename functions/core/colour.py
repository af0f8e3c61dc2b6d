"""Decoded pixels to what a browser shows: 8-bit sRGB, with transparency. Pure, no I/O.

Every mode Pillow decodes (1, L, LA, La, I;16*, I, F, P, PA, RGB, RGBA, RGBa, RGBX, CMYK,
YCbCr...) ends as L, LA, RGB or RGBA. The order matters and is the same for every mode:
transparency first, from the samples as decoded (a tRNS key must be compared before any
scaling or colour conversion changes them), then the colour reduced to 8 bits, then the ICC
profile (any mode whose colour space the profile describes), then the alpha put back.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageChops, ImageCms, ImageMath

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": Pillow's 16-bit fallback
# ICC header bytes 16-19 (data colour space, ICC.1:2022 7.2.6) -> the 8-bit mode it describes.
_PROFILE_MODES = {b"RGB ": "RGB", b"GRAY": "L", b"CMYK": "CMYK"}
_SRGB = ImageCms.createProfile("sRGB")


def to_srgb(im: Image.Image, key: tuple[int, ...] | None = None) -> Image.Image:
    """Convert a decoded image to L, LA, RGB or RGBA in sRGB.

    key: a transparency colour key in the decoded samples' scale (one value for grey modes,
    three for RGB; see containers.PngHeader.transparency_key): matching pixels become
    transparent. The ICC profile in im.info is applied when its colour space matches the
    pixels (a palette is converted to RGB first); a broken or mismatched profile is ignored
    (the pixels are taken as sRGB, which is what browsers do). 16-bit samples are rounded to
    8 bits (v / 257) before the profile, since Pillow's ImageCms transforms 8-bit modes only.
    """
    icc = im.info.get("icc_profile")
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif im.mode in ("La", "RGBa"):  # premultiplied alpha: undo it first
        im = im.convert(im.mode.upper())
    alpha = _alpha(im, key)
    colour = _profiled(_eight_bit(im), icc)
    if alpha is not None:
        colour.putalpha(alpha)
    return colour


def _alpha(im: Image.Image, key: tuple[int, ...] | None) -> Image.Image | None:
    """The alpha channel (mode L) from an alpha band or a colour key; None when opaque."""
    if im.mode in ("LA", "RGBA"):
        return im.getchannel("A")
    if key is None:
        return None
    if im.mode in SIXTEEN_BIT_MODES and len(key) == 1:
        wide = im if im.mode == "I" else im.convert("I")
        matched = ImageMath.lambda_eval(lambda a: (a["v"] != key[0]) * 255, v=wide)
        return matched.convert("L")
    if im.mode in ("1", "L") and len(key) == 1:
        return im.convert("L").point([0 if v == key[0] else 255 for v in range(256)])
    if im.mode == "RGB" and len(key) == 3:
        equal = [band.point([255 if v == k else 0 for v in range(256)])
                 for band, k in zip(im.split(), key, strict=True)]
        return ImageChops.invert(ImageChops.darker(ImageChops.darker(equal[0], equal[1]),
                                                   equal[2]))
    return None


def _eight_bit(im: Image.Image) -> Image.Image:
    """The colour bands alone, as 8-bit L, RGB or CMYK."""
    if im.mode in SIXTEEN_BIT_MODES:
        # round(v * 255 / 65535); Pillow's own convert("L") clips 16-bit values instead.
        return im.convert("I").point(lambda v: v / 257 + 0.5).convert("L")
    if im.mode in ("1", "F", "L"):
        return im.convert("L") if im.mode != "L" else im
    if im.mode == "LA":
        return im.convert("L")
    if im.mode == "CMYK":
        return im
    return im.convert("RGB") if im.mode != "RGB" else im


@lru_cache(maxsize=32)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(source, _SRGB, mode, "RGB")


def _profiled(colour: Image.Image, icc: bytes | None) -> Image.Image:
    """Apply the ICC profile (to sRGB) when it describes these pixels; always L or RGB out."""
    if icc and _PROFILE_MODES.get(bytes(icc[16:20])) == colour.mode:
        try:
            converted = ImageCms.applyTransform(colour, _srgb_transform(bytes(icc), colour.mode))
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # broken profile: the pixels are taken as sRGB
        if converted is not None:
            # A grey profile's greys stay neutral in sRGB (R = G = B): keep one band.
            return converted.convert("L") if colour.mode == "L" else converted
    if colour.mode == "CMYK":
        return colour.convert("RGB")
    return colour if colour.mode in ("L", "RGB") else colour.convert("RGB")
