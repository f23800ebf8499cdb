#!/usr/bin/env bash
# Install everything (scripts/install.sh, including `aiida-mofmlp setup`), then run the demo.
#   bash scripts/demo.sh                 # further arguments go to `aiida-mofmlp demo` (e.g. --help)
set -euo pipefail
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
bash "$ROOT/scripts/install.sh"
printf '\n==> demo (aiida-mofmlp demo): results in ./mofmlp-demo-output, replacing an earlier demo'"'"'s\n'
# a rerun replaces the previous demo's files (only once the new ones are complete; other files are kept)
"$VENV/bin/aiida-mofmlp" demo --profile "${MOFMLP_PROFILE:-mofmlp}" --overwrite "$@"
