"""The API description: GET /openapi.json and GET /docs on upload and status.

One source, openapi.yaml next to this module. Each function serves the operations it
answers (tag `upload` or `status`) plus the `service` ones every function answers, and the
components those use; /docs is an HTML page rendered here from the same document (no
JavaScript, no CDN: self-contained, it works offline)."""

from __future__ import annotations

import copy
import functools
import html
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import yaml
from flask import Blueprint, Response, current_app

SPEC_FILE = "openapi.yaml"
FUNCTIONS = ("upload", "status")
SHARED_TAG = "service"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

Spec = dict[str, Any]


@functools.cache
def full_spec() -> Spec:
    """The whole API: both functions' operations (parsed once; do not mutate)."""
    text = resources.files("thumbnails").joinpath(SPEC_FILE).read_text(encoding="utf-8")
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
    """GET /openapi.json and GET /docs for `function` ("upload" or "status")."""
    spec = spec_for(function)
    document = json.dumps(spec, ensure_ascii=False, indent=1).encode()
    bp = Blueprint("apidocs", __name__)

    @bp.get("/openapi.json")
    def openapi() -> Response:
        return Response(document, 200, mimetype="application/json")

    @bp.get("/docs")
    def docs() -> Response:
        page = _page(current_app, function)
        return Response(page, 200, {"Content-Security-Policy": DOCS_CSP},
                        mimetype="text/html")

    return bp


def _page(app: Any, function: str) -> str:
    """The page for this app (made once: the other function's URL comes from its config)."""
    page: str | None = app.extensions.get("apidocs_page")
    if page is None:
        services = app.extensions.get("services")
        config = getattr(services, "config", None)
        other = "status" if function == "upload" else "upload"
        other_url = getattr(config, f"{other}_base_url", "") if config else ""
        page = app.extensions["apidocs_page"] = render(spec_for(function), function,
                                                       other, other_url)
    return page


# ---- the HTML page ----------------------------------------------------------------------

_STYLE = """
:root { --fg:#1d232b; --muted:#5b6672; --line:#d9dee4; --bg:#fff; --soft:#f5f7f9;
  --get:#1f6feb; --post:#1a7f37; --code:#f0f2f4; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
main { max-width:980px; margin:0 auto; padding:24px 20px 64px; }
h1 { font-size:28px; margin:0 0 4px; } h2 { font-size:21px; margin:40px 0 12px;
  padding-bottom:6px; border-bottom:1px solid var(--line); }
h3 { font-size:17px; margin:0; } h4 { font-size:14px; margin:18px 0 6px;
  text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
p { margin:6px 0; } a { color:#0b57d0; text-decoration:none; }
a:hover { text-decoration:underline; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
code { background:var(--code); padding:1px 4px; border-radius:4px; }
.sub { color:var(--muted); margin:0 0 16px; }
.method { display:inline-block; min-width:52px; text-align:center; color:#fff; font-weight:600;
  font-size:12px; padding:2px 8px; border-radius:4px; margin-right:8px; }
.method.get { background:var(--get); } .method.post { background:var(--post); }
.op { border:1px solid var(--line); border-radius:8px; margin:16px 0; padding:14px 16px; }
.op > header { display:flex; align-items:center; flex-wrap:wrap; gap:4px; }
.op .path { font-weight:600; font-size:15px; margin-right:12px; }
.op .summary { color:var(--muted); }
.auth { font-size:13px; color:var(--muted); margin-top:6px; }
table { border-collapse:collapse; width:100%; margin:6px 0; font-size:14px; }
th, td { text-align:left; vertical-align:top; padding:6px 8px; border-top:1px solid var(--line); }
th { font-size:12px; color:var(--muted); font-weight:600; border-top:none; }
td.name { white-space:nowrap; } td.type { color:#6f42c1; }
.req { color:#cf222e; font-size:12px; margin-left:4px; }
.status { font-weight:700; } .s2 { color:var(--post); } .s3 { color:var(--muted); }
.s4 { color:#b35900; } .s5 { color:#cf222e; }
.resp { border-top:1px solid var(--line); padding:8px 0; }
.resp:first-of-type { border-top:none; }
.nested { margin:4px 0 0 0; padding-left:10px; border-left:3px solid var(--soft); }
.toc td { border-top:1px solid var(--soft); padding:4px 8px; }
.alias { color:var(--muted); }
pre { background:var(--soft); padding:10px; border-radius:6px; overflow:auto; font-size:13px; }
"""


