"""The client half of `thumbnails`: submit, status, list, get, watch, delete (over HTTP, any
stack), as click commands registered in the `thumbnails.commands` entry-point group.

Self-contained: it imports the client, the plain-data formats and click; rich (the `client`
extra) only to draw on a terminal."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click

from thumbnails.core.formats import FITS, FORMAT_ALIASES, GRAVITIES, LOSSY_FORMATS, OUTPUT_FORMATS

from . import EXTENSIONS, TERMINAL, Client, Doc, Refused, Unavailable, WaitTimeout

MAX_STREAM_FILTER = 50  # job ids GET /events filters by; more: the whole stream, sifted here
WATCH_READ_SECONDS = 20.0  # above the stream's 15 s keep-alives
REDRAWS_PER_SECOND = 5  # the progress bar's, while nothing else happens

OK, FAILED, USAGE, REFUSED, UNAVAILABLE, TIMED_OUT, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
# \b: click prints the paragraph as written instead of rewrapping it.
EXIT_CODES = """\
\b
exit status:
  0    every request went through (and every job waited for succeeded)
  1    some job failed (its error is printed)
  2    usage error: bad arguments, a missing file
  3    the service refused a request (4xx: not an image, unknown job, bad API key...)
  4    the service is unreachable or answered 5xx
  5    timed out waiting for jobs to finish
  130  interrupted (Ctrl-C)
When several apply, the highest wins."""


class HttpUrl(click.ParamType):
    """An http:// or https:// base URL."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        """The URL as given; a usage error (exit status 2) if it is not http(s)."""
        if not str(value).startswith(("http://", "https://")):
            self.fail(f"not an http(s) URL: {value!r}", param, ctx)
        return str(value)


class RenditionSpec(click.ParamType):
    """`NAME:WxH:FORMAT[:FIT]` -> a `renditions` item; the service checks the values."""

    name = "NAME:WxH:FORMAT[:FIT]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dict[str, object]:
        """{"name", "width", "height", "format"[, "fit"]}; a usage error if malformed."""
        if isinstance(value, dict):
            return value
        parts = str(value).split(":")
        size = parts[1].lower().split("x") if len(parts) > 1 else []
        if len(parts) not in (3, 4) or len(size) != 2 or not all(s.isdigit() for s in size):
            self.fail(f"not NAME:WxH:FORMAT[:FIT], e.g. avatar:100x100:png:cover: {value!r}",
                      param, ctx)
        item: dict[str, object] = {"name": parts[0], "width": int(size[0]),
                                   "height": int(size[1]), "format": parts[2]}
        if len(parts) == 4:
            item["fit"] = parts[3]
        return item


POSITIVE = click.IntRange(min=1)
SECONDS = click.FloatRange(min=0, min_open=True)
# Where the service is and the key to call it with: the client's settings, never the
# service's Config. (flag, environment variable, default, help)
SERVICE_OPTIONS = (
    ("--upload-url", "THUMBNAILS_UPLOAD_URL", "http://127.0.0.1:8080",
     "upload's base URL (the default: the local stack's)"),
    ("--status-url", "THUMBNAILS_STATUS_URL", "http://127.0.0.1:8081",
     "status's base URL (the default: the local stack's)"),
)


def client_command(name: str) -> Callable[[Callable[..., int]], click.Command]:
    """A click command `name` with the service options (--upload-url, --status-url,
    --api-key, each also read from its THUMBNAILS_* variable) that calls `handler(client,
    **its own parameters)` and exits with the status it returns, or the one an error maps
    to (EXIT_CODES), after printing `thumbnails NAME: message` on stderr."""

    def decorate(handler: Callable[..., int]) -> click.Command:
        @functools.wraps(handler)
        def command(upload_url: str, status_url: str, api_key: str, **params: Any) -> None:
            client = Client(upload_url, status_url, api_key)
            sys.exit(_run(name, handler, client, params))

        # Each option is added in front of those before it: the last added is listed first.
        command = click.option("--api-key", envvar="THUMBNAILS_API_KEY", default="",
                               show_envvar=True, metavar="KEY",
                               help="sent as X-API-Key (prefer the variable: arguments show "
                                    "in `ps`)")(command)
        for flag, envvar, default, what in reversed(SERVICE_OPTIONS):
            command = click.option(flag, type=HttpUrl(), envvar=envvar, default=default,
                                   show_default=True, show_envvar=True, help=what)(command)
        summary = (handler.__doc__ or "").split("\n\n")[0]
        return click.command(name, help=handler.__doc__, short_help=summary,
                             epilog=EXIT_CODES)(command)

    return decorate


