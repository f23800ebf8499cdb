# Sourced by the other scripts (not run on its own): the repository root, the virtual environment, and the
# environment's bin first on PATH, so that what a script starts (the AiiDA daemon, which looks up `verdi`
# on PATH; Voila; Slurm's daemons and jobs) finds the environment's programs from a shell where nothing is
# activated.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MOFMLP_VENV:-$ROOT/.venv}"
case ":$PATH:" in
  *":$VENV/bin:"*) ;;
  *) export PATH="$VENV/bin:$PATH" ;;
esac
step() { printf '\n==> %s\n' "$*"; }
