"""An HTTP client for the service: submit images, follow jobs, fetch thumbnails."""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

from thumbnails.core.formats import TYPE_EXTENSIONS
from thumbnails.core.statuses import TERMINAL

EXTENSIONS = TYPE_EXTENSIONS  # thumbnail Content-Type -> file extension, for clientcli
Doc = dict[str, Any]
LONG_POLL_SECONDS = 30.0  # each long poll's `wait` (the service takes up to 60)
MIN_WAIT_SECONDS = 0.05  # less time left than this: one plain GET, then give up


class ClientError(Exception):
    """A request did not get the answer it needed."""


class Refused(ClientError):
    """The service answered 4xx: this request will not work as sent."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Unavailable(ClientError):
    """The service could not be reached, or answered 5xx."""


class WaitTimeout(ClientError):
    """Jobs were not terminal by the deadline; `pending` holds their last documents."""

    def __init__(self, pending: Mapping[str, Doc], timeout: float) -> None:
        super().__init__(f"{len(pending)} job(s) not finished within {timeout:g}s")
        self.pending = dict(pending)


class Client:
    """Talks to upload (POST /jobs) and status (GET /jobs...) at their base URLs."""

    def __init__(self, upload_url: str, status_url: str, api_key: str = "",
                 timeout: float = 30.0, session: requests.Session | None = None) -> None:
        self.upload_url = upload_url.rstrip("/")
        self.status_url = status_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "thumbnails-client"
        if api_key:
            self.session.headers["X-API-Key"] = api_key

    def submit(self, path: Path, options: Mapping[str, object] | None = None,
               idempotency_key: str | None = None) -> Doc:
        """POST one file with form options (a list, such as `renditions`, is sent as JSON);
        the 202 answer ({"job_id", "status", "links"})."""
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        form = {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict))
                else str(v) for k, v in (options or {}).items() if v is not None}
        with path.open("rb") as file:
            response = self._request("POST", f"{self.upload_url}/jobs", headers=headers,
                                     files={"file": (path.name, file, mime)}, data=form)
        doc: Doc = response.json()
        return doc

    def status(self, job_id: str, wait: float | None = None) -> Doc:
        """GET /jobs/{id}; with `wait` (seconds, at most 60), a long poll that answers as
        soon as the job has ended, or after `wait` seconds."""
        if wait is None:
            doc: Doc = self._request("GET", self._job_url(job_id)).json()
            return doc
        seconds = f"{wait:.3f}"
        doc = self._request("GET", self._job_url(job_id), params={"wait": seconds},
                            timeout=(self.timeout, wait + self.timeout)).json()
        return doc

    def delete(self, job_id: str) -> None:
        """DELETE /jobs/{id}: the job, its original and its thumbnails (Refused 404 if none)."""
        self._request("DELETE", self._job_url(job_id))

    def page(self, limit: int, cursor: str | None = None) -> tuple[list[Doc], str | None]:
        """One page of GET /jobs, newest first, and the next page's cursor (None at the end)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = self._request("GET", f"{self.status_url}/jobs", params=params)
        return response.json(), response.headers.get("X-Next-Cursor") or None

    def jobs(self, limit: int | None = None, page_size: int = 1000) -> Iterator[Doc]:
        """Jobs newest first, following X-Next-Cursor; at most `limit` (None: every one)."""
        cursor, seen = None, 0
        while limit is None or seen < limit:
            size = page_size if limit is None else min(page_size, limit - seen)
            items, cursor = self.page(size, cursor)
            for item in items:
                seen += 1
                yield item
            if not cursor or not items:
                return

    def thumbnail(self, job_id: str) -> tuple[bytes, str]:
        """The thumbnail's bytes and Content-Type (Refused 409 while the job is not done)."""
        response = self._request("GET", f"{self._job_url(job_id)}/thumbnail")
        return response.content, response.headers.get("Content-Type", "")

    def rendition(self, job_id: str, name: str) -> tuple[bytes, str]:
        """One rendition's bytes and Content-Type (Refused 404 for a name the job lacks)."""
        quoted = requests.utils.quote(name, safe="")
        response = self._request("GET", f"{self._job_url(job_id)}/thumbnails/{quoted}")
        return response.content, response.headers.get("Content-Type", "")

    def wait(self, job_ids: Iterable[str], timeout: float, interval: float = 1.0,
             on_done: Callable[[Doc], None] | None = None,
             on_poll: Callable[[Doc], None] | None = None) -> dict[str, Doc]:
        """Wait until every job is terminal, with long polls (GET /jobs/{id}?wait=S, one job
        at a time: those that ended meanwhile answer at once); their documents. on_done sees
        each ended job, on_poll every answer. A failed request is retried after `interval`
        seconds. Past the deadline: WaitTimeout, or the last Unavailable if the service was
        down then."""
        deadline = time.monotonic() + timeout
        pending: dict[str, Doc] = {job_id: {"job_id": job_id, "status": "queued"}
                                   for job_id in job_ids}
        done: dict[str, Doc] = {}
        for job_id in list(pending):
            while True:
                remaining = deadline - time.monotonic()
                try:
                    doc = self.status(job_id, wait=min(remaining, LONG_POLL_SECONDS)
                                      if remaining > MIN_WAIT_SECONDS else None)
                except Unavailable:
                    if remaining <= 0:
                        raise
                    time.sleep(min(interval, remaining))  # the service is down: back off
                    continue
                if on_poll is not None:
                    on_poll(doc)
                if doc["status"] in TERMINAL:
                    done[job_id] = doc
                    del pending[job_id]
                    if on_done is not None:
                        on_done(doc)
                    break
                pending[job_id] = doc
                if remaining <= MIN_WAIT_SECONDS:
                    raise WaitTimeout(pending, timeout)
        return done

    def events(self, job_ids: Iterable[str] = (), read_timeout: float = 60.0) -> EventStream:
        """GET /events, connected now: iterate it for each job state change ({"job_id",
        "status", "at"}) as it happens, {"reset": True} when changes were lost (read the
        jobs again), None for each keep-alive (every 15 s) and after `read_timeout` quiet
        seconds. `job_ids` (at most 50) filters."""
        return EventStream(self, list(job_ids), read_timeout)

    def _job_url(self, job_id: str) -> str:
        return f"{self.status_url}/jobs/{requests.utils.quote(job_id, safe='')}"

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            kwargs.setdefault("timeout", self.timeout)
            response = self.session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise Unavailable(f"{method} {url}: cannot reach the service ({_reason(exc)})"
                              ) from exc
        if response.status_code < 400:
            return response
        code, message = _error_of(response)
        if response.status_code >= 500:
            raise Unavailable(f"{method} {url}: {response.status_code} {code}: {message}")
        raise Refused(response.status_code, code, message)