def _run(name: str, handler: Callable[..., int], client: Client,
         params: dict[str, Any]) -> int:
    try:
        return handler(client, **params)
    except Refused as exc:
        return _fail(name, str(exc), REFUSED)
    except Unavailable as exc:
        return _fail(name, str(exc), UNAVAILABLE)
    except WaitTimeout as exc:
        return _fail(name, str(exc), TIMED_OUT)
    except KeyboardInterrupt:
        return _fail(name, "interrupted", INTERRUPTED)
    except BrokenPipeError:  # `thumbnails list --all | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def _fail(name: str, message: str, code: int) -> int:
    print(f"thumbnails {name}: {message}", file=sys.stderr, flush=True)
    return code


# --- submit -----------------------------------------------------------------------------

@client_command("submit")
@click.argument("files", nargs=-1, required=True, metavar="FILE...",
                type=click.Path(path_type=Path))
@click.option("--wait", is_flag=True, help="wait until every job has ended")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="save thumbnails as DIR/<file stem>.<ext> (implies --wait)")
@click.option("--width", type=POSITIVE, metavar="N", help="box width (default 100)")
@click.option("--height", type=POSITIVE, metavar="N", help="box height (default 100)")
@click.option("--format", "format_", type=click.Choice((*OUTPUT_FORMATS, *FORMAT_ALIASES),
                                                       case_sensitive=False),
              help="default png")
@click.option("--fit", type=click.Choice(FITS), help="default contain")
@click.option("--gravity", type=click.Choice(GRAVITIES),
              help="where a cover crop sits (default center; smart: the subject)")
@click.option("--quality", type=click.IntRange(1, 100), metavar="Q",
              help=f"1-100, for {', '.join(LOSSY_FORMATS)} (default: the format's)")
@click.option("--rendition", "renditions", multiple=True, type=RenditionSpec(),
              metavar=RenditionSpec.name,
              help="one of several outputs, e.g. avatar:100x100:png:cover (repeatable, at "
                   "most 8; instead of --width/--height/--format/--fit/--gravity/--quality); "
                   "--out saves DIR/<file stem>/NAME.<ext>")
@click.option("--idempotency-key", metavar="K",
              help="retry-safe submission: the same K gives the same job (with several "
                   "files, file n uses K-n)")
@click.option("--timeout", type=SECONDS, default=300.0, show_default=True, metavar="S",
              help="with --wait: give up after S seconds")
