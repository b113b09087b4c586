#!/usr/bin/env bash
# Installs the Debian package of Horace on this machine with dpkg, checks every installed
# file (mode, owner), the user and group, the conffiles, the binaries' --help, the man
# pages and the units (scripts/check-units.sh --installed: systemd-analyze verify), then
# removes and purges it and checks that nothing is left but what policy keeps (user
# horace and the data directory /srv/horace/meta). Safe to run again: a copy left
# installed by an interrupted run is purged first. Needs root.
# usage: packaging/verify-deb.sh [PATH.deb]   (default: the newest in target/debian)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "verify-deb: needs root (dpkg -i)" >&2; exit 1; }
deb=${1:-$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/horace_*.deb 2>/dev/null | head -n 1)}
[ -f "$deb" ] || { echo "verify-deb: no .deb (run packaging/build-deb.sh)" >&2; exit 1; }

pass=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
die() { echo "FAIL $*" >&2; exit 1; }

# path mode owner:group, for every file the package ships.
expected="
/usr/bin/horace-zfsd 755 root:root
/usr/bin/horace-watcher 755 root:root
/usr/bin/horace 755 root:root
/lib/systemd/system/horace-zfsd.service 644 root:root
/lib/systemd/system/horace-watcher.service 644 root:root
/usr/share/dbus-1/system-services/org.horace.Zfs1.service 644 root:root
/usr/share/dbus-1/system.d/org.horace.Zfs1.conf 644 root:root
/usr/share/dbus-1/interfaces/org.horace.Zfs1.xml 644 root:root
/usr/lib/sysusers.d/horace.conf 644 root:root
/usr/lib/tmpfiles.d/horace.conf 644 root:root
/etc/horace/horace.toml 644 root:root
/etc/horace/zfsd.toml 644 root:root
/usr/share/man/man1/horace.1.gz 644 root:root
/usr/share/man/man8/horace-watcher.8.gz 644 root:root
/usr/share/man/man8/horace-zfsd.8.gz 644 root:root
/usr/share/doc/horace/copyright 644 root:root
/usr/share/doc/horace/README.md 644 root:root
"
conffiles="/etc/horace/horace.toml /etc/horace/zfsd.toml"

had_srv=0
[ -e /srv/horace ] && had_srv=1
finish() {
  status=$?
  if dpkg-query -W -f='${Status}' horace 2>/dev/null | grep -q 'ok'; then
    dpkg -P horace >/dev/null 2>&1 || true
  fi
  if [ "$had_srv" = 0 ]; then
    rmdir /srv/horace/meta /srv/horace 2>/dev/null || true
  fi
  [ $status -eq 0 ] && echo "verify-deb: $pass checks passed" || echo "verify-deb: FAILED" >&2
  exit $status
}
trap finish EXIT

installed() { dpkg-query -W -f='${Status}' horace 2>/dev/null; }
if [ -n "$(installed || true)" ]; then
  echo "verify-deb: purging a copy left by an earlier run"
  dpkg -P horace >/dev/null
fi

echo "== dpkg -i $deb"
dpkg -i "$deb" >/dev/null
[ "$(installed)" = "install ok installed" ] || die "status after dpkg -i: $(installed)"
ok "dpkg -i: install ok installed"

while read -r path mode owner; do
  [ -n "$path" ] || continue
  [ -f "$path" ] || die "$path is not installed"
  got=$(stat -c '%a %U:%G' "$path")
  [ "$got" = "$mode $owner" ] || die "$path is $got, want $mode $owner"
done <<<"$expected"
ok "$(grep -c / <<<"$expected") files installed with the right mode and owner"

# Nothing shipped that is not in the list above, except the documentation.
extra=$(dpkg -L horace | while read -r p; do
  [ -f "$p" ] || continue
  case "$p" in /usr/share/doc/horace/*) continue ;; esac
  grep -q "^$p " <<<"$expected" || echo "$p"
done)
[ -z "$extra" ] || die "unexpected files in the package: $extra"
ok "no unexpected files"

got_conf=$(dpkg-query -W -f='${Conffiles}\n' horace | awk 'NF {print $1}' | sort | xargs)
[ "$got_conf" = "$conffiles" ] || die "conffiles are '$got_conf', want '$conffiles'"
ok "conffiles: $got_conf"

getent group horace >/dev/null || die "group horace missing"
getent passwd horace >/dev/null || die "user horace missing"
[ "$(id -gn horace)" = horace ] || die "user horace's primary group is $(id -gn horace)"
ok "user and group horace exist (uid $(id -u horace))"
[ "$(stat -c '%a %U:%G' /srv/horace/meta)" = "750 horace:horace" ] \
  || die "/srv/horace/meta is $(stat -c '%a %U:%G' /srv/horace/meta)"
ok "/srv/horace/meta is 750 horace:horace (tmpfiles.d)"

for b in horace-zfsd horace-watcher horace; do
  out=$("/usr/bin/$b" --help 2>&1) || die "$b --help failed: $out"
  grep -qi usage <<<"$out" || die "$b --help prints no usage: $out"
done
ok "horace-zfsd, horace-watcher and horace run --help"
for page in horace horace-watcher horace-zfsd; do
  man -w "$page" >/dev/null 2>&1 || die "man page $page not found"
done
ok "man pages horace(1), horace-watcher(8), horace-zfsd(8)"

bash scripts/check-units.sh --installed
ok "scripts/check-units.sh --installed"

# A second install over the first keeps a changed conffile (conffile semantics).
echo "# changed by verify-deb" >>/etc/horace/horace.toml
dpkg -i --force-confold "$deb" >/dev/null
[ "$(installed)" = "install ok installed" ] || die "status after reinstall: $(installed)"
grep -q 'changed by verify-deb' /etc/horace/horace.toml || die "reinstall overwrote a changed conffile"
ok "reinstall keeps a changed conffile"

echo "== dpkg -r horace"
dpkg -r horace >/dev/null
[ "$(installed)" = "deinstall ok config-files" ] || die "status after dpkg -r: $(installed)"
while read -r path _ _; do
  [ -n "$path" ] || continue
  case " $conffiles " in *" $path "*) [ -f "$path" ] || die "dpkg -r removed conffile $path"; continue ;; esac
  [ ! -e "$path" ] || die "dpkg -r left $path"
done <<<"$expected"
ok "dpkg -r removed every file but the conffiles"

echo "== dpkg -P horace"
dpkg -P horace >/dev/null
[ -z "$(installed || true)" ] || die "status after dpkg -P: $(installed)"
while read -r path _ _; do
  [ -n "$path" ] || continue
  [ ! -e "$path" ] || die "dpkg -P left $path"
done <<<"$expected"
[ ! -e /etc/horace ] || die "dpkg -P left /etc/horace: $(ls -A /etc/horace)"
[ ! -e /usr/share/doc/horace ] || die "dpkg -P left /usr/share/doc/horace"
ok "dpkg -P removed the conffiles and /etc/horace"
getent passwd horace >/dev/null || die "purge removed user horace (policy keeps it)"
[ -d /srv/horace/meta ] || die "purge removed /srv/horace/meta (data is never removed)"
ok "user horace and /srv/horace/meta kept (policy: never remove users or data)"
