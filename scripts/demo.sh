#!/usr/bin/env bash
# The main job. Until the embedded model lands: render a small avatar data set and a contact sheet of it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
PY="${RODIN_VENV:-$ROOT/.venv}/bin/python"
OUT="${1:-out/demo}"
"$PY" -m blender_scenes.generate_dataset --out "$OUT/dataset" --count 16 --seed 0 --views 4 --res 96
"$PY" -m blender_scenes.contact_sheet "$OUT/dataset" "$OUT/contact_sheet.png" --count 16
echo "wrote $OUT/contact_sheet.png"
