#!/usr/bin/env bash
# Horace in five minutes. As root on a fresh Debian machine it installs what it needs,
# builds the binaries, creates a file-backed zfs-fuse pool with a files and a metadata
# dataset, starts a private D-Bus daemon with the project's policy, starts horace-zfsd
# (root) and horace-watcher (user horace), saves files the way services do (temp file +
# rename), and shows search, version history, a restore and a snapshot through the
# `horace` CLI. Without root it runs the watcher on a plain temporary directory (no ZFS,
# no bus) and shows cataloging and queries.
#
# Everything it starts is stopped, and the pool and temporary files are removed, pass or
# fail. usage: bash scripts/demo.sh [--plain]   (--plain: the plain-directory demo, also as root)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# --- presentation ----------------------------------------------------------------------
if [ -t 1 ]; then bold=$'\e[1m'; dim=$'\e[2m'; red=$'\e[31m'; off=$'\e[0m'; else bold=; dim=; red=; off=; fi
step=0
section() { step=$((step + 1)); printf '\n%s== %d. %s%s\n' "$bold" "$step" "$*" "$off"; }
say() { printf '%s\n' "$*" | fold -s -w 88; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; "$@"; }
# zfs and zpool calls get a deadline: a wedged zfs-fuse makes the demo fail, not hang.
zshow() {
  printf '%s$ %s%s\n' "$dim" "$*" "$off"
  local rc=0
  timeout 120 "$@" || rc=$?
  if [ $rc -eq 124 ]; then
    printf '%szfs-fuse did not answer within 120 s (is it stuck? `zpool list`, restart zfs-fuse).%s\n' \
      "$red" "$off" >&2
  fi
  return $rc
}

# --- state for cleanup -------------------------------------------------------------------
work=""
pids=()
pool=""
started_zfs_fuse=0
keep_work=0
cleanup() {
  status=$?
  set +e
  if [ $status -ne 0 ]; then
    printf '\n%sThe demo failed (exit %d).%s Last lines of the daemons'"'"' logs:\n' "$red" "$status" "$off"
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "--- $log"; tail -n 15 "$log"; }
    done
  fi
  printf '\n%s== cleaning up%s\n' "$bold" "$off"
  # Stop in reverse order of start; SIGTERM first (the watcher drains and closes the
  # catalog), SIGKILL after 10 s.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ -n "$pool" ] && zpool list "$pool" >/dev/null 2>&1; then
    # zfs-fuse's destroy can be busy for a while right after use: retry for up to a minute.
    deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
      timeout 30 zpool destroy -f "$pool" 2>/dev/null && break
      sleep 0.5
    done
    if zpool list "$pool" >/dev/null 2>&1; then
      # Keep the image: deleting it under a live pool would leave zfs-fuse stuck with it.
      printf '%szfs-fuse still reports pool %s busy; it and %s are left in place.%s\n' \
        "$red" "$pool" "$work" "$off"
      echo "Remove them later with: zpool destroy -f $pool && rm -rf $work"
      keep_work=1
      [ $status -eq 0 ] && status=1
    fi
  fi
  if [ "$started_zfs_fuse" = 1 ] && [ -f "$work/zfs-fuse.pid" ]; then
    zpid=$(cat "$work/zfs-fuse.pid")
    kill -TERM "$zpid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$zpid" 2>/dev/null || break; sleep 0.2; done
  fi
  # --one-file-system: never descend into a dataset that is still mounted.
  [ -n "$work" ] && [ "$keep_work" = 0 ] && rm -rf --one-file-system "$work"
  if [ $status -eq 0 ]; then
    echo "Stopped every process the demo started and removed its pool and files."
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "${red}timed out after ${secs}s waiting for $what${off}" >&2
  return 1
}

