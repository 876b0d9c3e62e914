#!/usr/bin/env bash
# Makes sure LibreOffice's headless Calc is installed (Debian's libreoffice-calc-nogui) and
# prints the path of `soffice`. The Excel tests convert CSV to xlsx with it, as a user's
# spreadsheet program would write the file (docs/testing.md). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/apt.sh"
if ! command -v soffice >/dev/null 2>&1; then
  apt_install libreoffice-calc-nogui
fi
command -v soffice
