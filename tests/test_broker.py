"""The local broker: Trigger manifests, ingress, and delivery with Knative's rules."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from stackutil import poll
from subscriber import Subscriber

from thumbnails import events
from thumbnails.broker import STREAM_KEY, group_name
from thumbnails.broker.dispatcher import Dispatcher
from thumbnails.broker.ingress import create_app, ensure_groups, publish
from thumbnails.broker.triggers import (
    Delivery,
    Destination,
    ManifestError,
    Trigger,
    load,
    parse_duration,
    parse_subscribers,
    resolve,
)
from thumbnails.config import Config

FAST = {"retry": 2, "backoffPolicy": "linear", "backoffDelay": "PT0.01S", "timeout": "PT2S"}


def trigger_yaml(
    name: str,
    subscriber: str,
    *,
    type_: str | None = None,
    filters: str | None = None,
    delivery: dict[str, str] | None = None,
    dead_letter: str | None = None,
) -> str:
    """A Trigger manifest on broker `default`."""
    lines = [
        "apiVersion: eventing.knative.dev/v1",
        "kind: Trigger",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  broker: default",
    ]
    if type_:
        lines += ["  filter:", "    attributes:", f"      type: {type_}"]
    if filters:
        lines += [f"  filters: {filters}"]
    lines += [
        "  subscriber:",
        f"    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: {subscriber}}}",
    ]
    if delivery is not None:
        lines += ["  delivery:"] + [f"    {k}: {v}" for k, v in delivery.items()]
        if dead_letter:
            lines += [
                "    deadLetterSink:",
                f"      ref: {{apiVersion: serving.knative.dev/v1, "
                f"kind: Service, name: {dead_letter}}}",
            ]
    return "\n".join(lines) + "\n"


BROKER_YAML = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
spec:
  delivery: {retry: 1, backoffPolicy: exponential, backoffDelay: PT0.01S}
"""


def write_manifests(directory: Path, *triggers: str) -> Path:
    (directory / "broker.yaml").write_text(BROKER_YAML)
    (directory / "triggers.yaml").write_text("---\n".join(triggers))
    return directory


def event(type_: str = events.IMAGE_UPLOADED, **data: object) -> events.CloudEvent:
    return events.new_event(type_, "/test", data or {"n": 1})


# --- manifests ---------------------------------------------------------------------------


def test_project_trigger_manifest() -> None:
    (trigger,) = load(Config().knative_dir)
    assert trigger.attributes == {"type": events.IMAGE_UPLOADED}
    assert trigger.subscriber == Destination(service="resize")
    assert trigger.delivery.dead_letter_sink == Destination(service="resize", uri="/dead-letter")
    assert trigger.delivery.backoff_policy == "exponential" and trigger.delivery.retry > 0


@pytest.mark.parametrize(
    ("filters", "matching", "other"),
    [
        ("[{exact: {type: a.b}}]", "a.b", "a.bc"),
        ("[{prefix: {type: dev.x}}]", "dev.x.y", "dev.y"),
        ("[{suffix: {type: .failed}}]", "t.failed", "t.generated"),
        ("[{all: [{prefix: {type: a}}, {suffix: {type: z}}]}]", "abz", "abc"),
        ("[{any: [{exact: {type: p}}, {exact: {type: q}}]}]", "q", "r"),
        ("[{not: {exact: {type: p}}}]", "q", "p"),
    ],
)
def test_filters_dialect(tmp_path: Path, filters: str, matching: str, other: str) -> None:
    (trigger,) = load(write_manifests(tmp_path, trigger_yaml("t", "s", filters=filters)))
    assert trigger.matches({"type": matching, "source": "/x"})
    assert not trigger.matches({"type": other, "source": "/x"})


def test_attribute_filter_and_inherited_delivery(tmp_path: Path) -> None:
    (trigger,) = load(write_manifests(tmp_path, trigger_yaml("t", "s", type_="a")))
    assert trigger.matches({"type": "a"}) and not trigger.matches({"type": "b"})
    assert trigger.delivery == Delivery(retry=1, backoff_policy="exponential", backoff_delay=0.01)


def test_unsupported_filter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError):
        load(write_manifests(tmp_path, trigger_yaml("t", "s", filters='[{cesql: "x"}]')))


