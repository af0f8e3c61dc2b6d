"""The container engine for tests/integration/test_containers.py: build the image, run a rendered
Knative Service's container with `docker run`, probe it as the kubelet would, read its
memory peak.

Build: buildah builds the Dockerfile (it knows `RUN --mount`; Debian has no buildx) on the
stand-in base image of .ci/standin-base.sh, and `podman save | docker load` moves the
result into Docker (buildah and podman share one image store). Run: Docker, because
podman's rlimits fail on the CI machines. Every wait here has a deadline, so a machine
where the engine misbehaves fails with a message instead of hanging.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
STANDIN_SCRIPT = ROOT / ".ci" / "standin-base.sh"
# The Dockerfile's base image, as buildah resolves `FROM python:3.11-slim-bookworm`.
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
STANDIN_LABEL = "org.knative-thumbnails.stand-in"
# The machine's CA bundle: pip in the build needs it behind a TLS-inspecting proxy. It goes
# in as the Dockerfile's optional build secret `pip-cert`, never into a layer.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Deadlines (seconds) of the slow steps: debootstrap downloads ~100 MB of packages.
STANDIN_TIMEOUT = 900
BUILD_TIMEOUT = 900
LOAD_TIMEOUT = 300
DOCKER_TIMEOUT = 60

Obj = dict[str, Any]


# ---------------------------------------------------------------- is there an engine?


def _answers(*argv: str) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=DOCKER_TIMEOUT,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def missing_engine() -> str | None:
    """Why the container tests cannot run on this machine, or None when they can."""
    for tool in ("docker", "buildah", "podman"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (the tests build with buildah and run with docker)"
    if shutil.which("curl") is None:
        return "curl is not installed (the README's curl flow runs it)"
    if not _answers("docker", "info"):
        return "docker is installed but its daemon does not answer ('docker info' fails)"
    if os.geteuid() != 0:
        return "building the image with buildah and the stand-in base needs root"
    standin_possible = shutil.which("debootstrap") is not None
    if not standin_possible and not _answers("podman", "image", "exists", BASE_IMAGE):
        return f"neither {BASE_IMAGE} nor debootstrap (to build its stand-in) is here"
    return None


# ---------------------------------------------------------------- build


def run_step(argv: Sequence[str], timeout: float, what: str, **kwargs: Any) -> str:
    """Run one build step; fail naming it, with its output's tail, on error or timeout."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False, **kwargs)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-3000:]
        raise AssertionError(f"{what} did not finish within {timeout:.0f}s: {tail!r}") from None
    if done.returncode != 0:
        raise AssertionError(f"{what} failed (exit {done.returncode}): "
                             f"{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


@dataclass
class Build:
    """The image built for the tests, and what building it cost (seconds)."""

    image: str
    base_is_standin: bool
    seconds: dict[str, float] = field(default_factory=dict)


def build_image(image: str) -> Build:
    """Build the Dockerfile as it is with buildah, on the stand-in base when there is no
    real one; load the image into Docker."""
    seconds: dict[str, float] = {}
    start = time.monotonic()
    run_step([str(STANDIN_SCRIPT)], STANDIN_TIMEOUT, "building the stand-in base image")
    seconds["stand-in base"] = time.monotonic() - start
    label = run_step(["podman", "image", "inspect", "--format",
                      f'{{{{index .Labels "{STANDIN_LABEL}"}}}}', BASE_IMAGE],
                     DOCKER_TIMEOUT, "inspecting the base image").strip()
    # No --layers: buildah's layer cache keys `RUN --mount=type=bind,from=build` on the
    # instruction, not on the mounted wheels, so a cached final stage would keep old code.
    # The Dockerfile's pip cache mount still keeps the downloads between builds.
    argv = ["buildah", "bud", "--pull=never", "--tag", image]
    if CA_BUNDLE.is_file():
        argv += ["--secret", f"id=pip-cert,src={CA_BUNDLE}"]
    old = {tool: _image_id(tool, image) for tool in ("podman", "docker")}
    start = time.monotonic()
    run_step([*argv, str(ROOT)], BUILD_TIMEOUT, f"buildah bud -t {image}")
    seconds["buildah bud"] = time.monotonic() - start
    start = time.monotonic()
    run_step(["bash", "-o", "pipefail", "-c", 'podman save "$1" | docker load', "-", image],
             LOAD_TIMEOUT, "podman save | docker load")
    seconds["podman save | docker load"] = time.monotonic() - start
    for tool, image_id in old.items():  # the previous build under this tag, if now untagged
        if image_id and image_id != _image_id(tool, image) and not _image_id(tool, image_id,
                                                                            "{{.RepoTags}}"):
            subprocess.run([tool, "rmi", image_id], capture_output=True,
                           timeout=DOCKER_TIMEOUT, check=False)
    return Build(image=image, base_is_standin=label == "true", seconds=seconds)


def _image_id(tool: str, image: str, field: str = "{{.Id}}") -> str:
    """The id (or another --format field) of an image in podman's or docker's store; "" when
    it is not there or the field is empty ("[]" counts as empty)."""
    done = subprocess.run([tool, "image", "inspect", "--format", field, image],
                          capture_output=True, text=True, timeout=DOCKER_TIMEOUT, check=False)
    value = done.stdout.strip() if done.returncode == 0 else ""
    return "" if value == "[]" else value


def docker(*args: str, timeout: float = DOCKER_TIMEOUT, check: bool = True) -> str:
    """stdout of one docker command; with check, fail with its stderr when it fails."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... failed: {done.stderr[-2000:]}")
    return done.stdout


# ---------------------------------------------------------------- rendered specs


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity ("1064Mi", "512M", "1Gi", "1000") in bytes."""
    suffixes = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
                "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in suffixes.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


def millicores(quantity: str) -> int:
    """A Kubernetes CPU quantity ("500m", "2") in millicores."""
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def _named(objects: Sequence[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"the chart renders {len(found)} {kind} named {name!r}")
    return found[0]


def _config_data(objects: Sequence[Obj], kind: str, name: str) -> dict[str, str]:
    obj = _named(objects, kind, name)
    if kind == "ConfigMap":
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return data


def container_env(container: Obj, objects: Sequence[Obj]) -> dict[str, str]:
    """The environment the kubelet gives a container: envFrom (ConfigMaps and Secrets, in
    order), then env (value or valueFrom configMapKeyRef/secretKeyRef), later names winning
    (as in the Kubernetes API's EnvVar rules)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                for name, value in _config_data(objects, kind, source[key]["name"]).items():
                    env[prefix + name] = value
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            kind, sel = "ConfigMap", ref["configMapKeyRef"]
        elif "secretKeyRef" in ref:
            kind, sel = "Secret", ref["secretKeyRef"]
        else:
            raise AssertionError(f"env {var['name']}: source {sorted(ref)} is not run here")
        env[var["name"]] = _config_data(objects, kind, sel["name"])[sel["key"]]
    return env


def pod_spec(obj: Obj) -> Obj:
    """The pod spec of a Pod (spec) or of a kind with a pod template (spec.template.spec:
    a Knative Service, a StatefulSet)."""
    return obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]


def docker_run_argv(obj: Obj, *, name: str, env: Mapping[str, str],
                    mounts: Mapping[str, str] | None = None) -> list[str]:
    """`docker run` arguments that run the one container of a rendered Knative Service or
    Pod as the kubelet would: args/command, env as given (see container_env), host network
    (loopback only here), securityContext, emptyDir volumes, memory limit and CPU request.

    env is passed whole (the caller resolves it and swaps in-cluster addresses); mounts maps
    the name of a volume of another kind (e.g. a ConfigMap's files) to its `--mount` value.
    Fails on a securityContext or volume it does not know how to reproduce, so a chart
    change cannot silently be skipped.
    """
    spec = pod_spec(obj)
    (container,) = spec["containers"]
    argv = ["docker", "run", "--detach", "--name", name, "--network", "host"]
    context = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    known = {"allowPrivilegeEscalation", "capabilities", "readOnlyRootFilesystem",
             "runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile"}
    unknown = set(context) - known - {"fsGroup"}
    if unknown:
        raise AssertionError(f"{name}: securityContext {sorted(unknown)} is not reproduced")
    if context.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    if "runAsUser" in context:
        user = str(context["runAsUser"])
        if "runAsGroup" in context:
            user += f":{context['runAsGroup']}"
        if context.get("runAsNonRoot") and int(context["runAsUser"]) == 0:
            raise AssertionError(f"{name}: runAsNonRoot with runAsUser 0 never starts")
        argv += ["--user", user]
    for capability in context.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", capability]
    for capability in context.get("capabilities", {}).get("add", []):
        argv += ["--cap-add", capability]
    if context.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    seccomp = context.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp != "RuntimeDefault":  # RuntimeDefault is Docker's default profile
        raise AssertionError(f"{name}: seccompProfile {seccomp} is not reproduced")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            if volume["emptyDir"].get("medium") == "Memory":
                argv += ["--tmpfs", mount["mountPath"]]
            else:  # a disk-backed emptyDir: an anonymous volume, removed with the container
                argv += ["--mount", f"type=volume,dst={mount['mountPath']}"]
        elif mount["name"] in (mounts or {}):
            argv += ["--mount", (mounts or {})[mount["name"]]]
        else:
            raise AssertionError(f"{name}: volume {mount['name']} is not reproduced")
    resources = container.get("resources", {})
    if "memory" in resources.get("limits", {}):
        limit = quantity_bytes(resources["limits"]["memory"])
        # The kubelet gives a container no swap: --memory-swap equal to --memory.
        argv += ["--memory", str(limit), "--memory-swap", str(limit)]
    if "cpu" in resources.get("limits", {}):
        argv += ["--cpus", str(millicores(resources["limits"]["cpu"]) / 1000)]
    if "cpu" in resources.get("requests", {}):  # the kubelet's requests -> cpu.shares
        argv += ["--cpu-shares", str(max(2, millicores(resources["requests"]["cpu"]) * 1024
                                         // 1000))]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if "workingDir" in container:
        argv += ["--workdir", container["workingDir"]]
    command = container.get("command")
    if command:
        argv += ["--entrypoint", command[0]]
    argv.append(container["image"])
    argv += [*(command or [])[1:], *container.get("args", [])]
    return argv


# ---------------------------------------------------------------- probes


@dataclass
class Probe:
    """An httpGet probe of a rendered container, with the kubelet's defaults."""

    path: str
    period: float  # seconds; 0 when the chart leaves periodSeconds unset
    timeout: float
    failure_threshold: int

    @classmethod
    def of(cls, container: Obj, kind: str) -> Probe:
        """The container's readinessProbe or livenessProbe (kind: "readiness"/"liveness")."""
        probe = container[f"{kind}Probe"]
        return cls(path=probe["httpGet"]["path"],
                   period=float(probe.get("periodSeconds", 0)),
                   timeout=float(probe.get("timeoutSeconds", 1)),
                   failure_threshold=int(probe.get("failureThreshold", 3)))

    def check(self, base_url: str) -> bool:
        """One probe: an HTTP status from 200 to 399 within the timeout (the kubelet's rule)."""
        try:
            status = requests.get(base_url + self.path, timeout=self.timeout).status_code
        except requests.RequestException:
            return False
        return 200 <= status < 400


# Knative rewrites a Service's readiness probe to run in the queue-proxy (the kubelet runs only
# liveness). With periodSeconds unset (0) the queue-proxy probes "aggressively" until the
# first pass: every 50 ms (its log shows one failed probe per 50 ms, knative/serving#10236).
# With periodSeconds set, it probes at that period, as the kubelet would.
AGGRESSIVE_PERIOD = 0.05


def wait_ready(probe: Probe, base_url: str, container: str, deadline: float) -> float:
    """Poll readiness (every probe period, or AGGRESSIVE_PERIOD) until it passes; return
    time.monotonic() of the first pass. Fails at the deadline, or at once when the
    container has exited (with its logs)."""
    period = probe.period or AGGRESSIVE_PERIOD
    while True:
        started = time.monotonic()
        if probe.check(base_url):
            return time.monotonic()
        state = docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} "
                       "{{.State.OOMKilled}}", container).strip()
        if not state.startswith("running"):
            logs = subprocess.run(["docker", "logs", "--tail", "40", container],
                                  capture_output=True, text=True, timeout=DOCKER_TIMEOUT)
            raise AssertionError(f"container {container} stopped ({state}) before "
                                 f"{probe.path} passed:\n{logs.stdout}{logs.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{container}: {probe.path} did not pass in time")
        time.sleep(max(0.0, period - (time.monotonic() - started)))


class ProbeWatch:
    """The kubelet's periodic liveness and readiness probes of one running container, in a
    thread: counts failures and records when failureThreshold consecutive ones happen (the
    kubelet would restart the container, or take it out of the Service)."""

    def __init__(self, name: str, base_url: str, probes: Mapping[str, Probe]) -> None:
        self.name = name
        self.base_url = base_url
        self.probes = dict(probes)
        self.failures: dict[str, int] = dict.fromkeys(self.probes, 0)
        self.tripped: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, args=(kind,), daemon=True)
                         for kind in self.probes]
        for thread in self._threads:
            thread.start()

    def _watch(self, kind: str) -> None:
        probe = self.probes[kind]
        consecutive = 0
        while not self._stop.wait(probe.period or 10.0):  # the kubelet's default period
            if probe.check(self.base_url):
                consecutive = 0
                continue
            consecutive += 1
            self.failures[kind] += 1
            if consecutive == probe.failure_threshold:
                self.tripped.append(f"{self.name} {kind} failed {consecutive} times in a row "
                                    f"({probe.path}, timeout {probe.timeout:g}s)")

    def stop(self) -> None:
        """Stop probing (bounded by the longest probe timeout)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=max(p.timeout for p in self.probes.values()) + 1)


# ---------------------------------------------------------------- memory


def cgroup_memory_peak(container: str) -> int:
    """The container's peak memory use in bytes since it started, from its cgroup:
    memory.peak (cgroup v2) or memory.max_usage_in_bytes (v1)."""
    full_id = docker("inspect", "--format", "{{.Id}}", container).strip()
    parent = docker("info", "--format", "{{.CgroupDriver}}").strip()
    candidates = [
        Path(f"/sys/fs/cgroup/system.slice/docker-{full_id}.scope/memory.peak"),
        Path(f"/sys/fs/cgroup/docker/{full_id}/memory.peak"),
        Path(f"/sys/fs/cgroup/memory/docker/{full_id}/memory.max_usage_in_bytes"),
        Path(f"/sys/fs/cgroup/memory/system.slice/docker-{full_id}.scope/"
             "memory.max_usage_in_bytes"),
    ]
    for path in candidates:
        if path.is_file():
            return int(path.read_text().strip())
    raise AssertionError(f"no memory peak file for {container} (cgroup driver {parent}) "
                         f"in {[str(p) for p in candidates]}")


# ---------------------------------------------------------------- figures

# Lines the container tests measured; conftest's terminal summary prints them, so they show
# in `make test` (and CI) output without `pytest -s`.
FIGURES: list[str] = []


def figure(line: str) -> None:
    """Record one measured figure for the terminal summary."""
    FIGURES.append(line)
