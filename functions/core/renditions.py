"""What a job asks for: one thumbnail (the single-thumbnail fields) or named renditions.

The same rules for a form (POST /jobs), a job record and another producer's image.uploaded
event, so upload and resize accept exactly the same requests. No Flask, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .imaging import ThumbnailOptions
from .ranges import integer_in

MAX_RENDITIONS = 8
FIELD = "renditions"  # the form field, and the key in a job's options and an event's options
# Safe as the last segment of an object key and of a URL path, with no escaping: lowercase
# letters, digits, '-' and '_', 1-32 characters, starting with a letter or digit.
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
NAME_RULE = "1-32 of a-z, 0-9, '-' and '_', starting with a letter or digit"
# What one rendition may say besides its name: the single-thumbnail fields.
OPTION_KEYS = ("width", "height", "format", "fit", "gravity", "quality")


@dataclass(frozen=True)
class Rendition:
    """One named output of a job."""

    name: str
    options: ThumbnailOptions

    def to_dict(self) -> dict[str, Any]:
        """{"name", plus ThumbnailOptions.to_dict()}: what parse_renditions reads back."""
        return {"name": self.name, **self.options.to_dict()}


@dataclass(frozen=True)
class Request:
    """A job's request: `options` for a single thumbnail, or `renditions` (then `options`
    holds the defaults and is not used)."""

    options: ThumbnailOptions = ThumbnailOptions()
    renditions: tuple[Rendition, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A job's `options` (and an image.uploaded event's): the single-thumbnail options,
        or {"renditions": [...]}; parse_request reads either back, from_dict too."""
        if self.renditions:
            return {FIELD: [r.to_dict() for r in self.renditions]}
        return self.options.to_dict()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Request:
        """What to_dict wrote (a job record's options), which was validated when the job was
        made: built as it is, not parsed again. TypeError for a key to_dict never writes."""
        if FIELD in values:
            return cls(ThumbnailOptions(), tuple(
                Rendition(item["name"], ThumbnailOptions(
                    **{k: v for k, v in item.items() if k != "name"}))
                for item in values[FIELD]))
        return cls(ThumbnailOptions(**values))

    @property
    def names(self) -> list[str]:
        """The rendition names, in the order asked (none for a single thumbnail)."""
        return [r.name for r in self.renditions]

    def check(self, max_dimension: int) -> None:
        """BadRequest, worded as parse_request's, if a box is over `max_dimension` pixels:
        a job made before this deployment lowered MAX_DIMENSION."""
        parts = [(f"{FIELD}[{i}] ({r.name}): ", r.options)
                 for i, r in enumerate(self.renditions)] or [("", self.options)]
        for where, options in parts:
            for name in ("width", "height"):
                integer_in(getattr(options, name), where + name, 1, max_dimension)


def parse_request(values: Mapping[str, Any], max_dimension: int) -> Request:
    """Validate form fields, a job's options or an event's data.options.

    values: strings (a form) or JSON values (a job record, an event); `renditions` is a JSON
    list as text (a form) or a list. With `renditions`, no single-thumbnail field may be
    given (it would be silently unused). Unknown keys are ignored, as for the form.
    Raises BadRequest (400) with a sentence naming the fault."""
    if FIELD not in values:
        return Request(ThumbnailOptions.parse(_strings(values), max_dimension))
    given = [key for key in OPTION_KEYS if key in values]
    if given:
        raise BadRequest(f"give either {FIELD} or the single-thumbnail fields, not both "
                         f"(got {FIELD} and {', '.join(given)})")
    return Request(ThumbnailOptions(), parse_renditions(values[FIELD], max_dimension))


def parse_renditions(raw: str | Sequence[Any], max_dimension: int) -> tuple[Rendition, ...]:
    """A JSON list (text or parsed) of 1 to MAX_RENDITIONS objects {name, width, height,
    format, fit, gravity, quality}: `name` required and unique, the rest as the
    single-thumbnail fields (same defaults, same limits). BadRequest naming the item."""
    items = _json_list(raw)
    if not 1 <= len(items) <= MAX_RENDITIONS:
        raise BadRequest(f"{FIELD} must list 1 to {MAX_RENDITIONS} renditions "
                         f"(got {len(items)})")
    renditions: list[Rendition] = []
    for index, item in enumerate(items):
        where = f"{FIELD}[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object like "
                             '{"name": "small", "width": 320, "format": "webp"}')
        unknown = sorted(set(item) - {"name", *OPTION_KEYS})
        if unknown:
            raise BadRequest(f"{where} has unknown keys {', '.join(map(repr, unknown))}; "
                             f"allowed: name, {', '.join(OPTION_KEYS)}")
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise BadRequest(f"{where}.name must be {NAME_RULE} (got {name!r})")
        if any(r.name == name for r in renditions):
            raise BadRequest(f"{where}.name {name!r} is used twice; names must be unique")
        try:
            options = ThumbnailOptions.parse(
                _strings({k: v for k, v in item.items() if k != "name"}), max_dimension)
        except BadRequest as exc:
            raise BadRequest(f"{where} ({name}): {exc.message}") from exc
        renditions.append(Rendition(name, options))
    return tuple(renditions)


def _json_list(raw: str | Sequence[Any]) -> list[Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest(f"{FIELD} must be a JSON list of objects") from None
    if not isinstance(raw, list):
        raise BadRequest(f"{FIELD} must be a JSON list of objects")
    return raw


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    """Option values as ThumbnailOptions.parse takes them: text; JSON nulls left out, and
    booleans and nested values kept unparseable rather than turned into numbers."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out
