#!/usr/bin/env bash
# Serve the aiida-mofmlp app (mofmlp.ipynb) with Voila on 127.0.0.1 and print its URL. Idempotent: installs
# what the virtual environment lacks (scripts/install.sh), makes sure the message broker, the AiiDA profile
# with its codes and the daemon are up, then serves in the foreground (Ctrl-C stops the server; the daemon
# keeps running: `verdi -p mofmlp daemon stop`).
#   bash scripts/app.sh
#   MOFMLP_PROFILE=myprofile MOFMLP_APP_PORT=8890 bash scripts/app.sh
#   MOFMLP_APP_SKIP_SETUP=1 bash scripts/app.sh   # serve only (profile, broker and daemon handled elsewhere)
#   MOFMLP_DAEMON_WORKERS=1 bash scripts/app.sh   # daemon workers when it starts the daemon (default 2)
#   MOFMLP_APP_TOKEN=secret bash scripts/app.sh     # the URL's token (default: a new random one each start)
# Works from a shell where nothing is activated: scripts/_env.sh puts the environment's bin first on PATH
# for everything started here (the daemon runs `verdi` from PATH).
set -euo pipefail
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
PROFILE="${MOFMLP_PROFILE:-mofmlp}"
PORT="${MOFMLP_APP_PORT:-8866}"

step "Python packages of the app (voila, ipywidgets, aiida-mofmlp)"
if [ -x "$VENV/bin/voila" ] && "$VENV/bin/python" -c "import ipywidgets, aiida_mofmlp" 2>/dev/null; then
  echo "installed in $VENV"
else
  bash "$ROOT/scripts/install.sh"
fi
if "$VENV/bin/python" -c "import weas_widget" 2>/dev/null; then
  echo "3D viewer: weas-widget is installed"
else
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check weas-widget \
    && echo "3D viewer: installed weas-widget" \
    || echo "3D viewer: weas-widget could not be installed; the app draws a static picture instead"
fi

if [ -z "${MOFMLP_APP_SKIP_SETUP:-}" ]; then
  bash "$ROOT/scripts/broker.sh"
  step "AiiDA profile $PROFILE, localhost computer and codes (aiida-mofmlp setup)"
  "$VENV/bin/aiida-mofmlp" setup --profile "$PROFILE"
  step "AiiDA daemon of profile $PROFILE"
  if "$VENV/bin/verdi" -p "$PROFILE" daemon status >/dev/null 2>&1; then
    echo "running"
  else
    "$VENV/bin/verdi" -p "$PROFILE" daemon start "${MOFMLP_DAEMON_WORKERS:-2}"
  fi
fi

step "Serving the app with Voila"
# a token by default: whoever reaches the port can otherwise run jobs and write files as you
TOKEN="${MOFMLP_APP_TOKEN:-$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')}"
echo "Open http://127.0.0.1:$PORT/?token=$TOKEN in a browser (profile $PROFILE; Ctrl-C stops the server)"
echo "(without the token the server answers with its login page; MOFMLP_APP_TOKEN=... chooses the token)"
cd "$ROOT"
export MOFMLP_PROFILE="$PROFILE"
exec "$VENV/bin/voila" mofmlp.ipynb --no-browser --port="$PORT" --Voila.ip=127.0.0.1 --token="$TOKEN" \
  --VoilaConfiguration.http_keep_alive_timeout=30 --show_tracebacks=False
