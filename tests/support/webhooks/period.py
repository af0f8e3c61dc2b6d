"""ISO-8601 periods exactly as github.com/rickb777/date v1.13.0 `period.Parse` reads them.

Knative Eventing 1.22 (go.mod: rickb777/date v1.13.0) parses a DeliverySpec's timeout,
backoffDelay and retryAfterMax with it, and its quirks decide what the webhook accepts:
each number keeps ONE decimal digit (fixed point x10, so "PT0.05S" is zero), fields are
int16 after normalisation, and a sign may precede the "P".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_INT = re.compile(r"[+-]?[0-9]+")  # what strconv.ParseInt(s, 10, 64) accepts
_INT64 = 1 << 63
_ONE_E6 = 1_000_000
_DAYS_PER_MONTH_E6 = 30_436_875  # 365.2425 days / 12, x1e6 (period.go daysPerMonthE6)


class PeriodError(ValueError):
    """The text is not a period (the Go function's error message)."""


@dataclass(frozen=True)
class Period:
    """period.Period: years ... seconds, each int16 fixed-point x10."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def _fields(self) -> tuple[int, ...]:
        return (self.years, self.months, self.days, self.hours, self.minutes, self.seconds)

    def is_zero(self) -> bool:
        """Period.IsZero: every field is 0."""
        return not any(self._fields())

    def is_negative(self) -> bool:
        """Period.IsNegative: some field is below 0."""
        return any(f < 0 for f in self._fields())


def _go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _go_mod(a: int, b: int) -> int:
    """Go's % (the sign of the dividend)."""
    return a - _go_div(a, b) * b


def _int16(v: int) -> int:
    """Go's int16(v) conversion (wraps)."""
    return (v + (1 << 15)) % (1 << 16) - (1 << 15)


def _decimal_fixed_point(s: str) -> int:
    """parseDecimalFixedPoint: the number x10, one decimal digit kept (the rest dropped)."""
    dec = s.find(".")
    if dec < 0:
        dec = s.find(",")
    if dec >= 0:
        s = s[:dec] + s[dec + 1:dec + 2] if len(s) - dec > 1 else s[:dec] + s[dec + 1:] + "0"
    else:
        s += "0"
    if not _INT.fullmatch(s) or not -_INT64 <= int(s) < _INT64:
        raise PeriodError(f"strconv.ParseInt: parsing {s!r}: invalid syntax")
    return int(s)


def parse(period: str) -> Period:
    """period.Parse (rickb777/date v1.13.0 period/parse.go, ParseWithNormalise(s, true)).

    Returns the normalised Period; raises PeriodError with the Go message when Go errors
    (and where Go would panic on an index out of range, as for "-").
    """
    if period == "":
        raise PeriodError("cannot parse a blank string as a period")
    if period == "P0":
        return Period()
    neg = False
    rest = period
    if rest[0] in "+-":
        neg, rest = rest[0] == "-", rest[1:]
    if not rest or rest[0] != "P":
        raise PeriodError(f"expected 'P' period mark at the start: {period}")
    rest = rest[1:]
    values = dict.fromkeys(("Y", "Mo", "W", "D", "H", "Mi", "S"), 0)
    ok = False

    def fields(text: str, marks: tuple[tuple[str, str], ...]) -> None:
        nonlocal ok
        for mark, key in marks:
            m = text.find(mark)
            if m > 0:
                try:
                    values[key] = _decimal_fixed_point(text[:m])
                except PeriodError:
                    raise PeriodError(
                        f"expected a number before the '{mark}' marker: {period}") from None
                text, ok = text[m + 1:], True
        if text:
            raise PeriodError(f"unexpected remaining components {text}: {period}")

    t = rest.find("T")
    if t >= 0:
        fields(rest[t + 1:], (("H", "H"), ("M", "Mi"), ("S", "S")))
        rest = rest[:t]
    fields(rest, (("Y", "Y"), ("M", "Mo"), ("W", "W"), ("D", "D")))
    if not ok:
        raise PeriodError(f"expected 'Y', 'M', 'W', 'D', 'H', 'M', or 'S' marker: {period}")
    p = [values["Y"], values["Mo"], values["W"] * 7 + values["D"], values["H"], values["Mi"],
         values["S"]]
    return _normalise(p, neg)


def _normalise(p: list[int], neg: bool) -> Period:
    """period64.normalise64(precise=true).toPeriod(): abs, rippleUp, moveFractionToRight."""
    if not neg:  # abs()
        for i, v in enumerate(p):
            if v < 0:
                p[i], neg = -v, True
    y, mo, d, h, mi, s = p
    # rippleUp(precise=true); the fields are fixed point x10
    mi, s = mi + _go_div(s, 600) * 10, _go_mod(s, 600)
    h, mi = h + _go_div(mi, 600) * 10, _go_mod(mi, 600)
    if h > 32204:
        d, h = d + _go_div(h, 240) * 10, _go_mod(h, 240)
    if d > 32760:
        de6 = d * _ONE_E6
        mo, d = mo + _go_div(de6, _DAYS_PER_MONTH_E6), _go_div(_go_mod(de6, _DAYS_PER_MONTH_E6),
                                                             _ONE_E6)
    y, mo = y + _go_div(mo, 120) * 10, _go_mod(mo, 120)
    # moveFractionToRight: only the smallest field may have a fraction
    if (y10 := _go_mod(y, 10)) and (mo or d or h or mi or s):
        mo, y = mo + y10 * 12, _go_div(y, 10) * 10
    if (m10 := _go_mod(mo, 10)) and (d or h or mi or s):
        d, mo = d + _go_div(m10 * _DAYS_PER_MONTH_E6, _ONE_E6), _go_div(mo, 10) * 10
    if (d10 := _go_mod(d, 10)) and (h or mi or s):
        h, d = h + d10 * 24, _go_div(d, 10) * 10
    if (h10 := _go_mod(h, 10)) and (mi or s):
        mi, h = mi + h10 * 60, _go_div(h, 10) * 10
    if (mm10 := _go_mod(mi, 10)) and s:
        s, mi = s + mm10 * 60, _go_div(mi, 10) * 10
    sign = -1 if neg else 1
    return Period(*(_int16(sign * v) for v in (y, mo, d, h, mi, s)))
