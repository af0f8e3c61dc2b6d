"""The image and the pods, run for real: the Dockerfile built as it is (on a stand-in for
python:3.11-slim-bookworm where no registry can be reached), and upload, status and resize
run as containers exactly as the rendered chart's Knative Services specify them, backed by
Valkey under the chart's settings, SeaweedFS as the S3 server and the local broker.

Through them run the README's curl flow, `thumbnails submit --wait --out`, and the chart's
`helm test` smoke pod. Figures (image size, cold starts, resize's peak memory at MAX_PIXELS
against the chart's limit, wall times) go to the terminal summary (conftest.py).

Without a container engine these tests skip and say why; with CI=true they fail instead.
Every wait is bounded, so a machine where building or running fails ends with a message.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from PIL import Image

from tests.support import engine
from tests.support.k8s import by_name, ksvcs, of_kind, render_chart
from tests.support.servers import free_port, seaweedfs_s3_server, stop, wait_for_http
from thumbnails.core.jobs import job_key
from thumbnails.core.serving import FUNCTIONS, gunicorn_command
from thumbnails.local.localredis import valkey_binary, wait_for_redis

pytestmark = pytest.mark.containers

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A tag of the tests' own, set through the chart so the rendered image is the one built.
TAG = "containers-test"
SETS = (f"image.tag={TAG}",)
START_DEADLINE = 120.0  # seconds from `docker run` to /ready 200
JOB_DEADLINE = 180.0  # seconds for a job to end (two MAX_PIXELS images on 2 busy cores)


def require_engine() -> None:
    """Skip (or, with CI=true, fail) when this machine cannot build and run containers."""
    reason = engine.missing_engine()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, but the container tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"no container engine: {reason}")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """The chart rendered with the default values, the image tag set to the tests' own."""
    return render_chart(sets=SETS)


@pytest.fixture(scope="module")
def wall() -> Iterator[None]:
    """The wall time of this module: stand-in base, build, backends, containers, tests."""
    start = time.monotonic()
    yield
    engine.figure(f"container tests wall time: {time.monotonic() - start:.0f} s "
                  "(stand-in base + build + load + backends + runs)")


@pytest.fixture(scope="module")
def build(objects: list[dict[str, Any]], wall: None) -> engine.Build:
    """The image built from the Dockerfile and loaded into Docker."""
    require_engine()
    images = {c["image"] for svc in ksvcs(objects) if svc["metadata"]["name"] in FUNCTIONS
              for c in engine.pod_spec(svc)["containers"]}
    assert len(images) == 1, f"the functions render different images: {images}"
    built = engine.build_image(images.pop())
    base = "stand-in (debootstrap bookworm)" if built.base_is_standin else "as found"
    steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in built.seconds.items())
    engine.figure(f"build on the {base} base image python:3.11-slim-bookworm: {steps}")
    return built


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = engine.pod_spec(obj)["containers"]
    return container


def cluster_address(objects: list[dict[str, Any]], service: str) -> str:
    """"name:port" of a rendered Kubernetes Service (how the functions' env names it)."""
    (svc,) = [o for o in of_kind(objects, "Service", "")
              if o["metadata"]["name"] == service]
    return f"{service}:{svc['spec']['ports'][0]['port']}"


def swap_addresses(env: Mapping[str, str], swaps: Mapping[str, str]) -> dict[str, str]:
    """env with each in-cluster "host:port" replaced by a loopback one; fails when a swap is
    never used (the chart moved the address) or a value still names an in-cluster host."""
    out, used = {}, set()
    for key, value in env.items():
        for cluster, local in swaps.items():
            if cluster in value:
                value = value.replace(cluster, local)
                used.add(cluster)
        out[key] = value
    assert used == set(swaps), f"in-cluster addresses not in the env: {set(swaps) - used}"
    for key, value in out.items():
        host = urlsplit(value if "//" in value else f"//{value}").hostname or ""
        assert "svc.cluster.local" not in value and host not in {
            c.split(":")[0] for c in swaps}, f"{key}={value} still points into a cluster"
    return out


