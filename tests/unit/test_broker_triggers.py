"""The local broker's Trigger manifests (thumbnails.local.broker.triggers): loading, filters,
delivery settings, destinations, durations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.broker import BROKER_DELIVERY, trigger_doc, write_manifests
from thumbnails.core import events
from thumbnails.local.broker.settings import BrokerSettings
from thumbnails.local.broker.triggers import (
    DEFAULT_TIMEOUT,
    Delivery,
    Destination,
    ManifestError,
    load,
    parse_duration,
    parse_subscribers,
    resolve,
)


def test_project_trigger_manifest() -> None:
    knative_dir = BrokerSettings().knative_dir
    name = "resize-on-image-uploaded"
    (trigger,) = [t for t in load(knative_dir) if t.name == name]
    raw = yaml.safe_load((knative_dir / f"trigger-{name}.yaml").read_text())
    spec = raw["spec"]["delivery"]
    assert trigger.broker == "default"
    assert trigger.attributes == {"type": events.IMAGE_UPLOADED}
    assert trigger.filters == ()
    assert trigger.subscriber == Destination(service="resize")
    delivery = trigger.delivery
    assert delivery.retry == spec["retry"] > 0
    assert delivery.backoff_policy == "exponential"
    assert delivery.backoff_delay == parse_duration(spec["backoffDelay"]) > 0
    assert delivery.timeout == parse_duration(spec["timeout"]) > 0
    assert delivery.dead_letter_sink == Destination(service="resize", uri="/dead-letter")
    assert trigger.matches({"type": events.IMAGE_UPLOADED, "source": "/x"})
    assert not trigger.matches({"type": events.THUMBNAIL_GENERATED, "source": "/x"})


def test_other_brokers_triggers_are_ignored(tmp_path: Path) -> None:
    manifests = write_manifests(tmp_path, trigger_doc("mine", "s"),
                                trigger_doc("theirs", "s", broker="other"))
    assert [t.name for t in load(manifests)] == ["mine"]
    assert [t.name for t in load(manifests, broker="other")] == ["theirs"]


def test_triggers_naming_services_with_no_local_url_are_left_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifests = write_manifests(
        tmp_path, trigger_doc("here", "s"), trigger_doc("display", "event-display"),
        trigger_doc("dead-letter-elsewhere", "s", delivery=BROKER_DELIVERY, dead_letter="gone"))
    assert [t.name for t in load(manifests, reachable={"s": "http://127.0.0.1:9"})] == ["here"]
    assert "event-display" in caplog.text and "gone" in caplog.text
    assert len(load(manifests)) == 3  # without a map of local URLs, nothing is left out


@pytest.mark.parametrize(
    ("filters", "matching", "other"),
    [
        ([{"exact": {"type": "a.b"}}], "a.b", "a.bc"),
        ([{"prefix": {"type": "dev.x"}}], "dev.x.y", "dev.y"),
        ([{"suffix": {"type": ".failed"}}], "t.failed", "t.generated"),
        ([{"all": [{"prefix": {"type": "a"}}, {"suffix": {"type": "z"}}]}], "abz", "abc"),
        ([{"any": [{"exact": {"type": "p"}}, {"exact": {"type": "q"}}]}], "q", "r"),
        ([{"not": {"exact": {"type": "p"}}}], "q", "p"),
        ([{"prefix": {"type": "a"}}, {"suffix": {"type": "z"}}], "az", "ay"),
    ],
    ids=["exact", "prefix", "suffix", "all", "any", "not", "several"],
)
def test_filters_dialect(
    tmp_path: Path, filters: list[dict[str, Any]], matching: str, other: str
) -> None:
    (trigger,) = load(write_manifests(tmp_path, trigger_doc("t", "s", filters=filters)))
    assert trigger.matches({"type": matching, "source": "/x"})
    assert not trigger.matches({"type": other, "source": "/x"})


def test_filters_take_precedence_over_filter_attributes(tmp_path: Path) -> None:
    doc = trigger_doc("t", "s", type_="a", filters=[{"exact": {"type": "b"}}])
    (trigger,) = load(write_manifests(tmp_path, doc))
    assert trigger.matches({"type": "b"}) and not trigger.matches({"type": "a"})


def test_filter_on_missing_attribute_does_not_match(tmp_path: Path) -> None:
    doc = trigger_doc("t", "s", filters=[{"prefix": {"subject": "jobs/"}}])
    (trigger,) = load(write_manifests(tmp_path, doc))
    assert trigger.matches({"type": "a", "subject": "jobs/1"})
    assert not trigger.matches({"type": "a"})


def test_attribute_filter_and_inherited_delivery(tmp_path: Path) -> None:
    (trigger,) = load(write_manifests(tmp_path, trigger_doc("t", "s", type_="a")))
    assert trigger.matches({"type": "a"}) and not trigger.matches({"type": "b"})
    assert trigger.delivery == Delivery(retry=1, backoff_policy="exponential",
                                        backoff_delay=0.01, timeout=DEFAULT_TIMEOUT)


def test_trigger_delivery_replaces_brokers_whole(tmp_path: Path) -> None:
    doc = trigger_doc("t", "s", delivery={"retry": 3}, dead_letter="dl")
    (trigger,) = load(write_manifests(tmp_path, doc))
    assert trigger.delivery == Delivery(retry=3, dead_letter_sink=Destination(service="dl"))


def test_no_filter_matches_everything(tmp_path: Path) -> None:
    (trigger,) = load(write_manifests(tmp_path, trigger_doc("t", "s")))
    assert trigger.matches({"type": "anything", "source": "/x"})


@pytest.mark.parametrize(
    "filters",
    [
        [{"cesql": "type = 'a'"}],
        [{"exact": {"type": "a"}, "prefix": {"type": "a"}}],
        [{"all": [{"cesql": "type = 'a'"}]}],
        [{"not": {"cesql": "type = 'a'"}}],
    ],
    ids=["cesql", "two-in-one", "cesql-in-all", "cesql-in-not"],
)
def test_unsupported_filter_is_refused_at_load(
    tmp_path: Path, filters: list[dict[str, Any]]
) -> None:
    with pytest.raises(ManifestError):
        load(write_manifests(tmp_path, trigger_doc("t", "s", filters=filters)))


def test_non_service_ref_is_refused(tmp_path: Path) -> None:
    doc = trigger_doc("t", "s")
    doc["spec"]["subscriber"]["ref"]["kind"] = "Channel"
    with pytest.raises(ManifestError):
        load(write_manifests(tmp_path, doc))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT0.5S", 0.5), ("PT1M", 60.0), ("P1DT1H", 90_000.0), ("PT1H30M", 5400.0),
     ("P2D", 172_800.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "P", "PT", "5s", "PT5", "1S", "PTS", "-PT1S"])
def test_parse_duration_refuses_bad_values(bad: str) -> None:
    with pytest.raises(ManifestError):
        parse_duration(bad)


def test_bad_duration_in_manifest_is_refused(tmp_path: Path) -> None:
    doc = trigger_doc("t", "s", delivery={"retry": 1, "timeout": "30 seconds"})
    with pytest.raises(ManifestError):
        load(write_manifests(tmp_path, doc))


def test_backoff_linear_vs_exponential() -> None:
    linear = Delivery(backoff_policy="linear", backoff_delay=0.5)
    exponential = Delivery(backoff_policy="exponential", backoff_delay=0.5)
    assert [linear.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 2.0]
    assert [exponential.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_resolve_destinations() -> None:
    subscribers = {"resize": "http://127.0.0.1:1"}
    assert resolve(Destination("resize"), subscribers) == "http://127.0.0.1:1"
    assert resolve(Destination("resize", "/dead-letter"), subscribers) == (
        "http://127.0.0.1:1/dead-letter")
    assert resolve(Destination("resize", "dead-letter"), subscribers) == (
        "http://127.0.0.1:1/dead-letter")
    assert resolve(Destination(uri="https://sink/x"), subscribers) == "https://sink/x"
    with pytest.raises(ManifestError):
        resolve(Destination("unknown"), subscribers)
    with pytest.raises(ManifestError):
        resolve(Destination(uri="/relative-without-ref"), subscribers)


def test_parse_subscribers() -> None:
    assert parse_subscribers("resize=http://127.0.0.1:1/, x = http://h:2 ,") == {
        "resize": "http://127.0.0.1:1", "x": "http://h:2"}
    assert parse_subscribers("a=http://h:1/?q=1") == {"a": "http://h:1/?q=1"}
    assert parse_subscribers("") == {}
    with pytest.raises(ManifestError):
        parse_subscribers("no-equals-sign")
