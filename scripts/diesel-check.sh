#!/usr/bin/env bash
# Proves `diesel migration run` works against MariaDB with the project's diesel.toml: a fresh
# database gets the users table, `redo` reverts and re-applies, and diesel's regenerated
# src/model/schema.rs equals the committed one (so the shared schema is what diesel prints).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${APP__MYSQL__DSN:?start MariaDB first: eval \"\$(scripts/services.sh up)\"}"

db="go_example_diesel_$$"
server=${APP__MYSQL__DSN%/*}
host=$(echo "$server" | sed -E 's#mysql://[^@]*@([^:/]+):([0-9]+)#\1#')
port=$(echo "$server" | sed -E 's#mysql://[^@]*@([^:/]+):([0-9]+)#\2#')
mariadb --no-defaults -h"$host" -P"$port" -uroot -e "CREATE DATABASE $db"
trap 'mariadb --no-defaults -h"$host" -P"$port" -uroot -e "DROP DATABASE IF EXISTS $db"; cp "$backup" src/model/schema.rs; rm -f "$backup"' EXIT
backup=$(mktemp)
cp src/model/schema.rs "$backup"

export DATABASE_URL="$server/$db"
scripts/diesel-cli.sh migration run
scripts/diesel-cli.sh migration redo
tables=$(mariadb --no-defaults -h"$host" -P"$port" -uroot -N -e "SHOW TABLES FROM $db LIKE 'users'")
[ "$tables" = "users" ] || { echo "diesel-check: the users table is missing" >&2; exit 1; }
# diesel_cli 2.3 prints the joinable! lines in the order of a HashMap (its MySQL foreign-key
# loader collects one), so with two foreign keys or more their order changes from run to run:
# they are compared sorted, the order the committed file (and `go_example generate`) keeps.
python3 - src/model/schema.rs <<'PY'
import sys
path = sys.argv[1]
lines = open(path).read().split("\n")
idx = [i for i, l in enumerate(lines) if l.startswith("diesel::joinable!")]
for i, l in zip(idx, sorted(lines[i] for i in idx)):
    lines[i] = l
open(path, "w").write("\n".join(lines))
PY
if ! diff -u "$backup" src/model/schema.rs; then
  echo "diesel-check: diesel print-schema differs from the committed src/model/schema.rs" >&2
  exit 1
fi
echo "diesel-check: users table created by diesel migration run; schema.rs matches"
