"""Benchmark systems: in-process thumbnailers, thumbor, the local stack, the original
design; cold starts; upload's submit latency with resize frozen."""

from __future__ import annotations

import http.client
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmeasure import BOX, IMAGE_KINDS, ROOT, ImageKind, Sample, own_cpu, settle, tree_cpu
from PIL import Image
from urllib3 import encode_multipart_formdata


class System:
    """A thumbnailer under test. run() makes `jobs` thumbnails of `kind` at `concurrency`."""

    name = ""
    notes = ""

    def roots(self) -> dict[str, list[int]]:
        """Part name -> pids of the processes whose trees do the work (see tree_cpu)."""
        raise NotImplementedError

    def run(self, kind: ImageKind, jobs: int, concurrency: int) -> Sample:
        """Make `jobs` thumbnails of `kind`, `concurrency` at a time; the round's figures."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop what this system started (nothing, for a service started elsewhere)."""


# --- in-process systems ---------------------------------------------------------------------

def thumbnail_pillow(data: bytes) -> bytes:
    """Plain Pillow: open, thumbnail((100, 100)), save as PNG."""
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail(BOX)
        out = io.BytesIO()
        image.save(out, "PNG")
    return out.getvalue()


def thumbnail_vips(data: bytes) -> bytes:
    """libvips: thumbnail_buffer into 100x100, PNG."""
    import pyvips

    image = pyvips.Image.thumbnail_buffer(data, BOX[0], height=BOX[1])
    return bytes(image.write_to_buffer(".png"))


def thumbnail_project(data: bytes) -> bytes:
    """This project's imaging core with its default options (100x100 contain, PNG)."""
    from thumbnails.core import imaging

    return imaging.make_thumbnail(data, imaging.ThumbnailOptions(), imaging.Limits()).data


THUMBNAILERS: dict[str, Callable[[bytes], bytes]] = {
    "pillow": thumbnail_pillow, "vips": thumbnail_vips, "project": thumbnail_project}


def _in_process_worker(connection: Any, method: str,
                       images: dict[str, list[bytes]]) -> None:
    make = THUMBNAILERS[method]
    for key, start, count in iter(connection.recv, None):
        variants = images[key]
        latencies = []
        for i in range(start, start + count):
            began = time.perf_counter()
            make(variants[i % len(variants)])
            latencies.append((time.perf_counter() - began) * 1000)
        connection.send(latencies)


