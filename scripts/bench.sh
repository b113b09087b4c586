#!/usr/bin/env bash
# Builds the release binaries and runs horace-bench, which makes its own data in a temp
# dir, measures every figure of docs/benchmarks.md against its baseline in the same run,
# and writes docs/benchmarks.md (machine, command, figures, ratios, PASS/MISS).
#
#   bash scripts/bench.sh [--size tiny|small|full] [--only catalog,search,zfs] [--out FILE] [--tmp DIR]
#
# The zfsd figure needs root (a file-backed zfs-fuse pool and a private dbus-daemon);
# without root it is reported as not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p horace-watcher -p horace-zfsd -p horace-bench --bins
exec "${CARGO_TARGET_DIR:-target}/release/horace-bench" "$@"
