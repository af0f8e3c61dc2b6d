"""knative.dev/pkg/apis and kmap, mirrored: FieldError and its constructors,
CheckDisallowedFields, ValidateObjectMetadata and KeyPriority.Get.

Source: github.com/knative/pkg, branch release-1.23 at 521cb33b33dd (the version
knative/serving knative-v1.23.0's go.mod pins): apis/field_error.go,
apis/metadata_validation.go, kmap/lookup.go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tests.support.webhooks import goparse

CURRENT_FIELD = ""  # apis.CurrentField


class FieldError(str):
    """One apis.FieldError: a str (what Go's Error() prints for it alone: "message: path,
    path", then details on a line of their own) with its parts.

    paths are JSON paths relative to where the error was made; via() prefixes them the way
    ViaField/ViaIndex/ViaKey do (an error without paths keeps none, as in Go). warning is
    apis.WarningLevel (the webhook admits the object and shows the text to the client).
    """

    message: str
    paths: tuple[str, ...]
    details: str
    warning: bool

    def __new__(cls, message: str, paths: Sequence[str] = (), details: str = "",
                warning: bool = False) -> FieldError:
        text = f"{message}: {', '.join(paths)}" + (f"\n{details}" if details else "")
        self = super().__new__(cls, text)
        self.message, self.paths, self.details, self.warning = message, tuple(paths), details, \
            warning
        return self

    def via(self, prefix: str) -> FieldError:
        """The error seen from a parent: prefix is "field", "[3]", "field[3]" or "[key]"."""
        paths = [_join(prefix, p) for p in self.paths]
        return FieldError(self.message, paths, self.details, self.warning)

    def at_warning(self) -> FieldError:
        """apis.FieldError.At(apis.WarningLevel)."""
        return FieldError(self.message, self.paths, self.details, True)


def _join(prefix: str, path: str) -> str:
    if not path:
        return prefix
    if not prefix:
        return path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def via(prefix: str, errors: Iterable[FieldError]) -> list[FieldError]:
    """errs.ViaField(prefix) (or ViaIndex/ViaFieldIndex/ViaKey, by the prefix's shape)."""
    return [e.via(prefix) for e in errors]


def error_text(errors: Iterable[FieldError]) -> str:
    """(*apis.FieldError).Error() of errors joined with Also: errors with the same level,
    message and details merged (paths de-duplicated and sorted), sorted by message, then
    details, one per line. "" for none."""
    merged: dict[tuple[bool, str, str], list[str]] = {}
    for e in errors:
        paths = merged.setdefault((e.warning, e.message, e.details), [])
        paths += [p for p in e.paths if p not in paths]
    ordered = sorted(merged.items(), key=lambda item: (item[0][1], item[0][2], item[0][0]))
    return "\n".join(str(FieldError(message, sorted(paths), details))
                     for (_, message, details), paths in ordered)


def errors_only(errors: Iterable[FieldError]) -> list[FieldError]:
    """The errors that refuse the object (apis.ErrorLevel), warnings dropped."""
    return [e for e in errors if not e.warning]


def warnings_only(errors: Iterable[FieldError]) -> list[FieldError]:
    """The warnings (apis.WarningLevel) the webhook sends back with an admitted object."""
    return [e for e in errors if e.warning]


def err_missing_field(*paths: str) -> FieldError:
    """apis.ErrMissingField."""
    return FieldError("missing field(s)", paths)


def err_disallowed_fields(*paths: str) -> FieldError:
    """apis.ErrDisallowedFields."""
    return FieldError("must not set the field(s)", paths)


def err_invalid_value(value: Any, path: str, details: str = "") -> FieldError:
    """apis.ErrInvalidValue."""
    return FieldError(f"invalid value: {value}", [path], details)


def err_generic(message: str, *paths: str) -> FieldError:
    """apis.ErrGeneric."""
    return FieldError(message, paths)


def err_missing_one_of(*paths: str) -> FieldError:
    """apis.ErrMissingOneOf."""
    return FieldError("expected exactly one, got neither", paths)


def err_multiple_one_of(*paths: str) -> FieldError:
    """apis.ErrMultipleOneOf."""
    return FieldError("expected exactly one, got both", paths)


def err_invalid_key_name(key: str, path: str, details: str = "") -> FieldError:
    """apis.ErrInvalidKeyName."""
    return FieldError(f"invalid key name {key!r}".replace("'", '"'), [path], details)


def err_out_of_bounds(value: Any, lower: Any, upper: Any, path: str) -> FieldError:
    """apis.ErrOutOfBoundsValue: "expected lower <= value <= upper"."""
    return FieldError(f"expected {lower} <= {value} <= {upper}", [path])


def is_set(value: Any) -> bool:
    """What kmp.CompareSetFields (go-cmp against the masked copy) counts as set on a decoded
    Go struct: any object or list, even empty (a non-nil pointer, map or slice), and a scalar
    that is not its type's zero value. A pointer to false or 0 is set in Go but not here:
    without Go's types the JSON cannot tell (see docs/knative-webhooks-serving.md)."""
    if isinstance(value, (dict, list)):
        return True
    return value is not None and value != "" and value is not False and value != 0


def check_disallowed_fields(obj: Mapping[str, Any], allowed: Iterable[str]) -> list[FieldError]:
    """apis.CheckDisallowedFields(request, mask): the set fields a *Mask function drops.

    obj is the JSON object; allowed are the JSON names the mask keeps.
    """
    allowed = set(allowed)
    disallowed = sorted(k for k, v in obj.items() if k not in allowed and is_set(v))
    return [err_disallowed_fields(*disallowed)] if disallowed else []


def validate_object_metadata(meta: Mapping[str, Any]) -> list[FieldError]:
    """apis.ValidateObjectMetadata (pkg apis/metadata_validation.go): name or generateName
    is a DNS-1035 label (prefix)."""
    name = str(meta.get("name") or "")
    generate_name = str(meta.get("generateName") or "")
    if generate_name:
        msgs = goparse.name_is_dns1035_label(generate_name, True)
        if msgs:
            return [FieldError(f"not a DNS 1035 label prefix: {goparse.go_list(msgs)}",
                               ["generateName"])]
    if name:
        msgs = goparse.name_is_dns1035_label(name, False)
        if msgs:
            return [FieldError(f"not a DNS 1035 label: {goparse.go_list(msgs)}", ["name"])]
    if not generate_name and not name:
        return [FieldError("name or generateName is required", ["name"])]
    return []


def key_priority_get(keys: Sequence[str], m: Mapping[str, Any]) -> tuple[str, str, bool]:
    """kmap.KeyPriority.Get: (key, value, found) for the first of keys present in m;
    (keys[0], "", False) when none is."""
    for key in keys:
        if key in m:
            return key, str(m[key]), True
    return keys[0], "", False