# Saves a file the way services do: write a temp file beside it, then rename into place.
save() { # save RELPATH CONTENT
  local path=$files/$1
  # Group-writable, like services that share the tree with user horace by group.
  umask 0002
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$2" >"$(dirname "$path")/.$(basename "$path").tmp"
  mv "$(dirname "$path")/.$(basename "$path").tmp" "$path"
  printf '  saved %-36s %s\n' "$1" "${dim}\"$2\"${off}"
}

root=0
[ "$(id -u)" -eq 0 ] && root=1
case "${1:-}" in
  --plain) root=0 ;;
  "") ;;
  *) echo "usage: bash scripts/demo.sh [--plain]" >&2; exit 2 ;;
esac

printf '%sHorace demo%s\n' "$bold" "$off"
if [ $root = 1 ]; then
  say "Running as root: a real (file-backed) ZFS pool, a D-Bus daemon with Horace's policy, horace-zfsd as root and horace-watcher as user horace — the privilege split of a NAS install."
else
  say "Plain mode (not root, or --plain): the watcher runs on a plain temporary directory, without ZFS or D-Bus, to show cataloging, version history, restore and queries. Run as root for snapshots."
fi

section "Install what is needed and build"
if [ "$(id -u)" -eq 0 ]; then
  show bash scripts/setup.sh
else
  command -v cargo >/dev/null || { echo "cargo is not installed (install Rust with rustup)" >&2; exit 1; }
  say "(skipping scripts/setup.sh, which installs packages as root)"
fi
target=${CARGO_TARGET_DIR:-$repo/target}
show cargo build --workspace --bins --locked --quiet
bin=$target/debug
for b in horace-zfsd horace-watcher horace; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b after the build" >&2; exit 1; }
done
say "Built horace-zfsd, horace-watcher and horace in $bin."

# The daemons log to files in the work directory: plain text, without per-request noise.
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-info,tarpc=warn}
work=$(mktemp -d /tmp/horace-demo.XXXXXX)
chmod 0755 "$work"
mkdir -p "$work/run"
socket=$work/run/query.sock
horace() { "$bin/horace" --socket "$socket" "$@"; }

if [ $root = 1 ]; then
  section "A ZFS pool with a files and a metadata dataset"
  if ! timeout 10 zpool list >/dev/null 2>&1; then
    say "Starting zfs-fuse (the user-space ZFS of Debian; on a NAS this is the OpenZFS kernel module)."
    /usr/sbin/zfs-fuse --no-kstat-mount --pidfile "$work/zfs-fuse.pid"
    started_zfs_fuse=1
    wait_for 20 "zfs-fuse" zpool list
  fi
  pool=hdemo$$
  truncate -s 512M "$work/pool.img"
  zshow zpool create -m "$work/pool" "$pool" "$work/pool.img"
  zshow zfs create "$pool/files"
  zshow zfs create "$pool/meta"
  files=$work/pool/files
  meta=$work/pool/meta
  chmod 0755 "$work/pool"
  # The watcher (user horace) reads every file and writes restores: here through group
  # horace on setgid, group-writable directories (docs/operations.md: ACL or group).
  chown horace:horace "$meta"
  chmod 0750 "$meta"
  chgrp horace "$files"
  chmod 2775 "$files"
  say "files: $files (dataset $pool/files), metadata: $meta (dataset $pool/meta, owned by horace)."

  section "A D-Bus daemon with Horace's policy, and horace-zfsd"
  say "The policy file packaging/dbus/org.horace.Zfs1.conf lets only root own org.horace.Zfs1 and only root and group horace call it."
  sed -e "s|@SOCKET@|$work/bus|" -e "s|@POLICY@|$repo/packaging/dbus/org.horace.Zfs1.conf|" \
    "$repo/scripts/private-bus.conf.in" >"$work/bus.conf"
  dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile >"$work/dbus.log" 2>&1 &
  pids+=($!)
  wait_for 10 "the D-Bus daemon" test -S "$work/bus"
  bus=unix:path=$work/bus
  cat >"$work/zfsd.toml" <<EOF