class InProcess(System):
    """`concurrency` forked worker processes, each making thumbnails in a loop."""

    def __init__(self, name: str, method: str, images: dict[str, list[bytes]],
                 processes: int, notes: str) -> None:
        self.name, self.notes = name, notes
        context = multiprocessing.get_context("fork")
        self.workers = []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(target=_in_process_worker,
                                      args=(theirs, method, images), daemon=True)
            process.start()
            self.workers.append((process, ours))

    def roots(self) -> dict[str, list[int]]:
        return {"workers": [p.pid for p, _ in self.workers if p.pid is not None]}

    def run(self, kind: ImageKind, jobs: int, concurrency: int) -> Sample:
        n = len(self.workers)
        counts = [jobs // n + (1 if i < jobs % n else 0) for i in range(n)]
        before, started = tree_cpu(self.roots()), time.perf_counter()
        offset = 0
        for (_, connection), count in zip(self.workers, counts, strict=True):
            connection.send((kind.key, offset, count))
            offset += count
        latencies = [ms for _, connection in self.workers for ms in connection.recv()]
        wall = time.perf_counter() - started
        after = tree_cpu(self.roots())
        return Sample(jobs, wall, {k: after[k] - before[k] for k in after}, latencies)

    def close(self) -> None:
        for process, connection in self.workers:
            connection.send(None)
            process.join(timeout=10)


# --- HTTP systems ------------------------------------------------------------------------

class Client:
    """Keep-alive HTTP connections, one per thread and host, for a light client."""

    def __init__(self) -> None:
        self.local = threading.local()

    def request(self, url: str, method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; reconnects once if the connection was closed."""
        parts = urlsplit(url)
        connections = self.local.__dict__.setdefault("connections", {})
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            connection = connections.get(parts.netloc)
            if connection is None:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
                connections[parts.netloc] = connection
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                del connections[parts.netloc]
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class HttpSystem(System):
    """A service reached over HTTP; one_job() runs one job to completion."""

    def __init__(self, images: dict[str, list[bytes]]) -> None:
        self.client = Client()
        self.bodies = {kind.key: [encode_multipart_formdata(
            {"file": (f"bench.{kind.extension}", data, kind.content_type)})
            for data in images[kind.key]] for kind in IMAGE_KINDS}

    def one_job(self, kind: ImageKind, index: int) -> None:
        """Run job `index` (variant index % kind.variants) to its end; raise if it failed."""
        raise NotImplementedError

    def run(self, kind: ImageKind, jobs: int, concurrency: int) -> Sample:
        roots = self.roots()

        def timed(index: int) -> float:
            began = time.perf_counter()
            self.one_job(kind, index)
            return (time.perf_counter() - began) * 1000

        before, client_before = tree_cpu(roots), own_cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(timed, range(jobs)))
        wall = time.perf_counter() - started
        settle(roots)
        after = tree_cpu(roots)
        return Sample(jobs, wall, {k: after[k] - before[k] for k in after}, latencies,
                      own_cpu() - client_before)


def submitted_job_id(status: int, answer: bytes, expected: int) -> str:
    """The job id of a submit's answer, or RuntimeError with what the service said."""
    if status != expected:
        raise RuntimeError(f"submit answered {status}: {answer[:300]!r}")
    return str(json.loads(answer)["job_id"])


class Stack(HttpSystem):
    """This project's local stack, started here (thumbnails.local.devstack)."""

    name = "this project, whole local stack"

    def __init__(self, images: dict[str, list[bytes]], port: int, data_dir: Path,
                 workers: int) -> None:
        from thumbnails.core.config import Config
        from thumbnails.local import devstack

        super().__init__(images)
        self.stack = devstack.start(Config(), port, data_dir, workers)
        self.urls = self.stack.urls
        self.notes = (f"`thumbnails dev` parts: resize {workers} gunicorn workers x 1 thread, "
                      f"upload and status {max(1, workers // 2)} x 4 threads, local broker, "
                      "embedded Valkey, filesystem store; POST /jobs then GET "
                      "/jobs/{id}?wait=30 until it ends")

    def roots(self) -> dict[str, list[int]]:
        processes = self.stack.processes
        names = {"upload": ("upload",), "broker": ("broker", "dispatcher"),
                 "resize": ("resize",), "status": ("status",), "valkey": ("redis",)}
        return {part: [processes[n].pid for n in ns if n in processes]
                for part, ns in names.items()}

    def submit(self, kind: ImageKind, index: int) -> str:
        """POST /jobs to upload (multipart, field "file"); the job id of its 202."""
        body, content_type = self.bodies[kind.key][index % kind.variants]
        status, answer = self.client.request(self.urls["upload"] + "/jobs", "POST", body,
                                             {"Content-Type": content_type})
        return submitted_job_id(status, answer, 202)

    def wait(self, job_id: str) -> None:
        """Long-poll status (GET /jobs/{id}?wait=30) until the job succeeded; raise if failed."""
        while True:
            status, answer = self.client.request(f"{self.urls['status']}/jobs/{job_id}?wait=30")
            doc = json.loads(answer)
            if status != 200 or doc.get("status") == "failed":
                raise RuntimeError(f"job {job_id}: {status} {answer[:300]!r}")
            if doc["status"] == "succeeded":
                return

    def one_job(self, kind: ImageKind, index: int) -> None:
        self.wait(self.submit(kind, index))

    def close(self) -> None:
        self.stack.stop()


class Original(HttpSystem):
    """A running service with the original API (POST /jobs/, GET /jobs/{id}), by URL and pids."""

    name = "the original FastAPI + RQ design"

    def __init__(self, images: dict[str, list[bytes]], url: str, pids: list[int],
                 poll_interval: float) -> None:
        super().__init__(images)
        self.url, self.pids, self.poll_interval = url.rstrip("/"), pids, poll_interval
        self.notes = (f"running at {self.url}, processes {', '.join(map(describe_pid, pids))};"
                      f" POST /jobs/ then GET /jobs/{{id}} every {poll_interval * 1000:.0f} ms "
                      "(it has no long poll)")

    def roots(self) -> dict[str, list[int]]:
        parts: dict[str, list[int]] = {}
        for pid in self.pids:
            parts.setdefault(describe_pid(pid).split(" ")[0], []).append(pid)
        return parts

    def one_job(self, kind: ImageKind, index: int) -> None:
        body, content_type = self.bodies[kind.key][index % kind.variants]
        job_id = submitted_job_id(*self.client.request(
            self.url + "/jobs/", "POST", body, {"Content-Type": content_type}), 200)
        while True:
            status, answer = self.client.request(f"{self.url}/jobs/{job_id}")
            state = json.loads(answer).get("status") if status == 200 else None
            if state == "succeeded":
                return
            if state not in ("queued", "processing"):
                raise RuntimeError(f"original job {job_id}: {status} {answer[:300]!r}")
            time.sleep(self.poll_interval)


def describe_pid(pid: int) -> str:
    """A short name for a process: its program (the script for an interpreter) and pid."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"gone ({pid})"
    names = [Path(a.decode(errors="replace")).name for a in argv if a]
    name = names[0] if names else "?"
    if name.startswith("python") and len(names) > 1:
        name = names[1]
    return f"{name} ({pid})"


THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = 'thumbor.result_storages.no_storage'
ALLOW_UNSAFE_URL = True
"""


def thumbor_command(python: Path, port: int, conf: Path, processes: int) -> list[str]:
    """thumbor from its own virtualenv, on 127.0.0.1:port."""
    return [str(python.parent / "thumbor"), "--ip", "127.0.0.1", "--port", str(port),
            "--conf", str(conf), "--processes", str(processes), "--log-level", "error"]


def wait_for_200(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until GET url answers 200 (polled every 5 ms); RuntimeError if process dies."""
    started = time.perf_counter()
    parts = urlsplit(url)
    while True:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1)
        try:
            connection.request("GET", parts.path)
            if connection.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        finally:
            connection.close()
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"no 200 from {url} within {timeout}s")
        time.sleep(0.005)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM its whole process group (it leads one: start_new_session), so the children it
    forked (thumbor's --processes) stop too; SIGKILL what is left after timeout."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    try:
        process.wait(timeout=timeout)
        while time.monotonic() < deadline:  # the forked children exit on their own
            os.killpg(process.pid, 0)
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:  # the group has no process left
        pass


class Thumbor(HttpSystem):
    """thumbor (its own virtualenv: it pins Pillow < 13), file loader, no storage."""

    name = "thumbor, fit-in PNG (one synchronous request)"

    def __init__(self, images: dict[str, list[bytes]], python: Path, port: int,
                 work_dir: Path, processes: int) -> None:
        super().__init__(images)
        root = work_dir / "thumbor-images"
        root.mkdir(parents=True, exist_ok=True)
        for kind in IMAGE_KINDS:
            for i, data in enumerate(images[kind.key]):
                (root / f"{kind.key}-{i}.{kind.extension}").write_bytes(data)
        self.conf = work_dir / "thumbor.conf"
        self.conf.write_text(THUMBOR_CONF.format(root=str(root)))
        self.python, self.processes = python, processes
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(thumbor_command(python, port, self.conf, processes),
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_200(self.url + "/healthcheck", self.process)
        self.notes = (f"thumbor {package_version(python, 'thumbor')} "
                      f"(Pillow {package_version(python, 'pillow')}), "
                      f"--processes {processes}, file loader, no storage or result storage; "
                      "GET /unsafe/fit-in/100x100/filters:format(png)/<file>")

    def roots(self) -> dict[str, list[int]]:
        return {"thumbor": [self.process.pid]}

    def one_job(self, kind: ImageKind, index: int) -> None:
        path = f"{kind.key}-{index % kind.variants}.{kind.extension}"
        status, body = self.client.request(
            f"{self.url}/unsafe/fit-in/{BOX[0]}x{BOX[1]}/filters:format(png)/{path}")
        if status != 200 or not body.startswith(b"\x89PNG"):
            raise RuntimeError(f"thumbor answered {status}: {body[:200]!r}")

    def close(self) -> None:
        stop_process(self.process)


def package_version(python: Path, package: str) -> str:
    """The version of `package` installed for another interpreter ("?" if none)."""
    run = subprocess.run([str(python), "-c", "import importlib.metadata as m, sys; "
                          f"print(m.version({package!r}))"],
                         capture_output=True, text=True, check=False)
    return run.stdout.strip() or "?"


# --- cold starts --------------------------------------------------------------------------

COLD_SNIPPET = {
    "pillow": ("import io, sys; from PIL import Image; im = Image.open(sys.argv[1]); "
               "im.thumbnail((100, 100)); im.save(io.BytesIO(), 'PNG')"),
    "vips": ("import sys, pyvips; pyvips.Image.thumbnail(sys.argv[1], 100, height=100)"
             ".write_to_buffer('.png')"),
}


def cold_in_process(method: str, image: Path, runs: int) -> list[float]:
    """ms from starting `python -c` to its exit after one thumbnail of image."""
    samples = []
    for _ in range(runs + 1):  # the first run warms the page cache and is dropped
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", COLD_SNIPPET[method], str(image)], check=True)
        samples.append((time.perf_counter() - began) * 1000)
    return samples[1:]


def cold_server(command: Callable[[int], list[str] | str], path: str,
                runs: int) -> list[float]:
    """ms from starting a server on a free port (command(port): argv, or a shell command if
    a string) to its first 200 from path; each start is stopped (SIGTERM to its process
    group) before the next."""
    from coldstart import free_port  # a port free now: this run's clients use ephemeral ones

    samples = []
    for _ in range(runs + 1):  # the first start warms the page cache and is dropped
        port = free_port()
        argv = command(port)
        began = time.perf_counter()
        process = subprocess.Popen(argv, shell=isinstance(argv, str),
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_200(f"http://127.0.0.1:{port}{path}", process)
            samples.append((time.perf_counter() - began) * 1000)
        finally:
            stop_process(process)
    return samples[1:]


def cold_thumbor(python: Path, conf: Path, runs: int) -> list[float]:
    """ms from starting thumbor (--processes 1) to its first 200 from /healthcheck."""
    return cold_server(lambda port: thumbor_command(python, port, conf, 1), "/healthcheck",
                       runs)


def cold_resize(redis_url: str, data_dir: Path, runs: int) -> list[float]:
    """ms from starting `thumbnails serve resize --workers 2` (the chart's) to its first 200
    from /ready (scripts/coldstart.py's measurement)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import coldstart

    env = {**os.environ, "REDIS_URL": redis_url, "STORAGE_BACKEND": "filesystem",
           "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    return [wall for wall, _cpu in coldstart.measure("resize", runs, env, "/ready", workers=2)]


# --- upload does not wait for resize ---------------------------------------------------------

def upload_check(stack: Stack, kind: ImageKind, jobs: int, concurrency: int
                 ) -> dict[str, list[float]]:
    """Submit latencies (ms) with resize running and with resize frozen (SIGSTOP to its
    process group while a backlog of `jobs` builds); waits for every job to end."""
    def submit_all() -> tuple[list[float], list[str]]:
        def timed(index: int) -> tuple[float, str]:
            began = time.perf_counter()
            job_id = stack.submit(kind, index)
            return (time.perf_counter() - began) * 1000, job_id
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(timed, range(jobs)))
        return [ms for ms, _ in results], [job_id for _, job_id in results]

    running, ids = submit_all()
    resize = stack.stack.processes["resize"]
    os.killpg(resize.pid, signal.SIGSTOP)
    try:
        frozen, more = submit_all()
    finally:
        os.killpg(resize.pid, signal.SIGCONT)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(stack.wait, ids + more))
    return {"resize running": running, f"resize frozen (backlog grows to {jobs})": frozen}


