#!/usr/bin/env bash
# The resource generator, end to end (docs/generator.md): in a scratch copy of the work tree,
# `go_example generate` makes a resource with every field type and constraint (owner access,
# served over gRPC too), one for admins with its own plural stored in MongoDB (every type, served
# over gRPC too), one for any user, an empty migration pair and a subcommand; the
# copy must then pass cargo fmt --check and clippy -D warnings untouched, the generated tests on
# SQLite and MariaDB, the route/OpenAPI/Postman coverage test, the docs and layering tests, the
# generated Postman folders through newman, schemathesis on the generated routes, and the diesel
# CLI check (schema.rs equal to `diesel print-schema` after the new migrations). Generating the
# same resource again must be refused and change nothing.
#
# Needs the servers of `scripts/services.sh up` (make test starts them). The copy shares
# CARGO_TARGET_DIR, so only its own crates compile; the binaries cargo copies to the top of the
# target folder (target/debug/go_example, ...) are the copy's while it runs, and are put back on
# exit, so the work tree's later builds and tests use their own.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${APP__MYSQL__DSN:?start the servers first: eval \"\$(scripts/services.sh up)\"}"
: "${APP__MONGODB__ADDR:?start the servers first: eval \"\$(scripts/services.sh up)\"}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/go_example-rs/target}
step() { echo; echo "--> generator-check ($((SECONDS - started)) s): $*"; }

started=$SECONDS
# One fixed folder: the copy's crates keep their identity (and their incremental builds) from run
# to run instead of adding a new set to the target folder each time. One check at a time.
scratch=${GOEX_CACHE_DIR:-$HOME/.cache/go_example-rs}/generator-scratch
rm -rf "$scratch"
mkdir -p "$scratch"
# Beside the binaries: hard links need one file system.
saved="$CARGO_TARGET_DIR/generator-check-saved"
rm -rf "$saved"
mkdir -p "$saved"
debug="$CARGO_TARGET_DIR/debug"
mkdir -p "$debug"
# Hard links: cargo replaces these files (unlink, then link anew), so the links keep the work
# tree's builds whatever the copy's build does.
find "$debug" -maxdepth 1 -type f -exec ln {} "$saved/" \;
origin=$PWD
restore() {
  find "$debug" -maxdepth 1 -type f -newer "$saved" -delete 2>/dev/null || true
  for f in "$saved"/*; do [ -e "$f" ] && ln -f "$f" "$debug/$(basename "$f")"; done
  rm -rf "$scratch" "$saved"
  # The copy's crates have the work tree's names and relative paths, so cargo keeps one set of
  # artifacts for both and judges them by the sources' times: the work tree's inputs (build.rs
  # and what it reads, every crate's files) are made newer than the copy's builds, so the next
  # build here compiles the work tree's own code, not the copy's.
  (cd "$origin" && git ls-files -z -- '*.rs' '*.toml' Cargo.lock proto migrations assets/templates \
     | xargs -0 touch && touch migrations migrations/mysql migrations/sqlite)
}
trap restore EXIT
touch "$saved"

step "scratch copy in $scratch"
git ls-files --cached --others --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C "$scratch"
cargo build --quiet --bin go_example
gen="$scratch/.generator"
cp "$debug/go_example" "$gen"
cd "$scratch"

fingerprint() { find . -path ./.generator -prune -o -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum; }

step "generate resource widget --grpc (every type and constraint; owner access)"
widget_fields='name:string:min=1:max=64,code:string:unique:max=32,body:text:optional,qty:int:min=0:max=1000,big:bigint:unique,done:bool,price:decimal:optional,due:datetime,color:enum(red|green|dark_blue),phone:string:regex=phone:optional,rank:bigint:min=-5:max=5000000000,level:enum(low|high):optional'
"$gen" generate resource widget --grpc --fields "$widget_fields"
step "generate resource category --plural categories --access admin --mongo --grpc (stored in MongoDB)"
"$gen" generate resource category --plural categories --access admin --mongo --grpc \
  --fields 'title:string:unique:max=40,position:int:optional,weight:bigint,shown:bool,price:decimal:optional,since:datetime:optional,kind:enum(shop|blog),slug:string:unique:optional:max=40'
step "generate resource note --access user"
"$gen" generate resource note --access user --fields 'text:text:max=2000,pinned:bool:optional'
step "generate migration and command"
"$gen" generate migration add_widget_index
"$gen" generate command purge_notes

step "generating widget again is refused and changes nothing"
before=$(fingerprint)
if out=$("$gen" generate resource widget --fields 'name:string' 2>&1); then
  echo "generator-check: a second widget was generated: $out" >&2; exit 1
fi
grep -qE 'refusing to overwrite|exists already' <<<"$out" || { echo "generator-check: unexpected refusal: $out" >&2; exit 1; }
for refused in "resource select --fields a:string" "resource hello --fields a:string" \
               "resource gadget --fields id:int" "resource gadget --fields a:float"; do
  # shellcheck disable=SC2086 # the words are the arguments
  if "$gen" generate $refused >/dev/null 2>&1; then
    echo "generator-check: \`generate $refused\` was not refused" >&2; exit 1
  fi
done
[ "$(fingerprint)" = "$before" ] || { echo "generator-check: a refused generation changed files" >&2; exit 1; }
"$gen" generate resource gadget --fields 'a:string' --dry-run | grep -q 'dry run: nothing was written'
[ "$(fingerprint)" = "$before" ] || { echo "generator-check: --dry-run changed files" >&2; exit 1; }

step "cargo fmt --check and clippy -D warnings on the generated code, untouched"
cargo fmt --all -- --check
cargo clippy --quiet -p go_example --all-targets -- -D warnings

step "the generated tests (SQLite and MariaDB; gRPC from Rust and Python), route coverage, docs and layering"
# The new routes change the served document: its golden copy is rewritten as a user would.
UPDATE_GOLDEN=1 cargo nextest run --no-fail-fast --test api -E 'test(/golden/)' --status-level fail
cargo nextest run --no-fail-fast --test api --test docs_tree --test layering \
  -E 'test(/^(widgets|widgets_grpc|categories|categories_grpc|notes)::/) | test(/^openapi::/) | binary(docs_tree) | binary(layering)'
"$debug/go_example" purge-notes --env test | grep -q 'purge-notes: done'

step "newman: the generated Postman folders"
GOEX_APP_MONGODB_ADDR=$APP__MONGODB__ADDR POSTMAN_FOLDERS="widgets categories notes" scripts/postman.sh

step "schemathesis on the generated routes"
GOEX_APP_MONGODB_ADDR=$APP__MONGODB__ADDR CONTRACT_INCLUDE_PATH_REGEX='^/(widgets|categories|notes)' \
  CONTRACT_MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-40} scripts/contract-test.sh

step "diesel CLI: the migrations run and redo, schema.rs is what diesel prints"
scripts/diesel-check.sh

echo "generator-check: passed in $((SECONDS - started))s"
