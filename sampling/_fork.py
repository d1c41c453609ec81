"""At-fork hooks that never keep their object alive.

`sampling` imports nothing from `crm_otel`, so the one helper lives here and `crm_otel`
imports it from here (the arrows between the packages point one way).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any


def register_at_fork(
    *,
    before: Callable[[], Any] | None = None,
    after_in_parent: Callable[[], Any] | None = None,
    after_in_child: Callable[[], Any] | None = None,
) -> None:
    """Call these bound methods around every `os.fork()` while their object lives.

    `os.register_at_fork` has no way to unregister: the hooks hold each method through a
    `weakref.WeakMethod`, so an object that is gone costs one dead reference, not a leak.
    """
    if not hasattr(os, "register_at_fork"):  # not on Windows
        return
    hooks = {
        when: _weakly(method)
        for when, method in (
            ("before", before),
            ("after_in_parent", after_in_parent),
            ("after_in_child", after_in_child),
        )
        if method is not None
    }
    os.register_at_fork(**hooks)


def _weakly(method: Callable[[], Any]) -> Callable[[], None]:
    ref = weakref.WeakMethod(method)

    def hook() -> None:
        bound = ref()
        if bound is not None:
            bound()

    return hook
