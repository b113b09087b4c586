#!/usr/bin/env bash
# Builds the release binaries and runs horace-bench, which makes its own data in a temp
# dir, measures every figure of docs/benchmarks.md against its baseline in the same run,
# and writes docs/benchmarks.md (machine, command, figures, ratios, PASS/MISS).
#
#   bash scripts/bench.sh [--size tiny|small|full] [--only catalog,search,zfs,mcp] [--out FILE] [--tmp DIR]
#
# The zfsd figure needs root (a file-backed zfs-fuse pool and a private dbus-daemon);
# without root it is reported as not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
# horace-client: the `horace` binary, whose `horace mcp` figure 9 measures.
cargo build --release --locked -p horace-watcher -p horace-zfsd -p horace-client -p horace-bench --bins
exec "${CARGO_TARGET_DIR:-target}/release/horace-bench" "$@"
