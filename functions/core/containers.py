"""Facts read from image container bytes without decoding any pixels. Pure, no I/O.

Each reader takes the raw file bytes, trusts nothing in them (every length is bounds-checked)
and answers None or an empty result where the bytes do not say; the decoders stay the judge
of whether a file is valid.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# ISO/IEC 23008-12 (HEIF) and the AV1 Image File Format spec: ftyp brands of still images
# and image sequences. "mif1"/"msf1" are the generic HEIF brands; the codec brand among the
# compatible brands decides which decoder reads the file.
AVIF_BRANDS = frozenset({b"avif", b"avis"})
HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"heif"})
GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})


def ftyp_brands(data: bytes) -> list[bytes]:
    """The major brand then the compatible brands of an ISOBMFF ftyp box, or []."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return []
    (size,) = struct.unpack(">I", data[:4])
    if not 16 <= size <= min(len(data), 4096) or size % 4:
        return []
    return [data[8:12]] + [data[i : i + 4] for i in range(16, size, 4)]


def heif_family(data: bytes) -> str | None:
    """"AVIF" or "HEIF" from the ftyp brands (AV1 wins over HEVC when both appear), else None."""
    brands = ftyp_brands(data)
    if not brands:
        return None
    listed = set(brands)
    if brands[0] in AVIF_BRANDS or (brands[0] in GENERIC_HEIF_BRANDS and listed & AVIF_BRANDS):
        return "AVIF"
    if brands[0] in HEIC_BRANDS | GENERIC_HEIF_BRANDS or listed & HEIC_BRANDS:
        return "HEIF"
    return None


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each ISOBMFF box in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:  # 64-bit largesize
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:  # the box runs to the end of its parent
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def heif_image_sizes(data: bytes) -> list[tuple[int, int]]:
    """Every (width, height) an ImageSpatialExtents ('ispe') property of the file declares.

    The path is meta > iprp > ipco > ispe (ISO/IEC 23008-12, 6.5.3). The largest of them
    bounds what a decoder will allocate for any image item (grids included), so checking it
    needs no decoder at all.
    """
    sizes: list[tuple[int, int]] = []
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for kind2, start2, end2 in _boxes(data, start + 4, end):  # meta is a FullBox
            if kind2 != b"iprp":
                continue
            for kind3, start3, end3 in _boxes(data, start2, end2):
                if kind3 != b"ipco":
                    continue
                for kind4, start4, end4 in _boxes(data, start3, end3):
                    if kind4 == b"ispe" and end4 - start4 >= 12:
                        sizes.append(struct.unpack(">II", data[start4 + 4 : start4 + 12]))
    return sizes


@dataclass(frozen=True)
class PngHeader:
    """IHDR facts and the raw tRNS chunk of a PNG (PNG spec, 11.2.2 and 11.3.2.1)."""

    bit_depth: int
    colour_type: int  # 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
    trns: bytes | None

    def transparency_key(self) -> tuple[int, ...] | None:
        """The tRNS key scaled to the 8-bit (or, for 16-bit grey, 16-bit) decoded samples.

        Grey keys are stored at the image's bit depth; Pillow decodes 1, 2 and 4-bit grey
        to 8 bits by scaling each sample by 255 / (2**depth - 1), so the key is scaled the
        same way. 16-bit grey decodes to 16-bit samples: the key stays as it is. 16-bit RGB
        decodes to the high byte of each sample, so the key does too (a colour within 1/256
        of the key then also matches: Pillow keeps no 16-bit RGB to compare exactly).
        """
        if self.trns is None or self.colour_type not in (0, 2):
            return None
        count = 1 if self.colour_type == 0 else 3
        if len(self.trns) < 2 * count:
            return None
        raw = struct.unpack(f">{count}H", self.trns[: 2 * count])
        if self.colour_type == 0 and self.bit_depth < 8:
            top = (1 << self.bit_depth) - 1
            return (((raw[0] & top) * 255) // top,)
        if self.colour_type == 2 and self.bit_depth == 16:
            return tuple(value >> 8 for value in raw)
        return raw


def png_header(data: bytes) -> PngHeader | None:
    """IHDR depth and colour type and the tRNS chunk, read up to the first IDAT; or None."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    depth, colour_type = data[24], data[25]
    pos, trns = 33, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT" or pos + 12 + length > len(data):
            break
        if kind == b"tRNS":
            trns = bytes(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return PngHeader(depth, colour_type, trns)


def gif_first_frame_box(data: bytes) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of a GIF's first image descriptor (GIF89a spec, 20), or None."""
    if len(data) < 13 or data[:3] != b"GIF":
        return None
    pos = 13
    if data[10] & 0x80:  # global colour table
        pos += 3 << ((data[10] & 7) + 1)
    while pos < len(data):
        if data[pos] == 0x2C:
            if pos + 9 > len(data):
                return None
            left, top, width, height = struct.unpack("<HHHH", data[pos + 1 : pos + 9])
            return left, top, left + width, top + height
        if data[pos] != 0x21 or pos + 2 > len(data):  # not an extension: malformed
            return None
        pos += 2
        while pos < len(data) and data[pos]:  # data sub-blocks until the 0 terminator
            pos += data[pos] + 1
        pos += 1
    return None


WEBP_ANIMATION_FLAG, WEBP_ALPHA_FLAG = 0x02, 0x10  # VP8X flags (WebP container spec)


def webp_animation_without_alpha_flag(data: bytes) -> bool:
    """Whether a WebP is animated (VP8X) but does not set the alpha flag.

    Frames of an animation need not cover the canvas; what they leave uncovered is
    transparent (the ANIM background colour is only a hint, and browsers ignore it), whatever
    the alpha flag says. Pillow takes a missing flag to mean "decode as RGB" and shows black.
    """
    return (len(data) > 30 and data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8X"
            and data[20] & WEBP_ANIMATION_FLAG != 0 and data[20] & WEBP_ALPHA_FLAG == 0)


def with_webp_alpha_flag(data: bytes) -> bytes:
    """The same WebP with the VP8X alpha flag set (the frames' pixels are untouched)."""
    return data[:20] + bytes([data[20] | WEBP_ALPHA_FLAG]) + data[21:]
