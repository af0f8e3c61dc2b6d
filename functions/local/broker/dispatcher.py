"""Broker dispatcher: deliver stored events to matching Triggers with Knative's retry rules."""

from __future__ import annotations

import base64
import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import redis
import urllib3

from thumbnails.core import events
from thumbnails.core.config import Config
from thumbnails.core.errors import InvalidEvent, ThumbnailsError
from thumbnails.core.services import redis_client
from thumbnails.core.serving import configure_logging, freeze_heap

from . import CONSUMER, STREAM_KEY, group_name
from .ingress import ensure_groups, publish
from .settings import BrokerSettings
from .triggers import Trigger, attributes_of, load, parse_subscribers, resolve

log = logging.getLogger(__name__)
RETRYABLE = {404, 408, 409, 429}  # and every 5xx; no answer at all counts too
DEAD_LETTER_TRIES = 3
TRIM_EVERY = 5.0
RECLAIM_EVERY = 30.0  # re-read our own pending entries that no delivery thread holds


@dataclass(frozen=True)
class Attempt:
    """The outcome of one HTTP delivery."""

    status: int  # 0 when nothing answered
    body: bytes = b""
    reply: events.BaseCloudEvent | None = None
    retry_after: float = 0.0  # seconds the subscriber asked to wait (429/503 Retry-After)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status in RETRYABLE or self.status >= 500