def render(spec: Spec, function: str, other: str = "", other_url: str = "") -> str:
    """The whole page for one function's document."""
    info = spec["info"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(info['title'])} API</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>{_e(info['title'])}</h1>",
        f'<p class="sub">API version {_e(info["version"])} · OpenAPI {_e(spec["openapi"])}'
        f' · the operations the <b>{_e(function)}</b> function serves · '
        '<a href="openapi.json">openapi.json</a></p>',
    ]
    if other:
        target = f'<a href="{_e(other_url.rstrip("/"))}/docs">its /docs</a>' if other_url \
            else "its /docs"
        parts.append(f"<p>The <b>{_e(other)}</b> function serves the other operations: "
                     f"see {target}.</p>")
    parts.append(_text(info.get("description", "")))
    parts.append(_contents(spec))
    parts.append(_security(spec))
    for tag, operations in _by_tag(spec):
        parts.append(f'<h2 id="tag-{_e(tag["name"])}">{_e(tag["name"])}</h2>')
        parts.append(_text(tag.get("description", "")))
        parts.extend(_operation(spec, path, method, op) for path, method, op in operations)
    parts.append(_errors(spec))
    parts.append(_schemas(spec))
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p)


def operations(spec: Spec) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) in document order."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _by_tag(spec: Spec) -> list[tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]]]]:
    groups = []
    for tag in spec.get("tags", []):
        ops = [(p, m, o) for p, m, o in operations(spec) if tag["name"] in o.get("tags", ())]
        if ops:
            groups.append((tag, ops))
    return groups


def _anchor(op: dict[str, Any]) -> str:
    return f"op-{op['operationId']}"


def _badge(method: str) -> str:
    return f'<span class="method {method}">{method.upper()}</span>'


def _contents(spec: Spec) -> str:
    rows = [
        f'<tr><td>{_badge(m)}</td><td class="mono"><a href="#{_anchor(o)}">{_e(p)}</a></td>'
        f"<td>{_e(o.get('summary', ''))}</td></tr>"
        for p, m, o in operations(spec)
    ]
    return '<h2 id="operations">Operations</h2><table class="toc">' + "".join(rows) + "</table>"


def _security(spec: Spec) -> str:
    schemes = spec.get("components", {}).get("securitySchemes", {})
    if not schemes:
        return ""
    rows = []
    for name, scheme in schemes.items():
        if scheme["type"] == "apiKey":
            how = f"header <code>{_e(scheme['name'])}: &lt;key&gt;</code>"
        elif scheme["type"] == "http":
            how = f"header <code>Authorization: {_e(scheme['scheme'].title())} &lt;key&gt;</code>"
        else:
            how = _e(scheme["type"])
        rows.append(f'<tr><td class="name">{_e(name)}</td><td>{how}</td>'
                    f"<td>{_inline(scheme.get('description', ''))}</td></tr>")
    return ('<h2 id="authentication">Authentication</h2>'
            "<p>Optional: only when the deployment configures API keys. Operations marked "
            "“No key needed” never need one.</p>"
            "<table><tr><th>scheme</th><th>sent as</th><th></th></tr>" + "".join(rows)
            + "</table>")


def _operation(spec: Spec, path: str, method: str, op: dict[str, Any]) -> str:
    head = (f'<section class="op" id="{_anchor(op)}"><header>{_badge(method)}'
            f'<span class="path mono">{_e(path)}</span>')
    alias = op.get("x-alias-of")
    if alias:
        target = next(o for _, _, o in operations(spec) if o["operationId"] == alias)
        target_path = next(p for p, _, o in operations(spec) if o["operationId"] == alias)
        return (head + f'<span class="alias">same as <a href="#{_anchor(target)}">'
                f"{method.upper()} {_e(target_path)}</a></span></header></section>")
    out = [head + f'<span class="summary">{_e(op.get("summary", ""))}</span></header>']
    security = op.get("security", spec.get("security", []))
    needs = [name for req in security for name in req]
    out.append('<p class="auth">' + (
        "API key: " + " or ".join(_e(n) for n in needs) + (
            " (when keys are configured)" if {} in security else "")
        if needs else "No key needed.") + "</p>")
    out.append(_text(op.get("description", "")))
    params = [_resolve(spec, p) for p in op.get("parameters", [])]
    if params:
        rows = "".join(
            f'<tr><td class="name mono">{_e(p["name"])}'
            f'{"<span class=req>required</span>" if p.get("required") else ""}</td>'
            f'<td>{_e(p["in"])}</td><td class="type">{_type(spec, p.get("schema", {}))}</td>'
            f"<td>{_inline(p.get('description', ''))}{_facts(spec, p.get('schema', {}))}</td>"
            "</tr>" for p in params)
        out.append("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th>"
                   f"<th>description</th></tr>{rows}</table>")
    body = op.get("requestBody")
    if body:
        body = _resolve(spec, body)
        out.append("<h4>Request body" + (" (required)" if body.get("required") else "")
                   + "</h4>")
        for media, content in body.get("content", {}).items():
            out.append(_body(spec, [media], content.get("schema", {})))
            for field, encoding in content.get("encoding", {}).items():
                if "contentType" in encoding:
                    out.append(f"<p>Part <code>{_e(field)}</code>: "
                               f"{_e(encoding['contentType'])}</p>")
    out.append("<h4>Responses</h4>")
    for code, response in op.get("responses", {}).items():
        out.append(_response(spec, code, response))
    out.append("</section>")
    return "\n".join(out)


