"""Images made on the fly for the tests: one builder per kind the service must handle."""

from __future__ import annotations

import io
import struct
import zlib

import pillow_heif
from PIL import Image, ImageCms

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Save an image to bytes in the given Pillow format (HEIF through pillow-heif, which the
    service registers with Pillow only once a HEIF arrives)."""
    if fmt == "HEIF":
        return heic(image, **params)  # type: ignore[arg-type]
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



def heic(image: Image.Image | list[Image.Image], quality: int = 90, **params: object) -> bytes:
    """HEIC (HEVC in HEIF) written by pillow-heif's encoder; a list makes a sequence whose
    first image is the primary one."""
    images = image if isinstance(image, list) else [image]
    heif = pillow_heif.from_pillow(images[0])
    for more in images[1:]:
        heif.add_from_pillow(more)
    buffer = io.BytesIO()
    heif.save(buffer, quality=quality, **params)
    return buffer.getvalue()


def kinds() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """Every input kind and the thumbnail size expected in a 100x100 box (fit=contain)."""
    return {
        "jpeg": (encode(marked(), "JPEG", quality=95), (100, 75)),
        "png": (encode(marked(), "PNG"), (100, 75)),
        "gif": (animated_gif(), (100, 75)),
        "webp": (encode(marked(), "WEBP", quality=95), (100, 75)),
        "bmp": (encode(marked(), "BMP"), (100, 75)),
        "tiff": (encode(marked(), "TIFF"), (100, 75)),
        "heic": (heic(marked()), (100, 75)),
        "avif": (encode(marked(), "AVIF", quality=90), (100, 75)),
        "exif_rotated": (exif_rotated_jpeg(), (75, 100)),
        "cmyk": (cmyk_jpeg(), (100, 50)),
        "png16": (png16(), (100, 67)),
        "rgba": (rgba_png(), (100, 50)),
        "palette_transparent": (palette_transparent(), (100, 50)),
        "tiny": (encode(Image.new("RGB", (1, 1), GREEN), "PNG"), (1, 1)),
        "tall": (encode(Image.new("RGB", (10, 4000), GREEN), "PNG"), (1, 100)),
    }


# ---------------------------------------------------------------- PNGs byte by byte


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _pack_row(samples: list[int], depth: int) -> bytes:
    """One scanline's samples at the bit depth (MSB first; 16-bit big-endian)."""
    if depth == 16:
        return struct.pack(f">{len(samples)}H", *samples)
    if depth == 8:
        return bytes(samples)
    per_byte = 8 // depth
    out = bytearray()
    for start in range(0, len(samples), per_byte):
        byte = 0
        for i, sample in enumerate(samples[start : start + per_byte]):
            byte |= sample << (8 - depth * (i + 1))
        out.append(byte)
    return bytes(out)


