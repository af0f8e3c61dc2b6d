"""The API description (functions/core/openapi.yaml) against what the functions really do.

- The document is valid OpenAPI 3.1, each function serves its own part of it at
  /openapi.json, every route a function has is in it, and /docs is Swagger UI served from
  the function itself (the files the flask-swagger-ui wheel bundles), nothing from elsewhere.
- Schemathesis (`st run`, every phase: examples, coverage, fuzzing, stateful) against the
  real local stack's upload and status: no 5xx, and every answer's status code, content
  type, headers and body as documented; undeclared methods answer 405 with Allow. The
  `file` part gets real small images (tests/support/openapi_hooks.py), so 202s are checked too, and
  job ids are sometimes those of a succeeded and a failed job made beforehand, so status's
  200, 304 and 409 answers are checked, not only 404s.
- With API keys on and Redis down (no stack: Flask apps in this process), every answer is
  still as documented: 401 without a key, open paths open, 503 with Retry-After.

Reproducible: `--generation-deterministic` (the same inputs on every run, no example
database) and a fixed number of examples per operation; the whole module takes ~30 s.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks as openapi_checks

from tests.support.images import encode, marked
from tests.support.openapi_hooks import RENDITION
from tests.support.stackutil import running_stack, submit, wait_terminal
from thumbnails.core import apidocs
from thumbnails.core.config import Config
from thumbnails.status import create_app as status_app
from thumbnails.upload import create_app as upload_app

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
HOOKS = TESTS / "support" / "openapi_hooks.py"
EXAMPLES = 30  # per operation and phase: ~20 s for both functions on 2 cores
# Left out, as they judge more than the document can say: positive_data_acceptance expects
# 2xx for any schema-valid body (a `file` of random bytes is schema-valid, and 415);
# negative_data_rejection expects 4xx for any schema-invalid one (upload is lenient by
# design: `JPG` for `jpeg`, and an Idempotency-Key that names a job answers that job).
EXCLUDED_CHECKS = "positive_data_acceptance,negative_data_rejection"
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
FACTORIES = {"upload": upload_app, "status": status_app}


def offline_app(function: str, tmp: Path, **settings_: Any) -> Flask:
    """The function's app in this process, its Redis a closed port (so: unavailable)."""
    config = Config(redis_url="redis://127.0.0.1:1/0", data_dir=tmp / "objects",
                    dependency_timeout_seconds=0.5, **settings_)
    return FACTORIES[function](config)


# ---- the document ----------------------------------------------------------------------

@pytest.mark.parametrize("function", ["upload", "status"])
def test_each_functions_document_is_valid_openapi(function: str) -> None:
    """Valid against the OpenAPI 3.1 meta-schema (the one Schemathesis bundles), and every
    operation loads (references resolve, schemas compile)."""
    schemathesis.openapi.from_dict(copy.deepcopy(apidocs.full_spec())).validate()
    spec = apidocs.spec_for(function)
    assert spec["openapi"].startswith("3.1")
    loaded = schemathesis.openapi.from_dict(copy.deepcopy(spec))
    loaded.validate()
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) == sum(1 for _ in apidocs.operations(spec))
    ids = [op["operationId"] for _, _, op in apidocs.operations(apidocs.full_spec())]
    assert len(ids) == len(set(ids))


def test_validation_catches_a_broken_document() -> None:
    broken = copy.deepcopy(apidocs.spec_for("status"))
    del broken["paths"]["/jobs/{job_id}"]["get"]["parameters"][0]["$ref"]
    with pytest.raises(Exception, match="required"):
        schemathesis.openapi.from_dict(broken).validate()


def test_each_function_documents_only_its_own_operations() -> None:
    upload = {op["operationId"] for _, _, op in apidocs.operations(apidocs.spec_for("upload"))}
    status = {op["operationId"] for _, _, op in apidocs.operations(apidocs.spec_for("status"))}
    shared = {"health", "ready", "metrics", "openapi", "docs", "swaggerUiFile", "docsFile"}
    assert upload - shared == {"createJob", "createJobTrailingSlash", "sweep", "sweepOutbox",
                               "bucketNotification"}
    assert {"listJobs", "getJob", "getThumbnail", "getJobDebug"} <= status - shared
    assert not (upload - shared) & status and upload & status == shared
    # Components the part does not use are left out.
    assert "Job" not in apidocs.spec_for("upload")["components"]["schemas"]
    assert "UploadForm" not in apidocs.spec_for("status")["components"]["schemas"]


@pytest.mark.parametrize("function", ["upload", "status"])
def test_every_route_is_documented(function: str, tmp_path: Path) -> None:
    """Every URL rule and method the app answers is an operation of its document, and back."""
    app = offline_app(function, tmp_path)
    served = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule.rule)
        served |= {(method, path) for method in (rule.methods or set()) & METHODS}
    documented = {(method.upper(), path)
                  for path, method, _ in apidocs.operations(apidocs.spec_for(function))}
    assert served == documented, (
        f"served, not documented: {sorted(served - documented)}; "
        f"documented, not served: {sorted(documented - served)}")