def _response(spec: Spec, code: str, response: dict[str, Any]) -> str:
    ref = response.get("$ref", "")
    response = _resolve(spec, response)
    klass = f"s{code[0]}" if code[:1].isdigit() else ""
    out = [f'<div class="resp"><span class="status {klass}">{_e(code)}</span> '
           f"{_inline(response.get('description', ''))}"]
    headers = response.get("headers", {})
    if headers:
        rows = "".join(
            f'<tr><td class="name mono">{_e(name)}'
            f'{"<span class=req>always</span>" if h.get("required") else ""}</td>'
            f'<td class="type">{_type(spec, h.get("schema", {}))}</td>'
            f"<td>{_inline(h.get('description', ''))}</td></tr>"
            for name, h in ((n, _resolve(spec, h)) for n, h in headers.items()))
        out.append(f"<table><tr><th>header</th><th>type</th><th></th></tr>{rows}</table>")
    # Media types with the same schema (image/png, image/jpeg, ...) share one entry.
    grouped: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for media, content in response.get("content", {}).items():
        schema = content.get("schema", {})
        grouped.setdefault(json.dumps(schema, sort_keys=True), ([], schema))[0].append(media)
    for medias, schema in grouped.values():
        if ref.startswith("#/components/responses/"):
            codes = _error_codes(spec, schema)
            out.append(f"<p>{_medias(medias)} <a href=\"#errors\">error</a>: "
                       + ", ".join(f"<code>{_e(c)}</code>" for c in codes) + "</p>")
        else:
            out.append(_body(spec, medias, schema))
    return "\n".join(out) + "</div>"


def _medias(medias: list[str]) -> str:
    return ", ".join(f"<code>{_e(m)}</code>" for m in medias)


def _body(spec: Spec, medias: list[str], schema: dict[str, Any]) -> str:
    """A body's media types and its fields, right there (a named schema also links to its
    entry under Schemas)."""
    named = f" · {_type(spec, schema)}" if "$ref" in schema else ""
    return f"<p>{_medias(medias)}{named}</p>" + _schema_block(spec, schema, expand=True)


def _errors(spec: Spec) -> str:
    error = spec.get("components", {}).get("schemas", {}).get("Error")
    if error is None:
        return ""
    rows = []
    for name, response in spec["components"].get("responses", {}).items():
        codes = []
        for content in response.get("content", {}).values():
            codes += _error_codes(spec, content.get("schema", {}))
        rows.append(f'<tr><td class="name">{_e(name)}</td><td>'
                    + ", ".join(f"<code>{_e(c)}</code>" for c in codes)
                    + f"</td><td>{_inline(response.get('description', ''))}</td></tr>")
    example = json.dumps({"error": "bad_request",
                          "message": "multipart/form-data with a 'file' field is required"})
    return ('<h2 id="errors">Errors</h2><p>Every error answer has the same shape '
            f"(<a href=\"#schema-Error\">Error</a>):</p><pre>{_e(example)}</pre>"
            "<table><tr><th>response</th><th>error codes</th><th>when</th></tr>"
            + "".join(rows) + "</table>")


def _error_codes(spec: Spec, schema: dict[str, Any]) -> list[str]:
    merged = _merged(spec, schema)
    prop = merged.get("properties", {}).get("error", {})
    if "const" in prop:
        return [prop["const"]]
    return list(prop.get("enum", []))


def _schemas(spec: Spec) -> str:
    schemas = spec.get("components", {}).get("schemas", {})
    if not schemas:
        return ""
    out = ['<h2 id="schemas">Schemas</h2>']
    for name, schema in schemas.items():
        out.append(f'<section class="op" id="schema-{_e(name)}"><h3 class="mono">{_e(name)}'
                   "</h3>")
        out.append(_text(schema.get("description", "")))
        out.append(_schema_block(spec, schema, expand=True))
        for example in schema.get("examples", [])[:1]:
            out.append("<h4>Example</h4><pre>"
                       + _e(json.dumps(example, indent=2, ensure_ascii=False)) + "</pre>")
        out.append("</section>")
    return "\n".join(out)


