"""Pure imaging: sniff, inspect and thumbnail image bytes. No I/O, no Flask."""

from __future__ import annotations

import io
import math
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache

from PIL import Image, ImageChops, ImageCms, ImageOps

from . import colour, containers, saliency
from .errors import BadRequest, ImageTooLarge, InvalidImage, ThumbnailsError, UnsupportedMediaType
from .formats import (
    ALLOWED_FORMATS,
    EXTENSIONS,
    FITS,
    FORMAT_ALIASES,
    GRAVITIES,
    LOSSY_FORMATS,
    OUTPUT_FORMATS,
)
from .ranges import integer_in


@cache
def _register_heif() -> None:
    """HEIC/HEIF through libheif (pillow-heif), registered the first time a HEIF arrives
    (importing pillow-heif costs a cold start about 15 ms); AVIF goes through Pillow's own
    plugin (libavif). Thumbnails, depth and auxiliary images are never read: the primary
    picture is all we show."""
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


# No PNG optimize (speed); JPEG output is RGB or L after _encode composites any alpha.
# "quality" is each lossy format's default when the options give none. AVIF speed 8 of 0-10:
# libavif's fast end (about 3 times faster than its default 6 here, at the same size).
_ENCODE: dict[str, dict[str, int]] = {
    "PNG": {},
    "JPEG": {"quality": 85},
    "WEBP": {"quality": 80},
    "AVIF": {"quality": 60, "speed": 8},
}


@dataclass(frozen=True)
class ThumbnailOptions:
    """What thumbnail to make: target box (pixels), output format, fit, quality and gravity.

    quality: 1-100 for jpeg, webp and avif (None: the format's default, see _ENCODE); a
    quality for png is refused by parse, since PNG is lossless. gravity: where the crop
    window of fit=cover sits (GRAVITIES); with fit=contain nothing is cropped and it is
    ignored.
    """

    width: int = 100
    height: int = 100
    format: str = "png"  # a key of OUTPUT_FORMATS
    fit: str = "contain"  # contain | cover
    quality: int | None = None  # 1-100, lossy formats only
    gravity: str = "center"  # one of GRAVITIES

    @classmethod
    def parse(cls, values: Mapping[str, str], max_dimension: int) -> ThumbnailOptions:
        """Validate string values (form, query or event); missing keys take defaults.

        Raises BadRequest naming the field and the allowed values.
        """
        defaults = cls()
        width = _parse_dimension(values, "width", defaults.width, max_dimension)
        height = _parse_dimension(values, "height", defaults.height, max_dimension)
        fmt = _parse_choice(values, "format", defaults.format, tuple(OUTPUT_FORMATS),
                            FORMAT_ALIASES)
        fit = _parse_choice(values, "fit", defaults.fit, FITS)
        gravity = _parse_choice(values, "gravity", defaults.gravity, GRAVITIES,
                                {"centre": "center"})
        quality = None
        if values.get("quality") is not None:
            quality = _parse_dimension(values, "quality", 0, 100)
            if fmt not in LOSSY_FORMATS:
                raise BadRequest(f"quality applies to {', '.join(LOSSY_FORMATS)} only "
                                 f"(format is {fmt})")
        return cls(width=width, height=height, format=fmt, fit=fit, quality=quality,
                   gravity=gravity)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form that round-trips through parse.

        quality and gravity appear only when they differ from their defaults, so the options
        of a job that uses neither read as they did before these options existed.
        """
        values = asdict(self)
        if self.quality is None:
            del values["quality"]
        if self.gravity == "center":
            del values["gravity"]
        return values

    @property
    def content_type(self) -> str:
        """MIME type of the output."""
        return OUTPUT_FORMATS[self.format][1]

    @property
    def extension(self) -> str:
        """File extension of the output, without the dot."""
        return EXTENSIONS[self.format]


def _parse_choice(values: Mapping[str, str], name: str, default: str, allowed: Sequence[str],
                  aliases: Mapping[str, str] | None = None) -> str:
    text = str(values.get(name, default)).strip().lower()
    text = (aliases or {}).get(text, text)
    if text not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)} (got {text!r})")
    return text


def _parse_dimension(values: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = values.get(name)
    return default if raw is None else integer_in(raw, name, 1, maximum)


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
    # Milliseconds. decode_ms: this thumbnail's resize and ICC conversion, plus, in the first
    # thumbnail of a make_thumbnails list only, the shared open + decode + orientation +
    # transparency and bit depth; so a list's decode_ms add up to the real time, each part
    # counted once.
    decode_ms: float
    encode_ms: float  # encoding this thumbnail alone


def sniff(data: bytes) -> str:
    """Return the Pillow format name from magic bytes, or raise UnsupportedMediaType.

    HEIF and AVIF are told apart by their ftyp brands (containers.heif_family).
    """
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
    family = containers.heif_family(bytes(data[:4096]))
    if family:
        return family
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
        except RuntimeError as exc:
            if "security limit" in str(exc).lower():  # libheif's own limits, when ours are lifted
                raise ImageTooLarge(f"image too large: {exc}") from exc
            raise InvalidImage(_cannot_decode(exc)) from exc
        except Exception as exc:  # OSError, ValueError, SyntaxError, struct.error, MemoryError...
            raise InvalidImage(_cannot_decode(exc)) from exc


# A Python object's repr inside a library's message, e.g. Pillow's "cannot identify image
# file <_io.BytesIO object at 0x7f...>": noise to a client, so never part of a message.
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


def _cannot_decode(exc: BaseException) -> str:
    """The InvalidImage message for a decoder's exception, written for the client: no object
    reprs, and Pillow's "cannot identify" said in words."""
    if isinstance(exc, Image.UnidentifiedImageError):
        return "cannot decode image: its contents are not a readable image of its type"
    detail = _OBJECT_REPR.sub("", str(exc)).strip()
    return f"cannot decode image: {type(exc).__name__}" + (f": {detail}" if detail else "")


