"""`crm-otel check`: print the effective configuration and fail on any bad value."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from crm_otel._configurator import ProcessSettings
from crm_otel._distro import apply_defaults
from crm_otel._env import EnvReader
from crm_otel._masks import mask_headers, mask_url
from crm_otel._variables import VARIABLES
from crm_otel._version import __version__

OTEL_SHOWN = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
)
"""Standard variables `check` shows beside crm-otel's own."""

_KNOWN_EXPORTERS = {"otlp", "otlp_proto_http", "otlp_proto_grpc", "console", "none", "prometheus"}


def check(environ: Mapping[str, str], out: TextIO, *, probe: bool = False) -> int:
    """Print the effective configuration of `environ`; return 1 if any value is bad.

    With `probe`, also try the OTLP endpoint, the metrics port, the Django settings, the
    instrumentations and the installed distros; a real problem among them returns 1 too.
    """
    env = dict(environ)
    apply_defaults(env)
    reader = EnvReader(env, quiet=True)
    ProcessSettings.from_env(env, reader=reader)
    problems = list(reader.problems)
    for signal in ("TRACES", "METRICS", "LOGS"):
        name = f"OTEL_{signal}_EXPORTER"
        for exporter in env.get(name, "").split(","):
            if exporter.strip() and exporter.strip().lower() not in _KNOWN_EXPORTERS:
                problems.append(
                    f"{name}: expected otlp, console or none, got {exporter.strip()!r}"
                    + (
                        " (opentelemetry-exporter-jaeger is dead; Jaeger takes OTLP)"
                        if "jaeger" in exporter.lower()
                        else ""
                    )
                )
    out.write(f"crm-otel {__version__}: effective configuration\n")
    width = max(len(name) for name in [*VARIABLES, *OTEL_SHOWN])
    for variable in VARIABLES.values():
        if variable.standard and variable.name in OTEL_SHOWN:
            continue
        given = reader.raw(variable.name)
        shown = given if given is not None else variable.default
        if variable.secret and given is not None:
            shown = "***"
        origin = "" if given is not None else "  (default)"
        out.write(f"  {variable.name:<{width}} = {shown}{origin}\n")
    for name in OTEL_SHOWN:
        value = env.get(name)
        if value is None:
            continue
        shown = mask_headers(value) if name.endswith("_HEADERS") else mask_url(value)
        out.write(f"  {name:<{width}} = {shown}\n")
    failed = _write_probes(env, out) if probe else 0
    if problems:
        out.write(f"{len(problems)} bad value(s):\n")
        for problem in problems:
            out.write(f"  {problem}\n")
        return 1
    out.write("all values are valid\n")
    return 1 if failed else 0


def _write_probes(environ: Mapping[str, str], out: TextIO) -> int:
    from crm_otel._probe import PROBLEM, run_probes

    findings = run_probes(environ)
    out.write("probes:\n")
    for finding in findings:
        fix = f" -> {finding.fix}" if finding.fix and finding.level != "ok" else ""
        out.write(f"  {finding.level:<8} {finding.subject}: {finding.text}{fix}\n")
    failed = [f for f in findings if f.level == PROBLEM]
    if failed:
        out.write(f"{len(failed)} problem(s); first: {failed[0].subject}: {failed[0].fix}\n")
    return len(failed)


def main(argv: Sequence[str] | None = None) -> int:
    """The `crm-otel` console script."""
    parser = argparse.ArgumentParser(prog="crm-otel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check_parser = sub.add_parser(
        "check",
        help="print the effective configuration and probe the endpoint, metrics port, Django "
        "settings and instrumentations; exit 1 on a bad value or a real problem",
    )
    check_parser.add_argument(
        "--no-probe", action="store_true", help="only print and validate the configuration"
    )
    parser.add_argument("--version", action="version", version=f"crm-otel {__version__}")
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[], int]] = {
        "check": lambda: check(os.environ, sys.stdout, probe=not args.no_probe)
    }
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())
