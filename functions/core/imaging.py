"""Pure imaging: sniff, inspect and thumbnail image bytes. No I/O, no Flask."""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache

from PIL import Image, ImageCms, ImageOps

from .errors import BadRequest, ImageTooLarge, InvalidImage, ThumbnailsError, UnsupportedMediaType

# Pillow format name -> MIME type of every input format we accept.
ALLOWED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}

# Requested output format -> (Pillow format name, MIME type).
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}

_EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
_FITS = ("contain", "cover")
# No PNG optimize (speed); JPEG output is RGB or L after _encode composites any alpha.
_ENCODE: dict[str, dict[str, int]] = {"PNG": {}, "JPEG": {"quality": 85}, "WEBP": {"quality": 80}}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": Pillow's 16-bit fallback


@dataclass(frozen=True)
class ThumbnailOptions:
    """What thumbnail to make: target box, output format and fit mode."""

    width: int = 100
    height: int = 100
    format: str = "png"  # png | jpeg | webp
    fit: str = "contain"  # contain | cover

    @classmethod
    def parse(cls, values: Mapping[str, str], max_dimension: int) -> ThumbnailOptions:
        """Validate string values (form, query or event); missing keys take defaults."""
        defaults = cls()
        width = _parse_dimension(values, "width", defaults.width, max_dimension)
        height = _parse_dimension(values, "height", defaults.height, max_dimension)
        fmt = str(values.get("format", defaults.format)).strip().lower()
        fmt = "jpeg" if fmt == "jpg" else fmt
        if fmt not in OUTPUT_FORMATS:
            raise BadRequest(f"format must be one of png, jpeg, webp (got {fmt!r})")
        fit = str(values.get("fit", defaults.fit)).strip().lower()
        if fit not in _FITS:
            raise BadRequest(f"fit must be one of contain, cover (got {fit!r})")
        return cls(width=width, height=height, format=fmt, fit=fit)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form that round-trips through parse."""
        return asdict(self)

    @property
    def content_type(self) -> str:
        """MIME type of the output."""
        return OUTPUT_FORMATS[self.format][1]

    @property
    def extension(self) -> str:
        """File extension of the output, without the dot."""
        return _EXTENSIONS[self.format]


def _parse_dimension(values: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = values.get(name)
    if raw is None:
        return default
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise BadRequest(f"{name} must be an integer from 1 to {maximum} (got {raw!r})")
    return int(text)


@dataclass(frozen=True)
class Limits:
    """Header-level limits that reject decompression bombs before decoding."""

    max_pixels: int = 50_000_000
    max_frames: int = 1000


@dataclass(frozen=True)
class ImageInfo:
    """Facts read from an image header."""

    format: str
    mime: str
    width: int
    height: int
    frames: int


@dataclass(frozen=True)
class Thumbnail:
    """An encoded thumbnail and how it was made."""

    data: bytes
    content_type: str
    width: int
    height: int
    source: ImageInfo
    decode_ms: float  # open + decode + colour conversion + resize
    encode_ms: float


def sniff(data: bytes) -> str:
    """Return the Pillow format name from magic bytes, or raise UnsupportedMediaType."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    raise UnsupportedMediaType("unsupported image type; allowed: " + ", ".join(ALLOWED_FORMATS))


