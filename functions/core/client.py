"""An HTTP client for the service: submit images, follow jobs, fetch thumbnails."""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

from .formats import EXTENSIONS as FORMAT_EXTENSIONS
from .formats import OUTPUT_FORMATS

TERMINAL = frozenset({"succeeded", "failed"})
# Thumbnail Content-Type -> file extension.
EXTENSIONS = {mime: FORMAT_EXTENSIONS[name] for name, (_, mime) in OUTPUT_FORMATS.items()}
Doc = dict[str, Any]


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

    def status(self, job_id: str) -> Doc:
        """GET /jobs/{id}."""
        doc: Doc = self._request("GET", self._job_url(job_id)).json()
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
        """Poll the jobs until every one is terminal; their documents. on_done sees each as it
        ends; on_poll sees every answer. Past the deadline: WaitTimeout, or the last
        Unavailable if the service was down then (a blip before it is only retried)."""
        deadline = time.monotonic() + timeout
        pending: dict[str, Doc] = {job_id: {"job_id": job_id, "status": "queued"}
                                   for job_id in job_ids}
        done: dict[str, Doc] = {}
        delay = min(0.1, interval)
        while True:
            outage: Unavailable | None = None
            for job_id in list(pending):
                try:
                    doc = self.status(job_id)
                except Unavailable as exc:
                    outage = exc
                    break
                if on_poll is not None:
                    on_poll(doc)
                if doc["status"] in TERMINAL:
                    done[job_id] = doc
                    del pending[job_id]
                    if on_done is not None:
                        on_done(doc)
                else:
                    pending[job_id] = doc
            if not pending:
                return done
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if outage is not None:
                    raise outage
                raise WaitTimeout(pending, timeout)
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, interval)  # quick for fast jobs, gentle for slow ones

    def _job_url(self, job_id: str) -> str:
        return f"{self.status_url}/jobs/{requests.utils.quote(job_id, safe='')}"

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise Unavailable(f"{method} {url}: cannot reach the service ({_reason(exc)})"
                              ) from exc
        if response.status_code < 400:
            return response
        code, message = _error_of(response)
        if response.status_code >= 500:
            raise Unavailable(f"{method} {url}: {response.status_code} {code}: {message}")
        raise Refused(response.status_code, code, message)


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