def submit(client: Client, files: tuple[Path, ...], wait: bool, out: Path | None,
           width: int | None, height: int | None, format_: str | None, fit: str | None,
           gravity: str | None, quality: int | None,
           renditions: tuple[dict[str, object], ...], idempotency_key: str | None,
           timeout: float) -> int:
    """Upload images; print `FILE -> JOB_ID STATUS` per file."""
    problems = [f"{path}: no such file" for path in files if not path.is_file()]
    wait = wait or out is not None
    if out is not None:
        stems = [path.stem for path in files]
        problems += [f"{stem}: more than one FILE would be saved under this name"
                     for stem in sorted({s for s in stems if stems.count(s) > 1})]
    single = {"width": width, "height": height, "format": format_, "fit": fit,
              "gravity": gravity, "quality": quality}
    options: dict[str, object] = dict(single)
    if renditions:
        given = [f"--{name}" for name, value in single.items() if value is not None]
        if given:
            problems.append(f"--rendition replaces {', '.join(given)}: give one or the other")
        options = {"renditions": list(renditions)}
    if problems:
        for problem in problems:
            print(f"thumbnails submit: {problem}", file=sys.stderr)
        return USAGE
    progress = Progress(sys.stderr, enabled=len(files) > 1)
    sources: dict[str, Path] = {}  # job id -> its file
    unreported: dict[str, Doc] = {}  # waited-for jobs without their line yet: last document
    code = OK
    try:
        progress.begin("submitting", len(files))
        for n, path in enumerate(files, 1):
            key = idempotency_key
            if key and len(files) > 1:
                key = f"{key}-{n}"
            try:
                doc = client.submit(path, options, key)
            except Refused as exc:
                if exc.status in (401, 403, 404, 405):  # the key or the URL: every file's fate
                    raise
                progress.emit(f"thumbnails submit: {path}: {exc}", sys.stderr)
                progress.advance(f"{path}: refused ({exc.code})")
                code = REFUSED
                continue
            sources[doc["job_id"]] = path
            if wait:
                unreported[doc["job_id"]] = doc
            else:
                progress.emit(job_line(path, doc), sys.stdout)
            progress.advance(f"{path} -> {doc['job_id']} {doc['status']}")
        if wait and sources:
            progress.begin("waiting", len(sources))

            def on_poll(doc: Doc) -> None:
                unreported[doc["job_id"]] = doc

            def on_done(doc: Doc) -> None:
                path = sources[doc["job_id"]]
                saved = None
                if out is not None and doc["status"] == "succeeded":
                    saved = _save(client, doc, out / path.stem)
                progress.emit(job_line(path, doc, saved), sys.stdout)
                del unreported[doc["job_id"]]
                progress.advance(f"{path}: {doc['status']}", failed=doc["status"] == "failed")

            docs = client.wait(sources, timeout, on_done=on_done, on_poll=on_poll)
            if any(doc["status"] == "failed" for doc in docs.values()):
                code = max(code, FAILED)
    finally:
        progress.close()
        for job_id, doc in unreported.items():  # timed out or interrupted: keep every id
            print(job_line(sources[job_id], doc), flush=True)
    return code


def job_line(path: Path, doc: Doc, saved: Path | None = None) -> str:
    """`FILE -> JOB_ID STATUS`, plus the size (each rendition's: `NAME WxH`), the error or
    where it was saved."""
    line = f"{path} -> {doc['job_id']} {doc['status']}"
    if doc["status"] == "succeeded" and doc.get("renditions"):
        line += " " + ", ".join(f"{r['name']} {r['width']}x{r['height']}"
                                for r in doc["renditions"])
    elif doc["status"] == "succeeded" and "thumbnail" in doc:
        line += f" {doc['thumbnail']['width']}x{doc['thumbnail']['height']}"
    if doc["status"] == "failed" and doc.get("error"):
        line += f": {doc['error']['code']}: {doc['error']['message']}"
    if saved is not None:
        line += f", saved to {saved}"
    return line


def _save(client: Client, doc: Doc, stem: Path) -> Path:
    """Save the thumbnail as <stem>.<ext>, or each rendition as <stem>/<name>.<ext> (then
    the directory is what is returned)."""
    if doc.get("renditions"):
        for item in doc["renditions"]:
            data, content_type = client.rendition(doc["job_id"], item["name"])
            content_type = item.get("content_type") or content_type
            _write(stem / f"{item['name']}.{EXTENSIONS.get(content_type, 'bin')}", data)
        return stem
    data, content_type = client.thumbnail(doc["job_id"])
    content_type = doc.get("thumbnail", {}).get("content_type") or content_type
    target = stem.with_name(f"{stem.name}.{EXTENSIONS.get(content_type, 'bin')}")
    _write(target, data)
    return target


