"""Go and Kubernetes parsers the webhooks call, mirrored: strconv, time.ParseDuration,
apimachinery's name validation and resource.ParseQuantity.

Each raises ValueError (strconv's ErrSyntax) or OverflowError (strconv's ErrRange) where Go
returns an error, or returns the list of messages apimachinery returns.
"""

from __future__ import annotations

import re
from fractions import Fraction

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# Go's time package: the units time.ParseDuration accepts, in nanoseconds.
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)")
SECOND = _UNITS["s"]
MINUTE = _UNITS["m"]
HOUR = _UNITS["h"]


def parse_duration(text: str) -> int:
    """time.ParseDuration (go/src/time/format.go): nanoseconds; ValueError when Go errs."""
    rest, sign = text, 1
    if rest[:1] in "+-" and rest:
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {text!r}")
    total = Fraction(0)
    pos = 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if not match or match.group(1) in ("", ".") or match.group(2) not in _UNITS:
            raise ValueError(f"time: invalid duration {text!r}")
        total += Fraction(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    nanos = int(total)  # Go truncates fractions of a nanosecond
    if nanos > INT64_MAX:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * nanos


def format_duration(nanos: int) -> str:
    """time.Duration.String for whole seconds and above (1h0m0s, 6s, 0s), for messages."""
    if nanos == 0:
        return "0s"
    if nanos % SECOND:
        return f"{Fraction(nanos, SECOND):f}s"
    hours, rem = divmod(nanos // SECOND, 3600)
    minutes, seconds = divmod(rem, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


_DECIMAL = re.compile(r"[+-]?[0-9]+")


def parse_int(text: str, bits: int = 64) -> int:
    """strconv.ParseInt(text, 10, bits)."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"strconv.ParseInt: parsing {text!r}: invalid syntax")
    value = int(text)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise OverflowError(f"strconv.ParseInt: parsing {text!r}: value out of range")
    return value


def atoi(text: str) -> int:
    """strconv.Atoi (ParseInt base 10, 64 bits on the webhook's platforms)."""
    return parse_int(text, 64)


_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                    r"|inf|infinity|nan)", re.IGNORECASE)


def parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64) for decimal input (Go also takes hex floats; the chart
    renders none). Python's float() is looser (spaces, underscores), so the syntax is Go's."""
    if not _FLOAT.fullmatch(text):
        raise ValueError(f"strconv.ParseFloat: parsing {text!r}: invalid syntax")
    return float(text)


# k8s.io/apimachinery/pkg/util/validation/validation.go (v0.35, the version Serving pins)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """validation.RegexError: the message with examples and the regular expression."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def go_list(msgs: list[str]) -> str:
    """fmt's %v of a []string: "[a b]"."""
    return "[" + " ".join(msgs) + "]"


def is_dns1123_label(value: str) -> list[str]:
    """validation.IsDNS1123Label: [] when valid."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not re.fullmatch(_DNS1123_LABEL_FMT, value):
        errs.append(regex_error("a lowercase RFC 1123 label must consist of lower case "
                                "alphanumeric characters or '-', and must start and end with an "
                                "alphanumeric character", _DNS1123_LABEL_FMT, "my-name",
                                "123-abc"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """validation.IsDNS1035Label: [] when valid."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not re.fullmatch(_DNS1035_LABEL_FMT, value):
        errs.append(regex_error("a DNS-1035 label must consist of lower case alphanumeric "
                                "characters or '-', start with an alphabetic character, and end "
                                "with an alphanumeric character", _DNS1035_LABEL_FMT, "my-name",
                                "abc-123"))
    return errs


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    """apimachinery api/validation.NameIsDNS1035Label (a generateName prefix may end in '-')."""
    if prefix and len(name) > 1 and name.endswith("-"):
        name = name[:-1] + "a"
    return is_dns1035_label(name)


def is_dns1123_subdomain(value: str) -> list[str]:
    """validation.IsDNS1123Subdomain: [] when valid."""
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value):
        errs.append(regex_error("a lowercase RFC 1123 subdomain must consist of lower case "
                                "alphanumeric characters, '-' or '.', and must start and end "
                                "with an alphanumeric character", _DNS1123_SUBDOMAIN_FMT,
                                "example.com"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """validation.IsQualifiedName: [prefix/]name, name at most 63 characters."""
    prefix, _, name = value.rpartition("/")
    errs = []
    if "/" in value and (not prefix or is_dns1123_subdomain(prefix)):
        errs.append("prefix part must be a DNS-1123 subdomain")
    if not name or len(name) > 63 or not _QUALIFIED_NAME_PART.fullmatch(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character (at most 63)")
    return errs


# k8s.io/apimachinery/pkg/api/resource/quantity.go: <sign><digits>[.<digits>]<suffix>.
_QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                       r"(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?")


def parse_quantity(text: str) -> str:
    """resource.ParseQuantity's syntax check: the text back, ValueError when Go errs."""
    if not _QUANTITY.fullmatch(text):
        raise ValueError("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return text
