"""A local stand-in for Knative Eventing's Broker: same manifests, same delivery contract.

Accepted events are kept in one Redis Stream; each Trigger is a consumer group on it, so
an event stays pending until its delivery (or dead-lettering) is finished.
"""

STREAM_KEY = "thumbnails:broker:events"  # the one place the broker's Redis names are defined
CONSUMER = "dispatcher"  # one dispatcher process: it resumes its own pending entries


def group_name(trigger_name: str) -> str:
    """The consumer group that tracks one Trigger's progress through the stream."""
    return f"trigger:{trigger_name}"
