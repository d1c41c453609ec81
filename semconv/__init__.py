"""The CRM's semantic conventions: attribute keys, span names and metric definitions.

Names only: importing this package creates no SDK object.
"""

from semconv import attributes, metrics, spans
from semconv._definition import InstrumentKind, MetricDefinition

__all__ = ["InstrumentKind", "MetricDefinition", "attributes", "metrics", "spans"]
