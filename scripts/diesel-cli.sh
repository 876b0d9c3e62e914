#!/usr/bin/env bash
# Installs the diesel CLI for MySQL if missing (Debian's libmysqlclient headers + cargo install),
# then runs `diesel` with the given arguments from the project root (diesel.toml lives there).
#   scripts/diesel-cli.sh migration run          # DATABASE_URL=mysql://... in the environment
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v diesel >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/diesel" ]; then
  if ! dpkg -s default-libmysqlclient-dev pkg-config >/dev/null 2>&1; then
    . scripts/apt.sh
    apt_install default-libmysqlclient-dev pkg-config
  fi
  echo "diesel-cli: cargo install diesel_cli (MySQL only; about a minute, once)" >&2
  # Installed with its own target dir so it does not disturb the project's build cache.
  CARGO_TARGET_DIR="${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}/diesel-cli-target" \
    cargo install diesel_cli --no-default-features --features mysql --locked >&2
fi
export PATH="$HOME/.cargo/bin:$PATH"
exec diesel "$@"
