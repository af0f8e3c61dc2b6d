"""The unit tests start no process: a test here that tries to fails at once.

Every way the standard library starts a program goes through one of these: subprocess
(run, check_output, Popen: Popen._execute_child), os.posix_spawn(p), os.fork (and so
multiprocessing's fork start method), multiprocessing.util.spawnv_passfds (its spawn and
forkserver start methods) and os.system / os.exec*. Each is replaced for the
test's duration by a function that fails the test with the program's name.
"""

from __future__ import annotations

import multiprocessing.util
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

SPAWNERS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve",
            "execvp", "execvpe")


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        target = args[1] if what == "subprocess.Popen" and len(args) > 1 else args[:1]
        pytest.fail(f"a unit test started a process ({what}: {target!r}); "
                    "tests that start processes belong in tests/integration", pytrace=True)
    return refuse


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if it starts a process (see the module's docstring)."""
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse("subprocess.Popen"))
    monkeypatch.setattr(multiprocessing.util, "spawnv_passfds",
                        _refuse("multiprocessing.util.spawnv_passfds"))
    for name in SPAWNERS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse(f"os.{name}"))
    yield
