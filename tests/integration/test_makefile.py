"""The Makefile's targets, run by GNU make in a scratch copy of the project root: lint runs
ruff, clean removes what the tools leave behind, dev installs no test tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]  # this test run's virtualenv (ruff is a test extra)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not here")


def make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-C", str(root), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def scratch_root(tmp_path: Path) -> Path:
    """The Makefile and the project files alone (the root's and the client's and dev tools'),
    with otherwise empty functions/, tests/ and scripts/."""
    root = tmp_path / "root"
    for folder in ("functions/local", "functions/client", "tests", "scripts"):
        (root / folder).mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "functions/local/pyproject.toml",
                 "functions/client/pyproject.toml"):
        shutil.copy2(ROOT / name, root / name)
    return root


def test_lint_runs_ruff_and_fails_on_a_finding(tmp_path: Path) -> None:
    root = scratch_root(tmp_path)
    # -o: take this run's virtualenv as installed, whatever the copied pyproject's mtime.
    installed = ["VENV=" + str(VENV), "-o", str(VENV / ".installed")]
    clean = make(root, "lint", *installed)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ruff check functions tests scripts" in clean.stdout
    (root / "functions" / "bad.py").write_text("import os\n")  # F401: unused import
    found = make(root, "lint", *installed)
    assert found.returncode != 0
    assert "F401" in found.stdout and "bad.py" in found.stdout


def test_clean_removes_the_venv_data_tools_and_caches_only(tmp_path: Path) -> None:
    root = scratch_root(tmp_path)
    left_behind = [".venv/bin", "data/objects", ".tools/bin", "build", ".hypothesis/examples",
                   ".pytest_cache/v", ".ruff_cache/0.6", "knative_thumbnails.egg-info",
                   "functions/local/knative_thumbnails_local.egg-info",
                   "functions/client/knative_thumbnails_client.egg-info"]
    for folder in left_behind:
        (root / folder).mkdir(parents=True)
        (root / folder / "file").write_text("x")
    (root / "functions" / "kept.py").write_text("x = 1\n")
    done = make(root, "clean")
    assert done.returncode == 0, done.stderr
    assert [f for f in left_behind if f.startswith("functions/") and (root / f).exists()] == []
    assert [f for f in left_behind if not f.startswith("functions/")
            and (root / f.split("/")[0]).exists()] == []
    assert (root / "functions" / "kept.py").exists() and (root / "Makefile").exists()


def test_dev_installs_no_test_tools_and_test_does(tmp_path: Path) -> None:
    """From a fresh clone (no venv): `make -n` shows what each target would install."""
    root = scratch_root(tmp_path)
    dev = make(root, "-n", "dev")
    assert dev.returncode == 0, dev.stderr
    installs = [line for line in dev.stdout.splitlines() if "pip install" in line]
    # the service, the dev tools and the client: three distributions, each editable
    assert any('-e ".[local,client]"' in line and "-e functions/local" in line
               and "-e functions/client" in line for line in installs), dev.stdout
    assert not any("test" in line for line in installs), dev.stdout
    assert "thumbnails dev" in dev.stdout
    test = make(root, "-n", "test")
    assert test.returncode == 0, test.stderr
    lines = test.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if needle in line)
             for needle in ("-m venv", '-e ".[test,local,client]" -e functions/local -e '
                            "functions/client", "ruff check", "pytest -q")]
    assert order == sorted(order), test.stdout
