"""knative/ manifests agree with the code: filtered types are emitted, subscribers exist."""

from __future__ import annotations

from thumbnails.core import events
from thumbnails.local.broker.settings import BrokerSettings
from thumbnails.local.broker.triggers import load, resolve
from thumbnails.local.devstack import APPS

# Subscribers that are example integrations, not parts of the local stack (which skips them).
INTEGRATIONS = {"event-display"}


def test_every_trigger_takes_some_type_the_code_emits() -> None:
    triggers = load(BrokerSettings().knative_dir)
    assert triggers, "no Trigger manifests found"
    for trigger in triggers:
        # resize sets events.CALLBACK on the results of jobs with a callback_url
        taken = [t for t in events.EVENT_TYPES
                 if trigger.matches({"type": t, "source": "/x", events.CALLBACK: "true"})]
        assert taken, f"{trigger.name} takes none of {events.EVENT_TYPES}"


def test_status_webhooks_take_only_results_of_jobs_with_a_callback() -> None:
    (trigger,) = [t for t in load(BrokerSettings().knative_dir) if t.subscriber.uri == "/webhooks"]
    assert trigger.subscriber.service == "status"
    for event_type in (events.THUMBNAIL_GENERATED, events.THUMBNAIL_FAILED):
        assert trigger.matches({"type": event_type, "source": "/x", events.CALLBACK: "true"})
        assert not trigger.matches({"type": event_type, "source": "/x"})
    assert not trigger.matches({"type": events.IMAGE_UPLOADED, "source": "/x",
                                events.CALLBACK: "true"})


def test_the_local_stack_can_reach_every_destination() -> None:
    subscribers = {name: f"http://127.0.0.1:{i}" for i, name in enumerate(APPS)}
    for trigger in load(BrokerSettings().knative_dir):
        if trigger.subscriber.service in INTEGRATIONS:
            assert trigger.subscriber.service not in subscribers
        else:
            assert resolve(trigger.subscriber, subscribers).startswith("http://127.0.0.1:")
        sink = trigger.delivery.dead_letter_sink
        assert sink is not None, f"{trigger.name} has no dead-letter sink"
        assert resolve(sink, subscribers).endswith("/dead-letter")


def test_thumbnail_events_reach_the_example_integration() -> None:
    (trigger,) = [t for t in load(BrokerSettings().knative_dir)
                  if t.subscriber.service == "event-display"]
    assert {t for t in events.EVENT_TYPES if trigger.matches({"type": t, "source": "/x"})} \
        == {events.THUMBNAIL_GENERATED, events.THUMBNAIL_FAILED}
    assert trigger.delivery.retry > 0 and trigger.delivery.timeout > 0


def test_resize_trigger_delivery_is_complete() -> None:
    (trigger,) = [t for t in load(BrokerSettings().knative_dir)
                  if t.attributes.get("type") == events.IMAGE_UPLOADED]
    assert trigger.delivery.retry >= 3
    assert trigger.delivery.backoff_policy == "exponential"
    assert 0 < trigger.delivery.backoff_delay <= 5
    assert 0 < trigger.delivery.timeout <= 600
