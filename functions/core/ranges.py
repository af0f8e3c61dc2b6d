"""Whole numbers in a range, read from a request: the one rule for form fields, query
parameters and event options (no Flask, no I/O)."""

from __future__ import annotations

from .errors import BadRequest


def integer_in(raw: object, name: str, low: int, high: int) -> int:
    """`raw` (text, or an int) as an integer from `low` to `high`: ASCII digits only, so no
    sign, no spaces inside, no '1e3' and no other script's digits (surrounding spaces are
    allowed). BadRequest "<name> must be an integer from <low> to <high> (got <raw>)"
    otherwise."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high} (got {raw!r})")
    return int(text)
