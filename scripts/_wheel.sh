# Sourced by scripts/test: build the sdist and wheel users get, and install the wheel
# non-editable into a fresh venv with the interpreter's own pip (no upgrade), as a user
# following the README would. The black-box tests launch the example CRM from that venv
# (CRM_OTEL_TEST_VENV); the packaging test inspects the built files (CRM_OTEL_TEST_DIST).
set -euo pipefail
DIST="$ROOT/dist"
WHEEL_VENV="$ROOT/.venv-wheel"
rm -rf "$DIST" "$WHEEL_VENV"
"$VENV/bin/python" -m build --outdir "$DIST" "$ROOT" >"$ROOT/.build.log" 2>&1 || { cat "$ROOT/.build.log" >&2; exit 1; }
wheel=$(ls "$DIST"/crm_otel-*.whl)
"$PYTHON" -m venv "$WHEEL_VENV"
started=$(date +%s)
"$WHEEL_VENV/bin/python" -m pip install -q "$wheel[example]"
echo "installed $(basename "$wheel") with $("$WHEEL_VENV/bin/python" -m pip --version | cut -d' ' -f1-2) in $(( $(date +%s) - started )) s" >&2
export CRM_OTEL_TEST_VENV="$WHEEL_VENV"
export CRM_OTEL_TEST_DIST="$DIST"
