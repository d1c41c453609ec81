"""What `crm-otel check` finds out by trying: the OTLP endpoint, the metrics port, the
Django settings, the instrumentations that would load, and a competing distro."""

from __future__ import annotations

import contextlib
import importlib
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

OK, WARN, PROBLEM = "ok", "warn", "problem"

LIBRARIES = {
    "django": ("django",),
    "psycopg2": ("psycopg2", "psycopg2-binary"),
    "psycopg": ("psycopg",),
    "redis": ("redis",),
    "celery": ("celery",),
}
"""Instrumentations crm-otel configures, and the distributions of the library each traces."""

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Finding:
    """One probe's result: `problem` makes `check` exit 1, and `fix` says what to do."""

    level: str
    subject: str
    text: str
    fix: str = ""


def run_probes(environ: Mapping[str, str]) -> list[Finding]:
    """Every probe, in the order `check` prints them."""
    return [
        *probe_endpoint(environ),
        *probe_metrics_port(environ),
        probe_django(environ),
        *probe_instrumentations(),
        *probe_distros(environ),
    ]


def _signal_endpoint(environ: Mapping[str, str], protocol: str) -> str:
    specific = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if specific:
        return specific
    default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or default
    return base if protocol == "grpc" else base.rstrip("/") + "/v1/traces"


def probe_endpoint(environ: Mapping[str, str]) -> list[Finding]:
    """Whether the traces endpoint answers: an empty OTLP/HTTP export, or a TCP connect
    for gRPC."""
    from crm_otel._masks import mask_url

    exporters = {e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
    if not exporters & {"otlp", "otlp_proto_http", "otlp_proto_grpc"}:
        return []
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    grpc = protocol == "grpc" or "otlp_proto_grpc" in exporters
    url = _signal_endpoint(environ, "grpc" if grpc else "http")
    subject = f"OTLP endpoint {mask_url(url)}"
    fix = "start Jaeger or the Collector there, or set OTEL_EXPORTER_OTLP_ENDPOINT"
    if grpc:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            with socket.create_connection((parts.hostname or "localhost", parts.port or 4317), 3):
                return [Finding(OK, subject, "accepts connections (gRPC)")]
        except OSError as exc:
            return [Finding(WARN, subject, f"does not answer: {exc}; traces are dropped", fix)]
    request = urllib.request.Request(
        url, data=b"", headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return [Finding(OK, subject, f"answered an empty export with HTTP {response.status}")]
    except urllib.error.HTTPError as exc:
        return [
            Finding(
                WARN,
                subject,
                f"answered an empty export with HTTP {exc.code} {exc.reason}",
                "check the path (Jaeger and the Collector take /v1/traces on port 4318)",
            )
        ]
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return [Finding(WARN, subject, f"does not answer: {reason}; traces are dropped", fix)]


def probe_metrics_port(environ: Mapping[str, str]) -> list[Finding]:
    """Whether the standalone metrics port (Celery workers) is free to bind."""
    from crm_otel._env import EnvReader
    from crm_otel.metrics._settings import MetricsSettings

    settings = MetricsSettings.from_env(environ, reader=EnvReader(environ, quiet=True))
    if not settings.enabled or settings.port == 0:
        return []
    subject = f"metrics port {settings.host}:{settings.port}"
    with socket.socket() as sock:
        try:
            sock.bind((settings.host, settings.port))
        except OSError as exc:
            return [
                Finding(
                    WARN,
                    subject,
                    f"taken ({exc.strerror}): a worker started now would serve no /metrics "
                    "there (tracing is unaffected)",
                    "stop what holds it, or set CRM_OTEL_METRICS_PORT",
                )
            ]
    return [Finding(OK, subject, "free")]


@contextlib.contextmanager
def _cwd_on_path() -> Iterator[None]:
    # `manage.py` puts the project folder on sys.path; a console script does not.
    sys.path.insert(0, "")
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove("")


def probe_django(environ: Mapping[str, str]) -> Finding:
    """Whether `DJANGO_SETTINGS_MODULE` is set and imports from the current folder."""
    name = environ.get("DJANGO_SETTINGS_MODULE")
    subject = "DJANGO_SETTINGS_MODULE"
    if not name:
        return Finding(
            WARN,
            subject,
            "not set: Django is instrumented only once django.setup() runs with it set",
            "export DJANGO_SETTINGS_MODULE=<project>.settings before opentelemetry-instrument",
        )
    try:
        with _cwd_on_path():
            importlib.import_module(name)
    except Exception as exc:  # any failure of the app's settings is the finding
        return Finding(
            PROBLEM,
            subject,
            f"{name!r} does not import: {type(exc).__name__}: {exc}",
            "run crm-otel check from the folder manage.py is in, or fix the module path",
        )
    return Finding(OK, subject, f"{name!r} imports")


def _version(distributions: tuple[str, ...]) -> str | None:
    for distribution in distributions:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(distribution)
    return None


def probe_instrumentations() -> list[Finding]:
    """Which of the instrumentations crm-otel configures would load, with library versions."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    entry_points = {ep.name: ep for ep in metadata.entry_points(group="opentelemetry_instrumentor")}
    findings = []
    for name, distributions in LIBRARIES.items():
        library = _version(distributions)
        subject = f"instrumentation {name}"
        if library is None:
            findings.append(Finding(OK, subject, f"not needed ({distributions[0]} not installed)"))
            continue
        entry_point = entry_points.get(name)
        if entry_point is None:
            findings.append(
                Finding(
                    PROBLEM,
                    subject,
                    f"{distributions[0]} {library} is installed but not instrumented",
                    f"pip install opentelemetry-instrumentation-{name}",
                )
            )
            continue
        conflict = get_dist_dependency_conflicts(entry_point.dist) if entry_point.dist else None
        if conflict is not None:
            findings.append(
                Finding(WARN, subject, f"would not load: {conflict}", "use a supported version")
            )
        else:
            findings.append(Finding(OK, subject, f"would load ({distributions[0]} {library})"))
    return findings


def probe_distros(environ: Mapping[str, str]) -> list[Finding]:
    """Another `opentelemetry_distro` beside crm-otel's: the launcher would pick one of the
    two arbitrarily unless `OTEL_PYTHON_DISTRO` chooses."""
    others = sorted(
        ep.name
        for ep in metadata.entry_points(group="opentelemetry_distro")
        if ep.name != "crm_otel"
    )
    if not others:
        return [Finding(OK, "distro", "crm_otel is the only OpenTelemetry distro installed")]
    chosen = environ.get("OTEL_PYTHON_DISTRO") == "crm_otel" and (
        environ.get("OTEL_PYTHON_CONFIGURATOR") == "crm_otel"
    )
    if chosen:
        return [Finding(OK, "distro", f"also installed: {', '.join(others)}; crm_otel is chosen")]
    return [
        Finding(
            PROBLEM,
            "distro",
            f"also installed: {', '.join(others)}; the launcher may pick it instead of crm_otel",
            "pip uninstall opentelemetry-distro, or set OTEL_PYTHON_DISTRO=crm_otel "
            "OTEL_PYTHON_CONFIGURATOR=crm_otel",
        )
    ]
