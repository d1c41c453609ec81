"""The shape of one metric definition in the catalogue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackT, Meter


class InstrumentKind(Enum):
    """The OpenTelemetry instrument a metric is recorded with."""

    COUNTER = "counter"
    UP_DOWN_COUNTER = "up_down_counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True)
class MetricDefinition:
    """One metric: its OpenTelemetry name, instrument, unit, labels and exposed name.

    `prometheus_name` is the family Prometheus must see, exactly (without the
    `_bucket`/`_sum`/`_count` suffixes of a histogram).
    """

    name: str
    kind: InstrumentKind
    unit: str
    description: str
    labels: tuple[str, ...]
    prometheus_name: str

    def create(self, meter: Meter, **kwargs: Any) -> Any:
        """Create this metric's instrument on `meter`."""
        factory: Callable[..., Any] = {
            InstrumentKind.COUNTER: meter.create_counter,
            InstrumentKind.UP_DOWN_COUNTER: meter.create_up_down_counter,
            InstrumentKind.HISTOGRAM: meter.create_histogram,
            InstrumentKind.GAUGE: meter.create_gauge,
        }[self.kind]
        return factory(self.name, unit=self.unit, description=self.description, **kwargs)

    def create_observable(self, meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
        """Create this metric as an observable instrument whose `callbacks` report it."""
        factories: dict[InstrumentKind, Callable[..., Any]] = {
            InstrumentKind.COUNTER: meter.create_observable_counter,
            InstrumentKind.UP_DOWN_COUNTER: meter.create_observable_up_down_counter,
            InstrumentKind.GAUGE: meter.create_observable_gauge,
        }
        if self.kind not in factories:
            raise ValueError(f"{self.name}: a {self.kind.value} has no observable form")
        return factories[self.kind](
            self.name, callbacks=list(callbacks), unit=self.unit, description=self.description
        )