class Dispatcher:
    """Reads each Trigger's consumer group and delivers, `concurrency` events at a time."""

    def __init__(self, client: redis.Redis, triggers: list[Trigger],
                 subscribers: Mapping[str, str], concurrency: int) -> None:
        self.client = client
        self.triggers = triggers
        self.urls = {t.name: resolve(t.subscriber, subscribers) for t in triggers}
        self.dead_letter_urls = {t.name: resolve(t.delivery.dead_letter_sink, subscribers)
                                 for t in triggers if t.delivery.dead_letter_sink}
        self.concurrency = concurrency
        self.http = urllib3.PoolManager(maxsize=concurrency, retries=False)

    def run(self, stop: threading.Event) -> None:
        """Deliver until stop is set; in-flight deliveries finish (or stay pending) first."""
        ensure_groups(self.client, [t.name for t in self.triggers])
        readers = [threading.Thread(target=self._read, args=(t, stop), name=f"trigger-{t.name}")
                   for t in self.triggers]
        for reader in readers:
            reader.start()
        while not stop.wait(TRIM_EVERY):
            self._trim()
        for reader in readers:
            reader.join()

    def _read(self, trigger: Trigger, stop: threading.Event) -> None:
        group = group_name(trigger.name)
        slots = threading.Semaphore(self.concurrency)
        in_flight: set[bytes] = set()
        lock = threading.Lock()

        def finished(entry_id: bytes) -> None:
            with lock:
                in_flight.discard(entry_id)
            slots.release()

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=trigger.name) as pool:
            # First our own pending entries (a previous run's), then new ones; and now and
            # then our pending entries again, so one whose handling failed is not stuck.
            replaying, cursor = True, "0"
            reclaim_at = time.monotonic() + RECLAIM_EVERY
            while not stop.is_set():
                if not replaying and time.monotonic() >= reclaim_at:
                    replaying, cursor = True, "0"
                    reclaim_at = time.monotonic() + RECLAIM_EVERY
                try:
                    batch = self.client.xreadgroup(group, CONSUMER, {STREAM_KEY: cursor},
                                                   count=self.concurrency, block=500)
                except redis.RedisError as exc:
                    log.warning("trigger %s: reading the stream failed: %s", trigger.name, exc)
                    stop.wait(1.0)
                    continue
                entries = batch[0][1] if batch else []
                if replaying:
                    replaying = bool(entries)
                    cursor = entries[-1][0] if entries else ">"
                # Entries with nothing to deliver (every group reads every entry: most are
                # another Trigger's) are acknowledged here, in one XACK per batch, not one
                # round trip and one thread hand-off each.
                done: list[bytes] = []
                for entry_id, fields in entries:
                    with lock:
                        if entry_id in in_flight:  # a replay met one still being delivered
                            continue
                    event = self._wanted(trigger, entry_id, fields)
                    if event is None:
                        done.append(entry_id)
                        continue
                    slots.acquire()
                    with lock:
                        in_flight.add(entry_id)
                    future = pool.submit(self._handle, trigger, entry_id, event, stop)
                    future.add_done_callback(lambda _, e=entry_id: finished(e))
                self._ack(trigger, *done)

    def _wanted(self, trigger: Trigger, entry_id: bytes,
                fields: Mapping[bytes, bytes]) -> events.BaseCloudEvent | None:
        """The entry's event if the Trigger wants it; None when there is nothing to deliver:
        an entry trimmed away while pending, one that is not a CloudEvent (logged), or an
        event the Trigger's filters do not match."""
        if not fields:  # pending entry trimmed away: nothing left to deliver
            return None
        try:
            event = events.from_json(fields[b"event"])
        except (InvalidEvent, KeyError):
            log.error("trigger %s: entry %s is not a CloudEvent; dropped", trigger.name, entry_id)
            return None
        return event if trigger.matches(attributes_of(event)) else None

    def _handle(self, trigger: Trigger, entry_id: bytes, event: events.BaseCloudEvent,
                stop: threading.Event) -> None:
        try:
            if not self._deliver(trigger, event, stop):
                return  # stopping mid-retry: leave it pending for the next run
        except Exception:  # e.g. Redis down while re-publishing a reply
            # The pool would swallow this silently; the entry stays pending and is re-read.
            log.exception("trigger %s event %s (%s): delivery failed; left pending",
                          trigger.name, event.get_id(), event.get_type())
            return
        self._ack(trigger, entry_id)

    def _ack(self, trigger: Trigger, *entry_ids: bytes) -> None:
        if not entry_ids:
            return
        try:
            self.client.xack(STREAM_KEY, group_name(trigger.name), *entry_ids)
        except redis.RedisError as exc:  # still pending: delivered again later (at least once)
            log.warning("trigger %s: acknowledging %s failed: %s", trigger.name,
                        b", ".join(entry_ids).decode(), exc)

    def _deliver(self, trigger: Trigger, event: events.BaseCloudEvent,
                 stop: threading.Event) -> bool:
        """Deliver with retries, then dead-letter; False if interrupted by stop."""
        url, delivery = self.urls[trigger.name], trigger.delivery
        attempt = Attempt(0)
        for retry_number in range(delivery.retry + 1):
            wait = max(delivery.backoff(retry_number),
                       min(attempt.retry_after, delivery.retry_after_max)) if retry_number else 0
            if wait and stop.wait(wait):
                return False
            attempt = self._post(url, event, delivery.timeout)
            log.debug("trigger %s event %s (%s): attempt %d -> %d", trigger.name,
                      event.get_id(), event.get_type(), retry_number + 1, attempt.status)
            if attempt.ok:
                if attempt.reply is not None:
                    publish(self.client, attempt.reply, self.triggers)
                return True
            if not attempt.retryable:
                break
        log.warning("trigger %s event %s (%s): giving up after status %d", trigger.name,
                    event.get_id(), event.get_type(), attempt.status)
        self._dead_letter(trigger, event, url, attempt)
        return True

    def _dead_letter(self, trigger: Trigger, event: events.BaseCloudEvent, url: str,
                     failed: Attempt) -> None:
        sink = self.dead_letter_urls.get(trigger.name)
        if sink is None:
            log.error("trigger %s event %s (%s): no dead-letter sink; event dropped",
                      trigger.name, event.get_id(), event.get_type())
            return
        attributes = {**event.get_attributes(), "knativeerrorcode": str(failed.status),
                      "knativeerrordest": url}
        if failed.body:
            attributes["knativeerrordata"] = base64.b64encode(failed.body[:1024]).decode()
        letter = events.CloudEvent(attributes=attributes, data=event.get_data())
        for _ in range(DEAD_LETTER_TRIES):
            if self._post(sink, letter, trigger.delivery.timeout).ok:
                return
            time.sleep(trigger.delivery.backoff_delay)
        log.error("trigger %s event %s (%s): dead-letter sink %s failed too; event dropped",
                  trigger.name, event.get_id(), event.get_type(), sink)

    def _post(self, url: str, event: events.BaseCloudEvent, timeout: float) -> Attempt:
        headers, body = events.to_http(event)
        try:
            response = self.http.request("POST", url, body=body, headers=headers,
                                         timeout=urllib3.Timeout(total=timeout))
        except urllib3.exceptions.HTTPError:
            return Attempt(0)
        if 200 <= response.status < 300 and response.data:
            try:
                reply = events.from_http(dict(response.headers), response.data)
            except InvalidEvent:  # Knative answers such a reply with 502 and retries
                return Attempt(502, response.data)
            return Attempt(response.status, response.data, reply)
        retry_after = 0.0
        if response.status in (429, 503):
            retry_after = _retry_after(response.headers.get("Retry-After"))
        return Attempt(response.status, response.data, retry_after=retry_after)

    def _trim(self) -> None:
        """Drop entries every Trigger has finished with; never an unacknowledged one."""
        try:
            floor = None
            for group in self.client.xinfo_groups(STREAM_KEY):
                pending = self.client.xpending(STREAM_KEY, group["name"])
                if pending["pending"]:
                    keep = _stream_id(_text(pending["min"]))  # the oldest unfinished entry
                else:  # everything delivered is finished: keep only what comes after
                    ms, seq = _stream_id(_text(group["last-delivered-id"]))
                    keep = (ms, seq + 1)
                floor = keep if floor is None else min(floor, keep)
            if floor:
                self.client.xtrim(STREAM_KEY, minid=f"{floor[0]}-{floor[1]}", approximate=False)
        except redis.RedisError as exc:
            log.warning("trimming the stream failed: %s", exc)


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; 0 if absent or bad."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def main() -> int:
    """`python -m thumbnails.local.broker.dispatcher`: run until SIGTERM or SIGINT."""
    config, settings = Config.from_env(), BrokerSettings.from_env()
    configure_logging(config.log_level)
    subscribers = parse_subscribers(settings.subscribers)
    triggers = load(settings.knative_dir, reachable=subscribers)
    dispatcher = Dispatcher(redis_client(config), triggers, subscribers, settings.concurrency)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("dispatching to %s", {t.name: dispatcher.urls[t.name] for t in triggers})
    freeze_heap()
    try:
        dispatcher.run(stop)
    except ThumbnailsError as exc:
        log.error("dispatcher stopped: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
