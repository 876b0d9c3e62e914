#!/usr/bin/env bash
# `scripts/scratch-image.sh BINARY NAME STORAGE`: builds the go_example image `NAME` FROM
# scratch with Debian's buildah (installed if missing; chroot isolation, vfs storage under
# STORAGE, nothing pulled), from BINARY and the runtime tree of deploy/image/rootfs.sh: the
# Dockerfile's runtime stage, made of the binary this machine already built. Prints the
# image's id. `make test` runs it on the debug binary (tests/api/deploy.rs); STORAGE is the
# caller's to delete (`buildah --root STORAGE/root --runroot STORAGE/run rmi --all`, then rm).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { echo "usage: $0 BINARY NAME STORAGE" >&2; exit 2; }
binary=$1 name=$2 storage=$3
if ! command -v buildah >/dev/null; then
  . scripts/apt.sh
  apt_install buildah
fi
export BUILDAH_FORMAT=docker
buildah() { command buildah --storage-driver vfs --root "$storage/root" --runroot "$storage/run" "$@"; }

mkdir -p "$storage"
tree=$(mktemp -d "$storage/rootfs.XXXXXX")
rmdir "$tree"
deploy/image/rootfs.sh "$binary" "$tree" >&2
container=$(buildah from scratch)
# As the Dockerfile's COPY instructions: files owned by root, the app's folders by the app user.
buildah copy --quiet "$container" "$tree/rootfs/" / >/dev/null
buildah copy --quiet --chown 65532:65532 "$container" "$tree/app-owned/" /app/ >/dev/null
rm -rf "$tree"
# What the Dockerfile's runtime stage declares (tests/api/deploy.rs compares the two).
buildah config \
  --user 65532:65532 --workingdir /app \
  --env APP_ENV=prod --env TZ=UTC --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --port 8080 --port 9090 --port 30000 --port 9100 --port 9101 --port 9102 \
  --healthcheck 'CMD /app/go_example probe http' \
  --healthcheck-interval 10s --healthcheck-timeout 4s --healthcheck-start-period 30s \
  --healthcheck-retries 3 \
  --entrypoint '["/app/go_example"]' --cmd http \
  "$container"
buildah commit --quiet --format docker --rm "$container" "$name"
