"""The job lifecycle's Lua scripts (functions/core/lua): each loads on a real Valkey, each
fragment has one source, and each header names as many KEYS and ARGV as its caller passes."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.commands.core import Script

from thumbnails.core import luascripts
from thumbnails.core.jobs import DELETED, Job, JobStatus, JobStore
from thumbnails.core.statuses import TERMINAL

FILES = sorted(luascripts.LUA_DIR.glob("*.lua"))
INCLUDED = {name for path in FILES
            for name in re.findall(r"^--#include ([a-z_]+)\.lua$", path.read_text(), re.M)}
SCRIPTS = sorted(path.stem for path in FILES if path.stem not in INCLUDED)


def test_the_scripts_and_fragments_are_there() -> None:
    assert {"changed", "settle"} <= INCLUDED
    assert {"claim", "create", "delete", "fail_unfinished", "finish", "forget", "outbox_due",
            "recover", "record_webhook", "release", "renew"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_loads(redis_client: redis.Redis, name: str) -> None:
    text = luascripts.source(name)
    assert not re.search(r"^--#include", text, re.M)  # every include resolved
    sha = redis_client.script_load(text)  # SCRIPT LOAD compiles it: a syntax error fails here
    assert redis_client.script_exists(sha) == [True]


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_header_names_keys_and_argv(name: str) -> None:
    found = luascripts.header(name)
    assert found.keys >= 1 and found.argv >= 1
    text = luascripts.source(name)
    used_keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", text)}
    used_argv = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", text)}
    assert max(used_keys) <= found.keys, "the script reads a key its header does not name"
    assert max(used_argv, default=0) <= found.argv + found.more_argv


@pytest.mark.parametrize("fragment", ["changed", "settle"])
def test_each_fragment_has_one_source(fragment: str) -> None:
    """The function a fragment defines is written in its file only; scripts include it."""
    definition = f"local function {fragment}("
    defined_in = [p.stem for p in FILES if definition in p.read_text()]
    assert defined_in == [fragment]
    users = [name for name in SCRIPTS if f"{fragment}(" in
             luascripts.source(name).replace(definition, "")]
    assert users and all(definition in luascripts.source(name) for name in users)


def test_the_scripts_know_the_same_statuses() -> None:
    """Lua cannot import the Python facts: every status a script compares with is a
    JobStatus (or the tombstone's), and where it asks "finished?" it names both terminal
    statuses."""
    known = {status.value for status in JobStatus} | {DELETED}
    every: set[str] = set()
    for name in SCRIPTS:
        text = luascripts.source(name)
        compared = set(re.findall(r"(?:\bs|'status'\)) [~=]= '([a-z_]+)'", text))
        assert compared <= known, (name, compared - known)
        every |= compared
        pairs = re.findall(r"s == '([a-z]+)' or s == '([a-z]+)'", text)
        assert all(set(pair) == TERMINAL for pair in pairs if set(pair) & TERMINAL), name
        assert text.count("== 'succeeded'") == len(pairs), name
    assert TERMINAL | {DELETED, JobStatus.PROCESSING.value} <= every


class Recorder:
    """Stands in for a registered Script: runs it and notes how many KEYS and ARGV it got."""

    def __init__(self, name: str, script: Script, calls: list[tuple[str, int, int]]) -> None:
        self.name, self.script, self.calls = name, script, calls

    def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        self.calls.append((self.name, len(keys), len(args)))
        return self.script(keys=keys, args=args)


@pytest.fixture
def recorded(redis_client: redis.Redis) -> Iterator[tuple[JobStore, list[tuple[str, int, int]]]]:
    store = JobStore(redis_client, retention_seconds=60)
    by_source = {luascripts.source(name): name for name in SCRIPTS}
    calls: list[tuple[str, int, int]] = []
    wrapped = 0
    for attribute, value in list(vars(store).items()):
        if isinstance(value, Script):
            setattr(store, attribute, Recorder(by_source[value.script], value, calls))
            wrapped += 1
    assert wrapped == len(SCRIPTS)  # every script in lua/ is one the store registers
    yield store, calls


def new_job(store: JobStore, created_at: float) -> Job:
    job = Job(job_id=str(uuid.uuid4()), created_at=created_at, original_key="originals/x",
              client="someone")
    store.create(job, b'{"event": 1}', check_at=created_at, send_by=created_at,
                 idempotency="key-" + job.job_id)
    return job


def test_each_caller_passes_what_the_header_names(
        recorded: tuple[JobStore, list[tuple[str, int, int]]]) -> None:
    store, calls = recorded
    now = time.time()
    done = new_job(store, now)
    assert store.claim(done.job_id, "t1", 30, 5)[0].value == "claimed"
    assert store.renew(done.job_id, "t1", 30, 900)
    store.release(done.job_id, "t1")
    store.claim(done.job_id, "t2", 30, 5)
    assert store.finish(done.job_id, "t2", JobStatus.SUCCEEDED, thumbnail_key="k",
                        thumbnail_width=10)
    assert store.record_webhook(done.job_id, "delivered", 204)
    dead = new_job(store, now)
    assert store.fail_unfinished(dead.job_id, error_code="dead_letter", error_message="x")
    stale = new_job(store, now - 3600)
    assert store.recover(requeue_after=60, deadline=600) == {"requeued": 0, "timed_out": 1}
    assert store.get(stale.job_id).status is JobStatus.FAILED
    store.outbox_due(retry_after=10, batch=10)
    assert store.delete(done.job_id)
    store.forget(done.job_id, store.index_entry(done.job_id) or "")

    assert {name for name, _, _ in calls} == set(SCRIPTS)
    wrong = [(name, keys, argv, luascripts.header(name)) for name, keys, argv in calls
             if not luascripts.header(name).accepts(keys, argv)]
    assert wrong == []


def test_header_accepts_only_its_counts() -> None:
    finish = luascripts.Header(keys=3, argv=4, more_argv=True)
    assert finish.accepts(3, 4) and finish.accepts(3, 8)
    assert not finish.accepts(3, 5) and not finish.accepts(2, 4) and not finish.accepts(3, 3)
    renew = luascripts.Header(keys=2, argv=4, more_argv=False)
    assert renew.accepts(2, 4) and not renew.accepts(2, 6)
