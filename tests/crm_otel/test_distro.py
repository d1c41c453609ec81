"""The distro's defaults and the exporters they select."""

from __future__ import annotations

import os

import pytest

from crm_otel import _sdk
from crm_otel._distro import apply_defaults, is_helper_process


def test_defaults_fill_only_unset_variables() -> None:
    """crm-otel's defaults never override what the user set."""
    env = {"OTEL_TRACES_EXPORTER": "console"}
    apply_defaults(env)
    assert env["OTEL_TRACES_EXPORTER"] == "console"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"] == "crm-backend"
    assert env["OTEL_METRICS_EXPORTER"] == "none"


def test_service_name_from_resource_attributes_wins() -> None:
    """A service.name given in OTEL_RESOURCE_ATTRIBUTES is not shadowed by the default."""
    env = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing"}
    apply_defaults(env)
    assert "OTEL_SERVICE_NAME" not in env
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"  # the other defaults still apply


@pytest.mark.parametrize(
    ("protocol", "module"),
    [
        (None, "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
    ],
)
def test_otlp_protocol_selects_the_exporter(protocol: str | None, module: str) -> None:
    """OTLP over HTTP/protobuf by default (Jaeger's 4318); gRPC when asked for."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]
    if protocol:
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    apply_defaults(os.environ)
    spans, _, _ = _sdk.exporters_from_env()
    (exporter,) = spans.values()
    assert exporter.__module__ == module


class _Recording:
    """An instrumentor that keeps the options it was given."""

    given: dict[str, object] = {}

    def instrument(self, **kwargs: object) -> None:
        type(self).given = kwargs


@pytest.mark.parametrize("name", ["psycopg", "psycopg2"])
@pytest.mark.parametrize("commenter", ["true", "false"])
def test_both_postgres_drivers_get_the_same_options(name: str, commenter: str) -> None:
    """psycopg 3 and psycopg2 never capture parameters; sqlcommenter follows the variable."""
    from opentelemetry.util._importlib_metadata import EntryPoint

    from crm_otel._distro import CrmOtelDistro

    os.environ["CRM_OTEL_SQLCOMMENTER"] = commenter
    entry_point = EntryPoint(name, f"{__name__}:_Recording", "opentelemetry_instrumentor")
    CrmOtelDistro().load_instrumentor(entry_point, capture_parameters=True)
    assert _Recording.given == {
        "capture_parameters": False,
        "enable_commenter": commenter == "true",
    }


@pytest.mark.parametrize(
    ("exporter", "metered"),
    [(None, False), ("none", False), ("otlp", True), ("none,prometheus", True)],
)
def test_contrib_metrics_only_when_a_metric_exporter_reads_them(
    exporter: str | None, metered: bool
) -> None:
    """An instrumentation with metrics of its own records them only when
    `OTEL_METRICS_EXPORTER` names an exporter; otherwise it gets a no-op meter provider."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.util._importlib_metadata import EntryPoint

    from crm_otel._distro import CrmOtelDistro

    os.environ.pop("OTEL_METRICS_EXPORTER", None)
    if exporter is not None:
        os.environ["OTEL_METRICS_EXPORTER"] = exporter
    entry_point = EntryPoint("celery", f"{__name__}:_Recording", "opentelemetry_instrumentor")
    CrmOtelDistro().load_instrumentor(entry_point)
    given = _Recording.given.get("meter_provider")
    assert (given is None) is metered
    assert metered or isinstance(given, NoOpMeterProvider)


@pytest.mark.parametrize(
    ("argv", "helper"),
    [
        (["python", "-B", "-c", "from multiprocessing.resource_tracker import main;main(6)"], True),
        (["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"], False),
        (["python", "/venv/bin/uvicorn", "crm.asgi:application", "--workers", "2"], False),
    ],
)
def test_only_the_resource_tracker_is_a_helper(argv: list[str], helper: bool) -> None:
    """multiprocessing's resource tracker is left uninstrumented; spawned workers are not."""
    assert is_helper_process(argv) is helper
