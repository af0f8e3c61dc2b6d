"""Cron specs exactly as github.com/robfig/cron v3.0.1 `Parser.Parse` reads them.

Knative Eventing 1.22 (go.mod: robfig/cron/v3 v3.0.1) validates a PingSource's schedule with
`cron.NewParser(SecondOptional | Minute | Hour | Dom | Month | Dow | Descriptor)`: five or
six fields (an optional leading seconds field), `*`/`?`, ranges, steps, names (jan, mon),
descriptors (@daily, @every <Go duration>), and a `CRON_TZ=`/`TZ=` prefix naming an IANA
zone. This port answers only "accepted, or the Go error message"; it builds no schedule.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass

# ParseOption bits (parser.go)
SECOND, SECOND_OPTIONAL, MINUTE, HOUR, DOM, MONTH, DOW, DOW_OPTIONAL, DESCRIPTOR = (
    1 << i for i in range(9))
PLACES = (SECOND, MINUTE, HOUR, DOM, MONTH, DOW)
DEFAULTS = ("0", "0", "0", "*", "*", "*")
PINGSOURCE_OPTIONS = SECOND_OPTIONAL | MINUTE | HOUR | DOM | MONTH | DOW | DESCRIPTOR
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_ATOI = re.compile(r"[+-]?[0-9]+")  # strconv.Atoi
_GO_DURATION = re.compile(r"[-+]?(0|(([0-9]*\.)?[0-9]+(ns|us|µs|μs|ms|s|m|h))+)")


class CronError(ValueError):
    """The spec is not valid (robfig/cron's error message)."""


@dataclass(frozen=True)
class Bounds:
    """spec.go `bounds`."""

    low: int
    high: int
    names: dict[str, int] | None = None


SECONDS = Bounds(0, 59)
MINUTES = Bounds(0, 59)
HOURS = Bounds(0, 23)
DOM_BOUNDS = Bounds(1, 31)
MONTHS = Bounds(1, 12, {m: i + 1 for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())})
DOW_BOUNDS = Bounds(0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})
_FIELD_BOUNDS = (SECONDS, MINUTES, HOURS, DOM_BOUNDS, MONTHS, DOW_BOUNDS)


def load_location(name: str) -> None:
    """time.LoadLocation: "" and "UTC" are UTC, "Local" the local zone, else an IANA name."""
    if name in ("", "UTC", "Local"):
        return
    if ".." in name or name.startswith(("/", "\\")):
        raise CronError("time: invalid location name")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name}") from exc


def parse(spec: str, options: int = PINGSOURCE_OPTIONS) -> None:
    """Parser.Parse (robfig/cron v3.0.1 parser.go): None when valid, else CronError."""
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        i, eq = spec.find(" "), spec.find("=")
        if i < 0:  # Go slices spec[eq+1:-1] and panics; the webhook answers an error
            raise CronError(f"provided bad location {spec[eq + 1:]}: no schedule after it")
        name = spec[eq + 1:i]
        try:
            load_location(name)
        except CronError as exc:
            raise CronError(f"provided bad location {name}: {exc}") from None
        spec = spec[i:].strip()
    if spec.startswith("@"):
        if not options & DESCRIPTOR:
            raise CronError(f"parser does not accept descriptors: {spec}")
        _parse_descriptor(spec)
        return
    fields = _normalize_fields(spec.split(), options)
    for field, bounds in zip(fields, _FIELD_BOUNDS, strict=True):
        _get_field(field, bounds)


def _normalize_fields(fields: list[str], options: int) -> list[str]:
    """normalizeFields: check the count, add the optional field and the defaults."""
    optionals = 0
    if options & SECOND_OPTIONAL:
        options |= SECOND
        optionals += 1
    if options & DOW_OPTIONAL:
        options |= DOW
        optionals += 1
    if optionals > 1:
        raise CronError("multiple optionals may not be configured")
    most = sum(1 for place in PLACES if options & place)
    least = most - optionals
    if not least <= len(fields) <= most:
        shown = "[" + " ".join(fields) + "]"
        if least == most:
            raise CronError(f"expected exactly {least} fields, found {len(fields)}: {shown}")
        raise CronError(f"expected {least} to {most} fields, found {len(fields)}: {shown}")
    if least < most and len(fields) == least:
        fields = [*fields, DEFAULTS[5]] if options & DOW_OPTIONAL else [DEFAULTS[0], *fields]
    given = iter(fields)
    return [next(given) if options & place else default
            for place, default in zip(PLACES, DEFAULTS, strict=True)]


def _get_field(field: str, bounds: Bounds) -> None:
    """getField: a comma-separated list of ranges (empty items are skipped, as FieldsFunc)."""
    for expr in (part for part in field.split(",") if part):
        _get_range(expr, bounds)


def _get_range(expr: str, r: Bounds) -> None:
    """getRange: number | number "-" number [ "/" number ], or * / ?."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = r.low, r.high
    else:
        start = _parse_int_or_name(low_and_high[0], r.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _parse_int_or_name(low_and_high[1], r.names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_parse_int(range_and_step[1])
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = r.high
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < r.low:
        raise CronError(f"beginning of range ({start}) below minimum ({r.low}): {expr}")
    if end > r.high:
        raise CronError(f"end of range ({end}) above maximum ({r.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")


def _parse_int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _must_parse_int(expr)


def _must_parse_int(expr: str) -> int:
    """mustParseInt: strconv.Atoi, then no negative numbers."""
    if not _ATOI.fullmatch(expr) or not -(1 << 63) <= int(expr) < 1 << 63:
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": '
                        "invalid syntax")
    num = int(expr)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _parse_descriptor(descriptor: str) -> None:
    """parseDescriptor: the named schedules and "@every <time.ParseDuration>"."""
    if descriptor in _DESCRIPTORS:
        return
    every = "@every "
    if descriptor.startswith(every):
        if not _GO_DURATION.fullmatch(descriptor[len(every):]):
            raise CronError(f"failed to parse duration {descriptor}: time: invalid duration")
        return
    raise CronError(f"unrecognized descriptor: {descriptor}")
