"""The client half of `thumbnails`: submit, status, list, get, watch (over HTTP, any stack)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from .client import EXTENSIONS, TERMINAL, Client, Doc, Refused, Unavailable, WaitTimeout
from .formats import FITS, FORMAT_ALIASES, GRAVITIES, LOSSY_FORMATS, OUTPUT_FORMATS

COMMANDS = ("submit", "status", "list", "get", "watch", "delete")
MAX_STREAM_FILTER = 50  # job ids GET /events filters by; more: the whole stream, sifted here
WATCH_READ_SECONDS = 20.0  # above the stream's 15 s keep-alives
# Where the settings come from; cli.py reads them at the process boundary and hands them in.
ENVIRONMENT = {"upload_url": "THUMBNAILS_UPLOAD_URL", "status_url": "THUMBNAILS_STATUS_URL",
               "api_key": "THUMBNAILS_API_KEY"}
DEFAULTS = {"upload_url": "http://127.0.0.1:8080", "status_url": "http://127.0.0.1:8081"}

OK, FAILED, USAGE, REFUSED, UNAVAILABLE, TIMED_OUT, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
EXIT_CODES = """\
exit status:
  0    every request went through (and every job waited for succeeded)
  1    some job failed (its error is printed)
  2    usage error: bad arguments, a missing file
  3    the service refused a request (4xx: not an image, unknown job, bad API key...)
  4    the service is unreachable or answered 5xx
  5    timed out waiting for jobs to finish
  130  interrupted (Ctrl-C)
