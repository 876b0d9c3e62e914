#!/usr/bin/env bash
# `scripts/supply-chain.sh`: `cargo deny check licenses bans` against deny.toml (offline: these
# checks need no advisory database), then proof that the config refuses what it must: a scratch
# crate under GPL-3.0-only, and one depending on openssl-sys, each fail the same checks.
# Installs the pinned cargo-deny when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DENY_VERSION=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  echo "installing cargo-deny $CARGO_DENY_VERSION" >&2
  CARGO_TARGET_DIR=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}/tools-target \
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked >&2
fi
# Every platform's manifests for `cargo metadata` (a no-op when the registry cache has them).
cargo fetch --locked >/dev/null 2>&1 || cargo fetch --locked
cargo deny --offline check licenses bans

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
refused() { # NAME LICENSE DEPENDENCY-LINE EXPECTED: the check must fail, naming EXPECTED
  local dir=$scratch/$1
  mkdir -p "$dir/src"
  printf '[package]\nname = "%s"\nversion = "0.1.0"\nedition = "2021"\nlicense = "%s"\n\n[dependencies]\n%s\n\n[workspace]\n' \
    "$1" "$2" "$3" >"$dir/Cargo.toml"
  : >"$dir/src/lib.rs"
  # Its dependency fetched (crates.io), so that the refusal is cargo-deny's, not a download's.
  (cd "$dir" && cargo fetch --quiet)
  if out=$(cargo deny --offline --manifest-path "$dir/Cargo.toml" --config "$PWD/deny.toml" check licenses bans 2>&1); then
    echo "deny.toml accepted $1 ($2${3:+, $3}): it must refuse it" >&2
    exit 1
  fi
  grep -q -- "$4" <<<"$out" || { echo "$out" >&2; echo "the refusal of $1 does not name $4" >&2; exit 1; }
  echo "refused as it must: $1 ($4)"
}
refused gpl-crate GPL-3.0-only "" "error\[rejected\]"
refused openssl-user MIT 'openssl-sys = "0.9"' "error\[banned\]: crate 'openssl-sys"