root = "$pool/files"
zfs_path = "/usr/sbin/zfs"
allow_uids = [0]
allow_groups = ["horace"]
command_timeout = 60
state_dir = "$work/zfsd-state"
EOF
  "$bin/horace-zfsd" --config "$work/zfsd.toml" --bus-address "$bus" >"$work/zfsd.log" 2>&1 &
  pids+=($!)
  wait_for 15 "horace-zfsd on the bus" busctl --address="$bus" status org.horace.Zfs1
  show busctl --address="$bus" introspect org.horace.Zfs1 /org/horace/Zfs1 org.horace.Zfs1

  section "horace-watcher, as user horace"
  cat >"$work/horace.toml" <<EOF
files_root = "$files"
metadata_dir = "$meta"

[snapshots]
enabled = true
dataset = "$pool/files"

[query]
socket = "$socket"
writers = ["uid:0"]

[zfsd]
bus = "$bus"

[catalog]
backup_interval = 0
EOF
  chown horace:horace "$work/run"
  printf '%s$ %s%s\n' "$dim" "setpriv --reuid=horace --regid=horace --init-groups -- horace-watcher --config $work/horace.toml" "$off"
  setpriv --reuid=horace --regid=horace --init-groups -- \
    "$bin/horace-watcher" --config "$work/horace.toml" >"$work/watcher.log" 2>&1 &
  pids+=($!)
else
  section "horace-watcher on a plain directory"
  files=$work/files
  meta=$work/meta
  mkdir -p "$files"
  printf '%s$ %s%s\n' "$dim" "horace-watcher --files $files --metadata $meta --socket $socket --no-snapshots" "$off"
  "$bin/horace-watcher" --files "$files" --metadata "$meta" --socket "$socket" --no-snapshots \
    >"$work/watcher.log" 2>&1 &
  pids+=($!)
fi
wait_for 60 "the watcher's query socket" horace status
say "The watcher is up: it watches $files with inotify and answers on $socket."

section "Services save files (temp file + rename)"
say "Each service writes under its own directory; the first path component is the file's owner."
save billing/invoice-2026-001.txt "invoice 2026-001: 3 widgets, EUR 120.00"
save billing/customers.csv "1,ACME Corp,Berlin"
save reports/2026/q1.md "# Q1 report (draft)"
save photos/cat.txt "a picture of a cat, in words"
say "billing rewrites its invoice twice (a correction, then a mistake):"
save billing/invoice-2026-001.txt "invoice 2026-001: 3 widgets, EUR 100.00 (discount)"
save billing/invoice-2026-001.txt "invoice 2026-001: OOPS"
say "'horace sync' waits until everything written before it is in the catalog (else it lists what is not, and why, and exits 9):"
show horace sync

section "Search"
show horace search
show horace search --owner billing

section "Version history of one file"
show horace info billing/invoice-2026-001.txt
show horace versions billing/invoice-2026-001.txt

section "Restore an earlier version"
say "The file now holds:"
show cat "$files/billing/invoice-2026-001.txt"
say "Restore version 2 (the current content is kept first, so the restore can be undone):"
show horace restore billing/invoice-2026-001.txt 2
show horace sync
show cat "$files/billing/invoice-2026-001.txt"
show horace versions billing/invoice-2026-001.txt

if [ $root = 1 ]; then
  section "Snapshots"
  say "The watcher decides when to snapshot and horace-zfsd only does it: at start the watcher took one catch-up snapshot per due label (hourly, daily, weekly, monthly), and it prunes them by count. An operator can also ask zfsd directly over D-Bus:"
  show busctl --address="$bus" call org.horace.Zfs1 /org/horace/Zfs1 org.horace.Zfs1 \
    CreateSnapshot ss "$pool/files" demo
  zshow zfs list -t snapshot -o name,creation -r "$pool/files"
  show horace snapshots
fi

section "Status"
show horace status

printf '\n%sDone.%s Next: docs/operations.md (install the .deb on a NAS), docs/api.md (containers).\n' "$bold" "$off"
