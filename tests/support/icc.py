"""ICC profiles built byte by byte, and the colour maths to check conversions by hand.

Nothing here uses Pillow or LittleCMS: the profiles are written from the ICC.1 spec
(version 2 header; tag types XYZType, curveType, parametricCurveType, lut16Type,
textDescriptionType) and the expected sRGB values come from the primaries, white points
and tone curves in plain Python, so they are independent of the code under test.
"""

from __future__ import annotations

import struct

Matrix = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
Vector = tuple[float, float, float]

D50: Vector = (0.9642, 1.0, 0.8249)  # the ICC PCS illuminant (ICC.1 7.2.16)
D65_XY = (0.3127, 0.3290)
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))  # IEC 61966-2-1
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))  # Display P3 (SMPTE EG 432-1)
BRADFORD: Matrix = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367),
                    (0.0389, -0.0685, 1.0296))
GREY_GAMMA = 461 / 256  # 1.8 as curveType stores it (u8Fixed8Number)


# ---------------------------------------------------------------- 3x3 maths


def mul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3))
                 for i in range(3))  # type: ignore[return-value]


def apply(m: Matrix, v: Vector) -> Vector:
    return tuple(sum(m[i][k] * v[k] for k in range(3)) for i in range(3))  # type: ignore


def inverse(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    cof = ((e * i - f * h, c * h - b * i, b * f - c * e),
           (f * g - d * i, a * i - c * g, c * d - a * f),
           (d * h - e * g, b * g - a * h, a * e - b * d))
    return tuple(tuple(x / det for x in row) for row in cof)  # type: ignore[return-value]


def xy_to_xyz(x: float, y: float) -> Vector:
    return (x / y, 1.0, (1 - x - y) / y)


def rgb_to_xyz(primaries: tuple[tuple[float, float], ...], white: Vector) -> Matrix:
    """RGB (linear) -> XYZ for these primaries, so that RGB (1, 1, 1) is the white point."""
    columns = [xy_to_xyz(*p) for p in primaries]
    m: Matrix = tuple(tuple(columns[j][i] for j in range(3)) for i in range(3))  # type: ignore
    scale = apply(inverse(m), white)
    return tuple(tuple(m[i][j] * scale[j] for j in range(3)) for i in range(3))  # type: ignore


def adaptation(source: Vector, target: Vector) -> Matrix:
    """Bradford chromatic adaptation (ICC.1 Annex E) from one white point to another."""
    s, t = apply(BRADFORD, source), apply(BRADFORD, target)
    gain: Matrix = ((t[0] / s[0], 0, 0), (0, t[1] / s[1], 0), (0, 0, t[2] / s[2]))
    return mul(inverse(BRADFORD), mul(gain, BRADFORD))


D65: Vector = xy_to_xyz(*D65_XY)
SRGB_TO_XYZ = rgb_to_xyz(SRGB_PRIMARIES, D65)
XYZ_TO_SRGB = inverse(SRGB_TO_XYZ)
P3_TO_XYZ = rgb_to_xyz(P3_PRIMARIES, D65)
XYZ_D50_TO_SRGB = mul(XYZ_TO_SRGB, adaptation(D50, D65))


# ---------------------------------------------------------------- tone curves


def srgb_decode(v: float) -> float:
    """sRGB-encoded 0-1 -> linear 0-1 (IEC 61966-2-1)."""
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def srgb_encode(v: float) -> float:
    """Linear 0-1 -> sRGB-encoded 0-1, clipped to the gamut."""
    v = min(1.0, max(0.0, v))
    return v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def to_byte(v: float) -> float:
    """0-1 -> 0-255, unrounded (compare with a tolerance)."""
    return v * 255


# ---------------------------------------------------------------- expected values


def p3_to_srgb(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """8-bit Display P3 -> sRGB, 0-255 (unrounded)."""
    linear = tuple(srgb_decode(c / 255) for c in rgb)  # Display P3 uses the sRGB curve
    out = apply(XYZ_TO_SRGB, apply(P3_TO_XYZ, linear))  # type: ignore[arg-type]
    return tuple(to_byte(srgb_encode(c)) for c in out)  # type: ignore[return-value]


def grey_to_srgb(level: float) -> float:
    """A 0-1 grey level under the gamma-1.8 grey profile -> sRGB 0-255 (R = G = B)."""
    return to_byte(srgb_encode(level**GREY_GAMMA))


def xyz_d50_to_srgb(xyz: Vector) -> tuple[float, float, float]:
    """PCS XYZ (D50-relative) -> sRGB 0-255, as an sRGB output profile would render it."""
    return tuple(to_byte(srgb_encode(c)) for c in apply(XYZ_D50_TO_SRGB, xyz))  # type: ignore


def srgb_to_xyz_d50(rgb: tuple[int, int, int]) -> Vector:
    """8-bit sRGB -> PCS XYZ (D50-relative): what a CLUT must hold to mean this colour."""
    linear = tuple(srgb_decode(c / 255) for c in rgb)
    return apply(adaptation(D65, D50), apply(SRGB_TO_XYZ, linear))  # type: ignore[arg-type]


# ---------------------------------------------------------------- ICC bytes


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(v: Vector) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(c) for c in v)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)


