"""SIGTERM flush for processes that do not handle SIGTERM themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from crm_otel.metrics._store import GroupStore


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


def test_sigterm_writes_the_metrics_state_first(tmp_path: Path) -> None:
    """A process dying of SIGTERM (runserver; a uvicorn worker, whose server hands SIGTERM
    back after its graceful shutdown) writes its metrics state file first: counts made
    since the last periodic write are not lost."""
    script = textwrap.dedent(
        """
        import os, signal, sys, time
        from opentelemetry.sdk.resources import Resource
        from crm_otel import metrics
        from crm_otel._lifecycle import install_sigterm_flush
        from crm_otel.metrics import _runtime

        metrics.setup_metrics(Resource.create({}), {}, os.environ)
        install_sigterm_flush(metrics.flush_state)
        time.sleep(0.3)  # past the first periodic write
        labels = {"method": "GET", "path": "/x/", "status": "200"}
        _runtime.current().instruments.http_requests.add(3, labels)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        """
    )
    env = {
        **os.environ,
        "CRM_OTEL_METRICS_DIR": str(tmp_path),
        "CRM_OTEL_METRICS_WRITE_INTERVAL_MS": "1000",
    }
    env.pop("_CRM_OTEL_METRICS_GROUP", None)
    result = subprocess.run(
        [sys.executable, "-c", script], timeout=25, capture_output=True, env=env
    )
    assert result.returncode == -signal.SIGTERM, result.stderr.decode()
    (group,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    families = GroupStore(str(group)).collect().families
    key = (("method", "GET"), ("path", "/x/"), ("status", "200"))
    assert families["http_requests_total"][key] == 3


def test_exit_writes_the_state_after_the_last_metric_export(tmp_path: Path) -> None:
    """At a normal exit the meter provider's final export runs before the state file's last
    write: `crm_otel_export_items_total{signal="metrics"}` holds every point handed to the
    exporter, the final export's included."""
    script = textwrap.dedent(
        """
        import os, sys
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
        from opentelemetry.sdk.resources import Resource
        from crm_otel import metrics

        class Counting(MetricExporter):
            points = 0
            def export(self, metrics_data, timeout_millis=10_000, **kwargs):
                for rm in metrics_data.resource_metrics:
                    for sm in rm.scope_metrics:
                        for metric in sm.metrics:
                            Counting.points += len(metric.data.data_points)
                return MetricExportResult.SUCCESS
            def force_flush(self, timeout_millis=10_000):
                return True
            def shutdown(self, timeout_millis=30_000, **kwargs):
                with open(os.environ["POINTS_FILE"], "w") as handle:
                    handle.write(str(Counting.points))

        metrics.setup_metrics(Resource.create({}), {"counting": Counting}, os.environ)
        sys.exit(0)
        """
    )
    points_file = tmp_path / "points"
    env = {
        **os.environ,
        "CRM_OTEL_METRICS_DIR": str(tmp_path / "m"),
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the final export at shutdown
        "POINTS_FILE": str(points_file),
    }
    env.pop("_CRM_OTEL_METRICS_GROUP", None)
    result = subprocess.run(
        [sys.executable, "-c", script], timeout=25, capture_output=True, env=env
    )
    assert result.returncode == 0, result.stderr.decode()
    exported = int(points_file.read_text())
    (group,) = [p for p in (tmp_path / "m").iterdir() if p.is_dir()]
    families = GroupStore(str(group)).collect().families
    assert exported > 0
    assert families["crm_otel_export_items_total"][(("signal", "metrics"),)] == exported
