"""Secrets hidden from what crm-otel prints: OTLP headers, and passwords in URLs."""

from __future__ import annotations


def mask_headers(value: str) -> str:
    """`key=value,...` with every value hidden: OTLP headers carry tokens."""
    return ",".join(
        part.split("=", 1)[0].strip() + "=***" for part in value.split(",") if part.strip()
    )


def mask_url(value: str) -> str:
    """`value` with the password or token of its `user:secret@` part hidden."""
    scheme, sep, rest = value.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return value
    userinfo, _, host = rest.partition("@")
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
