# Sourced by the project's scripts: installs Debian packages, running `apt-get update` only when
# the package lists are stale (a fresh machine), and says so on stderr.
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "installing $* needs root (apt-get); run as root or install them first" >&2
    return 1
  fi
  echo "installing $* (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # One apt at a time: scripts run in parallel (tests, benchmarks) would otherwise fail on
  # dpkg's lock instead of waiting for it.
  (
    flock 8
    apt-get install -y --no-install-recommends "$@" >&2 \
      || { apt-get update >&2 && apt-get install -y --no-install-recommends "$@" >&2; }
  ) 8>"${TMPDIR:-/tmp}/go_example-apt.lock"
}
