"""The catalogue families found in the SDK's collected metrics, as plain data."""

from __future__ import annotations

from typing import Any

from crm_otel.metrics._values import Families, Histogram, Value, add, labels_of
from semconv import metrics as semconv_metrics


def from_metrics_data(data: Any) -> Families:
    """The catalogue families found in the SDK's `MetricsData` (other metrics are skipped)."""
    families: Families = {}
    if data is None:
        return families
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                definition = semconv_metrics.BY_NAME.get(metric.name)
                if definition is None:
                    continue
                series = families.setdefault(definition.prometheus_name, {})
                for point in metric.data.data_points:
                    labels = labels_of(point.attributes)
                    if hasattr(point, "bucket_counts"):
                        value: Value = Histogram(
                            tuple(float(b) for b in point.explicit_bounds),
                            tuple(int(c) for c in point.bucket_counts),
                            float(point.sum),
                        )
                    else:
                        value = float(point.value)
                    series[labels] = add(series[labels], value) if labels in series else value
    return families