def _open(data: bytes, limits: Limits) -> tuple[ImageInfo, Image.Image]:
    """Open (header only) and check limits; call inside _guard."""
    fmt = sniff(data)
    if fmt == "HEIF":
        _register_heif()
    if fmt in ("HEIF", "AVIF"):
        # Checked from the container before libheif or libavif sees the file at all.
        for width, height in containers.heif_image_sizes(data):
            _check_pixels(width, height, limits)
    im = Image.open(io.BytesIO(data), formats=[fmt])
    width, height = im.size
    if width < 1 or height < 1:
        raise InvalidImage(f"image has no pixels ({width}x{height})")
    _check_pixels(width, height, limits)
    frames = int(getattr(im, "n_frames", 1))
    if frames > limits.max_frames:
        raise ImageTooLarge(f"{frames} frames exceed {limits.max_frames}")
    if frames > 1:
        # An APNG whose default image is not part of its animation (PNG spec, 4.3 and
        # 11.3.4.2): browsers show the animation, so its first frame (Pillow's frame 1).
        im.seek(1 if fmt == "PNG" and im.info.get("default_image") else 0)
    return ImageInfo(fmt, ALLOWED_FORMATS[fmt], width, height, frames), im


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise ImageTooLarge(f"{width}x{height} exceeds {limits.max_pixels} pixels")


def inspect(data: bytes, limits: Limits) -> ImageInfo:
    """Check type and header limits without decoding pixels; return the header facts."""
    with _guard():
        info, im = _open(data, limits)
        im.close()
    return info


def _draft_size(size: tuple[int, int], options: Sequence[ThumbnailOptions]
                ) -> tuple[int, int] | None:
    """Smallest decode size still covering every target in either EXIF orientation."""
    scale = 0.0
    for option in options:
        side = max(option.width, option.height)
        pick = max if option.fit == "cover" else min
        scale = max(scale, pick(side / size[0], side / size[1]))
    if scale >= 1:
        return None
    return max(1, math.ceil(size[0] * scale)), max(1, math.ceil(size[1] * scale))


