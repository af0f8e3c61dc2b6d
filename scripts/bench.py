#!/usr/bin/env python3
"""Benchmark: this project's local stack side by side with its peers, in one run.

Systems, each making a 100x100 PNG from the same images:
  - plain Pillow (`Image.open`, `thumbnail((100, 100))`, PNG save), in-process;
  - this project's `make_thumbnail` alone, in-process;
  - libvips (`pyvips.Image.thumbnail_buffer`, PNG), in-process;
  - thumbor from PyPI (file loader, `fit-in/100x100/filters:format(png)`), a real HTTP
    server on 127.0.0.1, one synchronous request per job;
  - this project's whole local stack (`thumbnails dev`: filesystem store, embedded Valkey,
    local broker, three gunicorns): POST /jobs, then the long poll GET /jobs/{id}?wait=30;
  - the original FastAPI + RQ design, if running (--original-url, --original-pids):
    POST /jobs/, then GET /jobs/{id} every --poll-interval until it ends.
Images: a 1600x1200 q90 JPEG (the headline), a 12 MP JPEG and a 2 MP PNG.

Per system and image, over --rounds rounds (systems interleaved within a round): CPU ms
per job (utime+stime from /proc/<pid>/stat of every process of the system, children
included; the client's CPU excluded), its ratio to plain Pillow in the same round, jobs/s
at --concurrency, p50/p99 time to completion; medians with min-max over rounds. Then cold
starts, and upload's submit latency with resize running and frozen.

Prints the results only; the stack's and peers' logs go to --log-dir (build/bench/).
--report writes the Markdown report and a plot next to it (docs/benchmarks.md, .png).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from benchmeasure import IMAGE_KINDS, ROOT, ImageKind, make_images, rest_cpu
from benchreport import PILLOW, Results, machine, report, tables
from benchsystems import (
    HttpSystem,
    InProcess,
    Original,
    Stack,
    System,
    Thumbor,
    cold_in_process,
    cold_resize,
    cold_server,
    cold_thumbor,
    upload_check,
)

# --- main -------------------------------------------------------------------------------

def free_port_block(count: int) -> int:
    """The first of `count` consecutive free loopback ports (tests.support.stackutil)."""
    sys.path.insert(0, str(ROOT))  # the repository: tests.support
    from tests.support.stackutil import free_port_block as find

    return find(count)


def log_issues(log: Path, start: int) -> list[str]:
    """Lines of the log written since offset start that look like warnings or tracebacks."""
    with log.open("rb") as handle:
        handle.seek(start)
        lines = handle.read().decode(errors="replace").splitlines()
    marks = ("Traceback", "WARNING", "ERROR", "CRITICAL", '"warning"', '"error"')
    return [line for line in lines if any(mark in line for mark in marks)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; exits with a usage error for --original-url without live pids."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=48,
                        help="jobs a round on the headline JPEG (the others get a quarter)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2,
                        help="resize gunicorn workers, thumbor processes (the original's "
                             "RQ workers are whatever was started)")
    parser.add_argument("--images", default=",".join(k.key for k in IMAGE_KINDS),
                        help="image kinds, comma-separated")
    parser.add_argument("--systems", default="pillow,project,vips,thumbor,stack,original",
                        help="systems, comma-separated")
    parser.add_argument("--port-base", type=int, default=None,
                        help="first of 6 consecutive ports (the stack's 5, thumbor's); "
                             "default: a free block")
    parser.add_argument("--original-url", default=None,
                        help="URL of a running service with the original API")
    parser.add_argument("--original-pids", default="",
                        help="comma-separated pids of ALL its processes (API, workers, Redis)")
    parser.add_argument("--original-start", default=None,
                        help="shell command that starts the original's API alone on port "
                             "{port} (filled in), for its cold start")
    parser.add_argument("--poll-interval", type=float, default=0.1,
                        help="seconds between the original's status polls")
    parser.add_argument("--thumbor-python", type=Path, default=ROOT / ".venv-thumbor/bin/python",
                        help="python of a virtualenv with thumbor (make bench makes one)")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--rest-seconds", type=float, default=2.0,
                        help="window for each service's CPU at rest (0: skip)")
    parser.add_argument("--upload-check", type=int, default=40,
                        help="submits each for the upload-does-not-wait check (0: skip)")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build/bench")
    parser.add_argument("--report", type=Path, default=None,
                        help="write this Markdown report and a .png plot beside it")
    args = parser.parse_args(argv)
    try:
        args.original_pids = [int(p) for p in args.original_pids.split(",") if p]
    except ValueError:
        parser.error("--original-pids: comma-separated process ids")
    if args.original_url and (not args.original_pids or any(
            not Path(f"/proc/{pid}").exists() for pid in args.original_pids)):
        parser.error("--original-url needs --original-pids: the pids of all its running "
                     "processes (API, workers, Redis)")
    return args


def run(args: argparse.Namespace, out: TextIO, command: str) -> Results:
    """Start the systems, measure, stop them; print progress-free results to out."""
    wanted = set(args.systems.split(","))
    kinds = [k for k in IMAGE_KINDS if k.key in args.images.split(",")]
    if IMAGE_KINDS[0] not in kinds:
        kinds.insert(0, IMAGE_KINDS[0])
    wanted.add("pillow")  # the base of every ratio
    images = {k.key: make_images(k) if k in kinds else [] for k in IMAGE_KINDS}
    port = args.port_base or free_port_block(6)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=args.log_dir))
    results = Results(vars(args) | {"log_dir": str(args.log_dir)}, command, machine(), [])
    systems: list[System] = []
    try:
        in_process = [("pillow", PILLOW, "Image.open, thumbnail((100, 100)), save PNG"),
                      ("project", "this project's make_thumbnail alone",
                       "thumbnails.core.imaging.make_thumbnail with default options "
                       "(100x100 contain, PNG)"),
                      ("vips", "libvips (pyvips)",
                       "pyvips.Image.thumbnail_buffer(data, 100, height=100), PNG")]
        for key, name, notes in in_process:
            if key in wanted:
                systems.append(InProcess(name, key, images, args.concurrency,
                                         f"{notes}; {args.concurrency} forked processes"))
        if "thumbor" in wanted:
            if args.thumbor_python.exists():
                systems.append(Thumbor(images, args.thumbor_python, port + 5, work,
                                       args.workers))
            else:
                results.not_measured.append(f"thumbor ({args.thumbor_python} not found; "
                                            "`make bench` makes that virtualenv)")
        stack = None
        if "stack" in wanted:
            stack = Stack(images, port, work / "stack", args.workers)
            systems.append(stack)
        if "original" in wanted:
            if args.original_url:
                systems.append(Original(images, args.original_url, args.original_pids,
                                        args.poll_interval))
            else:
                results.not_measured.append(
                    "the original FastAPI + RQ design (no --original-url/--original-pids)")
        results.systems = [(s.name, s.notes) for s in systems]

        def jobs_for(kind: ImageKind) -> int:
            return max(args.concurrency, round(args.jobs * kind.share))

        for kind in kinds:  # warm-up, not recorded
            for system in systems:
                system.run(kind, args.concurrency * 2, args.concurrency)
        if args.rest_seconds:
            for system in systems:
                if isinstance(system, HttpSystem):
                    results.rest[system.name] = rest_cpu(system.roots(), args.rest_seconds)
        for _ in range(args.rounds):
            for kind in kinds:
                for system in systems:
                    results.samples.setdefault((system.name, kind.key), []).append(
                        system.run(kind, jobs_for(kind), args.concurrency))

        if args.cold_runs:
            results.cold = cold_starts(args, images, work, stack, systems, wanted)
        if stack is not None and args.upload_check:
            results.upload = upload_check(stack, IMAGE_KINDS[0], args.upload_check,
                                          args.concurrency)
    finally:
        for system in reversed(systems):
            system.close()
        shutil.rmtree(work, ignore_errors=True)
    return results


def cold_starts(args: argparse.Namespace, images: dict[str, list[bytes]], work: Path,
                stack: Stack | None, systems: list[System], wanted: set[str]
                ) -> dict[str, list[float] | str]:
    """Cold starts of each system that has one here; a start that fails is reported as such
    (the rounds' results are not lost for it)."""
    headline = work / "headline.jpg"
    headline.write_bytes(images[IMAGE_KINDS[0].key][0])
    starts: list[tuple[str, Callable[[], list[float]]]] = []
    if stack is not None:
        redis_url = stack.urls["redis"]
        starts.append(("this project: resize, process start -> /ready 200",
                       lambda: cold_resize(redis_url, work / "cold-objects", args.cold_runs)))
    if any(isinstance(s, Thumbor) for s in systems):
        starts.append(("thumbor: process start -> /healthcheck 200", lambda: cold_thumbor(
            args.thumbor_python, work / "thumbor.conf", args.cold_runs)))
    for key, label in (("pillow", "plain Pillow"), ("vips", "libvips")):
        if key in wanted:
            starts.append((f"{label}: python start -> one thumbnail done, exit",
                           lambda key=key: cold_in_process(key, headline, args.cold_runs)))
    if args.original_start:
        starts.append(("the original design: API process start -> /health 200",
                       lambda: cold_server(lambda port: args.original_start.format(port=port),
                                           "/health", args.cold_runs)))
    cold: dict[str, list[float] | str] = {}
    for label, measure in starts:
        try:
            cold[label] = measure()
        except (OSError, RuntimeError, subprocess.SubprocessError, ImportError) as exc:
            cold[label] = f"failed: {exc}"[:200]
    if args.original_url and not args.original_start:
        cold["the original design"] = "not measured (no --original-start)"
    return cold


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the results; 0, or 1 (with the traceback) if a system failed."""
    args = parse_args(argv)
    command = "python scripts/bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    log = args.log_dir / "bench.log"
    # Results to the terminal; everything the stack and the peers print to the log: the
    # children inherit file descriptors 1 and 2.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    err = os.fdopen(os.dup(2), "w", buffering=1)
    sys.stdout.flush()
    sys.stderr.flush()
    with log.open("wb") as handle:  # this run's log only
        start = handle.tell()
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    try:
        results = run(args, out, command)
    except BaseException:
        err.write(traceback.format_exc())
        err.write(f"(logs in {log})\n")
        return 1
    results.log_issues = log_issues(log, start)
    out.write(tables(results, markdown=False))
    out.write(f"machine: {results.machine['cpu']}; logs: {log} "
              f"({len(results.log_issues)} warning/error lines)\n")
    if args.report:
        report(results, args.report, args.report.with_suffix(".png"))
        out.write(f"report: {args.report}, plot: {args.report.with_suffix('.png')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
