#!/usr/bin/env bash
# The long version of the reliability suite (docs/reliability.md): the same tests as CI,
# with more kill -9 rounds, a longer mixed load and appender, more fuzz cases and frames.
# Every knob can be overridden from the environment, e.g.
#   HORACE_SOAK_SECS=1800 HORACE_KILL_ROUNDS=200 scripts/soak.sh
# Run as root (zfs-fuse, setpriv). Replay a failing random run with HORACE_SEED=<printed seed>.
set -euo pipefail
cd "$(dirname "$0")/.."

export HORACE_LOAD_SECS="${HORACE_SOAK_SECS:-300}"
export HORACE_KILL_ROUNDS="${HORACE_KILL_ROUNDS:-100}"
export HORACE_APPEND_SECS="${HORACE_APPEND_SECS:-60}"
export HORACE_RESTORE_ROUNDS="${HORACE_RESTORE_ROUNDS:-1000}"
export HORACE_FUZZ_FRAMES="${HORACE_FUZZ_FRAMES:-100000}"
export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
# Issue 13's case: 400 directories × 100 files renamed during the startup scan.
export HORACE_SCAN_RENAME_DIRS="${HORACE_SCAN_RENAME_DIRS:-400}"
export HORACE_SCAN_RENAME_FILES="${HORACE_SCAN_RENAME_FILES:-100}"
# Issue 12 item 6: one owner floods its directory (the issue's case was 516,000).
export HORACE_FLOOD_FILES="${HORACE_FLOOD_FILES:-100000}"
# Issue 13: kill -9 rounds with the write load (directory renames included) going on
# through the restart and its startup scan.
KILL_ROUNDS_THROUGH_RESTART="${HORACE_KILL_ROUNDS_THROUGH_RESTART:-30}"

cargo build --bins -p horace-watcher -p horace-zfsd -p horace-client
echo "soak: load ${HORACE_LOAD_SECS}s, ${HORACE_KILL_ROUNDS} kill rounds, appender ${HORACE_APPEND_SECS}s," \
     "${HORACE_RESTORE_ROUNDS} racing restores, ${HORACE_FUZZ_FRAMES} frames, ${PROPTEST_CASES} proptest cases," \
     "${HORACE_SCAN_RENAME_DIRS}×${HORACE_SCAN_RENAME_FILES} files renamed during a scan"
# One test at a time: the figures (latency, memory) are not disturbed by the others.
cargo test -p horace-tests --test reliability -- --test-threads 1 --nocapture 2>&1 \
  | grep -E '^(test |running|test result|thread |failures|---- |assertion|  left|  right|kill -9|round |load |appender|restore race|query socket|in-place|Truncate|Header|MiddlePage|flood: [^w]|.*HORACE_SEED)'
HORACE_KILL_LOAD_THROUGH_RESTART=1 HORACE_KILL_ROUNDS="$KILL_ROUNDS_THROUGH_RESTART" \
  cargo test -p horace-tests --test reliability kill_nine_during_bursts -- --nocapture 2>&1 \
  | grep -E '^(test |test result|thread |assertion|kill -9|round .*(caught up|DIVERGED)|.*HORACE_SEED)'
cargo test -p horace-zfsd --test it fuzz
