"""`register_at_fork`: hooks run around a real fork, and never keep their object alive."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from sampling._fork import register_at_fork

Register = Callable[..., None]
HELPERS = [register_at_fork]


class _Hooks:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before(self) -> None:
        self.calls.append("before")

    def in_parent(self) -> None:
        self.calls.append("in_parent")

    def in_child(self) -> None:
        self.calls.append("in_child")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("register", HELPERS, ids=["sampling"])
def test_hooks_run_around_a_real_fork(register: Register) -> None:
    """`before` and `after_in_parent` run in the parent, `after_in_child` in the child."""
    hooks = _Hooks()
    register(before=hooks.before, after_in_parent=hooks.in_parent, after_in_child=hooks.in_child)
    pid = os.fork()
    if pid == 0:  # the child: answer through the exit code, never return into pytest
        os._exit(0 if hooks.calls == ["before", "in_child"] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert hooks.calls == ["before", "in_parent"]


@pytest.mark.parametrize("register", HELPERS, ids=["sampling"])
def test_hooks_do_not_keep_their_object_alive(register: Register) -> None:
    """Once nothing else holds the object, it is collected despite its registered hooks."""
    hooks: Any = _Hooks()
    register(before=hooks.before, after_in_parent=hooks.in_parent, after_in_child=hooks.in_child)
    gone = weakref.ref(hooks)
    del hooks
    gc.collect()
    assert gone() is None