class EventStream:
    """A Server-Sent Events stream of job changes that reconnects with Last-Event-ID when
    the server ends it (it does every few minutes), so no change is missed."""

    def __init__(self, client: Client, job_ids: list[str], read_timeout: float) -> None:
        self.client, self.read_timeout = client, read_timeout
        self.params = [("job_id", job_id) for job_id in job_ids]
        self.last_id = ""
        self.response = self._connect()

    def _connect(self) -> requests.Response:
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        return self.client._request(
            "GET", f"{self.client.status_url}/events", params=self.params, headers=headers,
            stream=True, timeout=(self.client.timeout, self.read_timeout))

    def __iter__(self) -> Iterator[Doc | None]:
        while True:
            fields: dict[str, str] = {}
            try:
                for line in self.response.iter_lines(decode_unicode=True):
                    if line.startswith(":"):
                        yield None  # a keep-alive comment: the caller may look at the clock
                        continue
                    if line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                        continue
                    self.last_id = fields.get("id", self.last_id)
                    if fields.get("event") == "job" and "data" in fields:
                        yield json.loads(fields["data"])
                    elif fields.get("event") == "reset":
                        yield {"reset": True}
                    fields = {}
            except requests.ConnectionError as exc:  # urllib3 reports a read timeout so
                if "timed out" not in str(exc):
                    raise Unavailable(f"GET /events: {_reason(exc)}") from exc
                yield None
            finally:
                self.response.close()
            self.response = self._connect()  # the server ended this stream: resume

    def close(self) -> None:
        """Disconnect."""
        self.response.close()


def _error_of(response: requests.Response) -> tuple[str, str]:
    """The service's {"error", "message"}; for anything else (a proxy's page), a summary."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), str(body.get("message", ""))
    text = " ".join(response.text.split())[:200]
    return (response.reason or "error").lower().replace(" ", "_"), text or "(no body)"


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause, e.g. 'Connection refused', not urllib3's nested repr."""
    cause: BaseException = exc
    while cause.__context__ is not None and cause.__context__ is not cause:
        cause = cause.__context__
    text = str(cause) or type(cause).__name__
    return text.split("] ")[-1] if text.startswith("[Errno") else text