def test_the_document_is_package_data() -> None:
    """A wheel (the container image) has openapi.yaml only if pyproject.toml names it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = project["tool"]["setuptools"].get("package-data", {})
    assert any(fnmatch(apidocs.SPEC_FILE, pattern) for pattern in package_data["thumbnails.core"])


# ---- /openapi.json and /docs ----------------------------------------------------------------

@pytest.mark.parametrize("function", ["upload", "status"])
def test_openapi_json_and_docs_are_open_when_keys_are_required(function: str,
                                                               tmp_path: Path) -> None:
    digest = hashlib.sha256(b"secret").hexdigest()
    client = offline_app(function, tmp_path, api_key_hashes=digest).test_client()
    document = client.get("/openapi.json")
    assert document.status_code == 200 and document.mimetype == "application/json"
    assert document.get_json() == apidocs.spec_for(function)
    assert client.get("/docs").status_code == 200
    answer = client.open("/jobs", method="POST" if function == "upload" else "GET")
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"


@pytest.mark.parametrize("function", ["upload", "status"])
def test_docs_page_is_swagger_ui_served_from_the_function(function: str,
                                                          tmp_path: Path) -> None:
    """/docs is Swagger UI whose every file comes from this function, byte for byte the
    files the flask-swagger-ui wheel bundles, with no key needed; the page names nothing
    elsewhere but the other function's /docs, and points Swagger UI at /openapi.json.
    (tests/integration/test_page.py sees Chromium render every operation from it.)"""
    digest = hashlib.sha256(b"secret").hexdigest()
    client = offline_app(function, tmp_path, status_base_url="http://status.example",
                         upload_base_url="http://upload.example",
                         api_key_hashes=digest).test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'") and "script-src 'self';" in policy
    text = page.get_data(as_text=True)
    assert "<script>" not in text  # scripts are files only: the policy allows no inline one
    other = "status" if function == "upload" else "upload"
    urls = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert f"http://{other}.example/docs" in urls  # the other function's page
    local = [url for url in urls if url != f"http://{other}.example/docs"]
    assert not [url for url in local if re.match(r"[a-z][a-z0-9+.-]*:|//", url, re.I)], local
    # The wheel's own files, found through pip's record of it (not through thumbnails).
    wheel = {Path(f.name).name: f for f in metadata.files("flask-swagger-ui") or ()
             if f.parent.name == "dist"}
    served = {"/" + url: client.get("/" + url) for url in local if url != "openapi.json"}
    for url in ("/docs/swagger-ui/swagger-ui-bundle.js", "/docs/swagger-ui/swagger-ui.css",
                "/docs/static/apidocs.js"):
        answer = served[url]
        assert answer.status_code == 200, url
        if url.startswith("/docs/swagger-ui/"):
            assert answer.data == wheel[Path(url).name].read_binary(), url
    assert all(answer.status_code == 200 for answer in served.values()), served
    spec_url = re.search(r'id="swagger-ui" data-spec-url="([^"]+)"', text)
    assert spec_url and urljoin("http://x/docs", spec_url.group(1)) == "http://x/openapi.json"
    script = served["/docs/static/apidocs.js"].get_data(as_text=True)
    assert "SwaggerUIBundle(" in script and "validatorUrl: null" in script
    # Only the files there are open; with a key, anything else is a 404.
    assert client.get("/docs/swagger-ui/missing.js").status_code == 401
    key = {"X-API-Key": "secret"}
    for path in ("/docs/swagger-ui/missing.js", "/docs/static/../apidocs.py"):
        assert client.get(path, headers=key).status_code == 404, path


# ---- with keys on and Redis down: still as documented ---------------------------------------

CONFORMANCE = [
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.mark.parametrize("function", ["upload", "status"])
def test_answers_conform_with_keys_on_and_redis_down(function: str, tmp_path: Path) -> None:
    app = offline_app(function, tmp_path, api_key_hashes=hashlib.sha256(b"k").hexdigest())
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    seen: set[int] = set()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=5, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            response = case.call_and_validate(checks=CONFORMANCE)
            assert response.status_code != 500, response.text
            seen.add(response.status_code)

        conforms()
    assert {200, 401, 503} <= seen


@pytest.mark.parametrize("function, method, path, status", [
    # Undeclared methods: 405, naming the allowed ones (RFC 9110 15.5.6: Allow is a MUST).
    ("status", "TRACE", "/jobs", 405),
    ("upload", "DELETE", "/jobs", 405),
    # Unicode digits: str.isdigit() says yes, int() says no.
    ("status", "GET", "/jobs?limit=%C2%B2", 400),
    # Flask's default static route: status's page template, raw; nothing on upload.
    ("status", "GET", "/static/index.html", 404),
    ("upload", "GET", "/static/app.py", 404),
])
def test_edge_requests_answer_as_documented(function: str, method: str, path: str,
                                            status: int, tmp_path: Path) -> None:
    client = offline_app(function, tmp_path).test_client()
    answer = client.open(path, method=method)
    assert answer.status_code == status, answer.get_data(as_text=True)[:200]
    assert set(answer.get_json()) == {"error", "message"}
    if status == 405:
        allowed = {m.strip() for m in answer.headers.get("Allow", "").split(",")}
        assert allowed >= ({"GET"} if function == "status" else {"POST"})


# ---- Schemathesis against the real stack ----------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # Bounded event streams: each GET /events ends within the run's request timeout.
    config = Config(max_upload_bytes=256 * 1024, events_stream_seconds=0.3)
    with running_stack(config, Path(tmp_path_factory.mktemp("stack"))) as urls:
        yield urls


@pytest.fixture(scope="module")
def known_jobs(stack: dict[str, str]) -> dict[str, str]:
    """A succeeded job (with its thumbnail's ETag), a failed one and a succeeded one with
    renditions (the hooks' RENDITION, which the failed one asked for too), for the hooks."""
    jpeg = encode(marked((200, 150)), "JPEG", quality=90)
    png = encode(marked((40, 30)), "PNG")
    renditions = {"renditions": json.dumps([{"name": RENDITION, "format": "webp"}])}
    ids = {}
    for kind, data, form in (("succeeded", png, {}), ("failed", jpeg[: len(jpeg) // 2], renditions),
                             ("renditions", png, renditions)):
        accepted = submit(stack, data, **form)
        assert accepted.status_code == 202, accepted.text
        ids[kind] = accepted.json()["job_id"]
        assert wait_terminal(stack, ids[kind])["status"] == ("failed" if kind == "failed"
                                                             else "succeeded")
    thumbnail = requests.get(f"{stack['status']}/jobs/{ids['succeeded']}/thumbnail", timeout=10)
    assert thumbnail.status_code == 200
    return {"THUMBNAILS_TEST_JOB_IDS": ",".join(ids.values()),
            "THUMBNAILS_TEST_ETAG": thumbnail.headers["ETag"]}


# (method, URL path pattern, status) answers the run must include: proof that the hooks
# work and the interesting paths were checked, not only the 4xx of random input.
MUST_SEE = {
    "upload": [("POST", r"/jobs/?", 202), ("POST", r"/jobs/?", 400), ("POST", r"/jobs/?", 415),
               ("POST", r"/(outbox/)?sweep", 200)],
    "status": [("GET", r"/jobs/?", 200), ("GET", r"/jobs/?", 400),
               ("GET", r"/jobs/[0-9a-f-]{36}", 200), ("GET", r"/jobs/[^/]+", 404),
               ("GET", r"/jobs/[0-9a-f-]{36}/thumbnail", 200),
               ("GET", r"/jobs/[0-9a-f-]{36}/thumbnail", 304),
               ("GET", r"/jobs/[0-9a-f-]{36}/thumbnail", 409),
               ("GET", r"/jobs/[0-9a-f-]{36}/debug", 200),
               ("GET", rf"/jobs/[0-9a-f-]{{36}}/thumbnails/{RENDITION}", 200),
               ("GET", rf"/jobs/[0-9a-f-]{{36}}/thumbnails/{RENDITION}", 409),
               ("GET", r"/jobs/[0-9a-f-]{36}/thumbnails/[^/]+", 404),
               ("GET", r"/events", 200), ("GET", r"/events", 400)],
}


@pytest.mark.parametrize("function", ["upload", "status"])
def test_schemathesis_finds_nothing(function: str, stack: dict[str, str],
                                    known_jobs: dict[str, str], tmp_path: Path) -> None:
    har = tmp_path / "run.har"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{stack[function]}/openapi.json",
        "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
        "--max-examples", str(EXAMPLES), "--generation-deterministic",
        # One worker: with two threads, CPython 3.11's compiler sometimes fails inside
        # schemathesis ("SystemError: AST constructor recursion depth mismatch").
        "--workers", "1", "--request-timeout", "20", "--no-color",
        "--report", "har", "--report-har-path", str(har), "--report-dir", str(tmp_path),
    ]
    env = {**os.environ, **known_jobs, "SCHEMATHESIS_HOOKS": str(HOOKS),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=180)
    report = run.stdout[run.stdout.find("FAILURES"):] if "FAILURES" in run.stdout \
        else run.stdout[-3000:]
    assert run.returncode == 0, f"{' '.join(command)}\n{report[:20000]}\n{run.stderr[-3000:]}"
    answered = set()
    for entry in json.loads(har.read_text())["log"]["entries"]:
        path = "/" + entry["request"]["url"].split("://", 1)[1].split("/", 1)[1].split("?")[0]
        answered.add((entry["request"]["method"], path, entry["response"]["status"]))
    for method, pattern, status in MUST_SEE[function]:
        assert any(m == method and s == status and re.fullmatch(pattern, p)
                   for m, p, s in answered), f"no {method} {pattern} answered {status}"
