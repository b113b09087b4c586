#!/usr/bin/env bash
# Runs every test of Horace over real parts: installs what is missing, builds, checks
# formatting and lints, runs the test suites, and tears down every pool, mount and
# process the run started, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

started_zfs=0
if [ "$(id -u)" -eq 0 ] && ! pgrep -x zfs-fuse >/dev/null; then
  /usr/sbin/zfs-fuse --pidfile /run/horace-tests-zfs-fuse.pid
  started_zfs=1
fi

cleanup() {
  status=$?
  # Pools left by a killed test process (the harness names them hrt<pid>x<n>).
  if command -v zpool >/dev/null && pgrep -x zfs-fuse >/dev/null; then
    for p in $(zpool list -H -o name 2>/dev/null | grep '^hrt' || true); do
      for _ in 1 2 3 4 5 6 7 8 9 10; do zpool destroy -f "$p" 2>/dev/null && break; sleep 0.5; done
    done
  fi
  pkill -f 'dbus-daemon --config-file=/tmp/horace-test-' 2>/dev/null || true
  pkill -x horace-watcher 2>/dev/null || true
  pkill -x horace-zfsd 2>/dev/null || true
  if [ "$started_zfs" = 1 ]; then
    pkill -x zfs-fuse 2>/dev/null || true
    for _ in $(seq 50); do pgrep -x zfs-fuse >/dev/null || break; sleep 0.2; done
  fi
  exit $status
}
trap cleanup EXIT INT TERM

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked -- --test-threads=2

# The systemd units: exposure must not rise above packaging/exposure.txt.
bash scripts/check-units.sh
# The Debian package: build it from the binaries built above, install it on this machine,
# check every installed file, `systemd-analyze verify` the installed units, remove and
# purge it (packaging/verify-deb.sh). dpkg -i needs root.
if [ "$(id -u)" -eq 0 ]; then
  deb=$(bash packaging/build-deb.sh --debug --no-build | tail -n 1)
  bash packaging/verify-deb.sh "$deb"
else
  echo "test.sh: not root, skipping the package install check (packaging/verify-deb.sh)"
fi

# The benchmark at a tiny size, so it cannot rot: it runs every figure end to end (the
# zfsd figure as root) without asserting times, and writes its report to /tmp so
# docs/benchmarks.md keeps the numbers of a real run (scripts/bench.sh).
cargo run --locked -p horace-bench -- --size tiny --out /tmp/horace-bench-ci.md >/dev/null