@dataclass
class Backends:
    """The test's own servers standing in for the in-cluster ones, on loopback."""

    redis_url: str
    s3_endpoint: str
    broker_url: str
    resize_port: int
    valkey_args: list[str]
    dispatcher: subprocess.Popen[bytes]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def start_valkey_as_rendered(objects: list[dict[str, Any]], data: Path,
                             port: int) -> tuple[subprocess.Popen[bytes], list[str]]:
    """valkey-server with the rendered StatefulSet redis's args (AOF, noeviction, maxmemory),
    --dir moved to a tmp dir and the port and bind address of this test's own."""
    (statefulset,) = [o for o in of_kind(objects, "StatefulSet")
                      if o["metadata"]["name"] == "redis"]
    args = list(container_of(statefulset)["args"])
    assert args[0] == "valkey-server", args
    rendered = args[1:]
    dir_at = rendered.index("--dir")
    rendered[dir_at + 1] = str(data)  # the PersistentVolumeClaim's mount -> a tmp dir
    argv = [str(valkey_binary()), *rendered, "--port", str(port), "--bind", "127.0.0.1",
            "--logfile", str(data / "valkey.log")]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_for_redis(f"redis://127.0.0.1:{port}/0", timeout=15.0, process=process)
    return process, rendered


@pytest.fixture(scope="module")
def backends(objects: list[dict[str, Any]], build: engine.Build,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """Valkey, SeaweedFS and the local broker (pointed at resize's container port)."""
    data = tmp_path_factory.mktemp("backends")
    processes: list[subprocess.Popen[bytes]] = []

    def stop_processes() -> None:
        for process in reversed(processes):
            stop(process, timeout=15.0)

    with ExitStack() as stack:
        stack.callback(stop_processes)  # last: after SeaweedFS, as its context exits first
        redis_port = free_port()
        (data / "valkey").mkdir()
        valkey, valkey_args = start_valkey_as_rendered(objects, data / "valkey", redis_port)
        processes.append(valkey)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        upload = by_name(ksvcs(objects))["upload"]
        keys = engine.container_env(container_of(upload), objects)
        s3 = stack.enter_context(seaweedfs_s3_server(
            access_key=keys["S3_ACCESS_KEY"], secret_key=keys["S3_SECRET_KEY"],
            data=data / "seaweedfs"))
        # The local broker: ingress and dispatcher, with the Triggers of knative/ (rendered
        # from this chart) and resize's Service replaced by its container's loopback port.
        resize_port, broker_port = free_port(), free_port()
        env = {**os.environ, "REDIS_URL": redis_url,
               "BROKER_SUBSCRIBERS": f"resize=http://127.0.0.1:{resize_port}",
               "LOG_LEVEL": "WARNING"}
        processes.append(subprocess.Popen(
            gunicorn_command("broker", f"127.0.0.1:{broker_port}", 1, 4), env=env,
            stdin=subprocess.DEVNULL, start_new_session=True))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "thumbnails.local.broker.dispatcher"], env=env,
            stdin=subprocess.DEVNULL, start_new_session=True))
        broker_url = f"http://127.0.0.1:{broker_port}"
        wait_for_http(f"{broker_url}/health", timeout=30.0, process=processes[-2])
        yield Backends(redis_url=redis_url, s3_endpoint=s3.endpoint, broker_url=broker_url,
                       resize_port=resize_port, valkey_args=valkey_args,
                       dispatcher=processes[-1], processes=processes)


@dataclass
class Running:
    """A function's container: its name, URL, rendered container, cold start and probes."""

    name: str
    docker_name: str
    url: str
    container: dict[str, Any]
    cold_start: float  # seconds from `docker run` to the first readiness pass
    watch: engine.ProbeWatch


