"""The library's own logger: straight to stderr, never into the handlers it installs."""

import logging
import sys

internal_logger = logging.getLogger("crm_otel")
# No propagation: the JSON and OTLP handlers crm-otel installs on the root logger must
# never receive crm-otel's own records (no feedback loops).
internal_logger.propagate = False
if not internal_logger.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("crm-otel %(levelname)s: %(message)s"))
    internal_logger.addHandler(_handler)
    internal_logger.setLevel(logging.INFO)
