#!/usr/bin/env python3
"""Benchmark: what each imaging step of issue 10 costs per image, in milliseconds.

One process, on a 12 MP (4000x3000) photo-like picture; each figure is the median of
--repeat runs after one warm-up, in wall time and in this process's CPU time (on a shared
machine the CPU time moves less; "nan" where only the wall time is known). Each line gives a
step's cost as the difference between two runs that differ only by that step, or the step
timed alone:
  - ICC: a Display P3 profile converted to sRGB (colour.to_srgb alone at 12 MP, and the
    whole thumbnail of a tagged vs an untagged JPEG);
  - transparency: a tRNS colour key turned into alpha (colour.to_srgb alone at 12 MP);
  - smart crop: gravity=smart vs center for a 100x100 cover thumbnail of the JPEG;
  - HEIC decode: the thumbnail of the same picture as HEIC vs as JPEG;
  - AVIF encode: a 1024x768 and a 100x75 thumbnail in AVIF vs WebP and JPEG.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support
from tests.support.icc import display_p3_profile  # noqa: E402
from tests.support.images import heic  # noqa: E402
from thumbnails.core import colour, saliency  # noqa: E402
from thumbnails.core.imaging import Limits, ThumbnailOptions, make_thumbnail  # noqa: E402

LIMITS = Limits()
SIZE = (4000, 3000)


def photo(size: tuple[int, int] = SIZE) -> Image.Image:
    """Photo-like: a blurred gradient with shapes, and noise."""
    rng = random.Random(12)
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(base)
    for _ in range(60):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + rng.randrange(100, 1000), y + rng.randrange(100, 1000)), fill)
    noise = Image.effect_noise(size, 40).convert("RGB")
    return Image.blend(base.filter(ImageFilter.GaussianBlur(3)), noise, 0.12)


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def median_ms(step: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median (wall ms, CPU ms of this process, all its threads) of repeat runs."""
    step()  # warm-up: caches (ICC transforms), page faults
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure")
    repeat = parser.parse_args().repeat
    picture = photo()
    jpeg = encoded(picture, "JPEG", quality=90)
    jpeg_p3 = encoded(picture, "JPEG", quality=90, icc_profile=display_p3_profile())

    def row(label: str, value: tuple[float, float] | float) -> None:
        wall, cpu = value if isinstance(value, tuple) else (value, float("nan"))
        print(f"{label:<64} {wall:9.1f} {cpu:9.1f}", flush=True)

    print(f"12 MP ({SIZE[0]}x{SIZE[1]}), median of {repeat} runs, one process")
    print(f"{'':<64} {'wall ms':>9} {'CPU ms':>9}")
    # ICC: the conversion alone at full size, then in a drafted 100x100 thumbnail.
    tagged = picture.copy()
    tagged.info["icc_profile"] = display_p3_profile()
    plain_ms = median_ms(lambda: colour.to_srgb(picture), repeat)
    row("to_srgb, 12 MP RGB, no profile", plain_ms)
    row("to_srgb, 12 MP RGB, Display P3 profile (ICC step)",
        median_ms(lambda: colour.to_srgb(tagged), repeat))
    default = ThumbnailOptions()
    row("thumbnail 100x100 of the JPEG, untagged",
        median_ms(lambda: make_thumbnail(jpeg, default, LIMITS), repeat))
    row("thumbnail 100x100 of the JPEG, Display P3 tagged",
        median_ms(lambda: make_thumbnail(jpeg_p3, default, LIMITS), repeat))
    big = ThumbnailOptions(1024, 1024)
    row("thumbnail 1024 of the JPEG, untagged",
        median_ms(lambda: make_thumbnail(jpeg, big, LIMITS), repeat))
    row("thumbnail 1024 of the JPEG, Display P3 tagged",
        median_ms(lambda: make_thumbnail(jpeg_p3, big, LIMITS), repeat))
    # Transparency: a tRNS colour key made into alpha at full size.
    row("to_srgb, 12 MP RGB with a tRNS colour key (transparency step)",
        median_ms(lambda: colour.to_srgb(picture, (255, 0, 0)), repeat))
    grey16 = picture.convert("L").convert("I;16")
    row("to_srgb, 12 MP 16-bit grey, no key", median_ms(lambda: colour.to_srgb(grey16), repeat))
    row("to_srgb, 12 MP 16-bit grey with a tRNS key",
        median_ms(lambda: colour.to_srgb(grey16, (1000,)), repeat))
    # Smart crop.
    center = ThumbnailOptions(100, 100, "png", "cover")
    smart = ThumbnailOptions(100, 100, "png", "cover", None, "smart")
    row("thumbnail 100x100 cover, gravity=center",
        median_ms(lambda: make_thumbnail(jpeg, center, LIMITS), repeat))
    row("thumbnail 100x100 cover, gravity=smart",
        median_ms(lambda: make_thumbnail(jpeg, smart, LIMITS), repeat))
    wide = picture.crop((0, 0, 4000, 1500))  # a 2:1 picture: the window slides a long way
    row("saliency.smart_position alone, 12 MP decoded image",
        median_ms(lambda: saliency.smart_position(picture, (3000, 3000)), repeat))
    row("saliency.smart_position alone, 4000x1500 decoded image",
        median_ms(lambda: saliency.smart_position(wide, (1500, 1500)), repeat))
    # HEIC decode.
    heic_data = heic(picture, quality=90)
    row("thumbnail 100x100 of the HEIC (libheif decode, no draft)",
        median_ms(lambda: make_thumbnail(heic_data, default, LIMITS), repeat))
    row("  of which decode_ms (decode, orientation, colour, resize)", statistics.median(
        make_thumbnail(heic_data, default, LIMITS).decode_ms for _ in range(repeat)))
    row("thumbnail 100x100 of the same JPEG (drafted decode)",
        median_ms(lambda: make_thumbnail(jpeg, default, LIMITS), repeat))
    # AVIF encode: thumbnails of pictures already at the output size (no resize), so each
    # row is a small JPEG decode plus the encode; the jpeg row is the baseline.
    for width, height in ((1024, 768), (100, 75)):
        source = encoded(picture.resize((width, height), Image.Resampling.LANCZOS), "JPEG",
                         quality=95)
        for fmt in ("avif", "webp", "jpeg"):
            options = ThumbnailOptions(width, height, fmt)
            row(f"thumbnail {width}x{height} of a {width}x{height} JPEG, {fmt} out",
                median_ms(lambda o=options, d=source: make_thumbnail(d, o, LIMITS), repeat))


if __name__ == "__main__":
    main()
