"""The JSON form of families in the per-process state files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_otel.metrics._values import Families, Histogram, Labels, Value


def families_to_json(families: Families) -> dict[str, Any]:
    """A JSON-ready form of `families`."""
    out: dict[str, Any] = {}
    for name, series in families.items():
        rows: list[list[Any]] = []
        for labels, value in series.items():
            if isinstance(value, Histogram):
                rows.append(
                    [
                        [list(p) for p in labels],
                        {"b": value.bounds, "c": value.counts, "s": value.total},
                    ]
                )
            else:
                rows.append([[list(p) for p in labels], value])
        out[name] = rows
    return out


def families_from_json(data: Mapping[str, Any]) -> Families:
    """The inverse of `families_to_json`; raises ValueError/TypeError/KeyError on bad input."""
    families: Families = {}
    for name, rows in data.items():
        series: dict[Labels, Value] = {}
        for raw_labels, raw_value in rows:
            labels = tuple((str(k), str(v)) for k, v in raw_labels)
            if isinstance(raw_value, dict):
                series[labels] = Histogram(
                    tuple(float(b) for b in raw_value["b"]),
                    tuple(int(c) for c in raw_value["c"]),
                    float(raw_value["s"]),
                )
            else:
                series[labels] = float(raw_value)
        families[str(name)] = series
    return families
