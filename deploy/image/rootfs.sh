#!/usr/bin/env bash
# `deploy/image/rootfs.sh BINARY OUT`: writes the runtime file tree of the go_example image into
# OUT (a folder that must not exist), in two parts:
# - OUT/rootfs, copied to / owned by root: the one binary, the shared libraries `ldd` names for
#   it, CA certificates, the time zone database, an /etc/passwd and /etc/group naming the app
#   user, configs/, and /tmp (1777);
# - OUT/app-owned, copied into /app owned by the app user: the empty folders it writes (var/,
#   logs/).
# Nothing else: no shell, no keys, no certificates, nothing of var/.
#
# Both images are made of it: the Dockerfile's runtime stage (`FROM scratch`, COPY of OUT) and
# the one `make test` builds with buildah from the debug binary (tests/api/deploy.rs), so the
# file list the test proves is the Dockerfile's.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BINARY OUT" >&2; exit 2; }
binary=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
source_root=$(cd "$here/../.." && pwd)
# The app user: no login, no home but the app's folder (distroless' "nonroot" ids).
APP_UID=${APP_UID:-65532}
APP_GID=${APP_GID:-65532}

[ ! -e "$out" ] || { echo "$out exists" >&2; exit 1; }
owned=$out/app-owned
out=$out/rootfs
mkdir -p "$out"/{app,etc,tmp,usr/share} "$owned"

install -m 0755 "$binary" "$out/app/go_example"
# Every library the dynamic loader will open, the loader itself included, at its own path.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done

mkdir -p "$out/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
cp -a /usr/share/zoneinfo "$out/usr/share/zoneinfo"
printf 'root:x:0:0:root:/root:/sbin/nologin\napp:x:%s:%s:go_example:/app:/sbin/nologin\n' \
  "$APP_UID" "$APP_GID" >"$out/etc/passwd"
printf 'root:x:0:\napp:x:%s:\n' "$APP_GID" >"$out/etc/group"

cp -r "$source_root/configs" "$out/app/configs"
chmod -R a+rX,go-w "$out/app/configs"
# The app writes var/ (SQLite of the embedded profile, dev keys) and logs/; a read-only root
# file system mounts volumes over them.
mkdir -p "$owned/var" "$owned/logs"
chmod 0755 "$owned/var" "$owned/logs"
chmod 1777 "$out/tmp"
