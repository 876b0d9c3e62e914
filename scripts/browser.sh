#!/usr/bin/env bash
# `scripts/browser.sh`: makes sure Debian's headless-capable chromium is installed and prints its
# path (/usr/bin/chromium) on stdout. Idempotent: installs (apt, as root) only when it is missing,
# so tests call it every time; parallel callers wait on apt.sh's lock. The browser tests
# (scripts/socket-page-check.py, scripts/swagger-ui-check.py) read the path from CHROMIUM.
# Only the package itself: no fonts, no extras (the tests read the DOM, not pixels).
set -euo pipefail
cd "$(dirname "$0")/.."
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  echo "chromium is missing; installing Debian's chromium" >&2
  . scripts/apt.sh
  apt_install chromium
fi
[ -x "$CHROMIUM" ] || { echo "browser: $CHROMIUM is still missing after installing chromium" >&2; exit 1; }
echo "$CHROMIUM"
