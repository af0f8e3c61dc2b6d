"""Images made on the fly for the tests: one builder per kind the service must handle."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageCms

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Save an image to bytes in the given Pillow format."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def marked(size: tuple[int, int] = (400, 300), mode: str = "RGB") -> Image.Image:
    """A blue image with a red top-left quadrant: shows orientation after any transform."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1] // 2))
    return image.convert(mode) if mode != "RGB" else image


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """A 400x300 marked JPEG whose EXIF says to rotate it (6: 90° clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(marked(), "JPEG", exif=exif.tobytes(), quality=95)


def cmyk_jpeg(with_icc: bool = False) -> bytes:
    """A CMYK JPEG, pure cyan (0% red light)."""
    image = Image.new("CMYK", (200, 100), (255, 0, 0, 0))
    return encode(image, "JPEG", quality=95)


def png16(value: int = 32768) -> bytes:
    """A 16-bit greyscale PNG at one level (32768 is mid-grey)."""
    return encode(Image.new("I;16", (120, 80), value), "PNG")


def rgba_png() -> bytes:
    """RGBA: left half opaque red, right half fully transparent."""
    image = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 100, 100))
    return encode(image, "PNG")


def palette_transparent(fmt: str = "PNG") -> bytes:
    """A palette image whose index 0 is transparent (left half) and index 1 green."""
    image = Image.new("P", (200, 100), 0)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    image.paste(1, (100, 0, 200, 100))
    return encode(image, fmt, transparency=0)


def animated_gif() -> bytes:
    """Two frames: red then blue; the thumbnail must show the first."""
    frames = [Image.new("RGB", (120, 90), RED), Image.new("RGB", (120, 90), BLUE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def with_srgb_icc(fmt: str = "PNG") -> bytes:
    """A marked image carrying an sRGB ICC profile (converted, then stripped on output)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(marked((160, 120)), fmt, icc_profile=profile)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    real = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return real[:8] + patched + real[8 + 25:]



def kinds() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """Every input kind and the thumbnail size expected in a 100x100 box (fit=contain)."""
    return {
        "jpeg": (encode(marked(), "JPEG", quality=95), (100, 75)),
        "png": (encode(marked(), "PNG"), (100, 75)),
        "gif": (animated_gif(), (100, 75)),
        "webp": (encode(marked(), "WEBP", quality=95), (100, 75)),
        "bmp": (encode(marked(), "BMP"), (100, 75)),
        "tiff": (encode(marked(), "TIFF"), (100, 75)),
        "exif_rotated": (exif_rotated_jpeg(), (75, 100)),
        "cmyk": (cmyk_jpeg(), (100, 50)),
        "png16": (png16(), (100, 67)),
        "rgba": (rgba_png(), (100, 50)),
        "palette_transparent": (palette_transparent(), (100, 50)),
        "tiny": (encode(Image.new("RGB", (1, 1), GREEN), "PNG"), (1, 1)),
        "tall": (encode(Image.new("RGB", (10, 4000), GREEN), "PNG"), (1, 100)),
    }
