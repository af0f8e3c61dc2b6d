"""A number within a range, parsed from text: the one parser for query parameters, form
fields and settings (the command-line client uses click's IntRange and FloatRange)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Numbers of `kind` (int or float) from `low` (excluded when low_open) up to `high`
    (None: no bound)."""

    kind: type[int] | type[float] = int
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    unit: str = ""  # named in the description: "a number of seconds above 0"

    def describe(self) -> str:
        """`an integer from 1 to 100`, `a number of seconds above 0 and at most 60`..."""
        noun = "an integer" if self.kind is int else "a number"
        if self.unit:
            noun += f" of {self.unit}"
        if self.low is not None and self.high is not None and not self.low_open:
            return f"{noun} from {self.low:g} to {self.high:g}"
        bounds = []
        if self.low is not None:
            bounds.append(f"above {self.low:g}" if self.low_open else f"of at least {self.low:g}")
        if self.high is not None:
            bounds.append(f"at most {self.high:g}")
        return " ".join([noun, " and ".join(bounds)]).strip()

    def contains(self, number: float) -> bool:
        """Whether `number` is within the range (never nan or an infinity)."""
        if not math.isfinite(number):
            return False
        if self.low is not None and (number <= self.low if self.low_open
                                     else number < self.low):
            return False
        return self.high is None or number <= self.high

    def parse(self, text: str) -> int | float:
        """The number `text` spells, if within the range; ValueError (its message: "must be"
        and describe()) otherwise. An int is ASCII digits only (no sign, space or `1e3`)."""
        number: float
        if self.kind is int:
            if not (text.isascii() and text.isdigit()):
                raise ValueError(f"must be {self.describe()}")
            number = int(text)
        else:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"must be {self.describe()}") from None
        if not self.contains(number):
            raise ValueError(f"must be {self.describe()}")
        return number


def integer_in(raw: object, name: str, low: int, high: int) -> int:
    """`raw` (text, or an int) as an integer from `low` to `high`, read from a request:
    Range(int, low, high) with surrounding spaces allowed. BadRequest "<name> must be an
    integer from <low> to <high> (got <raw>)" otherwise."""
    from .errors import BadRequest  # here: settings use Range without the web's errors

    try:
        return int(Range(int, low, high).parse(str(raw).strip()))
    except ValueError as exc:
        raise BadRequest(f"{name} {exc} (got {raw!r})") from None
