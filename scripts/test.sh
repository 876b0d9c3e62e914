#!/usr/bin/env bash
# `make test`: formatting, clippy, every Rust test against real servers (started here and
# stopped on exit), the Postman collection through newman, the API contract (schemathesis), and
# the diesel CLI migrations.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/go_example-rs/target}

step() { echo; echo "==> $*"; }

if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "supply chain: cargo deny check licenses bans (deny.toml)"
scripts/supply-chain.sh

step "starting test servers (scripts/services.sh up)"
# The tests configure the app themselves: no APP__ variable (or APP_ENV) from the caller's shell
# may reach the binaries they spawn. What the servers need comes from services.sh below.
for var in $(compgen -e | grep '^APP__' || true); do unset "$var"; done
unset APP_ENV
trap 'step "stopping test servers"; scripts/services.sh down' EXIT
# Assigned first so that a failing `up` stops here: `eval "$(...)"` would go on without servers.
exports=$(scripts/services.sh up)
eval "$exports"
# A test that finds its server missing fails here instead of skipping.
export GOEX_REQUIRE_SERVICES=1

step "cargo nextest run"
cargo nextest run --workspace --no-fail-fast

step "newman (Postman collection)"
scripts/postman.sh

step "API contract (openapi-spec-validator, schemathesis, Swagger UI in Chromium)"
scripts/contract-test.sh

step "diesel CLI migrations against MariaDB"
scripts/diesel-check.sh

step "resource generator in a scratch copy (scripts/generator-check.sh)"
scripts/generator-check.sh
