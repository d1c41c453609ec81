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


@dataclass(frozen=True, kw_only=True)
class MetricDefinition:
    """One metric: its OpenTelemetry name, instrument, unit, labels and exposed name.

    `prometheus_name` is the family Prometheus must see, exactly (without the
    `_bucket`/`_sum`/`_count` suffixes of a histogram). An `observable` metric is
    reported at collection time from state its process keeps (callbacks of an observable
    instrument), not recorded per event; a forked child reports its own state.
    """

    name: str
    kind: InstrumentKind
    unit: str
    description: str
    labels: tuple[str, ...] = ()
    prometheus_name: str
    observable: bool = False

    def __post_init__(self) -> None:
        if self.observable and self.kind is InstrumentKind.HISTOGRAM:
            raise ValueError(f"{self.name}: a histogram has no observable form")

    def create(self, meter: Meter, callbacks: Sequence[CallbackT] = ()) -> Any:
        """Create this metric's instrument on `meter`; an observable one is reported by
        `callbacks`, which only an observable one takes."""
        if self.observable:
            observable: dict[InstrumentKind, Callable[..., Any]] = {
                InstrumentKind.COUNTER: meter.create_observable_counter,
                InstrumentKind.UP_DOWN_COUNTER: meter.create_observable_up_down_counter,
                InstrumentKind.GAUGE: meter.create_observable_gauge,
            }
            return observable[self.kind](
                self.name, callbacks=list(callbacks), unit=self.unit, description=self.description
            )
        if callbacks:
            raise ValueError(f"{self.name}: callbacks given, but it is recorded per event")
        synchronous: dict[InstrumentKind, Callable[..., Any]] = {
            InstrumentKind.COUNTER: meter.create_counter,
            InstrumentKind.UP_DOWN_COUNTER: meter.create_up_down_counter,
            InstrumentKind.HISTOGRAM: meter.create_histogram,
            InstrumentKind.GAUGE: meter.create_gauge,
        }
        return synchronous[self.kind](self.name, unit=self.unit, description=self.description)