def sink_subjects(objects: list[dict[str, Any]]) -> set[str]:
    """The Services a SinkBinding injects K_SINK into (to the Broker)."""
    return {b["spec"]["subject"]["name"] for b in of_kind(objects, "SinkBinding")
            if b["spec"]["sink"]["ref"]["kind"] == "Broker"}


@pytest.fixture(scope="module")
def functions(objects: list[dict[str, Any]], backends: Backends) -> Iterator[dict[str, Running]]:
    """upload, status and resize as containers, each started from its rendered Service and
    polled until its readiness probe passes; watched by the kubelet's probes after that."""
    services = by_name(ksvcs(objects))
    swaps = {
        # in-cluster Redis and MinIO -> this test's Valkey and SeaweedFS on loopback
        cluster_address(objects, "redis"): backends.redis_url.split("//")[1].split("/")[0],
        cluster_address(objects, "minio"): backends.s3_endpoint,
    }
    ports = {"upload": free_port(), "status": free_port(), "resize": backends.resize_port}
    suffix = uuid.uuid4().hex[:8]
    started: list[str] = []
    running: dict[str, Running] = {}
    try:
        for name in FUNCTIONS:
            svc = services[name]
            container = container_of(svc)
            env = swap_addresses(engine.container_env(container, objects), swaps)
            # Knative sets PORT to the containerPort; with host networking each container
            # needs its own, so PORT is the one value that differs from a pod's.
            assert container["ports"][0]["containerPort"] == 8080
            env["PORT"] = str(ports[name])
            if name in sink_subjects(objects):
                env["K_SINK"] = backends.broker_url  # the Broker's address -> local broker
            docker_name = f"thumbnails-{name}-{suffix}"
            argv = engine.docker_run_argv(svc, name=docker_name, env=env)
            url = f"http://127.0.0.1:{ports[name]}"
            readiness = engine.Probe.of(container, "readiness")
            start = time.monotonic()
            started.append(docker_name)
            engine.docker(*argv[1:])
            ready_at = engine.wait_ready(readiness, url, docker_name, start + START_DEADLINE)
            period = (f"every {readiness.period:g} s" if readiness.period else
                      f"every {engine.AGGRESSIVE_PERIOD * 1000:.0f} ms, periodSeconds unset")
            engine.figure(f"cold start of {name}: {ready_at - start:.2f} s from docker run to "
                          f"{readiness.path} 200 (probed {period})")
            watch = engine.ProbeWatch(name, url, {
                "liveness": engine.Probe.of(container, "liveness"), "readiness": readiness})
            running[name] = Running(name=name, docker_name=docker_name, url=url,
                                    container=container, cold_start=ready_at - start,
                                    watch=watch)
        yield running
    finally:
        for fn in running.values():
            fn.watch.stop()
        for docker_name in started:
            engine.docker("rm", "--force", "--volumes", docker_name, check=False)


# ---------------------------------------------------------------- helpers