# gravity -> where the crop window sits along x and y: 0 = left/top, 0.5 centre, 1 right/bottom.
_COMPASS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5), "north": (0.5, 0.0), "northeast": (1.0, 0.0), "east": (1.0, 0.5),
    "southeast": (1.0, 1.0), "south": (0.5, 1.0), "southwest": (0.0, 1.0), "west": (0.0, 0.5),
    "northwest": (0.0, 0.0),
}


def _crop_box(im: Image.Image, crop: tuple[float, float], gravity: str
              ) -> tuple[float, float, float, float]:
    """The crop window (crop_w x crop_h source pixels) placed by gravity."""
    width, height = im.size
    if gravity == "smart":
        fx, fy = saliency.smart_position(im, crop)
    else:
        fx, fy = _COMPASS[gravity]
    left, top = (width - crop[0]) * fx, (height - crop[1]) * fy
    return left, top, left + crop[0], top + crop[1]


def _resize(im: Image.Image, options: ThumbnailOptions) -> Image.Image:
    """Contain (never upscale, >= 1 px a side) or cover (exact box, crop placed by gravity)."""
    width, height = im.size
    box: tuple[float, float, float, float] = (0, 0, width, height)
    if options.fit == "cover":
        size = (options.width, options.height)
        scale = max(options.width / width, options.height / height)
        box = _crop_box(im, (size[0] / scale, size[1] / scale), options.gravity)
    else:
        scale = min(options.width / width, options.height / height, 1.0)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == im.size and box == (0, 0, width, height):
        return im
    return im.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _encode(im: Image.Image, options: ThumbnailOptions) -> bytes:
    """Encode with no metadata; JPEG gets alpha composited on white."""
    pillow_format = OUTPUT_FORMATS[options.format][0]
    if pillow_format == "JPEG" and im.mode in ("LA", "RGBA"):
        base = im.mode[:-1]
        background = Image.new(base, im.size, (255,) * len(base))
        background.paste(im.convert(base), mask=im.getchannel("A"))
        im = background
    im.info = {}  # never carry EXIF, ICC, text chunks or XMP into the output
    params = dict(_ENCODE[pillow_format])
    if options.quality is not None:
        params["quality"] = options.quality
    out = io.BytesIO()
    im.save(out, pillow_format, **params)
    return out.getvalue()


def _decode(data: bytes, options: Sequence[ThumbnailOptions], limits: Limits
            ) -> tuple[ImageInfo, Image.Image, ImageCms.ImageCmsTransform | None]:
    """Validate, decode the first frame on its full canvas, orient, and colour.prepare it:
    the image and the ICC transform to apply after resizing (colour.finish).

    JPEGs are drafted (scaled by libjpeg) for the largest output. Raises InvalidImage or
    ImageTooLarge (before decoding) for what cannot be shown.
    """
    with _guard():
        forced_alpha = containers.webp_animation_without_alpha_flag(data)
        if forced_alpha:
            data = containers.with_webp_alpha_flag(data)
        info, im = _open(data, limits)
        if info.format == "JPEG":
            im = _load_jpeg(data, im, _draft_size(im.size, options))
        else:
            im.load()
        ImageOps.exif_transpose(im, in_place=True)
        key = None
        header = containers.png_header(data) if info.format == "PNG" else None
        if header:
            key = header.transparency_key()
            if header.colour_type == 4 and im.mode == "RGBA":
                im = im.convert("LA")  # Pillow decodes 16-bit grey + alpha as RGBA
        image, transform = colour.prepare(im, key)
        if info.format == "GIF":
            box = containers.gif_first_frame_box(data)
            if box and box != (0, 0, image.width, image.height):
                # Browsers leave the canvas outside the first frame transparent, not the
                # logical screen's background colour that Pillow paints there.
                image = _transparent_outside(image, box)
        if forced_alpha and image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255:
            image = image.convert("RGB")  # the first frame covers the canvas after all
        return info, image, transform