@contextmanager
def _guard() -> Iterator[None]:
    """Turn anything Pillow raises on hostile input into InvalidImage / ImageTooLarge."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's "corrupt EXIF" noise on hostile files
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except ThumbnailsError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(f"image too large: {exc}") from exc
        except Exception as exc:  # OSError, ValueError, SyntaxError, struct.error, MemoryError...
            raise InvalidImage(f"cannot decode image: {type(exc).__name__}: {exc}") from exc


def _open(data: bytes, limits: Limits) -> tuple[ImageInfo, Image.Image]:
    """Open (header only) and check limits; call inside _guard."""
    fmt = sniff(data)
    im = Image.open(io.BytesIO(data), formats=[fmt])
    width, height = im.size
    if width < 1 or height < 1:
        raise InvalidImage(f"image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(f"{width}x{height} exceeds {limits.max_pixels} pixels")
    frames = int(getattr(im, "n_frames", 1))
    if frames > limits.max_frames:
        raise ImageTooLarge(f"{frames} frames exceed {limits.max_frames}")
    if frames > 1:
        im.seek(0)
    return ImageInfo(fmt, ALLOWED_FORMATS[fmt], width, height, frames), im


def inspect(data: bytes, limits: Limits) -> ImageInfo:
    """Check type and header limits without decoding pixels; return the header facts."""
    with _guard():
        info, im = _open(data, limits)
        im.close()
    return info


@lru_cache(maxsize=32)
def _srgb_transform(icc: bytes, mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, out_mode)


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert any decoded mode to L, LA, RGB or RGBA in sRGB (ICC applied when present)."""
    if im.mode in _SIXTEEN_BIT_MODES:
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode == "F":
        im = im.convert("L")
    alpha = im.has_transparency_data
    if im.mode in ("1", "L", "LA", "La"):
        return im.convert("LA" if alpha else "L")
    out_mode = "RGBA" if alpha else "RGB"
    icc = im.info.get("icc_profile")
    if icc and im.mode in ("RGB", "RGBA", "CMYK"):
        try:
            return ImageCms.applyTransform(im, _srgb_transform(icc, im.mode, out_mode))
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # broken or mismatched profile: fall back to a plain conversion
    return im if im.mode == out_mode else im.convert(out_mode)


def _draft_size(size: tuple[int, int], options: ThumbnailOptions) -> tuple[int, int] | None:
    """Smallest decode size still covering the target in either EXIF orientation."""
    side = max(options.width, options.height)
    pick = max if options.fit == "cover" else min
    scale = pick(side / size[0], side / size[1])
    if scale >= 1:
        return None
    return max(1, math.ceil(size[0] * scale)), max(1, math.ceil(size[1] * scale))


def _resize(im: Image.Image, options: ThumbnailOptions) -> Image.Image:
    """Contain (never upscale, >= 1 px a side) or cover (exact box, centre crop)."""
    width, height = im.size
    box: tuple[float, float, float, float] = (0, 0, width, height)
    if options.fit == "cover":
        size = (options.width, options.height)
        scale = max(options.width / width, options.height / height)
        crop_w, crop_h = size[0] / scale, size[1] / scale
        left, top = (width - crop_w) / 2, (height - crop_h) / 2
        box = (left, top, left + crop_w, top + crop_h)
    else:
        scale = min(options.width / width, options.height / height, 1.0)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == im.size and box == (0, 0, width, height):
        return im
    return im.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _encode(im: Image.Image, pillow_format: str) -> bytes:
    """Encode with no metadata; JPEG gets alpha composited on white."""
    if pillow_format == "JPEG" and im.mode in ("LA", "RGBA"):
        base = im.mode[:-1]
        background = Image.new(base, im.size, (255,) * len(base))
        background.paste(im.convert(base), mask=im.getchannel("A"))
        im = background
    im.info = {}  # never carry EXIF, ICC, text chunks or XMP into the output
    out = io.BytesIO()
    im.save(out, pillow_format, **_ENCODE[pillow_format])
    return out.getvalue()


def make_thumbnail(data: bytes, options: ThumbnailOptions, limits: Limits) -> Thumbnail:
    """Validate, decode the first frame, orient, convert to sRGB, resize and encode."""
    started = time.perf_counter()
    with _guard():
        info, im = _open(data, limits)
        draft = _draft_size(im.size, options) if info.format == "JPEG" else None
        if draft:
            im.draft(None, draft)
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        image = _to_srgb(im)
    thumb = _resize(image, options)
    decoded = time.perf_counter()
    pillow_format, content_type = OUTPUT_FORMATS[options.format]
    encoded = _encode(thumb, pillow_format)
    finished = time.perf_counter()
    return Thumbnail(
        data=encoded,
        content_type=content_type,
        width=thumb.width,
        height=thumb.height,
        source=info,
        decode_ms=(decoded - started) * 1000,
        encode_ms=(finished - decoded) * 1000,
    )