def _schema_block(spec: Spec, schema: dict[str, Any], expand: bool = False,
                  depth: int = 0) -> str:
    """An object as a table of its fields; anything else as its type. A named schema is a
    link unless `expand` (its own entry under Schemas)."""
    if "$ref" in schema and not expand:
        return f"<p>{_type(spec, schema)}</p>"
    merged = _merged(spec, schema)
    if merged.get("type") == "array":
        items = merged.get("items", {})
        if "$ref" in items:
            return f"<p>array of {_type(spec, items)}</p>"
        return "<p>array of:</p>" + _schema_block(spec, items, depth=depth + 1)
    properties = merged.get("properties")
    if not properties:
        return f'<p class="type">{_type(spec, schema)}{_facts(spec, merged)}</p>'
    required = set(merged.get("required", ()))
    rows = []
    for name, prop in properties.items():
        resolved = _merged(spec, prop)
        nested = ""
        if "$ref" not in prop and resolved.get("properties") and depth < 3:
            nested = '<div class="nested">' + _schema_block(spec, prop, depth=depth + 1) + \
                "</div>"
        description = prop.get("description") or resolved.get("description", "")
        rows.append(
            f'<tr><td class="name mono">{_e(name)}'
            f'{"<span class=req>required</span>" if name in required else ""}</td>'
            f'<td class="type">{_type(spec, prop)}</td>'
            f"<td>{_inline(description)}{_facts(spec, resolved)}{nested}</td></tr>")
    return ("<table><tr><th>field</th><th>type</th><th>description</th></tr>"
            + "".join(rows) + "</table>")


def _type(spec: Spec, schema: dict[str, Any]) -> str:
    """A short type label: a link for a named schema, `string (uuid)`, `number or null`."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_type(spec, s) for s in schema[key])
    merged = _merged(spec, schema)
    if merged.get("format") == "binary" or "contentMediaType" in merged:
        return "binary"
    kind = merged.get("type")
    if "const" in merged and kind is None:
        kind = type(merged["const"]).__name__.replace("str", "string")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    label = " or ".join(_e(k) for k in kinds) or "any"
    if "array" in kinds and "items" in merged:
        label = f"array of {_type(spec, merged['items'])}"
    if merged.get("format"):
        label += f" ({_e(merged['format'])})"
    return label


def _facts(spec: Spec, schema: dict[str, Any]) -> str:
    """Constraints worth a reader's eye: allowed values, range, default, length, pattern."""
    merged = _merged(spec, schema)
    facts = []
    if "const" in merged:
        facts.append(f"always <code>{_e(json.dumps(merged['const']))}</code>")
    if "enum" in merged:
        facts.append("one of " + ", ".join(f"<code>{_e(str(v))}</code>" for v in merged["enum"]))
    low, high = merged.get("minimum"), merged.get("maximum")
    if low is not None and high is not None:
        facts.append(f"{low} to {high}")
    elif low is not None:
        facts.append(f"at least {low}")
    if merged.get("minLength") or merged.get("maxLength"):
        facts.append(f"length {merged.get('minLength', 0)} to {merged.get('maxLength', '…')}")
    if "pattern" in merged:
        facts.append(f"pattern <code>{_e(merged['pattern'])}</code>")
    if "default" in merged:
        facts.append(f"default <code>{_e(json.dumps(merged['default']))}</code>")
    return f'<div class="auth">{"; ".join(facts)}</div>' if facts else ""


def _resolve(spec: Spec, node: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref (to components) until a node without one."""
    seen = 0
    while "$ref" in node and seen < 20:
        section, name = node["$ref"].split("/")[2:4]
        node = spec["components"][section][name]
        seen += 1
    return node


def _merged(spec: Spec, schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref followed and its allOf parts folded in (properties, required)."""
    schema = _resolve(spec, schema)
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties = dict(merged.get("properties", {}))
    required = list(merged.get("required", []))
    for part in schema["allOf"]:
        part = _merged(spec, part)
        if "if" in part:
            continue  # conditions: the descriptions say when a field is there
        for key, value in part.items():
            if key == "properties":
                for name, prop in value.items():
                    properties[name] = {**properties.get(name, {}), **prop}
            elif key == "required":
                required += [r for r in value if r not in required]
            else:
                merged.setdefault(key, value)
    merged["properties"], merged["required"] = properties, required
    return merged


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return _CODE.sub(r"<code>\1</code>", _e(text.strip()))


def _text(text: str) -> str:
    """Paragraphs (blank-line separated) of escaped text with `code` spans."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{_inline(' '.join(p.split()))}</p>" for p in paragraphs)