When several apply, the highest wins."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 env: Mapping[str, str]) -> None:
    """Add the client subcommands; `env` holds the THUMBNAILS_* values (see ENVIRONMENT)."""
    common = argparse.ArgumentParser(add_help=False)
    service = common.add_argument_group("service")
    for field, flag, what in (("upload_url", "--upload-url", "upload's base URL"),
                              ("status_url", "--status-url", "status's base URL")):
        service.add_argument(flag, type=_url, default=env.get(field) or DEFAULTS[field],
                             help=f"{what} (default ${ENVIRONMENT[field]}, else "
                                  f"{DEFAULTS[field]}: the local stack's)")
    service.add_argument("--api-key", default=env.get("api_key", ""),
                         help=f"sent as X-API-Key (default ${ENVIRONMENT['api_key']}; "
                              "prefer the variable: arguments show in `ps`)")

    def add(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=summary, description=summary,
                              epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    submit = add("submit", "upload images; print `FILE -> JOB_ID STATUS` per file")
    submit.add_argument("files", nargs="+", metavar="FILE")
    submit.add_argument("--wait", action="store_true", help="wait until every job has ended")
    submit.add_argument("--out", type=Path, metavar="DIR",
                        help="save thumbnails as DIR/<file stem>.<ext> (implies --wait)")
    submit.add_argument("--width", type=_positive, metavar="N", help="box width (default 100)")
    submit.add_argument("--height", type=_positive, metavar="N",
                        help="box height (default 100)")
    submit.add_argument("--format", choices=(*OUTPUT_FORMATS, *FORMAT_ALIASES),
                        help="default png")
    submit.add_argument("--fit", choices=FITS, help="default contain")
    submit.add_argument("--gravity", choices=GRAVITIES,
                        help="where a cover crop sits (default center; smart: the subject)")
    submit.add_argument("--quality", type=_quality, metavar="Q",
                        help=f"1-100, for {', '.join(LOSSY_FORMATS)} (default: the format's)")
    submit.add_argument("--rendition", action="append", type=rendition_spec,
                        dest="renditions", metavar="NAME:WxH:FORMAT[:FIT]",
                        help="one of several outputs, e.g. avatar:100x100:png:cover "
                             "(repeatable, at most 8; instead of --width/--height/--format/"
                             "--fit/--gravity/--quality); --out saves DIR/<file stem>/NAME.<ext>")
    submit.add_argument("--idempotency-key", metavar="K",
                        help="retry-safe submission: the same K gives the same job "
                             "(with several files, file n uses K-n)")
    submit.add_argument("--timeout", type=_seconds, default=300.0, metavar="S",
                        help="with --wait: give up after S seconds (default 300)")

    status = add("status", "print one job's document (JSON)")
    status.add_argument("job_id", metavar="ID")

    listing = add("list", "list jobs, newest first: `JOB_ID STATUS` per line")
    listing.add_argument("--limit", type=_positive, default=20, metavar="N",
                         help="the newest N (default 20)")
    listing.add_argument("--all", action="store_true", help="every job, page by page")

    get = add("get", "download a job's thumbnail (or one of its renditions)")
    get.add_argument("job_id", metavar="ID")
    get.add_argument("--rendition", metavar="NAME", help="this rendition instead")
    get.add_argument("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")

    delete = add("delete", "delete jobs with their originals and thumbnails")
    delete.add_argument("job_ids", nargs="+", metavar="ID")

    watch = add("watch", "follow jobs live until all have ended")
    watch.add_argument("job_ids", nargs="*", metavar="ID",
                       help="jobs to follow (default: the newest, until Ctrl-C or all ended)")
    watch.add_argument("--limit", type=_positive, default=20, metavar="N",
                       help="without IDs: how many of the newest jobs (default 20)")
    watch.add_argument("--timeout", type=_seconds, metavar="S", help="give up after S seconds")


def run(args: argparse.Namespace) -> int:
    """Run a client subcommand; its exit status."""
    client = Client(args.upload_url, args.status_url, args.api_key)
    handlers: dict[str, Callable[[Client, argparse.Namespace], int]] = {
        "submit": _submit, "status": _status, "list": _list, "get": _get, "watch": _watch,
        "delete": _delete}
    try:
        return handlers[args.command](client, args)
    except Refused as exc:
        return _fail(args, str(exc), REFUSED)
    except Unavailable as exc:
        return _fail(args, str(exc), UNAVAILABLE)
    except WaitTimeout as exc:
        return _fail(args, str(exc), TIMED_OUT)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", INTERRUPTED)
    except BrokenPipeError:  # `thumbnails list --all | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"thumbnails {args.command}: {message}", file=sys.stderr, flush=True)
    return code


# --- submit -----------------------------------------------------------------------------

def _submit(client: Client, args: argparse.Namespace) -> int:
    files = [Path(name) for name in args.files]
    problems = [f"{path}: no such file" for path in files if not path.is_file()]
    wait = args.wait or args.out is not None
    if args.out is not None:
        stems = [path.stem for path in files]
        problems += [f"{stem}: more than one FILE would be saved under this name"
                     for stem in sorted({s for s in stems if stems.count(s) > 1})]
    single = {"width": args.width, "height": args.height, "format": args.format,
              "fit": args.fit, "gravity": args.gravity, "quality": args.quality}
    options: dict[str, object] = dict(single)
    if args.renditions:
        given = [f"--{name}" for name, value in single.items() if value is not None]
        if given:
            problems.append(f"--rendition replaces {', '.join(given)}: give one or the other")
        options = {"renditions": args.renditions}
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
            key = args.idempotency_key
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
                progress.tick()

            def on_done(doc: Doc) -> None:
                path = sources[doc["job_id"]]
                saved = None
                if args.out is not None and doc["status"] == "succeeded":
                    saved = _save(client, doc, args.out / path.stem)
                progress.emit(job_line(path, doc, saved), sys.stdout)
                del unreported[doc["job_id"]]
                progress.advance(f"{path}: {doc['status']}", failed=doc["status"] == "failed")

            docs = client.wait(sources, args.timeout, on_done=on_done, on_poll=on_poll)
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
    """Many files' progress on stderr: one redrawn bar on a terminal, else a line per event."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and stream.isatty()
        self.phase, self.done, self.total, self.failed = "", 0, 0, 0
        self.started = self.drawn_at = time.monotonic()
        self.drawn = False

    def begin(self, phase: str, total: int) -> None:
        """Start counting a phase (submitting, waiting) of `total` events."""
        self.phase, self.done, self.total, self.failed = phase, 0, total, 0
        self._draw()

    def advance(self, event: str, failed: bool = False) -> None:
        """One more event of the phase is done."""
        self.done += 1
        self.failed += failed
        if self.tty:
            self._draw()
        elif self.enabled:
            print(f"[{self.phase} {self.done}/{self.total}] {event}", file=self.stream,
                  flush=True)

    def tick(self) -> None:
        """Keep the clock moving while nothing happens (at most 5 redraws a second)."""
        if time.monotonic() - self.drawn_at > 0.2:
            self._draw()

    def emit(self, line: str, stream: TextIO) -> None:
        """Print a line (stdout or stderr) without tearing the bar."""
        self._clear()
        print(line, file=stream, flush=True)
        self._draw()

    def close(self) -> None:
        """Take the bar away."""
        self._clear()

    def _draw(self) -> None:
        if not self.tty:
            return
        width = terminal_size(self.stream).columns - 1
        text = bar(self.phase, self.done, self.total, self.failed,
                   time.monotonic() - self.started, width)
        self.stream.write(f"\r{text}\x1b[K")
        self.stream.flush()
        self.drawn, self.drawn_at = True, time.monotonic()

    def _clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def bar(phase: str, done: int, total: int, failed: int, elapsed: float, width: int) -> str:
    """`waiting    [#######.......]  7/14  1 failed  3.2s`, fitted to `width` columns."""
    tail = f" {done}/{total}" + (f"  {failed} failed" if failed else "") + f"  {elapsed:.1f}s"
    head = f"{phase:<10} ["
    room = max(width - len(head) - len(tail) - 1, 10)
    filled = room * done // total if total else room
    return (head + "#" * filled + "." * (room - filled) + "]" + tail)[:width]


# --- status, list, get ------------------------------------------------------------------

def _status(client: Client, args: argparse.Namespace) -> int:
    print(json.dumps(client.status(args.job_id), indent=2))
    return OK


def _list(client: Client, args: argparse.Namespace) -> int:
    for item in client.jobs(None if args.all else args.limit):
        print(f"{item['job_id']}  {item['status']}", flush=args.all)
    return OK


def _delete(client: Client, args: argparse.Namespace) -> int:
    """Delete each job; stop at the first refusal (an unknown job is 404: exit status 3)."""
    for job_id in args.job_ids:
        client.delete(job_id)
        print(f"{job_id} deleted", flush=True)
    return OK


def _get(client: Client, args: argparse.Namespace) -> int:
    data, content_type = (client.rendition(args.job_id, args.rendition) if args.rendition
                          else client.thumbnail(args.job_id))
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        _write(Path(args.output), data)
        print(f"{args.job_id} -> {args.output} ({content_type}, {len(data)} bytes)")
    return OK


# --- watch ------------------------------------------------------------------------------

def _watch(client: Client, args: argparse.Namespace) -> int:
    """Show the jobs, then follow GET /events (no polling): a row changes when its job does;
    without ids, new jobs join at the top (the newest `--limit` are shown)."""
    ids = list(dict.fromkeys(args.job_ids))  # once each, in the given order
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    view = LiveView(sys.stdout)
    # Connected before the jobs are read: a change between the two is not missed.
    stream = client.events(ids if 0 < len(ids) <= MAX_STREAM_FILTER else (),
                           read_timeout=WATCH_READ_SECONDS if args.timeout is None
                           else min(WATCH_READ_SECONDS, args.timeout))
    try:
        if ids:
            rows = {job_id: client.status(job_id) for job_id in ids}
        else:
            items, _ = client.page(args.limit)
            rows = {item["job_id"]: client.status(item["job_id"]) if item["status"] in TERMINAL
                    else item for item in items}
        view.show(list(rows.values()))
        changes = iter(stream)
        while pending := {k: row for k, row in rows.items() if row["status"] not in TERMINAL}:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(pending, args.timeout)
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
                rows = dict(list({job_id: doc, **rows}.items())[:args.limit])
            else:
                rows[job_id] = doc
            view.show(list(rows.values()))
        return FAILED if any(r["status"] == "failed" for r in rows.values()) else OK
    finally:
        stream.close()
        view.close()


class LiveView:
    """Jobs as a table redrawn in place on a terminal; elsewhere, a line per change."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.lines = 0  # drawn last time, to move back over
        self.seen: dict[str, str] = {}  # job id -> the status last printed (not a terminal)

    def show(self, rows: list[Doc]) -> None:
        """Draw the current state of these jobs."""
        if not self.tty:
            for row in rows:
                if self.seen.get(row["job_id"]) != row["status"]:
                    self.seen[row["job_id"]] = row["status"]
                    print(watch_row(row), file=self.stream, flush=True)
            return
        size = terminal_size(self.stream)
        counts = {s: sum(r["status"] == s for r in rows)
                  for s in ("queued", "processing", "succeeded", "failed")}
        header = (f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                  + "  (live, Ctrl-C stops)")
        shown = rows[:max(size.lines - 3, 1)]
        lines = [header, *(watch_row(row) for row in shown)]
        if len(shown) < len(rows):
            lines.append(f"... and {len(rows) - len(shown)} more")
        back = f"\x1b[{self.lines}F" if self.lines else ""
        body = "\n".join(line[:size.columns - 1] for line in lines)
        self.stream.write(f"{back}\x1b[J{body}\n")
        self.stream.flush()
        self.lines = len(lines)

    def close(self) -> None:
        """Leave the last drawing on screen."""
        self.stream.flush()


def watch_row(doc: Doc) -> str:
    """`JOB_ID  STATUS      detail`: size and type, the error, or how long it has waited."""
    detail = ""
    if doc["status"] == "succeeded" and "thumbnail" in doc:
        thumb = doc["thumbnail"]
        detail = f"{thumb['width']}x{thumb['height']} {thumb['content_type']}, {thumb['size']} B"
    elif doc["status"] == "failed" and doc.get("error"):
        detail = f"{doc['error']['code']}: {doc['error']['message']}"
    elif "created_at" in doc:
        detail = f"for {max(0.0, time.time() - doc['created_at']):.0f}s"
    return f"{doc['job_id']}  {doc['status']:<10}  {detail}".rstrip()


def terminal_size(stream: TextIO) -> os.terminal_size:
    """The size of the terminal this stream writes to (stdout's may be a pipe meanwhile)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        size = os.terminal_size((0, 0))
    return size if size.columns and size.lines else shutil.get_terminal_size((80, 24))


# --- argument types ---------------------------------------------------------------------

def rendition_spec(value: str) -> dict[str, object]:
    """`NAME:WxH:FORMAT[:FIT]` -> a `renditions` item; the service checks the values."""
    parts = value.split(":")
    size = parts[1].lower().split("x") if len(parts) > 1 else []
    if len(parts) not in (3, 4) or len(size) != 2 or not all(s.isdigit() for s in size):
        raise argparse.ArgumentTypeError(
            f"not NAME:WxH:FORMAT[:FIT], e.g. avatar:100x100:png:cover: {value!r}")
    item: dict[str, object] = {"name": parts[0], "width": int(size[0]),
                               "height": int(size[1]), "format": parts[2]}
    if len(parts) == 4:
        item["fit"] = parts[3]
    return item


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {value!r}")
    return number


def _quality(value: str) -> int:
    number = _positive(value)
    if number > 100:
        raise argparse.ArgumentTypeError(f"not a quality from 1 to 100: {value!r}")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {value!r}")
    return number
