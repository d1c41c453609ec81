"""Flush on SIGTERM for servers that do not handle it themselves (runserver, plain scripts),
or that hand it back once they are done (uvicorn re-raises it after a graceful shutdown)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from crm_otel._providers import FLUSH_TIMEOUT_MILLIS, flush_all


def _nothing() -> None:
    return None


_flush_first: Callable[[], None] = _nothing


def install_sigterm_flush(flush_first: Callable[[], None] = _nothing) -> None:
    """Flush the providers on SIGTERM, then die of SIGTERM as the process would have.

    `flush_first` runs before the providers' flush (the metrics' state file).

    Only when SIGTERM still has its default action: gunicorn and Celery install their
    own handlers later and exit through paths where the SDK's atexit hooks run. uvicorn
    also installs its own, then restores this one and raises SIGTERM again after its
    graceful shutdown, so its workers end here too.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    global _flush_first
    _flush_first = flush_first
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # The handler runs on the main thread between two bytecodes, possibly inside a
    # processor's lock: flushing here could wait on that lock forever. A thread flushes,
    # and the process dies when it is done or its time is up, whichever comes first.
    flusher = threading.Thread(
        target=_flush_before_exit, name="crm-otel-sigterm-flush", daemon=True
    )
    flusher.start()
    flusher.join(FLUSH_TIMEOUT_MILLIS / 1000 + 1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _flush_before_exit() -> None:
    # Dying of SIGTERM skips atexit, where the metrics state file gets its last write:
    # written first, as it is local and quick, while the exporters may wait on a network.
    _flush_first()
    flush_all()