def test_durations_backoff_and_destinations() -> None:
    assert parse_duration("PT0.5S") == 0.5 and parse_duration("PT1M") == 60
    assert parse_duration("P1DT1H") == 90000
    for bad in ("", "P", "5s", "PT"):
        with pytest.raises(ManifestError):
            parse_duration(bad)
    assert [Delivery(backoff_policy="linear", backoff_delay=1).backoff(n) for n in (1, 2, 3)] == [
        1,
        2,
        3,
    ]
    assert [Delivery(backoff_delay=1).backoff(n) for n in (1, 2, 3)] == [1, 2, 4]
    subscribers = parse_subscribers("resize=http://127.0.0.1:1/, x=http://h:2")
    assert subscribers == {"resize": "http://127.0.0.1:1", "x": "http://h:2"}
    assert (
        resolve(Destination("resize", "/dead-letter"), subscribers)
        == "http://127.0.0.1:1/dead-letter"
    )
    assert resolve(Destination(uri="http://sink/x"), subscribers) == "http://sink/x"
    with pytest.raises(ManifestError):
        resolve(Destination("unknown"), subscribers)
    with pytest.raises(ManifestError):
        parse_subscribers("no-equals-sign")


# --- ingress -----------------------------------------------------------------------------


def test_ingress_accepts_both_modes_and_refuses_junk(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    manifests = write_manifests(tmp_path, trigger_yaml("t", "s", type_=events.IMAGE_UPLOADED))
    client = create_app(
        Config(redis_url=redis_url, knative_dir=manifests), client=redis_client
    ).test_client()
    for path, structured in (("/", False), ("/", True), ("/default/default", False)):
        headers, body = events.to_http(event(), structured=structured)
        assert client.post(path, data=body, headers=headers).status_code == 202
    response = client.post("/", data=b"junk", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400 and response.json["error"] == "invalid_event"
    assert redis_client.xlen(STREAM_KEY) == 3
    # Accepted, but not kept: no Trigger wants it.
    headers, body = events.to_http(event("nobody.wants.this"))
    assert client.post("/", data=body, headers=headers).status_code == 202
    assert redis_client.xlen(STREAM_KEY) == 3


# --- delivery ----------------------------------------------------------------------------


@pytest.fixture
def dispatch(redis_client: redis.Redis) -> Iterator[object]:
    running = []

    def start(manifests: Path, subscribers: dict[str, Subscriber]) -> list[Trigger]:
        triggers = load(manifests)
        dispatcher = Dispatcher(
            redis_client, triggers, {name: s.url for name, s in subscribers.items()}, 4
        )
        ensure_groups(redis_client, [t.name for t in triggers])
        stop = threading.Event()
        thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        return triggers

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=10)


def pending(client: redis.Redis, trigger: str) -> int:
    return int(client.xpending(STREAM_KEY, group_name(trigger))["pending"])


def test_delivered_once_and_filtered(
    tmp_path: Path, redis_client: redis.Redis, serve, dispatch
) -> None:
    sub = serve(Subscriber())
    triggers = dispatch(
        write_manifests(tmp_path, trigger_yaml("t", "sub", type_="a", delivery=FAST)), {"sub": sub}
    )
    sent = event("a", job=1)
    publish(redis_client, event("b"), triggers)
    publish(redis_client, sent, triggers)
    poll(lambda: sub.received or None)
    poll(lambda: pending(redis_client, "t") == 0 or None)
    assert [e.get_id() for e in sub.received] == [sent.get_id()]
    assert events.data_of(sub.received[0]) == {"job": 1}


def test_retry_then_success(tmp_path: Path, redis_client: redis.Redis, serve, dispatch) -> None:
    sub, dead = serve(Subscriber([503, 200])), serve(Subscriber())
    triggers = dispatch(
        write_manifests(
            tmp_path, trigger_yaml("t", "sub", type_="a", delivery=FAST, dead_letter="dead")
        ),
        {"sub": sub, "dead": dead},
    )
    publish(redis_client, event("a"), triggers)
    poll(lambda: pending(redis_client, "t") == 0 and len(sub.received) == 2 or None)
    assert dead.received == []


@pytest.mark.parametrize(("statuses", "attempts", "code"), [([400], 1, "400"), ([500], 3, "500")])
def test_dead_letter(
    tmp_path: Path,
    redis_client: redis.Redis,
    serve,
    dispatch,
    statuses: list[int],
    attempts: int,
    code: str,
) -> None:
    sub = serve(Subscriber(statuses, body=b'{"error": "x"}'))
    dead = serve(Subscriber())
    triggers = dispatch(
        write_manifests(
            tmp_path, trigger_yaml("t", "sub", type_="a", delivery=FAST, dead_letter="dead")
        ),
        {"sub": sub, "dead": dead},
    )
    sent = event("a")
    publish(redis_client, sent, triggers)
    (letter,) = poll(lambda: dead.received or None)
    assert len(sub.received) == attempts
    assert letter.get_id() == sent.get_id()
    assert letter.get_extension("knativeerrorcode") == code
    assert letter.get_extension("knativeerrordest") == sub.url
    assert base64.b64decode(letter.get_extension("knativeerrordata")) == b'{"error": "x"}'


def test_non_cloudevent_2xx_body_is_retried(
    tmp_path: Path, redis_client: redis.Redis, serve, dispatch
) -> None:
    sub, dead = serve(Subscriber([200], body=b"not an event")), serve(Subscriber())
    triggers = dispatch(
        write_manifests(
            tmp_path, trigger_yaml("t", "sub", type_="a", delivery=FAST, dead_letter="dead")
        ),
        {"sub": sub, "dead": dead},
    )
    publish(redis_client, event("a"), triggers)
    (letter,) = poll(lambda: dead.received or None)
    assert len(sub.received) == 3 and letter.get_extension("knativeerrorcode") == "502"


def test_reply_is_republished(tmp_path: Path, redis_client: redis.Redis, serve, dispatch) -> None:
    reply = event("result")
    first, second = serve(Subscriber(reply=reply)), serve(Subscriber())
    triggers = dispatch(
        write_manifests(
            tmp_path,
            trigger_yaml("first", "one", type_="a", delivery=FAST),
            trigger_yaml("second", "two", type_="result", delivery=FAST),
        ),
        {"one": first, "two": second},
    )
    publish(redis_client, event("a"), triggers)
    (got,) = poll(lambda: second.received or None)
    assert got.get_id() == reply.get_id() and len(first.received) == 1


def test_nothing_accepted_is_lost(
    tmp_path: Path, redis_client: redis.Redis, serve, dispatch
) -> None:
    sub = serve(Subscriber())
    manifests = write_manifests(tmp_path, trigger_yaml("t", "sub", type_="a", delivery=FAST))
    triggers = load(manifests)
    ensure_groups(redis_client, ["t"])
    early = event("a")
    publish(redis_client, early, triggers)  # no dispatcher running yet
    # A dispatcher that crashed after reading an entry, before acknowledging it.
    crashed = event("a")
    publish(redis_client, crashed, triggers)
    redis_client.xreadgroup(group_name("t"), "dispatcher", {STREAM_KEY: ">"}, count=1)
    assert pending(redis_client, "t") == 1
    dispatch(manifests, {"sub": sub})
    poll(lambda: len(sub.received) == 2 or None)
    assert {e.get_id() for e in sub.received} == {early.get_id(), crashed.get_id()}
    poll(lambda: pending(redis_client, "t") == 0 or None)


def test_trim_keeps_only_unfinished_entries(
    tmp_path: Path, redis_client: redis.Redis, serve
) -> None:
    sub = serve(Subscriber())
    triggers = load(write_manifests(tmp_path, trigger_yaml("t", "sub", type_="a")))
    dispatcher = Dispatcher(redis_client, triggers, {"sub": sub.url}, 2)
    ensure_groups(redis_client, ["t"])
    for _ in range(3):
        publish(redis_client, event("a"), triggers)
    entries = redis_client.xreadgroup(group_name("t"), "dispatcher", {STREAM_KEY: ">"})[0][1]
    redis_client.xack(STREAM_KEY, group_name("t"), entries[0][0], entries[1][0])
    dispatcher._trim()
    assert [e[0] for e in redis_client.xrange(STREAM_KEY)] == [entries[2][0]]
