#!/usr/bin/env bash
# Checks the systemd units of Horace:
#  1. exposure: `systemd-analyze security --offline=true` of each unit in systemd/ must not
#     exceed the value recorded in packaging/exposure.txt (nor the goal beside it);
#  2. syntax and references: `systemd-analyze verify` of each unit. verify needs the
#     ExecStart binaries and the man pages of Documentation= to exist on this machine,
#     so it runs only with --installed (packaging/verify-deb.sh calls it that way while
#     the package is installed) and is reported as skipped otherwise;
#  3. the installed units and D-Bus activation file are the ones in the tree (--installed).
# usage: scripts/check-units.sh [--installed]
set -euo pipefail
cd "$(dirname "$0")/.."

installed=0
[ "${1:-}" = --installed ] && installed=1
fail=0

exposure_of() {
  local out
  out=$(systemd-analyze security --offline=true --no-pager "$1" 2>&1) || true
  sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out" | tail -n 1
}

while read -r unit recorded goal; do
  case "$unit" in ''|'#'*) continue ;; esac
  got=$(exposure_of "systemd/$unit")
  if [ -z "$got" ]; then
    echo "FAIL $unit: systemd-analyze security gave no exposure level" >&2
    systemd-analyze security --offline=true --no-pager "systemd/$unit" >&2 || true
    fail=1
    continue
  fi
  if awk -v g="$got" -v r="$recorded" -v l="$goal" 'BEGIN { exit !(g > r || g > l) }'; then
    echo "FAIL $unit: exposure $got is above the recorded $recorded (goal $goal)" >&2
    systemd-analyze security --offline=true --no-pager "systemd/$unit" | grep '✗' >&2 || true
    fail=1
  else
    echo "ok   $unit: exposure $got (recorded $recorded, goal $goal)"
  fi
done <packaging/exposure.txt

if [ "$installed" = 1 ]; then
  for pair in horace-zfsd.service:/lib/systemd/system horace-watcher.service:/lib/systemd/system \
              org.horace.Zfs1.service:/usr/share/dbus-1/system-services; do
    f=${pair%%:*}; dir=${pair#*:}
    if cmp -s "systemd/$f" "$dir/$f"; then
      echo "ok   $dir/$f is the one in systemd/"
    else
      echo "FAIL $dir/$f differs from systemd/$f (or is missing)" >&2
      fail=1
    fi
  done
  if out=$(systemd-analyze verify /lib/systemd/system/horace-zfsd.service \
             /lib/systemd/system/horace-watcher.service 2>&1) && [ -z "$out" ]; then
    echo "ok   systemd-analyze verify: clean"
  else
    echo "FAIL systemd-analyze verify:" >&2
    echo "$out" >&2
    fail=1
  fi
else
  echo "skip systemd-analyze verify (needs the installed package: packaging/verify-deb.sh runs it)"
fi
exit $fail
