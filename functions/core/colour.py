"""Decoded pixels to what a browser shows: 8-bit sRGB, with transparency. Pure, no I/O.

Every mode Pillow decodes (1, L, LA, La, I;16*, I, F, P, PA, RGB, RGBA, RGBa, RGBX, CMYK,
YCbCr...) ends as L, LA, RGB or RGBA. The order matters and is the same for every mode:
transparency first, from the samples as decoded (a tRNS key must be compared before any
scaling or colour conversion changes them), then the colour reduced to 8 bits (prepare),
then the ICC profile, for any mode whose colour space the profile describes, on the colour
bands alone (finish).
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageCms, ImageMath

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": Pillow's 16-bit fallback
# ICC header bytes 16-19 (data colour space, ICC.1:2022 7.2.6) -> the 8-bit mode it describes.
_PROFILE_MODES = {b"RGB ": "RGB", b"GRAY": "L", b"CMYK": "CMYK"}
_SRGB = ImageCms.createProfile("sRGB")


def to_srgb(im: Image.Image, key: tuple[int, ...] | None = None) -> Image.Image:
    """Convert a decoded image to L, LA, RGB or RGBA in sRGB: prepare, then finish."""
    return finish(*prepare(im, key))


def prepare(im: Image.Image, key: tuple[int, ...] | None = None
            ) -> tuple[Image.Image, ImageCms.ImageCmsTransform | None]:
    """Everything but the profile: (8-bit L, LA, RGB, RGBA or CMYK image, transform or None).

    key: a transparency colour key in the decoded samples' scale (one value for grey modes,
    three for RGB; see containers.PngHeader.transparency_key): matching pixels become
    transparent. 16-bit samples are rounded to 8 bits (v / 257), since Pillow's ImageCms
    transforms 8-bit modes only. The transform is that of the ICC profile in im.info, when
    the profile describes these pixels' colour space (a palette counts as RGB); a broken or
    mismatched profile gives None, and the pixels are taken as sRGB, as browsers do. The
    profile can then be applied (finish) after resizing: the same result within rounding, at
    a fraction of the cost (a 12 MP transform takes hundreds of milliseconds).
    """
    icc = im.info.get("icc_profile")
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif im.mode in ("La", "RGBa"):  # premultiplied alpha: undo it first
        im = im.convert(im.mode.upper())
    alpha = _alpha(im, key)
    colour = _eight_bit(im)
    transform = _transform(bytes(icc), colour.mode) if icc else None
    if not icc and "srgb" not in im.info and colour.mode in ("L", "RGB"):
        colour = _gamma_to_srgb(colour, im.info.get("gamma"))
    if colour.mode == "CMYK" and transform is None:
        colour = colour.convert("RGB")  # no usable profile: Pillow's naive formula
    if alpha is not None:
        if colour is im:
            colour = colour.copy()  # putalpha works in place: leave the caller's image alone
        colour.putalpha(alpha)  # CMYK never has alpha here: no Pillow mode carries both
    return colour, transform


def finish(im: Image.Image, transform: ImageCms.ImageCmsTransform | None) -> Image.Image:
    """Apply prepare's transform (if any) to the colour bands; L, LA, RGB or RGBA out."""
    if transform is None:
        return im
    alpha = im.getchannel("A") if im.mode in ("LA", "RGBA") else None
    colour = im.convert(im.mode[:-1]) if alpha is not None else im
    converted = ImageCms.applyTransform(colour, transform)
    assert converted is not None  # applyTransform returns None only with inPlace=True
    if colour.mode == "L":
        converted = converted.convert("L")  # a grey profile's greys stay neutral: one band
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The profile's transform to sRGB for pixels of this mode, or None."""
    if _PROFILE_MODES.get(icc[16:20]) != mode:
        return None
    try:
        return _srgb_transform(icc, mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None  # broken profile


def _gamma_to_srgb(colour: Image.Image, file_gamma: object) -> Image.Image:
    """A PNG's gAMA (file gamma g, so samples decode as v ** (1 / g)) re-encoded with the
    sRGB curve (PNG spec, 11.3.3.2; iCCP and sRGB take precedence). Gammas near 1/2.2 mean
    sRGB, as in Chromium (seen here: g from 0.435 to 0.475 shown unchanged, 0.43 and 0.5
    converted). cHRM primaries are not applied: sRGB's are assumed."""
    if not isinstance(file_gamma, float) or file_gamma <= 0 or abs(1 / file_gamma - 2.2) <= 0.1:
        return colour
    exponent = 1 / file_gamma
    lut = [round(255 * _srgb_encode((v / 255) ** exponent)) for v in range(256)]
    return colour.point(lut * len(colour.getbands()))


def _srgb_encode(linear: float) -> float:
    """Linear 0-1 -> sRGB-encoded 0-1 (IEC 61966-2-1)."""
    linear = min(1.0, max(0.0, linear))
    return linear * 12.92 if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


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
        # Per band 0 where the sample equals the key's, else 255; their mean is 0 only where
        # all three match (otherwise >= 85): three passes over the pixels.
        differs = im.point([0 if v == k else 255 for k in key for v in range(256)])
        return differs.convert("L", (1 / 3, 1 / 3, 1 / 3, 0)).point(
            [0] + [255] * 255)
    return None


def _eight_bit(im: Image.Image) -> Image.Image:
    """The colour bands alone, as 8-bit L, RGB or CMYK."""
    if im.mode in SIXTEEN_BIT_MODES:
        # round(v * 255 / 65535); Pillow's own convert("L") clips 16-bit values instead.
        return im.convert("I").point(lambda v: v / 257 + 0.5).convert("L")
    if im.mode in ("1", "F", "LA"):
        return im.convert("L")
    if im.mode in ("L", "RGB", "CMYK"):
        return im
    return im.convert("RGB")


@lru_cache(maxsize=32)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(source, _SRGB, mode, "RGB")
