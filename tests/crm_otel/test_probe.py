"""`crm-otel check`'s probes, against real sockets, modules and package metadata."""

from __future__ import annotations

import io
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from crm_otel._cli import check
from crm_otel._probe import (
    OK,
    PROBLEM,
    WARN,
    probe_distros,
    probe_django,
    probe_endpoint,
    probe_metrics_port,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def otlp_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server answering every POST with 200, recording the paths."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths
    server.shutdown()
    server.server_close()


def test_endpoint_that_answers(otlp_server: tuple[str, list[str]]) -> None:
    """An endpoint that takes an empty export is reported with its answer."""
    url, paths = otlp_server
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": url}
    [finding] = probe_endpoint(env)
    assert finding.level == OK and "HTTP 200" in finding.text
    assert paths == ["/v1/traces"]


def test_endpoint_that_refuses() -> None:
    """A closed port is a warning that says traces are dropped and what to do."""
    url = f"http://127.0.0.1:{_free_port()}"
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": url}
    [finding] = probe_endpoint(env)
    assert finding.level == WARN
    assert "refused" in finding.text.lower() and "OTEL_EXPORTER_OTLP_ENDPOINT" in finding.fix


def test_no_endpoint_probe_without_otlp() -> None:
    """With the console exporter there is no endpoint to probe; with OTLP there is one."""
    assert probe_endpoint({"OTEL_TRACES_EXPORTER": "console"}) == []
    url = f"http://127.0.0.1:{_free_port()}"
    otlp = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": url}
    assert len(probe_endpoint(otlp)) == 1


def test_metrics_port_taken_and_free() -> None:
    """A bound port is reported taken; a free one free."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        [taken] = probe_metrics_port({"CRM_OTEL_METRICS_PORT": str(port)})
    assert taken.level == WARN and "taken" in taken.text
    [free] = probe_metrics_port({"CRM_OTEL_METRICS_PORT": str(_free_port())})
    assert free.level == OK


def test_django_settings_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings that import are ok; settings that fail are a problem naming the error;
    unset is a warning."""
    (tmp_path / "good_settings_mod.py").write_text("SECRET_KEY = 'x'\n")
    (tmp_path / "bad_settings_mod.py").write_text("import no_such_module_here\n")
    monkeypatch.chdir(tmp_path)
    assert probe_django({"DJANGO_SETTINGS_MODULE": "good_settings_mod"}).level == OK
    bad = probe_django({"DJANGO_SETTINGS_MODULE": "bad_settings_mod"})
    assert bad.level == PROBLEM and "no_such_module_here" in bad.text
    assert probe_django({}).level == WARN
    sys.modules.pop("good_settings_mod", None)


def test_competing_distro_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another installed `opentelemetry_distro` makes check fail unless crm_otel is chosen."""
    info = tmp_path / "other_distro-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: other-distro\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[opentelemetry_distro]\nother = other:Distro\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    [finding] = probe_distros({})
    assert finding.level == PROBLEM and "other" in finding.text
    assert "OTEL_PYTHON_DISTRO=crm_otel" in finding.fix
    chosen = {"OTEL_PYTHON_DISTRO": "crm_otel", "OTEL_PYTHON_CONFIGURATOR": "crm_otel"}
    assert probe_distros(chosen)[0].level == OK
    out = io.StringIO()
    assert check({"OTEL_TRACES_EXPORTER": "none"}, out, probe=True) == 1
    assert "1 problem(s); first: distro" in out.getvalue()
