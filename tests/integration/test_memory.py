"""Memory that comes back (issue 13): after a burst of large images, the resident set of
upload's and resize's real gunicorn workers returns to within 30 MB of its idle size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from thumbnails.core import memory

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "memory_return.py"
MB = 1 << 20
BOUND_MB = 30


def test_rss_bytes_matches_proc_status():
    status = Path(f"/proc/{os.getpid()}/status").read_text()
    vm_rss = next(int(line.split()[1]) * 1024 for line in status.splitlines()
                  if line.startswith("VmRSS:"))
    assert abs(memory.rss_bytes() - vm_rss) < 4 * MB  # two reads, a moment apart


def test_workers_give_memory_back_after_a_burst_of_large_images():
    run = subprocess.run([sys.executable, str(SCRIPT), "--uploads", "3", "--large", "1",
                          "--bound", str(BOUND_MB), "--json"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.stdout.strip(), run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    workers = figures["workers"]
    assert {w["function"] for w in workers} == {"upload", "resize"}
    # The burst did grow them (else coming back would prove nothing): upload held 15 MB
    # bodies, one resize worker decoded 49 MP (147 MB of RGB).
    grew = {w["function"] for w in workers if w["peak"] > w["idle"] + BOUND_MB * MB}
    assert grew == {"upload", "resize"}, workers
    for w in workers:
        assert w["after"] <= w["idle"] + BOUND_MB * MB, w
    assert run.returncode == 0
