#!/usr/bin/env bash
# The main job: generate an avatar with the embedded model into a Blender scene.
# Writes OUT/avatars.blend (texture packed), OUT/avatars.glb and OUT/preview.png (Cycles render).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
PY="${RODIN_VENV:-$ROOT/.venv}/bin/python"
OUT="${1:-out/demo}"
SEED="${2:-7}"
"$PY" scripts/generate_blend.py --seed "$SEED" --out "$OUT"
