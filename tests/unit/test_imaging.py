"""Unit tests for thumbnails.core.imaging on images generated here with Pillow."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from collections.abc import Callable

import pytest
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin
from PIL.PngImagePlugin import PngInfo

from thumbnails.core.errors import (
    BadRequest,
    ImageTooLarge,
    InvalidImage,
    ThumbnailsError,
    UnsupportedMediaType,
)
from thumbnails.core.imaging import (
    ALLOWED_FORMATS,
    OUTPUT_FORMATS,
    ImageInfo,
    Limits,
    Thumbnail,
    ThumbnailOptions,
    inspect,
    make_thumbnail,
    sniff,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
LIMITS = Limits()
DEFAULT = ThumbnailOptions()


# ---------------------------------------------------------------- helpers


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    """Save an image to bytes."""
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    """Open and load image bytes."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def thumb(data: bytes, **options: object) -> tuple[Thumbnail, Image.Image]:
    """make_thumbnail with default limits; return the result and its decoded image."""
    result = make_thumbnail(data, ThumbnailOptions(**options), LIMITS)  # type: ignore[arg-type]
    return result, decode(result.data)


def close(actual: tuple[int, ...] | int, expected: tuple[int, ...] | int, tol: int = 12) -> bool:
    """Whether two pixels are equal within a per-channel tolerance."""
    a = actual if isinstance(actual, tuple) else (actual,)
    e = expected if isinstance(expected, tuple) else (expected,)
    return len(a) == len(e) and all(abs(x - y) <= tol for x, y in zip(a, e, strict=True))


