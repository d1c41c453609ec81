"""How many times each variable is read while `opentelemetry-instrument` starts a process.

Runs the instrumentation's own start-up (distro, configurator, every instrumentor), then
Django's setup and the identity finder, counting `EnvReader` reads by variable:

    PYTHONPATH=examples/crm DJANGO_SETTINGS_MODULE=crm.settings OTEL_TRACES_EXPORTER=none \\
        python benchmarks/settings_reads.py
"""

from __future__ import annotations

import collections

from crm_otel import _env


def main() -> None:
    """Print the number of variables read and of reads."""
    counts: collections.Counter[str] = collections.Counter()
    raw = _env.EnvReader.raw

    def counting(self: _env.EnvReader, name: str) -> str | None:
        counts[name] += 1
        return raw(self, name)

    _env.EnvReader.raw = counting  # type: ignore[method-assign]
    from opentelemetry.instrumentation.auto_instrumentation import _initialize

    _initialize(swallow_exceptions=False)
    import django

    django.setup()
    from crm_otel import _django

    _django.identity_finder()
    print(f"variables read: {len(counts)}, reads: {sum(counts.values())}")
    for name, count in counts.most_common(5):
        print(f"  {name}: {count}")


if __name__ == "__main__":
    main()
