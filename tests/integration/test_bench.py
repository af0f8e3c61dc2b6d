"""scripts/bench.py's own parts: CPU accounting from /proc against what a process says it
used (os.times), and the report written from a tiny real in-process run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from benchmeasure import IMAGE_KINDS, TICK, make_images, percentile, tree_cpu  # noqa: E402
from benchreport import PILLOW, Results, report  # noqa: E402
from benchsystems import InProcess, stop_process  # noqa: E402

# Burns CPU in a grandchild that it reaps, then in itself; prints what os.times() says it
# and its reaped children used; then waits for its stdin to close.
BUSY = textwrap.dedent("""
    import os, subprocess, sys, time
    burn = "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    t = os.times()
    print(t.user + t.system + t.children_user + t.children_system, flush=True)
    sys.stdin.read()
""")


def test_tree_cpu_counts_a_busy_process_and_the_child_it_reaped() -> None:
    process = subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        reported = float(process.stdout.readline())
        measured = tree_cpu({"busy": [process.pid], "nobody": [2**22 + 1]})
    finally:
        process.communicate("")
    assert reported >= 0.6  # both burned 0.3 s: the grandchild's time is in cutime
    # /proc counts in clock ticks; the child idles (blocked on stdin) after printing
    assert abs(measured["busy"] - reported) <= 3 / TICK
    assert measured["nobody"] == 0.0


# Forks a child (as thumbor's --processes does), prints both pids, and both sleep.
FORKS = textwrap.dedent("""
    import os, time
    child = os.fork()
    if child:
        print(os.getpid(), child, flush=True)
    time.sleep(60)
""")


def test_stop_process_stops_the_children_a_server_forked() -> None:
    process = subprocess.Popen([sys.executable, "-c", FORKS], stdout=subprocess.PIPE,
                               text=True, start_new_session=True)
    assert process.stdout is not None
    pids = [int(p) for p in process.stdout.readline().split()]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    stop_process(process, timeout=10)
    process.stdout.close()
    assert process.returncode is not None
    assert not alive(pids[1])  # the child: gone, not orphaned


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for its new parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


@pytest.fixture(scope="module")
def tiny_run() -> Results:
    """Two rounds of plain Pillow and libvips, 4 headline JPEGs each, in 2 processes."""
    kind = IMAGE_KINDS[0]
    images = {k.key: make_images(k) if k is kind else [] for k in IMAGE_KINDS}
    systems = [InProcess(PILLOW, "pillow", images, 2, "plain"),
               InProcess("libvips (pyvips)", "vips", images, 2, "vips")]
    results = Results({"rounds": 2, "concurrency": 2, "cold_runs": 0}, "python scripts/bench.py",
                      {"cpu": "test cpu", "memory": "1 GiB", "kernel": "k", "python": "3",
                       "libraries": "", "date": "today"}, [(s.name, s.notes) for s in systems])
    try:
        for _ in range(2):
            for system in systems:
                results.samples.setdefault((system.name, kind.key), []).append(
                    system.run(kind, 4, 2))
    finally:
        for system in systems:
            system.close()
    return results


def test_each_sample_has_every_job_and_cpu(tiny_run: Results) -> None:
    for samples in tiny_run.samples.values():
        for sample in samples:
            assert sample.jobs == 4 and len(sample.latencies_ms) == 4
            assert sample.cpu_ms_per_job > 0  # 4 decodes of a 1600x1200 JPEG take ticks


def test_report_gives_each_ratio_to_pillow_from_the_same_round(tiny_run: Results,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    report(tiny_run, path, tmp_path / "benchmarks.png")
    text = path.read_text()
    key = IMAGE_KINDS[0].key
    vips = [s.cpu_ms_per_job / p.cpu_ms_per_job for s, p in
            zip(tiny_run.samples[("libvips (pyvips)", key)], tiny_run.samples[(PILLOW, key)],
                strict=True)]
    low, high = sorted(vips)
    expected = f"{(low + high) / 2:.2f} ({low:.2f}-{high:.2f})"  # median of two rounds
    assert "| libvips (pyvips) | " in text
    vips_row = next(line for line in text.splitlines() if line.startswith("| libvips"))
    assert vips_row.split(" | ")[2] == expected
    pillow_row = next(line for line in text.splitlines() if line.startswith(f"| {PILLOW}"))
    assert pillow_row.split(" | ")[2] == "1.00 (1.00-1.00)"
    assert "python scripts/bench.py" in text and "test cpu" in text
    with Image.open(tmp_path / "benchmarks.png") as plot:
        assert plot.format == "PNG" and plot.width > 500
