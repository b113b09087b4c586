#!/usr/bin/env bash
# Runs every test of Horace over real parts: installs what is missing, builds, checks
# formatting and lints, runs the test suites, and tears down every pool, mount and
# process the run started, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# One zfs-fuse daemon serves every test pool. Start it unless one already answers; the
# cleanup stops only the one started here (by its pid).
zfs_pidfile=/run/horace-tests-zfs-fuse.pid
started_zfs=0
if [ "$(id -u)" -eq 0 ] && ! zpool list >/dev/null 2>&1; then
  rm -f "$zfs_pidfile"
  /usr/sbin/zfs-fuse --no-kstat-mount --pidfile "$zfs_pidfile"
  started_zfs=1
  for _ in $(seq 100); do zpool list >/dev/null 2>&1 && break; sleep 0.1; done
fi

cleanup() {
  status=$?
  # Pools left by a killed test process (the harness names them hrt<pid>x<n>).
  if command -v zpool >/dev/null && zpool list >/dev/null 2>&1; then
    for p in $(zpool list -H -o name 2>/dev/null | grep '^hrt' || true); do
      for _ in 1 2 3 4 5 6 7 8 9 10; do zpool destroy -f "$p" 2>/dev/null && break; sleep 0.5; done
    done
  fi
  pkill -f 'dbus-daemon --config-file=/tmp/horace-test-' 2>/dev/null || true
  pkill -x horace-watcher 2>/dev/null || true
  pkill -x horace-zfsd 2>/dev/null || true
  if [ "$started_zfs" = 1 ] && [ -s "$zfs_pidfile" ]; then
    zpid=$(cat "$zfs_pidfile")
    kill "$zpid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$zpid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$zpid" 2>/dev/null || true
    rm -f "$zfs_pidfile"
  fi
  exit $status
}
trap cleanup EXIT INT TERM

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The MSRV (rust-version in Cargo.toml) is true for the lock: check the workspace with
# that toolchain (rustup, minimal profile; about 2 minutes of `cargo check` once, less
# when the toolchain and its artifacts are left from an earlier run).
msrv=$(sed -n '/^\[workspace.package\]/,/^\[/s/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if command -v rustup >/dev/null 2>&1 \
   && { rustup run "$msrv" rustc --version >/dev/null 2>&1 \
        || timeout 300 rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1; }; then
  cargo +"$msrv" check --locked --workspace
  echo "test.sh: the workspace builds with its MSRV, Rust $msrv"
else
  echo "test.sh: MSRV check SKIPPED: rustup cannot install Rust $msrv here (no rustup, or no download)"
fi

# cargo-deny (deny.toml): licenses, bans and sources always; advisories where the
# advisory database can be fetched. scripts/setup.sh installs cargo-deny.
if command -v cargo-deny >/dev/null 2>&1; then
  if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --locked check advisories licenses bans sources
  else
    echo "test.sh: cargo deny advisories SKIPPED: the advisory database cannot be fetched"
    cargo deny --locked --offline check licenses bans sources
  fi
else
  echo "test.sh: cargo deny SKIPPED: cargo-deny is not installed (scripts/setup.sh installs it)"
fi
cargo build --workspace --bins --locked
cargo test --workspace --locked -- --test-threads=2

# The systemd units: exposure must not rise above packaging/exposure.txt.
bash scripts/check-units.sh
# The Debian package: build it from the binaries built above, install it on this machine,
# check every installed file, `systemd-analyze verify` the installed units, remove and
# purge it (packaging/verify-deb.sh). dpkg -i needs root.
if [ "$(id -u)" -eq 0 ]; then
  deb=$(bash packaging/build-deb.sh --debug --no-build | tail -n 1)
  # lintian: no error or warning, info and pedantic tags included, except the overrides
  # in packaging/debian/lintian-overrides (each says why).
  lintian --fail-on error,warning --pedantic -I --tag-display-limit 0 "$deb"
  bash packaging/verify-deb.sh "$deb"
  # The same package under a real systemd: a bookworm booted with systemd-nspawn (cached
  # under /var/tmp/horace-nspawn), install, units, D-Bus, sandbox, watchdog, upgrade,
  # purge (scripts/check-systemd.sh; skips where the machine cannot, except under CI).
  bash scripts/check-systemd.sh "$deb"
else
  echo "test.sh: not root, skipping the package install check (packaging/verify-deb.sh)"
fi

# The benchmark at a tiny size, so it cannot rot: it runs every figure end to end (the
# zfsd figure as root) without asserting times, and writes its report to /tmp so
# docs/benchmarks.md keeps the numbers of a real run (scripts/bench.sh).
cargo run --locked -p horace-bench -- --size tiny --out /tmp/horace-bench-ci.md >/dev/null
