"""Memory that comes back after large requests: glibc's malloc_trim when a worker's resident
set has grown well above what it was idle.

Why: with serving.MALLOC_TUNING (buffers under 32 MiB come from the heap, not fresh
mappings, and the heap's top is returned only past 128 MiB free) and gthread's request
threads (each may use an arena of its own), what one 15 MB upload or one 49 MP decode freed
stays in the process: measured, upload grew about 20 MB per such upload and a resize worker
stayed at about 240 MB after one 49 MP PNG. malloc_trim(0) gives the free pages of every
arena back to the kernel (glibc >= 2.8, malloc/malloc.c mtrim: MADV_DONTNEED on free chunks),
so the next large request still reuses the heap's address space. Elsewhere (musl, macOS)
there is no malloc_trim and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Mapping
from functools import cache

# Trim once a worker holds this much more than it did idle: a 15 MB upload or any image
# over about 4 MP; small requests never pay for a trim. Bytes.
TRIM_ABOVE_BYTES = 16 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int | str = "self") -> int:
    """The resident set of a process in bytes (/proc/<pid>/statm, resident pages; 0 where
    there is no /proc)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


# glibc's mallopt parameters (malloc.h) for the environment variables of the same meaning.
_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_ARENA_MAX": -8}


def tune_malloc(tuning: Mapping[str, str]) -> list[str]:
    """Apply glibc malloc settings given as its environment variables (MALLOC_ARENA_MAX and
    so on, e.g. thumbnails.core.serving.MALLOC_TUNING) to this running process with mallopt(3),
    as glibc would have at start; those already in the environment are left as glibc read
    them. Returns the names applied ([] where there is no glibc)."""
    try:
        # The process's own symbols (libc among them): find_library would run ldconfig.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return []
    applied = []
    for name, value in tuning.items():
        if name not in os.environ and mallopt(_MALLOPT[name], int(value)) == 1:
            applied.append(name)
    return applied


def trim() -> bool:
    """Give free heap memory back to the kernel (glibc malloc_trim(0)); True if any was."""
    malloc_trim = _malloc_trim()
    return bool(malloc_trim and malloc_trim(0))


class Trimmer:
    """Trims when the process's resident set exceeds its idle size by `above` bytes."""

    def __init__(self, above: int = TRIM_ABOVE_BYTES) -> None:
        self.above = above
        self.idle = rss_bytes()

    def after_request(self) -> None:
        """Call when a request has finished and its buffers are freed."""
        if rss_bytes() > self.idle + self.above:
            trim()
