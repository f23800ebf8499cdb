#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver for the app's real-browser test (tests/app). Idempotent:
# nothing is installed when both are present. Selenium is pointed at /usr/bin/chromedriver by the test, so
# nothing is downloaded when the test runs (no Selenium Manager).
#   bash scripts/browser.sh
set -euo pipefail
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

step "Chromium and chromedriver (Debian packages) for the app's browser test"
if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; then
  echo "installed: $(chromium --version 2>/dev/null | head -1), $(/usr/bin/chromedriver --version | head -1)"
  exit 0
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "installed: $(chromium --version 2>/dev/null | head -1), $(/usr/bin/chromedriver --version | head -1)"
