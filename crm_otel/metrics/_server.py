"""The standalone metrics port, for processes that serve no HTTP (the Celery worker)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from crm_otel._log import internal_logger
from crm_otel.metrics import _runtime


def start_standalone(runtime: _runtime.Runtime) -> ThreadingHTTPServer | None:
    """Serve the metrics path on `CRM_OTEL_METRICS_HOST:PORT`; a taken port is said in one
    line and changes nothing else (tracing and the worker go on)."""
    settings = runtime.settings
    if settings.port == 0:
        return None
    path = settings.path

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self._reply(404, "text/plain; charset=utf-8", b"404 Not Found\n")
                return
            headers = self.headers
            status, content_type, body = runtime.scrape(
                headers.get("Authorization"), headers.get("Accept")
            )
            self._reply(status, content_type, body)

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="metrics"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((settings.host, settings.port), Handler)
    except OSError as exc:
        internal_logger.warning(
            "metrics port %s:%s is not available (%s); this process is not scraped on it "
            "(set CRM_OTEL_METRICS_PORT); tracing and the app are unaffected",
            settings.host,
            settings.port,
            exc,
        )
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="crm-otel-metrics-port", daemon=True).start()
    internal_logger.info(
        "metrics served on http://%s:%s%s", settings.host, server.server_address[1], path
    )
    return server
