"""The job lifecycle's Lua scripts: one file each in lua/, registered once per Redis client.

Each script file starts with a header of `-- KEYS[n] name: meaning` and `-- ARGV[n] name:
meaning` lines (`-- ARGV[n..]` for field/value pairs from n on), which the tests check
against what each caller passes. A line `--#include <file>.lua` is replaced by that file
when the script is loaded: the fragments (changed.lua, settle.lua) have one source each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from redis import Redis
from redis.commands.core import Script

LUA_DIR = Path(__file__).with_name("lua")
_INCLUDE = re.compile(r"^--#include ([a-z_]+\.lua)\n", re.MULTILINE)
_SLOT = re.compile(r"^-- (KEYS|ARGV)\[(\d+)(\.\.)?\] ", re.MULTILINE)


@cache
def source(name: str) -> str:
    """The text of lua/<name>.lua with its includes resolved (each fragment once: a second
    include of the same file is dropped). FileNotFoundError for an unknown name."""
    return _resolve(name + ".lua", set())


def _resolve(filename: str, seen: set[str]) -> str:
    seen.add(filename)
    text = (LUA_DIR / filename).read_text(encoding="utf-8")

    def include(match: re.Match[str]) -> str:
        return "" if match.group(1) in seen else _resolve(match.group(1), seen)

    return _INCLUDE.sub(include, text)


@dataclass(frozen=True)
class Header:
    """What a script's header says it takes: `keys` KEYS, at least `argv` ARGV, and more
    (field/value pairs) when `more_argv`."""

    keys: int
    argv: int
    more_argv: bool

    def accepts(self, keys: int, argv: int) -> bool:
        """Whether a call with this many KEYS and ARGV fits the header."""
        if keys != self.keys:
            return False
        return argv >= self.argv and (argv - self.argv) % 2 == 0 if self.more_argv \
            else argv == self.argv


def header(name: str) -> Header:
    """The KEYS and ARGV lines of lua/<name>.lua's own header (not its includes'), which
    must be numbered 1, 2, 3... in order. ValueError if they are not."""
    text = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    slots: dict[str, list[int]] = {"KEYS": [], "ARGV": []}
    more = False
    for match in _SLOT.finditer(text):
        kind, number, open_end = match.group(1), int(match.group(2)), bool(match.group(3))
        if number != len(slots[kind]) + 1 or (kind == "KEYS" and open_end) or more:
            raise ValueError(f"{name}.lua: header line {match.group(0)!r} out of order")
        slots[kind].append(number)
        more = open_end
    return Header(len(slots["KEYS"]), len(slots["ARGV"]) - more, more)


def register(client: Redis, name: str) -> Script:
    """lua/<name>.lua registered on the client (redis-py sends EVALSHA, and loads it on the
    first NOSCRIPT)."""
    return client.register_script(source(name))
