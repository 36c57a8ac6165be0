#!/usr/bin/env bash
# Creates (once) the project's virtual environment in .venv and installs the project with its
# Blender and development extras. Re-runs pip only when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RODIN_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "error: $PY not found; Rodin needs Python 3.11 (the bpy 5.0.1 module exists only for 3.11)." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.rodin-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    echo "[bootstrap] installing the project and its dependencies into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[blender,dev,text]" >&2
    echo "$WANT" > "$STAMP"
fi
