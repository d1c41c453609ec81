"""SIGTERM flush for processes that do not handle SIGTERM themselves."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap


def test_sigterm_inside_a_processor_lock_still_terminates() -> None:
    """SIGTERM arriving while the main thread holds a processor's lock does not hang the
    process: it still dies of SIGTERM, within the flush timeout."""
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider, SpanProcessor
        from crm_otel._lifecycle import install_sigterm_flush

        class Locking(SpanProcessor):
            def __init__(self):
                self.lock = threading.Lock()
            def force_flush(self, timeout_millis=30000):
                with self.lock:
                    return True

        processor = Locking()
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        install_sigterm_flush()
        with processor.lock:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=25, capture_output=True)
    assert result.returncode == -signal.SIGTERM, result.stderr.decode()