def gradient_png(width: int, height: int) -> bytes:
    """A gradient PNG of the given size (made here, so no fixture file is needed)."""
    red = Image.linear_gradient("L").resize((width, height))
    blue = red.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    green = Image.new("L", (width, height), 128)
    out = io.BytesIO()
    Image.merge("RGB", (red, green, blue)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def curl(*args: str) -> tuple[int, bytes]:
    """(HTTP status, body) of one curl command line."""
    done = subprocess.run(["curl", "--silent", "--show-error", "--max-time", "30",
                           "--write-out", "\n%{http_code}", *args],
                          capture_output=True, timeout=60, check=True)
    body, _, code = done.stdout.rpartition(b"\n")
    return int(code), body


def wait_job(status_url: str, job_id: str, timeout: float = JOB_DEADLINE) -> dict[str, Any]:
    """GET /jobs/{id} until the job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        code, body = curl(f"{status_url}/jobs/{job_id}")
        if code == 200:
            doc: dict[str, Any] = json.loads(body)
            if doc["status"] in ("succeeded", "failed"):
                return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not end within {timeout}s: {code} {body!r}")
        time.sleep(0.2)


def exec_python(container: str, code: str) -> str:
    """stdout of python3 -c code inside a running container."""
    return engine.docker("exec", container, "python3", "-c", code)


# ---------------------------------------------------------------- tests


def test_image_builds_from_the_dockerfile_on_the_standin_base(build: engine.Build) -> None:
    """The image exists in Docker, runs as 10001, and keeps no trace of the build secret."""
    inspect = json.loads(engine.docker("image", "inspect", build.image))[0]
    size = int(inspect["Size"])
    engine.figure(f"image {build.image}: {size / 1e6:.0f} MB ({size / (1 << 20):.0f} MiB)"
                  + (" on the stand-in base" if build.base_is_standin else ""))
    assert inspect["Config"]["User"] == "10001:10001"
    env = "\n".join(inspect["Config"]["Env"])
    for leak in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "pip-cert"):
        assert leak not in env
    found = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "python3",
                          build.image, "-c",
                          "import importlib.util, os, sys, thumbnails.core\n"
                          "print(os.path.exists('/run/secrets/pip-cert'))\n"
                          "print(sys.version_info[:2] == (3, 11))\n"
                          "print(thumbnails.core.__file__)\n"
                          "print([n for n in ('thumbnails.client', 'thumbnails.local')"
                          " if importlib.util.find_spec(n)] == [])")
    secret, python, package, service_only = found.split()
    assert secret == "False"  # the build secret stayed out of the image
    # only the service: neither the client nor the dev tools (their own distributions)
    assert service_only == "True"
    # where the Dockerfile relies on its base: Python 3.11, pip installing under
    # /usr/local/lib/python3.11 (which it precompiles), on the stand-in as on the official
    assert python == "True"
    assert package.startswith("/usr/local/lib/python3.11/"), package


def test_containers_run_with_the_rendered_security_context_and_limits(
        functions: dict[str, Running]) -> None:
    """What the kernel enforces in each container is what its rendered Service asks for."""
    for fn in functions.values():
        name = fn.docker_name
        context = fn.container["securityContext"]
        host = json.loads(engine.docker("inspect", name))[0]["HostConfig"]
        assert host["ReadonlyRootfs"] is bool(context.get("readOnlyRootFilesystem"))
        assert host["Memory"] == engine.quantity_bytes(
            fn.container["resources"]["limits"]["memory"])
        # PID 1 of the container: the function's server process
        status = exec_python(name, "print(open('/proc/1/status').read())")
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Uid"].split()[0] == str(context["runAsUser"]), fields["Uid"]
        if context["capabilities"]["drop"] == ["ALL"]:
            assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
        if context.get("allowPrivilegeEscalation") is False:
            assert fields["NoNewPrivs"].strip() == "1"
        writes = exec_python(name, (
            "import os\n"
            "for d in ('/app', '/usr/local', '/tmp'):\n"
            "    try:\n"
            "        open(os.path.join(d, 'probe'), 'w').close(); print(d, 'ok')\n"
            "    except OSError as e:\n"
            "        print(d, e.errno)\n"))
        assert writes.split("\n")[:3] == ["/app 30", "/usr/local 30", "/tmp ok"], writes
        listening = exec_python(name, "print(open('/proc/net/tcp').read())")
        port = int(urlsplit(fn.url).port or 0)
        assert f":{port:04X} " in listening  # served on $PORT, as Knative's queue-proxy expects


def test_valkey_runs_with_the_charts_aof_and_noeviction(backends: Backends) -> None:
    """The Valkey behind the containers runs with the rendered args: AOF on, noeviction."""
    client = redis.Redis.from_url(backends.redis_url)
    try:
        config = {**client.config_get("appendonly"), **client.config_get("maxmemory-policy"),
                  **client.config_get("appendfsync")}
    finally:
        client.close()
    rendered = dict(zip(backends.valkey_args[::2], backends.valkey_args[1::2], strict=True))
    assert config["appendonly"] == rendered["--appendonly"] == "yes"
    assert config["maxmemory-policy"] == rendered["--maxmemory-policy"] == "noeviction"
    assert config["appendfsync"] == rendered["--appendfsync"]


def test_readme_curl_flow_through_the_containers_standin(
        functions: dict[str, Running], tmp_path: Path) -> None:
    """The README's curl examples: POST /jobs, GET /jobs/{id}, the thumbnail, GET /jobs."""
    upload, status = functions["upload"].url, functions["status"].url
    (tmp_path / "image1.png").write_bytes(gradient_png(640, 480))
    code, body = curl("-X", "POST", "-F", f"file=@{tmp_path / 'image1.png'}",
                      f"{upload}/jobs/")
    assert code == 202, body
    job_id = json.loads(body)["job_id"]
    doc = wait_job(status, job_id)
    assert doc["status"] == "succeeded", doc
    code, _ = curl(f"{status}/jobs/{job_id}/thumbnail", "--output",
                   str(tmp_path / "thumbnail.png"))
    assert code == 200
    with Image.open(tmp_path / "thumbnail.png") as thumbnail:
        # 640x480 into the default 100x100 box, aspect ratio kept
        assert (thumbnail.format, thumbnail.size) == ("PNG", (100, 75))
    code, body = curl(f"{status}/jobs/")
    assert code == 200
    assert {"job_id": job_id, "status": "succeeded"} in json.loads(body)


def test_cli_submit_wait_out_through_the_containers_standin(
        functions: dict[str, Running], tmp_path: Path) -> None:
    """`thumbnails submit --wait --out DIR` from the venv against the containers."""
    source = tmp_path / "wide.png"
    source.write_bytes(gradient_png(800, 200))
    out = tmp_path / "out"
    done = subprocess.run(
        [str(BIN / "thumbnails"), "submit", "--wait", "--out", str(out),
         "--width", "200", "--format", "webp", "--timeout", str(int(JOB_DEADLINE)),
         str(source)],
        env={**os.environ, "THUMBNAILS_UPLOAD_URL": functions["upload"].url,
             "THUMBNAILS_STATUS_URL": functions["status"].url},
        capture_output=True, text=True, timeout=JOB_DEADLINE + 30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout
    with Image.open(out / "wide.webp") as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("WEBP", (200, 50))  # 800x200 in 200x100


def test_helm_test_smoke_pod_through_the_containers_standin(
        objects: list[dict[str, Any]], functions: dict[str, Running], build: engine.Build,
        tmp_path: Path) -> None:
    """The chart's `helm test` Pod, run as a container from its rendered spec: its script
    from the rendered ConfigMap, its command with the in-cluster URLs swapped for the
    containers' loopback ones."""
    pod = by_name(of_kind(objects, "Pod"))["thumbnails-smoke-test"]
    script = by_name(of_kind(objects, "ConfigMap"))["thumbnails-smoke-test"]
    script_dir = tmp_path / "smoke"
    script_dir.mkdir()
    for key, text in script["data"].items():
        (script_dir / key).write_text(text)
        (script_dir / key).chmod(0o644)
    script_dir.chmod(0o755)
    container = container_of(pod)
    (volume,) = [m for m in container["volumeMounts"] if m["name"] == "script"]
    command = list(container["command"])
    for fn in ("upload", "status"):
        (at,) = [i for i, arg in enumerate(command) if arg.startswith(f"http://{fn}.")]
        assert command[at].endswith(".svc.cluster.local"), command[at]
        command[at] = functions[fn].url  # the in-cluster Service -> the container's port
    pod["spec"]["containers"][0]["command"] = command
    name = f"thumbnails-smoke-{uuid.uuid4().hex[:8]}"
    argv = engine.docker_run_argv(pod, name=name, env=engine.container_env(container, objects),
                                  mounts={"script": f"type=bind,src={script_dir},"
                                                    f"dst={volume['mountPath']},readonly"})
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=engine.DOCKER_TIMEOUT)
        deadline = float(command[command.index(functions["status"].url) + 1])
        code = engine.docker("wait", name, timeout=deadline + 60).strip()
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True,
                              timeout=engine.DOCKER_TIMEOUT)
        output = logs.stdout + logs.stderr
    finally:
        engine.docker("rm", "--force", "--volumes", name, check=False)
    assert code == "0", output
    assert "thumbnail: image/png 100x75" in output, output


