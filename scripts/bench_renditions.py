#!/usr/bin/env python3
"""Benchmark: several renditions from one decode vs one job per output, in process.

On photo-like JPEGs (12 MP and 1600x1200 by default), times, median of --runs:
  - make_thumbnails(data, [avatar, w320, w1024]): what resize does for one job that asks
    for the three renditions of the README's example;
  - make_thumbnail once per output: what three single-thumbnail jobs cost;
  - make_thumbnail for the avatar alone (a job of the old kind), for scale.
Prints CPU milliseconds per image (process time: the machine is shared, and wall time
would count the other processes' turns), the saving, and where one job's time goes (each
rendition's resize and encode; the shared decode is in the first one's). One process, one
core: no stack.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import make_jpegs  # noqa: E402

from thumbnails.core import imaging  # noqa: E402
from thumbnails.core.renditions import parse_renditions  # noqa: E402

README_EXAMPLE = [
    {"name": "avatar", "width": 100, "height": 100, "format": "png", "fit": "cover"},
    {"name": "w320", "width": 320, "height": 1024, "format": "webp"},
    {"name": "w1024", "width": 1024, "height": 1024, "format": "avif"},
]
LIMITS = imaging.Limits()


def median_ms(work: object, runs: int) -> float:
    """Median CPU time of work() in milliseconds (one warm-up call first)."""
    assert callable(work)
    work()
    times = []
    for _ in range(runs):
        started = time.process_time()
        work()
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def scaled(data: bytes, size: tuple[int, int]) -> bytes:
    """The same photo at another size (a 12 MP camera's 4000x3000, say)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.resize(size, Image.Resampling.BICUBIC).save(out, "JPEG", quality=90)
        return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (default 7)")
    args = parser.parse_args()
    options = [r.options for r in parse_renditions(README_EXAMPLE, 1024)]
    [photo] = make_jpegs(1)
    print(f"renditions: {', '.join(r['name'] for r in README_EXAMPLE)}; median of "
          f"{args.runs} runs, ms per image")
    for label, data in (("12 MP (4000x3000)", scaled(photo, (4000, 3000))),
                        ("1600x1200", photo)):
        one_decode = median_ms(lambda d=data: imaging.make_thumbnails(d, options, LIMITS),
                               args.runs)
        separate = median_ms(lambda d=data: [imaging.make_thumbnail(d, o, LIMITS)
                                             for o in options], args.runs)
        single = median_ms(lambda d=data: imaging.make_thumbnail(d, options[0], LIMITS),
                           args.runs)
        print(f"{label}: one decode, 3 renditions {one_decode:.1f} ms; "
              f"3 separate thumbnails {separate:.1f} ms "
              f"({(1 - one_decode / separate) * 100:.0f}% saved); "
              f"the avatar alone {single:.1f} ms")
        made = imaging.make_thumbnails(data, options, LIMITS)
        print("  one job: " + "; ".join(
            f"{r['name']} {t.width}x{t.height} decode+resize {t.decode_ms:.1f} ms, "
            f"encode {t.encode_ms:.1f} ms" for r, t in zip(README_EXAMPLE, made, strict=True)))


if __name__ == "__main__":
    main()
