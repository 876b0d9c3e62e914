#!/usr/bin/env bash
# `scripts/python-venv.sh NAME PACKAGE...`: makes (once per machine) the venv
# ~/.cache/go_example-rs/NAME-venv holding PACKAGE... from PyPI and prints its python. Tests use
# it for their non-Rust peers (a Prometheus parser, a gRPC client); parallel callers wait on a
# lock instead of building it twice. Installs Debian's python3-venv if venv lacks ensurepip.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/python-venv.sh NAME PACKAGE..." >&2; exit 2; }
name=$1; shift
CACHE=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}
VENV=$CACHE/$name-venv
mkdir -p "$CACHE"
exec 9>"$CACHE/$name-venv.lock"
flock 9
# `.packages` is written last: a venv whose install broke off is rebuilt.
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.packages" 2>/dev/null)" != "$*" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    . scripts/apt.sh
    apt_install python3-venv >&2
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
  printf '%s\n' "$*" >"$VENV/.packages"
fi
echo "$VENV/bin/python"
