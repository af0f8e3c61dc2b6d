"""The API description: GET /openapi.json and GET /docs on upload and status.

One source, openapi.yaml next to this module. Each function serves the operations it
answers (tag `upload` or `status`) plus the `service` ones every function answers, and the
components those use. /docs is Swagger UI, served from the flask-swagger-ui wheel, which
bundles its files (works offline, nothing fetched from elsewhere): the page is the Jinja
template templates/apidocs.html, Swagger UI's files are served at /docs/swagger-ui/ and our
start-up script and style at /docs/static/. The script is a file, not the inline one of
flask-swagger-ui's own blueprint, so the page's Content-Security-Policy allows scripts from
this origin only."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, render_template

from .web import services_of

SPEC_FILE = "openapi.yaml"
FUNCTIONS = ("upload", "status")
SHARED_TAG = "service"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOCS_PATH = "/docs"


def _swagger_ui() -> Path:
    """Swagger UI's files in the flask-swagger-ui wheel, found without importing the
    package (its __init__ reads the installed packages' metadata: ~40 ms at start-up)."""
    found = importlib.util.find_spec("flask_swagger_ui")
    if found is None or not found.submodule_search_locations:
        raise ImportError("flask-swagger-ui is not installed (a dependency of the service)")
    return Path(found.submodule_search_locations[0], "dist")


SWAGGER_UI = _swagger_ui()
SWAGGER_UI_PATH = f"{DOCS_PATH}/swagger-ui"
STATIC = Path(__file__).with_name("static")
STATIC_PATH = f"{DOCS_PATH}/static"
# Open even when API keys are configured, like /docs itself: static files, no data.
OPEN_PATHS = tuple(f"{prefix}/{p.name}" for prefix, folder in
                   ((SWAGGER_UI_PATH, SWAGGER_UI), (STATIC_PATH, STATIC))
                   for p in sorted(folder.iterdir()) if p.is_file())
# Swagger UI sets element styles from its script (allowed: not inline markup) and shows
# its icons as data: images; the API it calls is this origin's (the document's server "/").
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

Spec = dict[str, Any]


@functools.cache
def full_spec() -> Spec:
    """The whole API: both functions' operations (parsed once; do not mutate)."""
    text = resources.files("thumbnails.core").joinpath(SPEC_FILE).read_text(encoding="utf-8")
    spec: Spec = yaml.safe_load(text)
    return spec


@functools.cache
def spec_for(function: str) -> Spec:
    """The operations `function` serves, the shared ones, and the components they use."""
    if function not in FUNCTIONS:
        raise ValueError(f"no API description for {function!r}")
    source = full_spec()
    wanted = {function, SHARED_TAG}
    paths: dict[str, Any] = {}
    for path, item in source["paths"].items():
        kept = {key: value for key, value in item.items()
                if key not in METHODS or wanted & set(value.get("tags", ()))}
        if any(key in METHODS for key in kept):
            paths[path] = kept
    spec = copy.deepcopy({**source, "paths": paths})
    spec["info"]["title"] = f"{source['info']['title']}: {function}"
    used = _reachable(spec, {"paths": paths, "security": source.get("security", [])})
    spec["components"] = {
        section: {name: value for name, value in entries.items() if (section, name) in used}
        for section, entries in spec["components"].items()
    }
    spec["components"] = {k: v for k, v in spec["components"].items() if v}
    tags_used = {t for item in paths.values() for key, op in item.items() if key in METHODS
                 for t in op.get("tags", ())}
    spec["tags"] = [t for t in spec.get("tags", []) if t["name"] in tags_used]
    return spec


def _reachable(spec: Spec, root: Any) -> set[tuple[str, str]]:
    """(section, name) of every component `root` refers to, directly or through others;
    security schemes named in security requirements count too."""
    found: set[tuple[str, str]] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                section, name = ref.split("/")[2:4]
                if (section, name) not in found:
                    found.add((section, name))
                    stack.append(spec["components"][section][name])
            for key, value in node.items():
                if key == "security" and isinstance(value, list):
                    found.update(("securitySchemes", n) for req in value for n in req)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def blueprint(function: str) -> Blueprint:
    """GET /openapi.json, GET /docs and the docs page's files for `function` ("upload" or
    "status")."""
    spec = spec_for(function)
    document = json.dumps(spec, ensure_ascii=False, indent=1).encode()
    other = "status" if function == "upload" else "upload"
    bp = Blueprint("apidocs", __name__, template_folder="templates", static_folder="static",
                   static_url_path=STATIC_PATH)
    bp.register_blueprint(Blueprint("swagger_ui", __name__, static_folder=SWAGGER_UI,
                                    static_url_path=SWAGGER_UI_PATH))

    @bp.get("/openapi.json")
    def openapi() -> Response:
        return Response(document, 200, mimetype="application/json")

    @bp.get(DOCS_PATH)
    def docs() -> Response:
        config = services_of().config
        page = render_template("apidocs.html", title=spec["info"]["title"], other=other,
                               other_url=getattr(config, f"{other}_base_url").rstrip("/"))
        return Response(page, 200, {"Content-Security-Policy": DOCS_CSP},
                        mimetype="text/html")

    return bp


def operations(spec: Spec) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) in document order."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]
