"""A job's statuses: plain data, no Redis, so the HTTP client and the web page read the same
facts the service does (thumbnails.core.jobs keeps the records)."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self.value in TERMINAL


# The statuses a job never leaves. The Lua scripts in lua/ test for the same two.
TERMINAL = frozenset({JobStatus.SUCCEEDED.value, JobStatus.FAILED.value})