def _write(target: Path, data: bytes) -> None:
    """Whole or not at all: a reader never sees half a thumbnail."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    partial.write_bytes(data)
    partial.replace(target)




class Progress:
    """Many files' progress on stderr: rich's bar on a terminal (redrawn in place, taken
    away at the end), else a line per event."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.phase, self.done, self.total, self.failed = "", 0, 0, 0
        self.bar: Any = None  # rich.progress.Progress, on a terminal
        self.task: Any = None
        if enabled and stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description:<10}"), BarColumn(bar_width=None),
                           MofNCompleteColumn(), TextColumn("{task.fields[failed]}"),
                           TextColumn("{task.elapsed:.1f}s"), console=Console(file=stream),
                           transient=True, refresh_per_second=REDRAWS_PER_SECOND,
                           # stdout stays stdout (rich would send it through its console)
                           redirect_stdout=False, redirect_stderr=False)
            self.bar.start()

    def begin(self, phase: str, total: int) -> None:
        """Start counting a phase (submitting, waiting) of `total` events."""
        self.phase, self.done, self.total, self.failed = phase, 0, total, 0
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(phase, total=total, failed="")

    def advance(self, event: str, failed: bool = False) -> None:
        """One more event of the phase is done."""
        self.done += 1
        self.failed += failed
        if self.bar is not None:
            self.bar.update(self.task, advance=1,
                            failed=f"{self.failed} failed" if self.failed else "")
        elif self.enabled:
            print(f"[{self.phase} {self.done}/{self.total}] {event}", file=self.stream,
                  flush=True)

    def emit(self, line: str, stream: TextIO) -> None:
        """Print a line (stdout or stderr) without tearing the bar."""
        if self.bar is None:
            print(line, file=stream, flush=True)
            return
        self.bar.stop()  # takes the bar away; stdout may be another terminal, or a pipe
        print(line, file=stream, flush=True)
        self.bar.start()

    def close(self) -> None:
        """Take the bar away."""
        if self.bar is not None:
            self.bar.stop()


# --- status, list, get, delete ----------------------------------------------------------

@client_command("status")
@click.argument("job_id", metavar="ID")
def status(client: Client, job_id: str) -> int:
    """Print one job's document (JSON)."""
    print(json.dumps(client.status(job_id), indent=2))
    return OK


@client_command("list")
@click.option("--limit", type=POSITIVE, default=20, show_default=True, metavar="N",
              help="the newest N")
@click.option("--all", "every", is_flag=True, help="every job, page by page")
def list_jobs(client: Client, limit: int, every: bool) -> int:
    """List jobs, newest first: `JOB_ID STATUS` per line."""
    for item in client.jobs(None if every else limit):
        print(f"{item['job_id']}  {item['status']}", flush=every)
    return OK


@client_command("delete")
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
def delete(client: Client, job_ids: tuple[str, ...]) -> int:
    """Delete jobs with their originals and thumbnails.

    Stops at the first refusal (an unknown job is 404: exit status 3)."""
    for job_id in job_ids:
        client.delete(job_id)
        print(f"{job_id} deleted", flush=True)
    return OK


@client_command("get")
@click.argument("job_id", metavar="ID")
@click.option("--rendition", metavar="NAME", help="this rendition instead")
@click.option("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")
def get(client: Client, job_id: str, rendition: str | None, output: str) -> int:
    """Download a job's thumbnail (or one of its renditions)."""
    data, content_type = (client.rendition(job_id, rendition) if rendition
                          else client.thumbnail(job_id))
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        _write(Path(output), data)
        print(f"{job_id} -> {output} ({content_type}, {len(data)} bytes)")
    return OK


# --- watch ------------------------------------------------------------------------------

@client_command("watch")
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--limit", type=POSITIVE, default=20, show_default=True, metavar="N",
              help="without IDs: how many of the newest jobs")
