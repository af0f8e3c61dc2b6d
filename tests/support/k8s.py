"""Offline deployment checks' helpers: helm/kubectl, chart renders, knative/ and strict schemas.

Nothing here talks to a cluster. Kubernetes kinds are checked with kubernetes-validate's
strict schemas; Knative kinds with the CRDs' openAPIV3Schema from ../shared/knative-crds,
made strict the way `kubeconform -strict` does (an object schema with `properties` and no
`x-kubernetes-preserve-unknown-fields` rejects unknown fields, which the API server would
silently prune).
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "thumbnails"
KNATIVE = ROOT / "knative"
BIN = ROOT / ".tools" / "bin"
FETCH = ROOT / "scripts" / "fetch_k8s_tools.py"
CRDS = ROOT.parent / "shared" / "knative-crds"
CRDS_ABSENT = ("../shared/knative-crds is not here (a user's clone): "
               "Knative schema checks need it")
RELEASE = "thumbnails"
# Knative 1.22/1.23 need Kubernetes >= 1.34; the package's 1.34 schemas are the closest match.
KUBERNETES_VERSION = "1.34.0"
KNATIVE_GROUPS = frozenset({"serving.knative.dev", "eventing.knative.dev",
                            "sources.knative.dev", "messaging.knative.dev"})
FUNCTIONS = ("upload", "status", "resize")
VALUES_FILES = ("values-dev.yaml", "values-prod.yaml")

Obj = dict[str, Any]


# ---------------------------------------------------------------- tools and renders


@functools.cache
def tools() -> tuple[Path, Path]:
    """Paths of helm and kubectl, fetched by scripts/fetch_k8s_tools.py when missing."""
    helm, kubectl = BIN / "helm", BIN / "kubectl"
    if not (os.access(helm, os.X_OK) and os.access(kubectl, os.X_OK)):
        done = subprocess.run([sys.executable, str(FETCH)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{FETCH.name} failed:\n{done.stdout}{done.stderr}")
    return helm, kubectl


def run(tool: str, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm or kubectl; with check, fail with its output when it does not exit 0."""
    helm, kubectl = tools()
    binary = {"helm": helm, "kubectl": kubectl}[tool]
    # Paths relative to the repository (the working directory) read better in messages.
    argv = [str(a.relative_to(ROOT)) if isinstance(a, Path) and a.is_relative_to(ROOT)
            else str(a) for a in args]
    done = subprocess.run([str(binary), *argv], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    if check and done.returncode != 0:
        command = " ".join([tool, *argv])
        raise AssertionError(f"`{command}` exited {done.returncode}:\n{done.stderr}{done.stdout}")
    return done


def values_path(name: str | None) -> Path | None:
    """charts/thumbnails/<name>, or None for the default values."""
    return None if name is None else CHART / name


def helm_template(values_file: Path | None = None, *, sets: Sequence[str] = (),
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm template thumbnails charts/thumbnails` (hooks and test Pods included)."""
    args: list[str | Path] = ["template", RELEASE, CHART,
                              "--kube-version", KUBERNETES_VERSION]
    if values_file is not None:
        args += ["-f", values_file]
    for assignment in sets:
        args += ["--set", assignment]
    return run("helm", *args, check=check)


@functools.cache
def _rendered(values_file: Path | None, sets: tuple[str, ...]) -> tuple[Obj, ...]:
    return tuple(documents(helm_template(values_file, sets=sets).stdout))


def render_chart(values_file: Path | None = None, *, sets: Sequence[str] = ()) -> list[Obj]:
    """Every object `helm template` renders (cached per arguments; callers get copies)."""
    return copy.deepcopy(list(_rendered(values_file, tuple(sets))))


def documents(text: str) -> Iterator[Obj]:
    """The non-empty YAML documents of a stream."""
    for doc in yaml.safe_load_all(text):
        if doc is not None:
            if not isinstance(doc, dict):
                raise AssertionError(f"a YAML document is not a mapping: {doc!r:.200}")
            yield doc


def knative_files() -> list[Path]:
    """knative/*.yaml, kustomization.yaml apart."""
    return sorted(p for p in KNATIVE.glob("*.yaml") if p.name != "kustomization.yaml")


def knative_objects() -> list[Obj]:
    """Every document of knative/*.yaml, kustomization.yaml apart."""
    return [doc for path in knative_files() for doc in documents(path.read_text())]


# The chart renders the checks run over, by readable id, with their values file.
SET_VALUES: dict[str, Path | None] = {
    "chart-default": None,
    **{f"chart-{name.removesuffix('.yaml')}": CHART / name for name in VALUES_FILES},
}
# Every object set the schema and rule checks run over: the chart renders and knative/.
OBJECT_SETS: dict[str, Callable[[], list[Obj]]] = {
    **{source: functools.partial(render_chart, values_file)
       for source, values_file in SET_VALUES.items()},
    "knative-dir": knative_objects,
}


def object_set(name: str) -> list[Obj]:
    """The objects of one of OBJECT_SETS."""
    return OBJECT_SETS[name]()


def ident(obj: Mapping[str, Any]) -> str:
    """`Kind/name` for messages."""
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def group_of(obj: Mapping[str, Any]) -> str:
    """The API group of an object ('' for the core group)."""
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def is_knative(obj: Mapping[str, Any]) -> bool:
    """True for the kinds validated against the Knative CRDs."""
    return group_of(obj) in KNATIVE_GROUPS


def of_kind(objects: Sequence[Obj], kind: str, group: str | None = None) -> list[Obj]:
    """The objects of one kind (and API group, when given)."""
    return [o for o in objects
            if o.get("kind") == kind and (group is None or group_of(o) == group)]


def ksvcs(objects: Sequence[Obj]) -> list[Obj]:
    """Knative Services."""
    return of_kind(objects, "Service", "serving.knative.dev")


def by_name(objects: Sequence[Obj]) -> dict[str, Obj]:
    """Objects by metadata.name."""
    return {o["metadata"]["name"]: o for o in objects}


def fail_on(errors: Sequence[str], what: str) -> None:
    """Fail listing every error, or pass when there is none."""
    if errors:
        raise AssertionError(f"{len(errors)} {what}:\n  " + "\n  ".join(errors))


# ---------------------------------------------------------------- validation


def format_error(obj: Mapping[str, Any], error: jsonschema.ValidationError) -> str:
    """`Kind/name: .path.in.document: message`."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{ident(obj)}: {path or '.'}: {error.message}"


def kubernetes_errors(obj: Obj) -> list[str]:
    """Strict kubernetes-validate errors of a built-in kind (first error only, as it reports)."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [format_error(obj, exc)]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{ident(obj)}: unknown kind: {exc.message}"]
    return []


OBJECT_META: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array"},
        "selfLink": {"type": "string"},
    },
    "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}],
}


def strict(schema: Any) -> Any:
    """A CRD structural schema made strict for jsonschema (a converted copy)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
            out[key] = strict(value)
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    open_ = out.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in out and not open_ and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd_index() -> dict[tuple[str, str], tuple[Path, dict[str, Any]]]:
    if not CRDS.is_dir():
        pytest.skip(CRDS_ABSENT)
    index: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    for path in sorted(CRDS.glob("*/*.yaml")):
        for crd in documents(path.read_text()):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    index[key] = (path, version["schema"]["openAPIV3Schema"])
    return index


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict JSON schema of a served Knative (apiVersion, kind), metadata included.

    Skips the calling test when ../shared/knative-crds is absent; KeyError for a kind the
    CRDs do not serve.
    """
    index = _crd_index()
    if (api_version, kind) not in index:
        served = ", ".join(f"{k} {v}" for v, k in sorted(index))
        raise KeyError(f"no served CRD version for {api_version} {kind} (served: {served})")
    _, raw = index[(api_version, kind)]
    schema = strict(raw)
    schema.setdefault("properties", {})
    schema["properties"].update({
        "apiVersion": {"const": api_version},
        "kind": {"const": kind},
        "metadata": OBJECT_META,
    })
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    schema["additionalProperties"] = False
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def crd_raw_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The CRD's openAPIV3Schema as published (for descriptions such as feature flags)."""
    return _crd_index()[(api_version, kind)][1]


def crd_errors(obj: Obj) -> list[str]:
    """Strict CRD-schema errors of a Knative object, every one, in document order."""
    try:
        schema = crd_schema(str(obj.get("apiVersion")), str(obj.get("kind")))
    except KeyError as exc:
        return [f"{ident(obj)}: unknown kind: {exc.args[0]}"]
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    return [format_error(obj, e) for e in errors]


# Custom kinds of other projects the chart may render (only when a value turns them on),
# which kubernetes-validate does not know: checked against a strict schema written here from
# their CRD (the fields the chart uses and their neighbours, nothing unknown).
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?"
                                          "(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
_LABEL_SELECTOR: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {
                "key": {"type": "string"},
                "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                "values": {"type": "array", "items": {"type": "string"}},
            }}},
    },
}
SERVICE_MONITOR: dict[str, Any] = {  # monitoring.coreos.com/v1 ServiceMonitor (a subset)
    "type": "object", "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": OBJECT_META,
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["selector"],
            "properties": {
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    }},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "targetPort": {"anyOf": [{"type": "integer", "minimum": 1,
                                                  "maximum": 65535}, {"type": "string"}]},
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                        "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array", "items": {"type": "object"}},
                        "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                    }}},
            }},
    },
}
HAND_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
}


def is_hand_checked(obj: Mapping[str, Any]) -> bool:
    """True for the kinds of HAND_SCHEMAS."""
    return (obj.get("apiVersion"), obj.get("kind")) in HAND_SCHEMAS


def hand_errors(obj: Obj) -> list[str]:
    """Errors of an object of a HAND_SCHEMAS kind, every one, in document order."""
    validator = jsonschema.Draft202012Validator(
        HAND_SCHEMAS[(str(obj.get("apiVersion")), str(obj.get("kind")))])
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    return [format_error(obj, e) for e in errors]


def schema_errors(obj: Obj) -> list[str]:
    """Errors of any object: Knative kinds against the CRDs, other projects' kinds against
    HAND_SCHEMAS, the rest against Kubernetes."""
    if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return [f"{ident(obj)}: no apiVersion/kind"]
    if is_hand_checked(obj):
        return hand_errors(obj)
    return crd_errors(obj) if is_knative(obj) else kubernetes_errors(obj)