def png_bytes(rows: list[list[tuple[int, ...]]], depth: int, colour_type: int, *,
              palette: list[tuple[int, int, int]] | None = None, trns: bytes | None = None,
              icc: bytes | None = None, iend: bool = True, gamma: int | None = None,
              srgb: bool = False) -> bytes:
    """A PNG written from raw samples, without Pillow (PNG spec 11.2): every pixel of rows is
    a tuple of samples at depth (for colour type 3, a palette index); filter 0 on every line;
    optional sRGB, gAMA (gamma x 100000), iCCP, PLTE and tRNS (raw chunk data) chunks."""
    height, width = len(rows), len(rows[0])
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", ihdr)]
    if srgb:
        chunks.append(_png_chunk(b"sRGB", b"\0"))
    if gamma is not None:
        chunks.append(_png_chunk(b"gAMA", struct.pack(">I", gamma)))
    if icc is not None:
        chunks.append(_png_chunk(b"iCCP", b"test profile\0\0" + zlib.compress(icc)))
    if palette is not None:
        chunks.append(_png_chunk(b"PLTE", b"".join(bytes(entry) for entry in palette)))
    if trns is not None:
        chunks.append(_png_chunk(b"tRNS", trns))
    raw = b"".join(b"\0" + _pack_row([s for pixel in row for s in pixel], depth) for row in rows)
    chunks.append(_png_chunk(b"IDAT", zlib.compress(raw)))
    if iend:
        chunks.append(_png_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def banded(bands: list[tuple[int, ...]], band_width: int = 16, height: int = 16
           ) -> list[list[tuple[int, ...]]]:
    """Rows of vertical bands, each band_width pixels wide, one sample tuple per band."""
    row = [band for band in bands for _ in range(band_width)]
    return [row] * height


# ---------------------------------------------------------------- animation canvases


def gif_small_first_frame(canvas: tuple[int, int] = (40, 40),
                          box: tuple[int, int, int, int] = (10, 10, 20, 20),
                          transparency: int | None = None) -> bytes:
    """A GIF89a whose only frame, index 2 (red) in a 4-colour table whose background entry 0
    is green, covers just box (left, top, width, height) of the canvas (GIF89a spec, 18-23).
    Written by hand: Pillow always writes a first frame that covers the canvas."""
    width, height = canvas
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF1, 0, 0))
    out += bytes([0, 255, 0, 0, 0, 255, 255, 0, 0, 255, 255, 255])  # green, blue, red, white
    if transparency is not None:
        out += bytes([0x21, 0xF9, 4, 1, 0, 0, transparency, 0])
    left, top, frame_w, frame_h = box
    out += b"\x2c" + struct.pack("<HHHHB", left, top, frame_w, frame_h, 0)
    bits: list[int] = []
    for i in range(frame_w * frame_h):
        if i % 2 == 0:  # a clear code every two pixels keeps every code 3 bits wide
            bits.extend((4 >> b) & 1 for b in range(3))
        bits.extend((2 >> b) & 1 for b in range(3))
    bits.extend((5 >> b) & 1 for b in range(3))  # end of information
    packed = bytes(sum(bit << j for j, bit in enumerate(bits[i : i + 8]))
                   for i in range(0, len(bits), 8))
    out += b"\x02"  # LZW minimum code size
    for i in range(0, len(packed), 255):
        out += bytes([len(packed[i : i + 255])]) + packed[i : i + 255]
    return bytes(out + b"\x00\x3b")


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def webp_animation(canvas: tuple[int, int] = (40, 40),
                   box: tuple[int, int, int, int] = (10, 10, 20, 20),
                   alpha_flag: bool = False, colour: tuple[int, int, int] = RED) -> bytes:
    """An animated WebP (VP8X + ANIM + one ANMF) whose frame, an opaque lossless colour
    block, covers box (left, top, width, height; left and top even) of the canvas; the ANIM
    background colour is opaque green (WebP container spec, "Extended File Format")."""
    frame = encode(Image.new("RGB", box[2:], colour), "WEBP", lossless=True)[12:]
    width, height = canvas
    flags = 0x02 | (0x10 if alpha_flag else 0)
    vp8x = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (
        height - 1).to_bytes(3, "little")
    anim = struct.pack("<IH", 0xFF00FF00, 0)  # background BGRA (opaque green), loop forever
    left, top, frame_w, frame_h = box
    anmf = b"".join(v.to_bytes(3, "little") for v in (left // 2, top // 2, frame_w - 1,
                                                       frame_h - 1, 100)) + b"\0"
    body = (b"WEBP" + _riff_chunk(b"VP8X", vp8x) + _riff_chunk(b"ANIM", anim)
            + _riff_chunk(b"ANMF", anmf + frame))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def apng(default_in_animation: bool, frames: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE)
         ) -> bytes:
    """An APNG of flat frames; with default_in_animation False the first colour is only the
    default image (shown by viewers without APNG support), not an animation frame."""
    images = [Image.new("RGB", (40, 30), colour) for colour in frames]
    return encode(images[0], "PNG", save_all=True, append_images=images[1:], duration=500,
                  default_image=not default_in_animation)
