"""A metrics runtime on a private MeterProvider and state directory, removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from crm_otel.metrics import _build_runtime, _runtime, _tenants
from crm_otel.metrics._instruments import views
from crm_otel.metrics._settings import MetricsSettings


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[_runtime.Runtime]:
    """The current metrics runtime, writing to `tmp_path`, with a 50 ms write interval."""
    settings = MetricsSettings.from_env(
        {
            "CRM_OTEL_METRICS_DIR": str(tmp_path),
            "CRM_OTEL_METRICS_WRITE_INTERVAL_MS": "50",
            "CRM_OTEL_METRICS_LABEL_CAP": "3",
        }
    )
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=views())
    built = _build_runtime(settings, provider, reader)
    _runtime.install(built)
    yield built
    _runtime.install(None)
    _tenants.install(None)
    built.recorder.shutdown()
    provider.shutdown()
