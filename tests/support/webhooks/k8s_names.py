"""Kubernetes name checks of k8s.io/apimachinery v0.35.4 (pkg/api/validate/content).

knative.dev/pkg's tracker.Reference.Validate calls them (through pkg/util/validation) on a
SinkBinding's subject. Each returns the list of Go messages, empty when the value is valid.
"""

from __future__ import annotations

import re

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"


def regex_error(msg: str, regex: str, *examples: str) -> str:
    """content.RegexError (errors.go)."""
    if not examples:
        return f"{msg} (regex used for validation is '{regex}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{regex}')"


def is_dns1123_label(value: str) -> list[str]:
    """content.IsDNS1123Label (dns.go): at most 63 bytes, lowercase alphanumerics and '-'."""
    errs = []
    if len(value.encode()) > 63:
        errs.append("must be no more than 63 bytes")
    if not re.fullmatch(_DNS1123_LABEL_FMT, value):
        if re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character",
                _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """content.IsDNS1123Subdomain (dns.go): at most 253 bytes, dot-separated labels."""
    errs = []
    if len(value.encode()) > 253:
        errs.append("must be no more than 253 bytes")
    if not re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value):
        errs.append(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
            _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """content.IsLabelKey, alias IsQualifiedName (kube.go): [DNS subdomain "/"] name."""
    label_key_msg = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                     "and end with an alphanumeric character")
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [f"a valid label key {regex_error(label_key_msg, _LABEL_KEY_FMT, 'MyName', 'my.name', '123-abc')}"  # noqa: E501
                " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += [f"prefix part {m}" for m in is_dns1123_subdomain(prefix)]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errs.append("name part must be no more than 63 bytes")
    if not re.fullmatch(_LABEL_KEY_FMT, name):
        errs.append("name part " + regex_error(label_key_msg, _LABEL_KEY_FMT, "MyName", "my.name",
                                               "123-abc"))
    return errs


def is_c_identifier(value: str) -> list[str]:
    """content.IsCIdentifier (identifier.go): [A-Za-z_][A-Za-z0-9_]*."""
    if re.fullmatch(_C_IDENTIFIER_FMT, value):
        return []
    return [regex_error("a valid C identifier must start with alphabetic character or '_', "
                        "followed by a string of alphanumeric characters or '_'",
                        _C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]
