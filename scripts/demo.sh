#!/usr/bin/env bash
# Install everything (scripts/install.sh, including `aiida-mofmlp setup`), then run the demo.
#   bash scripts/demo.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MOFMLP_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/install.sh"
printf '\n==> demo (aiida-mofmlp demo)\n'
"$VENV/bin/aiida-mofmlp" demo --profile "${MOFMLP_PROFILE:-mofmlp}"
