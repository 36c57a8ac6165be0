#!/usr/bin/env bash
# The test command: installs everything into .venv (first run only), lints with ruff, runs pytest
# (slow tests included; pass -m "not slow" for the quick subset). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
VENV="${RODIN_VENV:-$ROOT/.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/python" -m pytest "$@"
