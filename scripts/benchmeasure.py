"""Benchmark parts: the input images, CPU accounting from /proc, one round's figures."""

from __future__ import annotations

import io
import os
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
BOX = (100, 100)


# --- images --------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageKind:
    """One input of the benchmark: several photo-like variants of one size and format."""

    key: str
    label: str
    size: tuple[int, int]
    format: str  # Pillow's format name: JPEG or PNG
    variants: int
    share: float  # jobs per round, as a share of --jobs

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "JPEG" else "png"

    @property
    def content_type(self) -> str:
        return f"image/{self.format.lower()}"


IMAGE_KINDS = (
    ImageKind("jpeg", "1600x1200 q90 JPEG", (1600, 1200), "JPEG", 8, 1.0),
    ImageKind("jpeg12mp", "4000x3000 (12 MP) q90 JPEG", (4000, 3000), "JPEG", 2, 0.25),
    ImageKind("png2mp", "1632x1224 (2 MP) PNG", (1632, 1224), "PNG", 2, 0.25),
)


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like RGB picture: a gradient, 40 blurred ellipses and noise (no two alike)."""
    rng = random.Random(seed)
    width, height = size
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(base)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + rng.randrange(width // 32, width // 4),
                      y + rng.randrange(height // 24, height // 3)), colour)
    noise = Image.effect_noise(size, 40 + seed % 20).convert("RGB")
    return Image.blend(base.filter(ImageFilter.GaussianBlur(2)), noise, 0.15)


def make_images(kind: ImageKind) -> list[bytes]:
    """The encoded variants of one kind (JPEG at quality 90, PNG at Pillow's default)."""
    out = []
    for i in range(kind.variants):
        buffer = io.BytesIO()
        photo(kind.size, 42 + i).save(buffer, kind.format,
                                      **({"quality": 90} if kind.format == "JPEG" else {}))
        out.append(buffer.getvalue())
    return out


# --- CPU accounting --------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, CPU ticks of the process and its reaped children), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # proc(5): fields 4 ppid, 14 utime, 15 stime, 16 cutime, 17 cstime; [0] here is field 3
    return int(fields[1]), sum(int(v) for v in fields[11:15])


def tree_cpu(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each part: its root processes, all their
    living descendants, and the children they reaped (cutime/cstime, proc(5)).

    roots: part name -> root pids. A descendant of two roots counts for the first given.
    A process that dies between two readings moves from its own count to its parent's
    cutime, so the difference of two readings is the CPU used in between.
    """
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    used = {}
    seen: set[int] = set()
    for part, pids in roots.items():
        ticks = 0
        todo = [pid for pid in pids if pid in stats]
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            ticks += stats[pid][1]
            todo.extend(children.get(pid, ()))
        used[part] = ticks / TICK
    return used


def rest_cpu(roots: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """CPU ms per second each part uses at rest, over a window of `seconds` with no load."""
    before = tree_cpu(roots)
    time.sleep(seconds)  # the measuring window itself, not a wait for some state
    after = tree_cpu(roots)
    return {part: (after[part] - before[part]) * 1000 / seconds for part in after}


def own_cpu() -> float:
    """CPU seconds this process (the client) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- one round of one system -------------------------------------------------------------

@dataclass
class Sample:
    """One round of one system on one image kind."""

    jobs: int
    wall_s: float
    cpu_s: dict[str, float]  # part -> CPU seconds in the round
    latencies_ms: list[float]
    client_cpu_s: float = 0.0

    @property
    def cpu_ms_per_job(self) -> float:
        return sum(self.cpu_s.values()) * 1000 / self.jobs

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least 1
    return ordered[int(rank) - 1]


def settle(roots: dict[str, list[int]], quiet_ticks: int = 2, timeout: float = 5.0) -> None:
    """Wait until the system's work after the last answer (events, acks) has ended: its CPU
    grows by at most quiet_ticks clock ticks in 0.1 s, or timeout passes."""
    deadline = time.monotonic() + timeout
    last = sum(tree_cpu(roots).values())
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = sum(tree_cpu(roots).values())
        if now - last <= quiet_ticks / TICK:
            return
        last = now