@click.option("--timeout", type=SECONDS, metavar="S", help="give up after S seconds")
def watch(client: Client, job_ids: tuple[str, ...], limit: int, timeout: float | None) -> int:
    """Follow jobs live until all have ended.

    Shows the jobs, then follows GET /events (no polling): a row changes when its job does;
    without IDs, the newest --limit jobs, new ones joining at the top, until Ctrl-C or all
    have ended."""
    ids = list(dict.fromkeys(job_ids))  # once each, in the given order
    deadline = None if timeout is None else time.monotonic() + timeout
    view = LiveView(sys.stdout)
    # Connected before the jobs are read: a change between the two is not missed.
    stream = client.events(ids if 0 < len(ids) <= MAX_STREAM_FILTER else (),
                           read_timeout=WATCH_READ_SECONDS if timeout is None
                           else min(WATCH_READ_SECONDS, timeout))
    try:
        if ids:
            rows = {job_id: client.status(job_id) for job_id in ids}
        else:
            items, _ = client.page(limit)
            rows = {item["job_id"]: client.status(item["job_id"]) if item["status"] in TERMINAL
                    else item for item in items}
        view.show(list(rows.values()))
        changes = iter(stream)
        while pending := {k: row for k, row in rows.items() if row["status"] not in TERMINAL}:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(pending, timeout)
            change = next(changes)
            if change is None:  # a keep-alive, or quiet for a while
                continue
            if change.get("reset"):  # the stream lost changes: read the pending jobs again
                rows.update((k, client.status(k)) for k in pending)
                view.show(list(rows.values()))
                continue
            job_id = change["job_id"]
            row = rows.get(job_id)
            if (row is None and ids) or (row is not None and row["status"] in TERMINAL):
                continue  # not shown, or already final (a stale change)
            doc = client.status(job_id) if change["status"] in TERMINAL else \
                {**(row or {"job_id": job_id}), "status": change["status"]}
            if row is None:  # a new job: at the top, the oldest shown drops off
                rows = dict(list({job_id: doc, **rows}.items())[:limit])
            else:
                rows[job_id] = doc
            view.show(list(rows.values()))
        return FAILED if any(r["status"] == "failed" for r in rows.values()) else OK
    finally:
        stream.close()
        view.close()


class LiveView:
    """Jobs as a rich table redrawn in place on a terminal (cut to its height); elsewhere,
    a line per change."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.seen: dict[str, str] = {}  # job id -> the status last printed (not a terminal)
        self.live: Any = None  # rich.live.Live, on a terminal
        if stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=stream), auto_refresh=False,
                             vertical_overflow="ellipsis", redirect_stdout=False,
                             redirect_stderr=False)
            self.live.start()

    def show(self, rows: list[Doc]) -> None:
        """Draw the current state of these jobs."""
        if self.live is None:
            for row in rows:
                if self.seen.get(row["job_id"]) != row["status"]:
                    self.seen[row["job_id"]] = row["status"]
                    print(watch_row(row), file=self.stream, flush=True)
            return
        from rich.table import Table

        counts = {s: sum(r["status"] == s for r in rows)
                  for s in ("queued", "processing", "succeeded", "failed")}
        table = Table(title=f"{len(rows)} jobs: "
                      + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                      + "  (live, Ctrl-C stops)", title_justify="left", box=None,
                      show_header=False, pad_edge=False)
        for row in rows:
            table.add_row(*watch_cells(row), style=STATUS_STYLES.get(row["status"]))
        self.live.update(table, refresh=True)

    def close(self) -> None:
        """Leave the last drawing on screen."""
        if self.live is not None:
            self.live.stop()


STATUS_STYLES = {"succeeded": "green", "failed": "red"}


def watch_cells(doc: Doc) -> tuple[str, str, str]:
    """(job id, status, detail): size and type, the error, or how long it has waited."""
    detail = ""
    if doc["status"] == "succeeded" and "thumbnail" in doc:
        thumb = doc["thumbnail"]
        detail = f"{thumb['width']}x{thumb['height']} {thumb['content_type']}, {thumb['size']} B"
    elif doc["status"] == "failed" and doc.get("error"):
        detail = f"{doc['error']['code']}: {doc['error']['message']}"
    elif "created_at" in doc:
        detail = f"for {max(0.0, time.time() - doc['created_at']):.0f}s"
    return doc["job_id"], doc["status"], detail


def watch_row(doc: Doc) -> str:
    """`JOB_ID  STATUS      detail`, a line of `watch` when it does not draw on a terminal."""
    job_id, status, detail = watch_cells(doc)
    return f"{job_id}  {status:<10}  {detail}".rstrip()
