"""The chart lints and renders, its schema guards its values, and knative/ is its current render."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support import k8s
from thumbnails.core import events

VALUES = [None, *k8s.VALUES_FILES]
VALUE_IDS = ["default", *(name.removesuffix(".yaml") for name in k8s.VALUES_FILES)]
OUT_OF_DATE = "knative/ is out of date with charts/thumbnails: run make manifests"


def render_knative_module() -> ModuleType:
    """scripts/render_knative.py, imported by path."""
    path = k8s.ROOT / "scripts" / "render_knative.py"
    assert path.is_file(), f"{path.relative_to(k8s.ROOT)} is missing"
    spec = importlib.util.spec_from_file_location("render_knative", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def canonical(obj: Any) -> str:
    """A comparable text form of an object."""
    return json.dumps(obj, sort_keys=True)


@pytest.mark.parametrize("values", VALUES, ids=VALUE_IDS)
def test_helm_lint_passes(values: str | None) -> None:
    args: list[str | Path] = ["lint", "--strict", k8s.CHART]
    if values is not None:
        args += ["-f", k8s.CHART / values]
    done = k8s.run("helm", *args)
    assert "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("values", VALUES, ids=VALUE_IDS)
def test_helm_template_renders_distinct_named_objects(values: str | None) -> None:
    objects = k8s.render_chart(k8s.values_path(values))
    assert objects, "helm template rendered nothing"
    unnamed = [k8s.ident(o) for o in objects
               if not o.get("apiVersion") or not o.get("kind")
               or not (o.get("metadata") or {}).get("name")]
    assert not unnamed, f"objects without apiVersion, kind or name: {unnamed}"
    counts = Counter((o["apiVersion"].split("/")[0], o["kind"], o["metadata"]["name"])
                     for o in objects)
    duplicates = [key for key, n in counts.items() if n > 1]
    assert not duplicates, f"rendered more than once: {duplicates}"
    names = {o["metadata"]["name"] for o in k8s.ksvcs(objects)}
    assert set(k8s.FUNCTIONS) <= names, f"Knative Services {sorted(names)} lack a function"


def test_helm_template_includes_the_test_hook() -> None:
    hooks = [k8s.ident(o) for o in k8s.render_chart(None)
             if "helm.sh/hook" in ((o.get("metadata") or {}).get("annotations") or {})]
    assert any(h.startswith("Pod/") for h in hooks), f"no `helm test` Pod among hooks {hooks}"


def test_knative_dir_is_the_current_render_of_the_chart(tmp_path: Path) -> None:
    render_knative_module().render(tmp_path)
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.yaml")}
    committed = {p.name: p.read_text() for p in k8s.KNATIVE.glob("*.yaml")}
    assert fresh, "render_knative.render wrote no files"
    problems = [f"missing in knative/: {name}" for name in sorted(fresh.keys() - committed)]
    problems += [f"not rendered from the chart: knative/{name}"
                 for name in sorted(committed.keys() - fresh)]
    problems += [f"differs: knative/{name}" for name in sorted(fresh.keys() & committed)
                 if fresh[name] != committed[name]]
    assert not problems, OUT_OF_DATE + "\n  " + "\n  ".join(problems)


def test_knative_files_carry_the_generated_header() -> None:
    header = "generated from charts/thumbnails by scripts/render_knative.py; do not edit"
    unmarked = [p.name for p in k8s.knative_files()
                if header not in "".join(p.read_text().splitlines(keepends=True)[:3])]
    assert not unmarked, f"knative/ files without the header {header!r}: {unmarked}"


def test_kubectl_kustomize_builds_the_same_objects_as_the_files() -> None:
    built = list(k8s.documents(k8s.run("kubectl", "kustomize", k8s.KNATIVE).stdout))
    files = k8s.knative_objects()
    built_set, file_set = Counter(map(canonical, built)), Counter(map(canonical, files))
    only_built = [k8s.ident(json.loads(t)) for t in built_set - file_set]
    only_files = [k8s.ident(json.loads(t)) for t in file_set - built_set]
    assert not only_built and not only_files, (
        f"kustomize output and knative/*.yaml differ: only in kustomize {only_built}, "
        f"only in the files (or changed by kustomize) {only_files}")


def test_kustomization_lists_every_file() -> None:
    kustomization = next(k8s.documents((k8s.KNATIVE / "kustomization.yaml").read_text()))
    listed = kustomization.get("resources") or []
    assert sorted(listed) == [p.name for p in k8s.knative_files()]


@pytest.mark.parametrize("assignment", [
    "resize.maxScale=abc",
    "noSuchTopLevelKey=1",
    "image.pullPolicy=Sometimes",
    "eventTypePrefix=Not A Prefix",
], ids=["string-for-integer", "unknown-top-level-key", "bad-enum", "bad-prefix"])
def test_values_schema_rejects_bad_values(assignment: str) -> None:
    assert (k8s.CHART / "values.schema.json").is_file(), "the chart has no values.schema.json"
    done = k8s.helm_template(sets=[assignment], check=False)
    assert done.returncode != 0, f"helm template accepted --set {assignment}"
    assert "schema" in done.stderr.lower(), done.stderr


@pytest.mark.parametrize("prefix", [
    "dev.knative-thumbnails", "com.example.thumbs", "thumbs", "x1.y-2",
    "Com.Example", "a..b", "a.-b", "a-.b", "a_b", "a.b.",
])
def test_values_schema_and_code_agree_on_event_type_prefixes(prefix: str) -> None:
    try:
        events.EventTypes(prefix)
        code_accepts = True
    except ValueError:
        code_accepts = False
    done = k8s.helm_template(sets=[f"eventTypePrefix={prefix}"], check=False)
    chart_accepts = done.returncode == 0
    assert chart_accepts == code_accepts, (
        f"eventTypePrefix={prefix!r}: the chart {'accepts' if chart_accepts else 'rejects'} it, "
        f"thumbnails.core.events.EventTypes {'accepts' if code_accepts else 'rejects'} it "
        "(a prefix the code rejects makes every function fail at start-up)")


def test_values_schema_accepts_a_good_override() -> None:
    objects = k8s.render_chart(sets=["eventTypePrefix=com.example.thumbs"])
    assert k8s.of_kind(objects, "Trigger")


# Knative's validateScaleDownDelay (pkg/apis/autoscaling/annotation_validation.go, Serving
# 1.23) refuses what time.ParseDuration can't read, anything below 0 or above WindowMax
# (1h), and anything not a whole number of seconds ("must be specified with at most second
# precision"). The schema may refuse more (1.5m) but must never accept one of these.
@pytest.mark.parametrize("delay", ["500ms", "1.5s", "90500ms", "2h", "61m", "-1s", "1d", "5"])
@pytest.mark.parametrize("function", ["upload", "status", "resize"])
def test_values_schema_refuses_a_scale_down_delay_knative_refuses(function: str,
                                                                   delay: str) -> None:
    done = k8s.helm_template(sets=[f"{function}.scaleDownDelay={delay}"], check=False)
    assert done.returncode != 0, f"helm template accepted {function}.scaleDownDelay={delay}"
    assert "schema" in done.stderr.lower(), done.stderr


@pytest.mark.parametrize("delay", ["", "0s", "30s", "5m", "2m30s", "59m59s", "60m", "1h"])
def test_values_schema_accepts_whole_second_scale_down_delays(delay: str) -> None:
    objects = k8s.render_chart(sets=[f"resize.scaleDownDelay={delay}"])
    resize = next(o for o in k8s.ksvcs(objects) if o["metadata"]["name"] == "resize")
    annotations = resize["spec"]["template"]["metadata"]["annotations"]
    assert annotations.get("autoscaling.knative.dev/scale-down-delay", "") == delay


@pytest.mark.parametrize("values", k8s.VALUES_FILES)
def test_the_web_page_can_upload_with_each_values_file(values: str) -> None:
    """status serves the page and upload takes the files, on two origins: the page needs
    upload's URL, and upload must let status's origin call it (CORS)."""
    objects = k8s.render_chart(k8s.values_path(values))
    config = next(o for o in k8s.of_kind(objects, "ConfigMap")
                  if o["metadata"]["name"] == "thumbnails-config")["data"]
    assert config["STATUS_BASE_URL"], f"{values}: statusBaseUrl is unset"
    assert config["UPLOAD_BASE_URL"], f"{values}: uploadBaseUrl is unset: the page posts to status"
    assert config["UPLOAD_BASE_URL"] != config["STATUS_BASE_URL"]
    origins = [o for o in config["CORS_ORIGINS"].split(",") if o]
    status_origin = "/".join(config["STATUS_BASE_URL"].split("/")[:3])
    assert status_origin in origins, f"{values}: upload refuses the page's origin {status_origin}"