def gradient(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A smooth, non-trivial picture (compresses like a photo, decodes deterministically)."""
    return Image.radial_gradient("L").resize(size).convert(mode)


def marked(size: tuple[int, int], marker: tuple[int, int, int] = RED) -> Image.Image:
    """A blue image with a coloured block in its stored top-left corner."""
    im = Image.new("RGB", size, BLUE)
    im.paste(marker, (0, 0, size[0] // 5, size[1] // 5))
    return im


def halves(left: object, right: object, mode: str, size: tuple[int, int] = (64, 32)) -> Image.Image:
    """An image whose left half is one value and right half another."""
    im = Image.new(mode, size, left)  # type: ignore[arg-type]
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))  # type: ignore[arg-type]
    return im


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose IHDR claims width x height (CRC recomputed so it parses)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def swapped_primaries_profile() -> bytes:
    """An RGB ICC profile that is sRGB with the red and green colorants swapped."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        tags[sig] = (offset, size)
    (r_off, r_len), (g_off, g_len) = tags[b"rXYZ"], tags[b"gXYZ"]
    red, green = bytes(data[r_off : r_off + r_len]), bytes(data[g_off : g_off + g_len])
    data[r_off : r_off + r_len], data[g_off : g_off + g_len] = green, red
    return bytes(data)


def srgb_profile() -> bytes:
    """Pillow's built-in sRGB profile as ICC bytes."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with_orientation(orientation: int) -> Image.Exif:
    """EXIF carrying an orientation and a few other tags that must not survive."""
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "TestCam"  # Make
    exif[0x0131] = "imaging-tests"  # Software
    return exif


def animated(fmt: str) -> bytes:
    """Three frames, red then green then blue."""
    frames = [Image.new("RGB", (40, 30), colour) for colour in (RED, GREEN, BLUE)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


SAMPLES: dict[str, Callable[[], bytes]] = {
    "JPEG": lambda: encode(gradient(), "JPEG"),
    "PNG": lambda: encode(gradient(), "PNG"),
    "GIF": lambda: encode(gradient().convert("P"), "GIF"),
    "WEBP": lambda: encode(gradient(), "WEBP"),
    "BMP": lambda: encode(gradient(), "BMP"),
    "TIFF": lambda: encode(gradient(), "TIFF"),
}


# ---------------------------------------------------------------- options


def test_parse_defaults() -> None:
    options = ThumbnailOptions.parse({}, max_dimension=1024)
    assert options == ThumbnailOptions(100, 100, "png", "contain")
    assert options.content_type == "image/png"
    assert options.extension == "png"


def test_parse_valid_values() -> None:
    values = {"width": "640", "height": " 1024 ", "format": "JPG", "fit": "Cover"}
    options = ThumbnailOptions.parse(values, max_dimension=1024)
    assert options == ThumbnailOptions(640, 1024, "jpeg", "cover")
    assert (options.content_type, options.extension) == ("image/jpeg", "jpg")
    webp = ThumbnailOptions.parse({"format": "webp"}, max_dimension=10)
    assert (webp.content_type, webp.extension) == ("image/webp", "webp")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", "0"),
        ("width", "-5"),
        ("width", "1025"),
        ("width", "abc"),
        ("width", "1.5"),
        ("width", ""),
        ("width", "\u0661\u0662"),  # Arabic-Indic digits: isdigit() but not ASCII
        ("height", "0"),
        ("height", "99999999999999999999"),
        ("format", "gif"),
        ("format", ""),
        ("format", "svg"),
        ("fit", "stretch"),
        ("fit", ""),
    ],
)
def test_parse_rejects_bad_values(field: str, value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        ThumbnailOptions.parse({field: value}, max_dimension=1024)
    assert field in caught.value.message
    assert caught.value.status == 400


def test_to_dict_round_trips() -> None:
    options = ThumbnailOptions(320, 200, "webp", "cover")
    as_dict = options.to_dict()
    assert as_dict == {"width": 320, "height": 200, "format": "webp", "fit": "cover"}
    assert ThumbnailOptions.parse({k: str(v) for k, v in as_dict.items()}, 1024) == options


def test_format_tables() -> None:
    assert set(ALLOWED_FORMATS) == {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"}
    assert OUTPUT_FORMATS == {
        "png": ("PNG", "image/png"),
        "jpeg": ("JPEG", "image/jpeg"),
        "webp": ("WEBP", "image/webp"),
        "avif": ("AVIF", "image/avif"),
    }


# ---------------------------------------------------------------- sniff / inspect


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_sniff_and_inspect_each_format(fmt: str) -> None:
    data = SAMPLES[fmt]()
    assert sniff(data) == fmt
    assert inspect(data, LIMITS) == ImageInfo(fmt, ALLOWED_FORMATS[fmt], 64, 48, 1)


def test_sniff_ignores_everything_but_magic() -> None:
    assert sniff(b"II*\x00" + b"\x00" * 12) == "TIFF"
    assert sniff(b"MM\x00*" + b"\x00" * 12) == "TIFF"
    assert sniff(bytearray(encode(gradient(), "PNG"))) == "PNG"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world\n",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
        b"\xc5\xd0\xd3\xc6" + b"\x00" * 28,  # binary DOS EPS
        b"\x00\x00\x01\x00\x01\x00",  # ICO
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # RIFF but not WebP
        b"\xff\xd8",  # too short for JPEG magic
    ],
)
def test_unsupported_types(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        sniff(data)
    with pytest.raises(UnsupportedMediaType):
        inspect(data, LIMITS)
    with pytest.raises(UnsupportedMediaType):
        make_thumbnail(data, DEFAULT, LIMITS)


def test_unsupported_type_sniffed_even_with_image_extension_content() -> None:
    """An allowed format Pillow can read (ICO) but outside the allowlist is still refused."""
    data = encode(Image.new("RGB", (16, 16)), "ICO")
    with pytest.raises(UnsupportedMediaType):
        make_thumbnail(data, DEFAULT, LIMITS)


def test_inspect_counts_frames() -> None:
    for fmt in ("GIF", "WEBP", "TIFF"):
        assert inspect(animated(fmt), LIMITS).frames == 3


def test_frame_limit() -> None:
    limits = Limits(max_frames=2)
    for fmt in ("GIF", "WEBP", "TIFF"):
        with pytest.raises(ImageTooLarge):
            inspect(animated(fmt), limits)
        with pytest.raises(ImageTooLarge):
            make_thumbnail(animated(fmt), DEFAULT, limits)


def test_pixel_limit() -> None:
    data = encode(gradient((100, 100)), "JPEG")
    assert inspect(data, Limits(max_pixels=10_000)).width == 100
    with pytest.raises(ImageTooLarge) as caught:
        inspect(data, Limits(max_pixels=9_999))
    assert caught.value.status == 422
    with pytest.raises(ImageTooLarge):
        make_thumbnail(data, DEFAULT, Limits(max_pixels=9_999))


def test_header_bomb_is_too_large_without_decoding() -> None:
    data = png_claiming(100_000, 100_000)
    assert len(data) < 100
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge):
        inspect(data, LIMITS)
    with pytest.raises(ImageTooLarge):
        make_thumbnail(data, DEFAULT, LIMITS)
    # Even when our own limit is lifted, Pillow's decompression-bomb error is mapped.
    with pytest.raises(ImageTooLarge):
        make_thumbnail(data, DEFAULT, Limits(max_pixels=10**12))
    assert time.perf_counter() - started < 1


def test_decompression_bomb_warning_is_an_error() -> None:
    """Between Image.MAX_IMAGE_PIXELS and twice that, Pillow only warns: we refuse."""
    side = int(Image.MAX_IMAGE_PIXELS**0.5) + 10
    data = png_claiming(side, side)
    with pytest.raises(ImageTooLarge):
        inspect(data, Limits(max_pixels=10**12))
    with pytest.raises(ImageTooLarge):
        make_thumbnail(data, DEFAULT, Limits(max_pixels=10**12))


def test_zero_sized_header_is_invalid() -> None:
    with pytest.raises(InvalidImage):
        make_thumbnail(png_claiming(0, 10), DEFAULT, LIMITS)


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_invalid(fmt: str) -> None:
    rng = random.Random(1)
    noisy = Image.frombytes("RGB", (400, 300), rng.randbytes(400 * 300 * 3))
    data = encode(noisy, fmt)
    half = data[: len(data) // 2]
    assert inspect(half, LIMITS).width == 400  # header intact: cheap checks pass
    with pytest.raises(InvalidImage) as caught:
        make_thumbnail(half, DEFAULT, LIMITS)
    assert type(caught.value) is InvalidImage
    assert caught.value.status == 422


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_header_cut_short_is_invalid(fmt: str) -> None:
    data = SAMPLES[fmt]()[:14]
    with pytest.raises(InvalidImage):
        inspect(data, LIMITS)
    with pytest.raises(InvalidImage):
        make_thumbnail(data, DEFAULT, LIMITS)


@pytest.mark.parametrize(
    "magic",
    [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x10\x00\x00WEBP", b"BM"]
    + [b"II*\x00", b"MM\x00*"],
)
def test_garbage_after_magic_is_invalid(magic: bytes) -> None:
    data = magic + random.Random(7).randbytes(2048)
    with pytest.raises(InvalidImage):
        make_thumbnail(data, DEFAULT, LIMITS)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_fuzzed_files_only_raise_domain_errors(fmt: str) -> None:
    """Random byte flips: either a thumbnail or a 415/422, never a stray Pillow exception."""
    original = SAMPLES[fmt]()
    rng = random.Random(fmt)
    for _ in range(60):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            make_thumbnail(bytes(data), DEFAULT, LIMITS)
        except (InvalidImage, UnsupportedMediaType):
            pass


@pytest.mark.parametrize(
    "error",
    [
        OSError("broken data stream"),
        ValueError("bad value"),
        SyntaxError("not a JPEG"),
        struct.error("unpack requires a buffer"),
        IndexError("list index"),
        EOFError(),
        TypeError("bad type"),
        KeyError("k"),
        ZeroDivisionError(),
        MemoryError(),
        Image.UnidentifiedImageError("cannot identify image file <_io.BytesIO object at 0x7f3>"),
        OSError("broken data stream when reading image file <object object at 0xdeadbeef>"),
    ],
)
def test_any_pillow_exception_becomes_invalid_image(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    data = encode(gradient(), "PNG")

    def explode(self: ImageFile.ImageFile) -> None:
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", explode)
    with pytest.raises(InvalidImage) as caught:
        make_thumbnail(data, DEFAULT, LIMITS)
    assert type(caught.value) is InvalidImage
    assert caught.value.__cause__ is error
    assert "object at 0x" not in caught.value.message  # written for people, not a repr
    assert caught.value.message.startswith("cannot decode image: ")


def test_truncated_images_are_not_loaded_leniently() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ---------------------------------------------------------------- formats and frames


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
@pytest.mark.parametrize("output", ["png", "jpeg", "webp"])
def test_every_input_to_every_output(fmt: str, output: str) -> None:
    result, out = thumb(SAMPLES[fmt](), width=32, height=32, format=output)
    assert out.format == OUTPUT_FORMATS[output][0]
    assert result.content_type == OUTPUT_FORMATS[output][1]
    assert (result.width, result.height) == out.size == (32, 24)
    assert result.source == ImageInfo(fmt, ALLOWED_FORMATS[fmt], 64, 48, 1)
    assert result.decode_ms >= 0 and result.encode_ms >= 0


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_first_frame_of_animations(fmt: str) -> None:
    result, out = thumb(animated(fmt), width=20, height=20)
    assert result.source.frames == 3
    assert out.size == (20, 15)
    assert close(out.convert("RGB").getpixel((10, 7)), RED)


# ---------------------------------------------------------------- orientation


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (100, 50), "top-left"),
        (3, (100, 50), "bottom-right"),
        (6, (50, 100), "top-right"),
        (8, (50, 100), "bottom-left"),
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation(orientation: int, size: tuple[int, int], corner: str, fmt: str) -> None:
    data = encode(marked((200, 100)), fmt, exif=exif_with_orientation(orientation))
    result, out = thumb(data)
    assert (result.width, result.height) == out.size == size
    w, h = size
    corners = {
        "top-left": (2, 2),
        "top-right": (w - 3, 2),
        "bottom-left": (2, h - 3),
        "bottom-right": (w - 3, h - 3),
    }
    for name, xy in corners.items():
        assert close(out.getpixel(xy), RED if name == corner else BLUE, 40), name


def test_orientation_with_cover_fills_the_box() -> None:
    data = encode(marked((200, 100)), "JPEG", exif=exif_with_orientation(6))
    _, out = thumb(data, width=60, height=90, fit="cover")
    assert out.size == (60, 90)


# ---------------------------------------------------------------- colour


def test_icc_profile_is_converted_to_srgb() -> None:
    """Pure red tagged with a red/green-swapped profile is, in sRGB, green."""
    data = encode(Image.new("RGB", (32, 32), RED), "PNG", icc_profile=swapped_primaries_profile())
    assert decode(data).info["icc_profile"]
    _, out = thumb(data, width=16, height=16)
    assert "icc_profile" not in out.info
    assert close(out.getpixel((8, 8)), GREEN, 20)


def test_icc_profile_on_jpeg_and_rgba() -> None:
    icc = swapped_primaries_profile()
    _, out = thumb(encode(Image.new("RGB", (32, 32), RED), "JPEG", icc_profile=icc))
    assert close(out.getpixel((8, 8)), GREEN, 25)
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 128))
    _, out = thumb(encode(rgba, "PNG", icc_profile=icc))
    assert out.mode == "RGBA"
    assert close(out.getpixel((8, 8)), (0, 255, 0, 128), 20)


def test_srgb_profile_keeps_colours() -> None:
    data = encode(Image.new("RGB", (32, 32), (200, 120, 40)), "PNG", icc_profile=srgb_profile())
    _, out = thumb(data)
    assert close(out.getpixel((5, 5)), (200, 120, 40), 3)
    assert "icc_profile" not in out.info


@pytest.mark.parametrize("icc", [b"not a profile", b"x" * 200])
def test_broken_icc_profile_falls_back(icc: bytes) -> None:
    data = encode(Image.new("RGB", (32, 32), RED), "PNG", icc_profile=icc)
    _, out = thumb(data)
    assert close(out.getpixel((5, 5)), RED, 0)


@pytest.mark.parametrize("icc", [None, "rgb-profile-mismatch"])
@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_to_rgb(icc: str | None, fmt: str) -> None:
    """Pure cyan and red CMYK patches; a mismatched (RGB) profile falls back to plain CMYK."""
    im = halves((255, 0, 0, 0), (0, 255, 255, 0), "CMYK", size=(1600, 1200))
    params = {"icc_profile": srgb_profile()} if icc else {}
    data = encode(im, fmt, **params)
    assert decode(data).mode == "CMYK"
    result, out = thumb(data)
    assert out.mode == "RGB" and out.size == (100, 75)
    assert close(out.getpixel((20, 37)), (0, 255, 255), 30)
    assert close(out.getpixel((80, 37)), RED, 30)


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I")])
def test_sixteen_bit_grey_is_scaled(fmt: str, mode: str) -> None:
    im = Image.new(mode, (60, 20), 0)
    im.paste(Image.new(mode, (20, 20), 32768), (20, 0))
    im.paste(Image.new(mode, (20, 20), 65535), (40, 0))
    data = encode(im, fmt)
    assert decode(data).mode.startswith("I")
    _, out = thumb(data)
    assert out.mode == "L"
    assert [out.getpixel((x, 10)) for x in (5, 30, 55)] == [0, 128, 255]


@pytest.mark.parametrize(
    ("source", "fmt", "expected_mode", "pixel"),
    [
        (Image.new("1", (40, 20), 1), "PNG", "L", 255),
        (Image.new("1", (40, 20), 1), "BMP", "L", 255),
        (Image.new("L", (40, 20), 77), "PNG", "L", 77),
        (Image.new("LA", (40, 20), (77, 100)), "PNG", "LA", (77, 100)),
        (Image.new("P", (40, 20), 3), "PNG", "RGB", (3, 3, 3)),
        (Image.new("RGB", (40, 20), (10, 200, 30)), "PNG", "RGB", (10, 200, 30)),
        (Image.new("RGBA", (40, 20), (10, 200, 30, 60)), "PNG", "RGBA", (10, 200, 30, 60)),
        (Image.new("F", (40, 20), 77.0), "TIFF", "L", 77),
    ],
    ids=["1-png", "1-bmp", "L", "LA", "P", "RGB", "RGBA", "F-tiff"],
)
def test_modes(source: Image.Image, fmt: str, expected_mode: str, pixel: object) -> None:
    if source.mode == "P":
        source.putpalette([v for i in range(256) for v in (i, i, i)])
    _, out = thumb(encode(source, fmt), width=20, height=20)
    assert out.mode == expected_mode
    assert close(out.getpixel((10, 5)), pixel, 3)  # type: ignore[arg-type]  # premultiplied


def palette_with_transparency() -> Image.Image:
    """Left half index 0 (transparent, palette black), right half index 1 (red)."""
    im = halves(0, 1, "P")
    im.putpalette([0, 0, 0, 255, 0, 0])
    return im


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_alpha(fmt: str) -> None:
    data = encode(palette_with_transparency(), fmt, transparency=0)
    for output in ("png", "webp"):
        _, out = thumb(data, width=64, height=64, format=output)
        assert out.mode == "RGBA", output
        assert out.getpixel((5, 16))[3] == 0
        assert close(out.getpixel((60, 16)), (255, 0, 0, 255), 8)


@pytest.mark.parametrize(
    "data",
    [
        encode(palette_with_transparency(), "PNG", transparency=0),
        encode(palette_with_transparency(), "GIF", transparency=0),
        encode(halves((0, 0, 0, 0), (255, 0, 0, 255), "RGBA"), "PNG"),
        encode(halves((0, 0, 0, 0), (255, 0, 0, 255), "RGBA"), "WEBP", lossless=True),
    ],
    ids=["P-png", "P-gif", "RGBA-png", "RGBA-webp"],
)
def test_jpeg_output_composites_alpha_on_white(data: bytes) -> None:
    result, out = thumb(data, width=64, height=64, format="jpeg")
    assert result.content_type == "image/jpeg"
    assert out.mode == "RGB"
    assert close(out.getpixel((5, 16)), WHITE, 8)
    assert close(out.getpixel((60, 16)), RED, 12)


def test_grey_alpha_to_jpeg_is_grey_on_white() -> None:
    data = encode(halves((0, 0), (50, 255), "LA"), "PNG")
    _, out = thumb(data, width=64, height=64, format="jpeg")
    assert out.mode == "L"
    assert close(out.getpixel((5, 16)), 255, 6) and close(out.getpixel((60, 16)), 50, 6)


# ---------------------------------------------------------------- metadata


def metadata_rich(fmt: str) -> bytes:
    """An image carrying EXIF, ICC and (for PNG) text and XMP chunks."""
    im = gradient((80, 60))
    exif = exif_with_orientation(1)
    if fmt == "PNG":
        text = PngInfo()
        text.add_text("Comment", "secret")
        text.add_text("Author", "someone", zip=True)
        text.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>secret</x:xmpmeta>")
        return encode(im, fmt, exif=exif, icc_profile=srgb_profile(), pnginfo=text)
    return encode(im, fmt, exif=exif, icc_profile=srgb_profile(), xmp=b"<x:xmpmeta/>")


@pytest.mark.parametrize("source", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("output", ["png", "jpeg", "webp"])
def test_metadata_is_stripped(source: str, output: str) -> None:
    data = metadata_rich(source)
    assert decode(data).info.get("icc_profile")
    result, out = thumb(data, width=40, height=40, format=output)
    for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "Comment", "Author"):
        assert key not in out.info, key
    assert not out.getexif()
    for marker in (b"Exif", b"iCCP", b"ICC_PROFILE", b"tEXt", b"zTXt", b"iTXt", b"xmpmeta"):
        assert marker not in result.data, marker
    assert b"secret" not in result.data and b"TestCam" not in result.data


# ---------------------------------------------------------------- resize


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((1, 1), (100, 100), (1, 1)),
        ((10, 4000), (100, 100), (1, 100)),
        ((4000, 10), (100, 100), (100, 1)),
        ((1600, 1200), (100, 100), (100, 75)),
        ((1200, 1600), (100, 100), (75, 100)),
        ((1600, 1200), (50, 200), (50, 38)),
        ((80, 60), (100, 100), (80, 60)),
        ((300, 100), (100, 100), (100, 33)),
    ],
)
def test_contain(size: tuple[int, int], box: tuple[int, int], expected: tuple[int, int]) -> None:
    result, out = thumb(encode(gradient(size), "PNG"), width=box[0], height=box[1])
    assert (result.width, result.height) == out.size == expected


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((1, 1), (100, 100)),
        ((10, 4000), (100, 100)),
        ((1600, 1200), (64, 200)),
        ((50, 50), (10, 90)),
    ],
)
def test_cover_is_exact(size: tuple[int, int], box: tuple[int, int]) -> None:
    result, out = thumb(encode(gradient(size), "PNG"), width=box[0], height=box[1], fit="cover")
    assert (result.width, result.height) == out.size == box


def test_cover_crops_the_centre() -> None:
    im = Image.new("RGB", (300, 100), RED)
    im.paste(GREEN, (100, 0, 200, 100))
    im.paste(BLUE, (200, 0, 300, 100))
    _, out = thumb(encode(im, "PNG"), width=50, height=50, fit="cover")
    for xy in ((1, 1), (48, 1), (1, 48), (48, 48), (25, 25)):
        assert close(out.getpixel(xy), GREEN, 10), xy
    _, contained = thumb(encode(im, "PNG"), width=60, height=60)
    assert contained.size == (60, 20)
    assert close(contained.getpixel((2, 10)), RED, 10)
    assert close(contained.getpixel((57, 10)), BLUE, 10)


def test_grey_jpeg_stays_grey() -> None:
    _, out = thumb(encode(gradient((200, 100), "L"), "JPEG"), format="jpeg")
    assert out.mode == "L"


# ---------------------------------------------------------------- JPEG draft and speed


@pytest.fixture
def draft_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record the size each JPEG is decoded at after draft()."""
    sizes: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):  # type: ignore[no-untyped-def]
        result = original(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return sizes


@pytest.mark.parametrize(
    ("options", "decoded", "expected"),
    [
        ({}, (200, 150), (100, 75)),
        ({"fit": "cover"}, (200, 150), (100, 100)),
        ({"width": 400, "height": 400}, (400, 300), (400, 300)),
        ({"width": 100, "height": 400}, (400, 300), (100, 75)),
        ({"width": 1000, "height": 10, "fit": "cover"}, (1600, 1200), (1000, 10)),
    ],
)
def test_jpeg_draft_scale(
    draft_sizes: list[tuple[int, int]],
    options: dict[str, object],
    decoded: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    data = encode(gradient((1600, 1200)), "JPEG")
    result, out = thumb(data, **options)
    assert draft_sizes == [decoded]
    assert out.size == expected
    assert result.source.width == 1600


def test_rotated_jpeg_draft_still_covers_the_box(draft_sizes: list[tuple[int, int]]) -> None:
    data = encode(marked((1600, 800)), "JPEG", exif=exif_with_orientation(6))
    _, out = thumb(data, width=100, height=300, fit="cover")
    assert out.size == (100, 300)
    # Drafted for a 300x300 cover box, so large enough whichever way the image turns.
    assert draft_sizes == [(800, 400)]


def test_small_jpeg_is_not_drafted(draft_sizes: list[tuple[int, int]]) -> None:
    _, out = thumb(encode(gradient((90, 60)), "JPEG"))
    assert draft_sizes == [] and out.size == (90, 60)


def test_large_jpeg_thumbnail_is_fast() -> None:
    data = encode(gradient((1600, 1200)), "JPEG", quality=90)
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        make_thumbnail(data, DEFAULT, LIMITS)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.05  # a few ms in practice; generous for slow CI machines


def test_result_facts() -> None:
    data = encode(gradient((1600, 1200)), "JPEG")
    result = make_thumbnail(data, ThumbnailOptions(format="webp"), LIMITS)
    assert result.source == ImageInfo("JPEG", "image/jpeg", 1600, 1200, 1)
    assert result.content_type == "image/webp"
    assert (result.width, result.height) == (100, 75)
    assert 0 < result.decode_ms < 1000 and 0 < result.encode_ms < 1000
    assert isinstance(result, Thumbnail)


def test_domain_errors_only() -> None:
    assert issubclass(ImageTooLarge, InvalidImage)
    assert issubclass(InvalidImage, ThumbnailsError)