def test_resize_peak_memory_at_max_pixels_within_the_charts_limit_standin(
        objects: list[dict[str, Any]], functions: dict[str, Running],
        backends: Backends) -> None:
    """As many MAX_PIXELS images as resize serves at once (containerConcurrency), in flight
    together: every job succeeds and the container is not OOM-killed under the chart's
    computed memory limit. Prints the peak against the limit."""
    resize = functions["resize"]
    env = engine.container_env(resize.container, objects)
    max_pixels = int(env["MAX_PIXELS"])
    width = math.isqrt(max_pixels)
    height = max_pixels // width
    data = gradient_png(width, height)
    assert len(data) <= int(env["MAX_UPLOAD_BYTES"]), "the test image is over MAX_UPLOAD_BYTES"
    in_flight = int(by_name(ksvcs(objects))["resize"]["spec"]["template"]["spec"]
                    ["containerConcurrency"])
    name = resize.docker_name

    def submit(_: int) -> str:
        answer = requests.post(f"{functions['upload'].url}/jobs",
                               files={"file": ("big.png", data)}, timeout=120)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["job_id"])

    # The broker holds the events until every upload is in (its dispatcher stopped), so
    # resize gets them together, as a burst would bring them.
    os.kill(backends.dispatcher.pid, signal.SIGSTOP)
    try:
        with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
            job_ids = list(pool.map(submit, range(in_flight)))
    finally:
        os.kill(backends.dispatcher.pid, signal.SIGCONT)
    docs = [wait_job(functions["status"].url, job_id) for job_id in job_ids]
    client = redis.Redis.from_url(backends.redis_url, decode_responses=True)
    try:
        spans = [client.hmget(job_key(job_id), "started_at", "finished_at")
                 for job_id in job_ids]
    finally:
        client.close()
    overlap = max(float(s) for s, _ in spans) < min(float(f) for _, f in spans)
    peak = engine.cgroup_memory_peak(name)
    state = json.loads(engine.docker("inspect", name))[0]["State"]
    limit = resize.container["resources"]["limits"]["memory"]
    engine.figure(f"resize peak memory: {peak / (1 << 20):.0f} MiB (cgroup, page cache "
                  f"included) with {in_flight} images of {width}x{height} = "
                  f"{width * height} px (MAX_PIXELS {max_pixels}) "
                  f"{'processed at once' if overlap else 'sent at once, processed apart'}; "
                  "the chart's "
                  f"limit: {limit} ({engine.quantity_bytes(limit) / (1 << 20):.0f} MiB)")
    assert [d["status"] for d in docs] == ["succeeded"] * in_flight, docs
    assert state["Running"] and not state["OOMKilled"], state
    assert peak <= engine.quantity_bytes(limit)


def test_probes_passed_throughout_standin(functions: dict[str, Running]) -> None:
    """No container failed its liveness or readiness probe failureThreshold times in a row
    while the tests above ran (the kubelet would have restarted it or cut its traffic)."""
    tripped = [line for fn in functions.values() for line in fn.watch.tripped]
    failures = {fn.name: fn.watch.failures for fn in functions.values()}
    engine.figure(f"probe failures while the tests ran: {failures}")
    assert not tripped, tripped
    for fn in functions.values():
        assert fn.watch.probes["liveness"].check(fn.url)
        assert fn.watch.probes["readiness"].check(fn.url)


def test_no_engine_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """The rule for machines without an engine, checked with an empty PATH."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert engine.missing_engine() == ("docker is not installed (the tests build with "
                                       "buildah and run with docker)")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no container engine: docker is not"):
        require_engine()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, but the container tests"):
        require_engine()
