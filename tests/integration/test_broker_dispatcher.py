"""The local broker's delivery (thumbnails.local.broker.dispatcher) with Knative's rules: retries,
backoff, dead letters, replies, timeouts, redelivery, trimming (a real Valkey and real
HTTP subscribers)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.broker import (
    FAST,
    Serve,
    event,
    pending,
    service_ref,
    settled,
    trigger_doc,
    write_manifests,
)
from tests.support.stackutil import poll
from tests.support.subscriber import Subscriber
from thumbnails.core import events
from thumbnails.local.broker import CONSUMER, STREAM_KEY, group_name
from thumbnails.local.broker.dispatcher import Dispatcher
from thumbnails.local.broker.ingress import ensure_groups, publish
from thumbnails.local.broker.triggers import Trigger, load


@dataclass
class Running:
    """A Dispatcher running in a background thread."""

    dispatcher: Dispatcher
    triggers: list[Trigger]
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def halt(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
            assert not self.thread.is_alive(), "dispatcher did not stop"


Dispatch = Callable[[Path, dict[str, Subscriber]], Running]


@pytest.fixture
def dispatch(redis_client: redis.Redis) -> Iterator[Dispatch]:
    """Start Dispatchers for the given manifests and subscribers; stop them at teardown."""
    running: list[Running] = []

    def start(manifests: Path, subscribers: dict[str, Subscriber]) -> Running:
        triggers = load(manifests)
        urls = {name: s.url for name, s in subscribers.items()}
        ensure_groups(redis_client, [t.name for t in triggers])  # before any publish
        handle = Running(Dispatcher(redis_client, triggers, urls, concurrency=4), triggers)
        handle.thread = threading.Thread(target=handle.dispatcher.run, args=(handle.stop,),
                                         daemon=True)
        handle.thread.start()
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.stop.set()
    for handle in running:
        handle.halt()


def one_trigger(tmp_path: Path) -> Path:
    """Manifests with one Trigger "t": type "a" to Service "sub", fast delivery."""
    return write_manifests(tmp_path, trigger_doc("t", "sub", type_="a", delivery=FAST))


def dead_lettered(tmp_path: Path, dispatch: Dispatch, sub: Subscriber,
                  dead: Subscriber, **delivery: Any) -> Running:
    doc = trigger_doc("t", "sub", type_="a", delivery={**FAST, **delivery}, dead_letter="dead")
    return dispatch(write_manifests(tmp_path, doc), {"sub": sub, "dead": dead})


def test_delivered_once_with_same_event(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub = serve(Subscriber())
    run = dispatch(one_trigger(tmp_path), {"sub": sub})
    sent = events.new_event("a", "/test", {"job": 1}, subject="jobs/1")
    assert publish(redis_client, sent, run.triggers)
    (got,) = poll(lambda: sub.received or None, timeout=10)
    poll(lambda: pending(redis_client, "t") == 0 or None, timeout=10)
    assert (got.get_id(), got.get_type(), got.get_source(), got.get_subject()) == (
        sent.get_id(), "a", "/test", "jobs/1")
    assert events.data_of(got) == {"job": 1}
    assert len(sub.received) == 1


def test_many_events_each_delivered_once(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub = serve(Subscriber())
    run = dispatch(one_trigger(tmp_path), {"sub": sub})
    sent = [event("a", n=n) for n in range(12)]
    for e in sent:
        publish(redis_client, e, run.triggers)
    poll(lambda: len(sub.received) >= 12 and pending(redis_client, "t") == 0 or None, timeout=10)
    assert sorted(e.get_id() for e in sub.received) == sorted(e.get_id() for e in sent)


def test_non_matching_event_is_acked_not_delivered(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub_a, sub_b = serve(Subscriber()), serve(Subscriber())
    manifests = write_manifests(tmp_path, trigger_doc("ta", "a", type_="a", delivery=FAST),
                                trigger_doc("tb", "b", type_="b", delivery=FAST))
    run = dispatch(manifests, {"a": sub_a, "b": sub_b})
    sent = event("b")
    assert publish(redis_client, sent, run.triggers)
    (entry_id, _), = redis_client.xrange(STREAM_KEY)
    poll(lambda: sub_b.received or None, timeout=10)
    # Trigger ta read the entry too, and acknowledged it without delivering.
    poll(lambda: settled(redis_client, "ta", entry_id), timeout=10)
    poll(lambda: settled(redis_client, "tb", entry_id), timeout=10)
    assert sub_a.received == []
    assert [e.get_id() for e in sub_b.received] == [sent.get_id()]


def test_retry_then_success(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub, dead = serve(Subscriber([503, 200])), serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead)
    sent = event("a")
    publish(redis_client, sent, run.triggers)
    poll(lambda: len(sub.received) == 2 and pending(redis_client, "t") == 0 or None, timeout=10)
    assert [e.get_id() for e in sub.received] == [sent.get_id()] * 2
    assert dead.received == []


@pytest.mark.parametrize("status", [404, 408, 409, 429, 502])
def test_retryable_statuses(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch, status: int
) -> None:
    sub, dead = serve(Subscriber([status, 200])), serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead)
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: len(sub.received) == 2 and pending(redis_client, "t") == 0 or None, timeout=10)
    assert dead.received == []


@pytest.mark.parametrize(("statuses", "attempts", "code"),
                         [([400], 1, "400"), ([403], 1, "403"), ([500], 3, "500")])
def test_dead_letter(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch,
    statuses: list[int], attempts: int, code: str,
) -> None:
    sub = serve(Subscriber(statuses, body=b'{"error": "x"}'))
    dead = serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead, retry=2)
    sent = event("a", job="j")
    publish(redis_client, sent, run.triggers)
    (letter,) = poll(lambda: dead.received or None, timeout=10)
    poll(lambda: pending(redis_client, "t") == 0 or None, timeout=10)
    assert len(sub.received) == attempts
    assert (letter.get_id(), letter.get_type()) == (sent.get_id(), "a")
    assert events.data_of(letter) == {"job": "j"}
    assert letter.get_extension("knativeerrorcode") == code
    assert letter.get_extension("knativeerrordest") == sub.url
    assert base64.b64decode(letter.get_extension("knativeerrordata")) == b'{"error": "x"}'
    assert len(dead.received) == 1


def test_dead_letter_sink_with_uri(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    seen_paths: list[str] = []

    class PathRecorder(Subscriber):
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            seen_paths.append(environ["PATH_INFO"])
            return super().__call__(environ, start_response)

    sub, dead = serve(Subscriber([400])), serve(PathRecorder())
    doc = trigger_doc("t", "sub", type_="a", delivery=FAST)
    doc["spec"]["delivery"]["deadLetterSink"] = service_ref("dead", "/dead-letter")
    run = dispatch(write_manifests(tmp_path, doc), {"sub": sub, "dead": dead})
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: dead.received or None, timeout=10)
    assert seen_paths == ["/dead-letter"]


def test_no_dead_letter_sink_drops_and_acks(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub = serve(Subscriber([500]))
    run = dispatch(one_trigger(tmp_path), {"sub": sub})
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: len(sub.received) == 3 and pending(redis_client, "t") == 0 or None, timeout=10)


def test_non_cloudevent_2xx_body_is_retried(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub, dead = serve(Subscriber([200], body=b"not an event")), serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead)
    publish(redis_client, event("a"), run.triggers)
    (letter,) = poll(lambda: dead.received or None, timeout=10)
    assert len(sub.received) == 3
    assert letter.get_extension("knativeerrorcode") == "502"


def test_2xx_without_body_is_success(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub, dead = serve(Subscriber([202])), serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead)
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: sub.received and pending(redis_client, "t") == 0 or None, timeout=10)
    assert len(sub.received) == 1 and dead.received == []


def test_timeout_is_retried(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub, dead = serve(Subscriber(first_delay=1.0)), serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead, timeout="PT0.2S")
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: len(sub.times) == 2 and pending(redis_client, "t") == 0 or None, timeout=10)
    assert dead.received == []
    assert sub.times[1] - sub.times[0] < 0.9  # the first attempt was abandoned at its timeout


def replying_pair(tmp_path: Path, serve: Serve, dispatch: Dispatch
                  ) -> tuple[events.CloudEvent, Subscriber, Subscriber, Running]:
    """Trigger "first" (type a) answers with a "result" reply; Trigger "second" takes it."""
    reply = events.new_event("result", "/replier", {"answer": 42})
    first, second = serve(Subscriber(reply=reply)), serve(Subscriber())
    manifests = write_manifests(tmp_path,
                                trigger_doc("first", "one", type_="a", delivery=FAST),
                                trigger_doc("second", "two", type_="result", delivery=FAST))
    return reply, first, second, dispatch(manifests, {"one": first, "two": second})


def test_reply_is_republished(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    reply, first, second, run = replying_pair(tmp_path, serve, dispatch)
    publish(redis_client, event("a"), run.triggers)
    (got,) = poll(lambda: second.received or None, timeout=10)
    assert (got.get_id(), got.get_type(), got.get_source()) == (
        reply.get_id(), "result", "/replier")
    assert events.data_of(got) == {"answer": 42}
    assert len(first.received) == 1
    poll(lambda: (pending(redis_client, "first") == pending(redis_client, "second") == 0)
         or None, timeout=10)


def test_published_without_dispatcher_is_delivered_later(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub = serve(Subscriber())
    manifests = one_trigger(tmp_path)
    ensure_groups(redis_client, ["t"])
    early = event("a")
    assert publish(redis_client, early, load(manifests))  # no dispatcher running yet
    dispatch(manifests, {"sub": sub})
    (got,) = poll(lambda: sub.received or None, timeout=10)
    assert got.get_id() == early.get_id()
    poll(lambda: pending(redis_client, "t") == 0 or None, timeout=10)


def test_unacked_entry_is_redelivered_by_next_dispatcher(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub = serve(Subscriber())
    manifests = one_trigger(tmp_path)
    triggers = load(manifests)
    ensure_groups(redis_client, ["t"])
    crashed, fresh = event("a"), event("a")
    publish(redis_client, crashed, triggers)
    # A dispatcher that read the entry, then crashed before acknowledging it.
    redis_client.xreadgroup(group_name("t"), CONSUMER, {STREAM_KEY: ">"})
    assert pending(redis_client, "t") == 1
    publish(redis_client, fresh, triggers)
    dispatch(manifests, {"sub": sub})
    poll(lambda: len(sub.received) == 2 and pending(redis_client, "t") == 0 or None, timeout=10)
    assert sorted(e.get_id() for e in sub.received) == sorted(
        [crashed.get_id(), fresh.get_id()])


def test_stop_mid_retry_leaves_event_pending(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub, dead = serve(Subscriber([503])), serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead, backoffDelay="PT30S")
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: sub.received or None, timeout=10)
    started = time.monotonic()
    run.halt()
    assert time.monotonic() - started < 5  # the backoff wait is interrupted
    assert pending(redis_client, "t") == 1
    assert len(sub.received) == 1 and dead.received == []


def test_trim_after_deliveries_leaves_no_acked_entries(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub_a, sub_b = serve(Subscriber()), serve(Subscriber())
    manifests = write_manifests(tmp_path, trigger_doc("ta", "a", type_="a", delivery=FAST),
                                trigger_doc("tb", "b", delivery=FAST))
    run = dispatch(manifests, {"a": sub_a, "b": sub_b})
    for n in range(3):
        publish(redis_client, event("a", n=n), run.triggers)
    last_id = redis_client.xrange(STREAM_KEY)[-1][0]
    poll(lambda: len(sub_a.received) == len(sub_b.received) == 3 or None, timeout=10)
    poll(lambda: settled(redis_client, "ta", last_id), timeout=10)
    poll(lambda: settled(redis_client, "tb", last_id), timeout=10)
    run.dispatcher._trim()
    assert redis_client.xrange(STREAM_KEY) == []


def idle_dispatcher(tmp_path: Path, redis_client: redis.Redis,
                    serve: Serve) -> tuple[list[Trigger], Dispatcher]:
    """A Dispatcher for one Trigger "t" on type "a", not running: for calling _trim."""
    sub = serve(Subscriber())
    triggers = load(write_manifests(tmp_path, trigger_doc("t", "sub", type_="a")))
    ensure_groups(redis_client, ["t"])
    return triggers, Dispatcher(redis_client, triggers, {"sub": sub.url}, concurrency=2)


def test_trim_keeps_unacked_entries(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve
) -> None:
    triggers, dispatcher = idle_dispatcher(tmp_path, redis_client, serve)
    for _ in range(3):
        publish(redis_client, event("a"), triggers)
    entries = redis_client.xreadgroup(group_name("t"), CONSUMER, {STREAM_KEY: ">"})[0][1]
    redis_client.xack(STREAM_KEY, group_name("t"), entries[0][0], entries[2][0])
    dispatcher._trim()
    # entry 1 is still pending: it and everything after it stay.
    assert [e[0] for e in redis_client.xrange(STREAM_KEY)] == [entries[1][0], entries[2][0]]


def test_trim_keeps_entries_a_trigger_has_not_read(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve
) -> None:
    triggers, dispatcher = idle_dispatcher(tmp_path, redis_client, serve)
    for _ in range(2):
        publish(redis_client, event("a"), triggers)
    dispatcher._trim()
    assert redis_client.xlen(STREAM_KEY) == 2


def test_retry_after_is_honoured(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub = serve(Subscriber([429, 200], headers={"Retry-After": "1"}))
    dead = serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead, retryAfterMax="PT5S")  # backoff 10 ms
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: len(sub.times) == 2 and pending(redis_client, "t") == 0 or None, timeout=10)
    assert sub.times[1] - sub.times[0] >= 0.9  # the subscriber's 1 s, not the 10 ms backoff
    assert dead.received == []


def test_retry_after_is_ignored_without_retry_after_max(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch
) -> None:
    sub = serve(Subscriber([429, 200], headers={"Retry-After": "30"}))
    dead = serve(Subscriber())
    run = dead_lettered(tmp_path, dispatch, sub, dead)
    publish(redis_client, event("a"), run.triggers)
    poll(lambda: len(sub.received) == 2 and pending(redis_client, "t") == 0 or None, timeout=10)
    assert sub.times[1] - sub.times[0] < 5  # the backoff's 10 ms, not the asked-for 30 s


def test_failed_handling_stays_pending_and_is_reclaimed(
    tmp_path: Path, redis_client: redis.Redis, serve: Serve, dispatch: Dispatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thumbnails.local.broker import dispatcher as module

    monkeypatch.setattr(module, "RECLAIM_EVERY", 0.2)
    real_publish, calls = module.publish, []

    def flaky_publish(*args: Any) -> bool:
        calls.append(1)
        if len(calls) == 1:  # Redis drops out while the reply is re-published
            raise redis.ConnectionError("gone")
        return real_publish(*args)

    monkeypatch.setattr(module, "publish", flaky_publish)
    reply, first, second, run = replying_pair(tmp_path, serve, dispatch)
    real_publish(redis_client, event("a"), run.triggers)
    (got,) = poll(lambda: second.received or None, timeout=10)
    assert got.get_id() == reply.get_id()
    assert len(first.received) == 2  # delivered again after the failed attempt
    poll(lambda: pending(redis_client, "first") == 0 or None, timeout=10)
