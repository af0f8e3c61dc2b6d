"""CloudEvents round-tripped with the SDK in binary and structured mode."""

from __future__ import annotations

import pytest

from thumbnails.core import events
from thumbnails.core.errors import InvalidEvent


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_round_trip(structured: bool) -> None:
    event = events.new_event(events.IMAGE_UPLOADED, "/src", {"job_id": "j", "size": 3},
                             subject="j", extensions={"correlationid": "c1"})
    headers, body = events.to_http(event, structured=structured)
    assert ("ce-type" in headers) is not structured
    back = events.from_http(headers, body)
    assert back.get_id() == event.get_id() and back.get_type() == events.IMAGE_UPLOADED
    assert back.get_subject() == "j" and back.get_extension("correlationid") == "c1"
    assert events.data_of(back) == {"job_id": "j", "size": 3}


def test_json_storage_round_trip() -> None:
    event = events.new_event(events.THUMBNAIL_GENERATED, "/r", {"a": [1, 2]})
    back = events.from_json(events.to_json(event))
    assert back.get_id() == event.get_id() and events.data_of(back) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Type": "text/plain"}, b"hello"),
        ({"ce-type": "t", "ce-id": "1", "ce-specversion": "1.0"}, b"{}"),  # no source
        ({"Content-Type": "application/cloudevents+json"}, b"{not json"),
        ({"Content-Type": "application/cloudevents+json"}, b'{"type": "t"}'),
    ],
)
def test_malformed_events_are_invalid(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(InvalidEvent):
        events.from_http(headers, body)


def test_data_must_be_an_object() -> None:
    event = events.CloudEvent({"type": "t", "source": "/s"}, data=b"[1]")
    with pytest.raises(InvalidEvent):
        events.data_of(event)


def test_reply_ids_are_stable() -> None:
    assert events.reply_id("j", events.THUMBNAIL_FAILED) == events.reply_id(
        "j", events.THUMBNAIL_FAILED)
    assert events.reply_id("j", events.THUMBNAIL_FAILED) != events.reply_id(
        "j", events.THUMBNAIL_GENERATED)
    assert len(events.EVENT_TYPES) == len(set(events.EVENT_TYPES)) == 3