def _transparent_outside(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The image with alpha 0 outside box (left, top, right, bottom); L/RGB gain alpha."""
    alpha = Image.new("L", image.size, 0)
    inside = image.getchannel("A").crop(box) if image.mode in ("LA", "RGBA") else 255
    alpha.paste(inside, box)
    image = image.convert(image.mode[0] + "A" if image.mode in ("L", "LA") else "RGBA")
    image.putalpha(alpha)
    return image


_EOI = b"\xff\xd9"


def _load_jpeg(data: bytes, im: Image.Image, draft: tuple[int, int] | None) -> Image.Image:
    """Load a JPEG; one whose scans are complete but whose EOI marker is missing loads too.

    libvips shows such a file whole (Chromium all but its last row of MCUs, which its
    suspending decoder waits for; test_imaging_browser). With EOI appended, a
    complete last scan decodes the same whatever filler bits come before the EOI, while a
    really truncated scan takes the filler as coded data and changes: so the file is decoded
    with three fillers, at full scale (a drafted decode skips the high frequencies a cut
    may have lost), and it is shown only if all three agree. A real truncation still raises
    InvalidImage. Costs three full decodes (and a drafted one), only for such files.
    """
    if draft:
        im.draft(None, draft)
    try:
        im.load()
        return im
    except OSError as exc:
        if data.rstrip(b"\x00")[-2:] == _EOI:
            raise
        failure = exc
    decoded = []
    for filler in (b"", b"\x55" * 16, b"\x00" * 16):
        candidate = Image.open(io.BytesIO(data + filler + _EOI), formats=["JPEG"])
        try:
            candidate.load()
        except OSError:
            raise failure from None
        decoded.append(candidate)
    first = decoded[0]
    if any(ImageChops.difference(first, other).getbbox() for other in decoded[1:]):
        raise InvalidImage(f"cannot decode image: truncated JPEG: {failure}")
    if not draft:
        return first
    repaired = Image.open(io.BytesIO(data + _EOI), formats=["JPEG"])
    repaired.draft(None, draft)  # the same decode as the file with its EOI would get
    repaired.load()
    return repaired


def _area(options: ThumbnailOptions) -> int:
    return options.width * options.height


def make_thumbnails(data: bytes, options: Sequence[ThumbnailOptions], limits: Limits
                    ) -> list[Thumbnail]:
    """Decode once, then make one thumbnail per options (largest box first), in the order asked.

    Raises UnsupportedMediaType (415), ImageTooLarge (422, before any decode) or
    InvalidImage (422); BadRequest when options is empty.
    """
    if not options:
        raise BadRequest("at least one set of thumbnail options is needed")
    started = time.perf_counter()
    info, image, transform = _decode(data, options, limits)
    shared_ms = (time.perf_counter() - started) * 1000
    made: dict[int, Thumbnail] = {}
    for index in sorted(range(len(options)), key=lambda i: -_area(options[i])):
        option = options[index]
        began = time.perf_counter()
        resized_image = _resize(image, option)
        with _guard():  # a profile LittleCMS accepted but cannot apply is the file's fault
            thumb = colour.finish(resized_image, transform)
        resized = time.perf_counter()
        encoded = _encode(thumb, option)
        finished = time.perf_counter()
        made[index] = Thumbnail(
            data=encoded,
            content_type=option.content_type,
            width=thumb.width,
            height=thumb.height,
            source=info,
            decode_ms=(resized - began) * 1000 + (shared_ms if index == 0 else 0.0),
            encode_ms=(finished - resized) * 1000,
        )
    return [made[index] for index in range(len(options))]


def make_thumbnail(data: bytes, options: ThumbnailOptions, limits: Limits) -> Thumbnail:
    """Validate, decode the first frame, orient, convert to sRGB, resize and encode."""
    return make_thumbnails(data, [options], limits)[0]
