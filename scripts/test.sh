#!/usr/bin/env bash
# Install everything (scripts/install.sh), then lint, run the test suite and build the docs.
#   bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
MOFMLP_SKIP_SETUP=1 bash "$ROOT/scripts/install.sh"
cd "$ROOT"
printf '\n==> ruff (lint and format check)\n'
"$VENV/bin/ruff" check src tests benchmarks examples scripts
"$VENV/bin/ruff" format --check src tests benchmarks examples scripts
printf '\n==> layer contract (import-linter: imports only run down the layers; engines without AiiDA)\n'
"$VENV/bin/lint-imports"
printf '\n==> docs (Sphinx, warnings are errors)\n'
"$VENV/bin/sphinx-build" -q -W -b html docs/source docs/build/html
printf '\n==> services the tests start themselves need installed: headless Chromium for the app'"'"'s browser test\n'
bash "$ROOT/scripts/browser.sh"
printf '\n==> services of the daemon and scheduler tests: RabbitMQ and a single-node Slurm (stopped at the end\n'
printf '    when this script started them; started here once so that no test worker stops them under another)\n'
BROKER_WAS_UP=0; rabbitmqctl -q status >/dev/null 2>&1 && BROKER_WAS_UP=1
SLURM_WAS_UP=0; sinfo -h >/dev/null 2>&1 && SLURM_WAS_UP=1
stop_services() {
  [ "$SLURM_WAS_UP" = 1 ] || bash "$ROOT/scripts/slurm.sh" stop >/dev/null 2>&1 || true
  [ "$BROKER_WAS_UP" = 1 ] || bash "$ROOT/scripts/broker.sh" stop >/dev/null 2>&1 || true
}
trap stop_services EXIT
bash "$ROOT/scripts/broker.sh"
bash "$ROOT/scripts/slurm.sh"
# Workers: one per core (MOFMLP_TEST_WORKERS overrides; 0 runs in this process). Each test is one thread
# (OMP_NUM_THREADS=1); tests sharing a session fixture run on one worker (tests/conftest.py). A worker
# that crashes ends the run (--max-worker-restart=0): with --dist loadgroup, pytest-xdist 3.8 can hang
# after replacing a crashed worker (pytest-dev/pytest-xdist#1323, #1378), which used up CI's 90 min.
WORKERS="${MOFMLP_TEST_WORKERS:-$(nproc)}"
printf '\n==> pytest on %s workers (temporary AiiDA profiles; real CP2K, RASPA, LAMMPS and MACE on tiny systems)\n' "$WORKERS"
OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -ra --durations=25 -n "$WORKERS" --dist loadgroup --max-worker-restart=0 "$@"
