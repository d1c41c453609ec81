# Sourced by scripts/test and scripts/run-example: one place that makes the development
# venv (editable install: lint, types, unit tests). Idempotent: reinstalls only when
# pyproject.toml changed since the last install. The venv keeps the interpreter's own pip,
# as a user's would: nothing here upgrades it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.crm-otel-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
