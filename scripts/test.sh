#!/usr/bin/env bash
# Install everything (scripts/install.sh), then lint, run the test suite and build the docs.
#   bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MOFMLP_VENV:-$ROOT/.venv}"
MOFMLP_SKIP_SETUP=1 bash "$ROOT/scripts/install.sh"
cd "$ROOT"
printf '\n==> ruff (lint and format check)\n'
"$VENV/bin/ruff" check src tests benchmarks examples
"$VENV/bin/ruff" format --check src tests benchmarks examples
printf '\n==> layer contract (import-linter: imports only run down the layers; engines without AiiDA)\n'
"$VENV/bin/lint-imports"
printf '\n==> docs (Sphinx, warnings are errors)\n'
"$VENV/bin/sphinx-build" -q -W -b html docs/source docs/build/html
printf '\n==> services the tests start themselves need installed: headless Chromium for the app'"'"'s browser test\n'
bash "$ROOT/scripts/browser.sh"
printf '\n==> pytest (temporary AiiDA profile; real CP2K, RASPA, LAMMPS and MACE on tiny systems)\n'
OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -ra --durations=15 "$@"