def _srgb_curve_tag() -> bytes:
    """parametricCurveType, function 3: the sRGB tone curve."""
    params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(p) for p in params)


def _gamma_curve_tag(gamma_u8f8: int) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, gamma_u8f8)


def _profile(device_class: bytes, colour_space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """Assemble a version 2.1 profile; tags with equal data share one copy."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    blobs: list[bytes] = []
    placed: dict[bytes, tuple[int, int]] = {}
    entries = []
    for signature, data in tags:
        if data not in placed:
            placed[data] = (offset, len(data))
            padded = data + b"\0" * (-len(data) % 4)
            blobs.append(padded)
            offset += len(padded)
        entries.append(struct.pack(">4sII", signature, *placed[data]))
    body = struct.pack(">I", len(tags)) + b"".join(entries) + b"".join(blobs)
    size = 128 + len(body)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000)
              + device_class + colour_space + b"XYZ " + b"\0" * 12 + b"acsp"
              + b"\0" * 24 + struct.pack(">I", 0) + b"".join(_s15(c) for c in D50)
              + b"\0" * 48)
    assert len(header) == 128
    return header + body


def display_p3_profile() -> bytes:
    """A matrix/TRC Display P3 profile: P3 primaries, D65 white, sRGB curve (like Apple's)."""
    return matrix_profile(P3_TO_XYZ, "Display P3 (test)")


def srgb_profile() -> bytes:
    """A matrix/TRC sRGB profile (IEC 61966-2-1 primaries, D65 white, sRGB curve)."""
    return matrix_profile(SRGB_TO_XYZ, "sRGB (test)")


def matrix_profile(rgb_to_xyz_d65: Matrix, name: str) -> bytes:
    """An RGB display profile: D50-adapted colorants (Bradford), the sRGB tone curve."""
    colorants = mul(adaptation(D65, D50), rgb_to_xyz_d65)
    curve = _srgb_curve_tag()
    return _profile(b"mntr", b"RGB ", [
        (b"desc", _desc_tag(name)),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(tuple(colorants[i][0] for i in range(3)))),  # type: ignore[arg-type]
        (b"gXYZ", _xyz_tag(tuple(colorants[i][1] for i in range(3)))),  # type: ignore[arg-type]
        (b"bXYZ", _xyz_tag(tuple(colorants[i][2] for i in range(3)))),  # type: ignore[arg-type]
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain\0"),
    ])


def grey_profile() -> bytes:
    """A grey profile with a plain gamma of 1.8 (GREY_GAMMA) and a D50 white."""
    return _profile(b"mntr", b"GRAY", [
        (b"desc", _desc_tag("Grey gamma 1.8 (test)")),
        (b"wtpt", _xyz_tag(D50)),
        (b"kTRC", _gamma_curve_tag(round(GREY_GAMMA * 256))),
        (b"cprt", b"text\0\0\0\0public domain\0"),
    ])


# CMYK corner (each ink 0 or 255) -> the sRGB colour the test CMYK profile gives it.
CMYK_CORNERS: dict[tuple[int, int, int, int], tuple[int, int, int]] = {}
for _c in (0, 255):
    for _m in (0, 255):
        for _y in (0, 255):
            for _k in (0, 255):
                # A made-up press: each ink takes away part of its complement. Paper is white
                # and full K black, so LittleCMS's white-on-white fixup and its black point
                # compensation (on for perceptual intent with a v4 sRGB) change nothing.
                _r = 255 - 190 * (_c // 255) - 20 * (_m // 255)
                _g = 255 - 30 * (_c // 255) - 170 * (_m // 255) - 10 * (_y // 255)
                _b = 255 - 25 * (_m // 255) - 180 * (_y // 255)
                CMYK_CORNERS[(_c, _m, _y, _k)] = (0, 0, 0) if _k else (_r, _g, _b)


def cmyk_profile() -> bytes:
    """An output-class CMYK profile whose A2B0 (lut16Type, 2-point grid) holds CMYK_CORNERS.

    lut16 encodes PCS XYZ as u1Fixed15 (1.0 = 0x8000); input and output tables are identity.
    """
    grid = []
    for c in (0, 255):
        for m in (0, 255):
            for y in (0, 255):
                for k in (0, 255):  # the first input channel varies slowest
                    xyz = srgb_to_xyz_d50(CMYK_CORNERS[(c, m, y, k)])
                    grid.append(struct.pack(">3H", *(round(v * 32768) for v in xyz)))
    identity = b"".join(_s15(1.0 if i == j else 0.0) for i in range(3) for j in range(3))
    lut = (b"mft2\0\0\0\0" + struct.pack(">BBBB", 4, 3, 2, 0) + identity
           + struct.pack(">HH", 2, 2)
           + struct.pack(">2H", 0, 65535) * 4 + b"".join(grid) + struct.pack(">2H", 0, 65535) * 3)
    return _profile(b"prtr", b"CMYK", [
        (b"desc", _desc_tag("Made-up CMYK (test)")),
        (b"wtpt", _xyz_tag(D50)),
        (b"A2B0", lut),
        (b"cprt", b"text\0\0\0\0public domain\0"),
    ])
