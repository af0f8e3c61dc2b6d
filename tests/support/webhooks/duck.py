"""knative.dev/pkg rules that Eventing's webhooks run on destinations, references and sources.

Mirrors knative.dev/pkg at 52dbd5ece63f (the version knative/eventing knative-v1.22.2 pins in
go.mod): apis.URL decoding (net/url.Parse), duck/v1 Destination, KReference, SourceSpec and
CloudEventOverrides, and tracker.Reference. apis.FieldError is pkg_apis.FieldError (the copy
this module had made the same messages, paths and Error() text). Each mirror takes a plain dict
as decoded from YAML and returns a list of FieldError, whose str() is Go's FieldError.Error()
text; an empty list means the webhook accepts it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.support.webhooks import k8s_names, pkg_apis
from tests.support.webhooks.pkg_apis import (
    FieldError,
    err_disallowed_fields,
    err_invalid_key_name,
    err_missing_field,
    err_missing_one_of,
    err_multiple_one_of,
)

Obj = dict[str, Any]


# ---------------------------------------------------------------- apis.FieldError
# One FieldError for both pinned knative/pkg versions, 52dbd5ece63f (Eventing's) and
# 521cb33b33dd (Serving's): pkg_apis.FieldError. The constructors are pkg_apis's, under the
# short names the Eventing mirrors use; `invalid` prints values as Go's fmt.Sprint does.

missing = err_missing_field
disallowed = err_disallowed_fields
multiple_one_of = err_multiple_one_of
missing_one_of = err_missing_one_of
invalid_key_name = err_invalid_key_name


def via(errors: Iterable[FieldError], *fields: str) -> list[FieldError]:
    """FieldError.ViaField (and ViaIndex/ViaKey with "[i]"/"[key]"), outermost field first."""
    for field in reversed(fields):
        errors = pkg_apis.via(field, errors)
    return list(errors)


def dedupe(errors: Iterable[FieldError]) -> list[FieldError]:
    """FieldError.Also merges identical errors (WrappedErrors' merge); keep the first of each."""
    return list(dict.fromkeys(errors))


def invalid(value: Any, path: str, details: str = "") -> FieldError:
    """apis.ErrInvalidValue (fmt.Sprint of the value)."""
    return FieldError(f"invalid value: {go_sprint(value)}", (path,), details)


def go_sprint(value: Any) -> str:
    """fmt.Sprint of the few value types the mirrors print."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ---------------------------------------------------------------- context


@dataclass(frozen=True)
class Ctx:
    """What knative.dev/pkg reads from a context.Context in these rules."""

    parent_namespace: str = ""  # apis.WithinParent(ctx, meta) -> apis.ParentMeta(ctx)
    allow_different_namespace: bool = False  # apis.AllowDifferentNamespace
    kreference_group_allowed: bool = False  # duckv1.KReferenceGroupAllowed


# ---------------------------------------------------------------- apis.URL (net/url.Parse)


@dataclass(frozen=True)
class URL:
    """The parts of a *url.URL the rules look at."""

    scheme: str
    host: str
    path: str

    def is_abs(self) -> bool:
        """url.URL.IsAbs: the scheme is not empty."""
        return self.scheme != ""


class URLError(ValueError):
    """net/url.Parse refused the text (the Go message)."""


_SCHEME_CHAR = re.compile(r"[A-Za-z0-9+.-]")


def parse_url(raw: str) -> URL:
    """net/url.Parse's checks that can fail a Destination's uri, as apis.URL.UnmarshalJSON
    runs them when the webhook decodes the object.

    Covers: control characters, "missing protocol scheme", a colon in the first segment of
    a relative path, bad %-escapes and a non-numeric port. Not covered: IPv6 zone rules.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise URLError(f'parse "{raw}": net/url: invalid control character in URL')
    rest, _, _fragment = raw.partition("#")
    scheme = ""
    for i, c in enumerate(rest):
        if c.isascii() and c.isalpha():
            continue
        if c == ":":
            if i == 0:
                raise URLError(f'parse "{raw}": missing protocol scheme')
            scheme, rest = rest[:i].lower(), rest[i + 1:]
            break
        if not (_SCHEME_CHAR.fullmatch(c) and i > 0):
            break
    rest, _, _query = rest.partition("?")
    host = ""
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        host = authority.rpartition("@")[2]
        port = host.rpartition("]")[2].rpartition(":")
        if port[1] and not port[2].isdigit() and port[2] != "":
            raise URLError(f'parse "{raw}": invalid port "{":" + port[2]}" after host')
    elif not scheme and ":" in rest.partition("/")[0]:
        raise URLError(f'parse "{raw}": first path segment in URL cannot contain colon')
    for m in re.finditer(r"%(.{0,2})", rest + host):
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", m.group(1)):
            raise URLError(f'parse "{raw}": invalid URL escape "%{m.group(1)}"')
    return URL(scheme, host, rest)


# ---------------------------------------------------------------- duck/v1 KReference


def k_reference_validate(ref: Mapping[str, Any] | None, ctx: Ctx) -> list[FieldError]:
    """KReference.Validate (knative.dev/pkg apis/duck/v1/knative_reference.go)."""
    if ref is None:
        return [missing("name"), missing("apiVersion"), missing("kind")]
    errs: list[FieldError] = []
    if not ref.get("name"):
        errs.append(missing("name"))
    if ctx.kreference_group_allowed:
        if not ref.get("apiVersion") and not ref.get("group"):
            errs += [missing("apiVersion"), missing("group")]
        if ref.get("apiVersion") and ref.get("group") and not str(ref["apiVersion"]).startswith(
                str(ref["group"])):
            errs.append(FieldError("both apiVersion and group are specified and they refer to "
                                   "different API groups", ("apiVersion", "group"),
                                   "Only one of them must be specified"))
    else:
        if ref.get("group"):
            errs.append(disallowed("group"))
        if not ref.get("apiVersion"):
            errs.append(missing("apiVersion"))
    if not ref.get("kind"):
        errs.append(missing("kind"))
    namespace = ref.get("namespace") or ""
    if namespace and not ctx.allow_different_namespace:
        if ctx.parent_namespace and namespace != ctx.parent_namespace:
            errs.append(FieldError("mismatched namespaces", ("namespace",),
                                   f'parent namespace: "{ctx.parent_namespace}" does not match '
                                   f'ref: "{namespace}"'))
    return errs


def k_reference_set_defaults(ref: Obj, ctx: Ctx) -> None:
    """KReference.SetDefaults: an empty namespace becomes the parent's (in place)."""
    if not ref.get("namespace"):
        ref["namespace"] = ctx.parent_namespace


# ---------------------------------------------------------------- duck/v1 Destination


def destination_validate(dest: Mapping[str, Any] | None, ctx: Ctx) -> list[FieldError]:
    """Destination.Validate (knative.dev/pkg apis/duck/v1/destination.go): nil is valid."""
    if dest is None:
        return []
    return validate_destination(dest, ctx)


def validate_destination(dest: Mapping[str, Any], ctx: Ctx) -> list[FieldError]:
    """ValidateDestination (destination.go), after decoding the uri as apis.URL does.

    Rules, in Go's order, each returning at once: ref or uri; no absolute uri beside a ref;
    without a ref an absolute uri with a host; a lone ref is a valid KReference; CACerts
    parse. Note Go's quirk, kept: with a ref AND a relative uri the ref is not validated.
    """
    ref = dest.get("ref")
    raw_uri = dest.get("uri")
    uri: URL | None = None
    if raw_uri is not None:
        try:
            # apis.ParseURL("") is nil, and UnmarshalJSON then stores an empty URL{}
            uri = parse_url(str(raw_uri)) if raw_uri != "" else URL("", "", "")
        except URLError as exc:  # the webhook cannot decode the object
            return [FieldError(f"could not decode: {exc}", ("uri",))]
    if ref is None and uri is None:
        return [FieldError("expected at least one, got none", ("ref", "uri"))]
    if ref is not None and uri is not None and uri.is_abs():
        return [FieldError("Absolute URI is not allowed when Ref or [apiVersion, kind, name] is "
                           "present", ("[apiVersion, kind, name]", "ref", "uri"))]
    if ref is None and uri is not None and (not uri.is_abs() or uri.host == ""):
        return [invalid("Relative URI is not allowed when Ref and [apiVersion, kind, name] is "
                        "absent", "uri")]
    if ref is not None and uri is None:
        return via(k_reference_validate(ref, ctx), "ref")
    if dest.get("CACerts") is not None:
        return validate_ca_certs(str(dest["CACerts"]))
    return []


def destination_set_defaults(dest: Obj | None, ctx: Ctx) -> None:
    """Destination.SetDefaults: the ref's empty namespace becomes the parent's (in place)."""
    if dest is None:
        return
    ref = dest.get("ref")
    if ref is not None and not ref.get("namespace"):
        ref["namespace"] = ctx.parent_namespace


def validate_ca_certs(ca_certs: str) -> list[FieldError]:
    """validateCACerts (destination.go): the first PEM block must be a parseable CERTIFICATE."""
    from cryptography import x509  # test dependency; only this rule needs it

    m = re.search(r"-----BEGIN ([^-\n]*)-----\r?\n(.*?)-----END \1-----", ca_certs, re.S)
    if m is None:
        return [invalid("CA Cert provided is invalid", "caCert")]
    if m.group(1) != "CERTIFICATE":
        return [invalid("CA Cert provided is not a certificate", "caCert")]
    body = "".join(line for line in m.group(2).splitlines() if ":" not in line)
    try:
        x509.load_der_x509_certificate(base64.b64decode(body, validate=False))
    except (ValueError, binascii.Error):
        return [invalid("CA Cert provided is invalid", "caCert")]
    return []


# ---------------------------------------------------------------- duck/v1 SourceSpec


def source_spec_validate(spec: Mapping[str, Any] | None, ctx: Ctx) -> list[FieldError]:
    """SourceSpec.Validate (knative.dev/pkg apis/duck/v1/source_types.go): the sink and the
    CloudEvent overrides (the embedded spec's fields, so without a prefix of its own)."""
    if spec is None:
        return [missing("spec")]
    return [*via(destination_validate(spec.get("sink") or {}, ctx), "sink"),
            *via(cloud_event_overrides_validate(spec.get("ceOverrides")), "ceOverrides")]


def cloud_event_overrides_validate(overrides: Mapping[str, Any] | None) -> list[FieldError]:
    """CloudEventOverrides.Validate (source_types.go): the first bad extension name only."""
    if overrides is None:
        return []
    for key in overrides.get("extensions") or {}:
        if errs := validate_extension_name(str(key)):
            return via(errs, "extensions")
    return []


def validate_extension_name(key: str) -> list[FieldError]:
    """validateExtensionName (source_types.go): non-empty, ASCII letters and digits only."""
    if key == "":
        return [invalid_key_name(key, "", "keys MUST NOT be empty")]
    if not re.fullmatch(r"[A-Za-z0-9]+", key):
        return [invalid_key_name(key, "", "keys are expected to be alphanumeric")]
    return []


# ---------------------------------------------------------------- tracker.Reference


def tracker_reference_validate(ref: Mapping[str, Any]) -> list[FieldError]:
    """tracker.Reference.Validate (knative.dev/pkg tracker/interface.go): apiVersion,
    kind, namespace, and exactly one of name or selector."""
    errs: list[FieldError] = []
    checks = (("apiVersion", k8s_names.is_qualified_name), ("kind", k8s_names.is_c_identifier),
              ("namespace", k8s_names.is_dns1123_label))
    for key, check in checks:
        value = str(ref.get(key) or "")
        if not value:
            errs.append(missing(key))
        elif problems := check(value):
            errs.append(invalid(", ".join(problems), key))
    name, selector = str(ref.get("name") or ""), ref.get("selector")
    if selector is not None and name:
        errs.append(multiple_one_of("selector", "name"))
    elif selector is not None:
        if problem := label_selector_problem(selector):
            errs.append(invalid(problem, "selector"))
    elif name:
        if problems := k8s_names.is_dns1123_label(name):
            errs.append(invalid(", ".join(problems), "name"))
    else:
        errs.append(missing_one_of("selector", "name"))
    return errs


def label_selector_problem(selector: Mapping[str, Any]) -> str | None:
    """metav1.LabelSelectorAsSelector's refusals (keys, values and operators), or None."""
    requirements = [(k, "In", [v]) for k, v in (selector.get("matchLabels") or {}).items()]
    requirements += [(e.get("key", ""), e.get("operator", ""), e.get("values") or [])
                     for e in selector.get("matchExpressions") or []]
    for key, op, values in requirements:
        if problems := k8s_names.is_qualified_name(str(key)):
            return f"key: Invalid value: {key!r}: {'; '.join(problems)}"
        if op in ("In", "NotIn") and not values:
            return "values: Invalid value: []: for 'in', 'notin' operators, values set can't " \
                   "be empty"
        if op in ("Exists", "DoesNotExist") and values:
            return "values: Invalid value: for 'exists', 'doesnotexist' operators, values set " \
                   "must be empty"
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return f'"{op}" is not a valid label selector operator'
        for value in values:
            if not re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", str(value)) \
                    or len(str(value)) > 63:
                return f"values[0]: Invalid value: {value!r}: not a valid label value"
    return None
