#!/usr/bin/env python3
"""Render knative/ from charts/thumbnails: one file per object, plus kustomization.yaml.

The chart is the single source of every manifest. This runs `helm template` with the
default values and without hooks (the `helm test` Pod is the chart's only), drops the
Helm-only labels, and writes each object to knative/<kind>-<name>.yaml under a header
saying so. `kubectl apply -k knative/` then installs what `helm install` would, and the
local broker reads its Broker and Triggers from the same files. Generated files that the
chart no longer renders are removed. The output depends on the chart alone.

Usage: python scripts/render_knative.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "thumbnails"
KNATIVE = ROOT / "knative"
HELM = ROOT / ".tools" / "bin" / "helm"
FETCH = ROOT / "scripts" / "fetch_k8s_tools.py"
RELEASE = "thumbnails"
# The Kubernetes version the render assumes (Knative 1.22/1.23's minimum), so the output
# does not depend on which helm build runs it.
KUBE_VERSION = "1.34.0"
HEADER = "# generated from charts/thumbnails by scripts/render_knative.py; do not edit"
KUSTOMIZATION = "kustomization.yaml"
# Labels that say "Helm manages this" or name a chart version: wrong for kubectl apply -k.
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
_HELM_LABEL_LINE = re.compile(
    r"^\s+(?:" + "|".join(re.escape(label) for label in HELM_LABELS) + r"):.*\n", re.M)
_SOURCE_LINE = re.compile(r"^# Source: [^/\n]+/(?P<path>.+)\n", re.M)


def helm() -> Path:
    """The pinned helm binary, fetched by scripts/fetch_k8s_tools.py when missing."""
    if not os.access(HELM, os.X_OK):
        if not FETCH.is_file():
            raise SystemExit(f"{HELM.relative_to(ROOT)} is missing and so is "
                             f"{FETCH.relative_to(ROOT)}")
        subprocess.run([sys.executable, str(FETCH)], check=True)
    return HELM


def helm_template() -> str:
    """`helm template` of the chart with its default values, hooks left out."""
    done = subprocess.run(
        [str(helm()), "template", RELEASE, str(CHART), "--no-hooks",
         "--kube-version", KUBE_VERSION],
        capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"helm template failed:\n{done.stderr}")
    return done.stdout


def _without_helm_labels(value: Any) -> Any:
    """A copy of a parsed object without the Helm labels in any `labels` mapping."""
    if isinstance(value, dict):
        return {key: ({k: v for k, v in sub.items() if k not in HELM_LABELS}
                      if key == "labels" and isinstance(sub, dict) else _without_helm_labels(sub))
                for key, sub in value.items()}
    if isinstance(value, list):
        return [_without_helm_labels(item) for item in value]
    return value


def documents(stream: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(template path, cleaned text, object) of every object in helm's output.

    The labels are removed from the text, not by re-dumping the YAML, so the chart's
    comments and layout survive into knative/; the parsed result is checked against the
    object with the labels removed.
    """
    out = []
    for chunk in re.split(r"^---\s*$", stream, flags=re.M):
        obj = yaml.safe_load(chunk)
        if obj is None:
            continue
        if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("metadata"):
            raise SystemExit(f"helm rendered something that is not an object:\n{chunk[:300]}")
        source = _SOURCE_LINE.search(chunk)
        path = f"charts/thumbnails/{source['path']}" if source else "charts/thumbnails"
        text = _HELM_LABEL_LINE.sub("", _SOURCE_LINE.sub("", chunk))
        text = "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"
        if yaml.safe_load(text) != _without_helm_labels(obj):
            raise SystemExit(f"removing {HELM_LABELS} from {obj['kind']}/"
                             f"{obj['metadata'].get('name')} changed more than labels")
        out.append((path, text, obj))
    return out


def file_name(obj: dict[str, Any]) -> str:
    """knative/<kind>-<name>.yaml, lowercase kind."""
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def render(out_dir: Path) -> list[Path]:
    """Write the chart's objects and kustomization.yaml to out_dir; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for source, text, obj in documents(helm_template()):
        name = file_name(obj)
        if name in files:
            raise SystemExit(f"two rendered objects map to {name}: rename one in the chart")
        files[name] = f"{HEADER}\n# source: {source}\n{text}"
    resources = "".join(f"  - {name}\n" for name in sorted(files))
    files[KUSTOMIZATION] = (f"{HEADER}\n# `kubectl apply -k knative/` installs what the chart "
                            "installs with its default values.\n"
                            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
                            f"kind: Kustomization\nresources:\n{resources}")
    written = []
    for name, content in sorted(files.items()):
        path = out_dir / name
        if not path.is_file() or path.read_text() != content:
            path.write_text(content)
        written.append(path)
    for path in sorted(out_dir.glob("*.y*ml")):
        if path.name in files:
            continue
        if path.read_text().startswith(HEADER):
            path.unlink()  # generated once, no longer rendered
        else:
            print(f"warning: {path} was not generated from the chart; the local broker "
                  "reads it too", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: render into knative/ (or --out-dir)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=KNATIVE,
                        help="where to write (default: knative/)")
    args = parser.parse_args(argv)
    written = render(args.out_dir)
    shown = args.out_dir.resolve()
    where = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    print(f"{len(written)} files in {where}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
