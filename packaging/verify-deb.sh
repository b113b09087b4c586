#!/usr/bin/env bash
# Installs the Debian package of Horace on this machine with dpkg (unpack, then configure:
# user and group horace must exist before the D-Bus policy is unpacked), checks every
# installed file (mode, owner), the binaries stripped, the user and group, the conffiles,
# the maintainer scripts (deb-systemd-helper, no systemctl of their own), the binaries'
# --help, the man pages, the shell completions and the units (scripts/check-units.sh
# --installed: systemd-analyze verify), then
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
/usr/lib/systemd/system/horace-zfsd.service 644 root:root
/usr/lib/systemd/system/horace-watcher.service 644 root:root
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
/usr/share/bash-completion/completions/horace 644 root:root
/usr/share/zsh/vendor-completions/_horace 644 root:root
/usr/share/fish/vendor_completions.d/horace.fish 644 root:root
/usr/share/lintian/overrides/horace 644 root:root
/usr/share/doc/horace/copyright 644 root:root
/usr/share/doc/horace/README.md 644 root:root
"
conffiles="/etc/horace/horace.toml /etc/horace/zfsd.toml"

had_srv=0
[ -e /srv/horace ] && had_srv=1
finish() { # finish [STATUS]: purge a copy left installed, report, exit
  status=${1:-$?}
  if dpkg-query -W -f='${Status}' horace 2>/dev/null | grep -q 'ok'; then
    dpkg -P horace >/dev/null 2>&1 || true
  fi
  if [ "$had_srv" = 0 ]; then
    rmdir /srv/horace/meta /srv/horace 2>/dev/null || true
  fi
  if [ "$status" -eq 0 ]; then
    echo "verify-deb: $pass checks passed"
  else
    echo "verify-deb: FAILED" >&2
  fi
  exit "$status"
}
trap finish EXIT

installed() { dpkg-query -W -f='${Status}' horace 2>/dev/null; }
if [ -n "$(installed || true)" ]; then
  echo "verify-deb: purging a copy left by an earlier run"
  dpkg -P horace >/dev/null
fi

# The maintainer scripts: systemd through deb-systemd-helper / deb-systemd-invoke (the
# fragments cargo-deb inserts), never a systemctl of their own but daemon-reload; the
# user made in preinst is the one in sysusers.d.
ctl=$(mktemp -d)
dpkg-deb -e "$deb" "$ctl"
for s in preinst postinst prerm postrm; do
  [ -x "$ctl/$s" ] || die "no $s in the package"
  sh -n "$ctl/$s" || die "$s: syntax error"
  ! grep -n 'systemctl' "$ctl/$s" | grep -v 'systemctl --system daemon-reload' | grep -v ':#' | grep -q . \
    || die "$s calls systemctl: $(grep -n systemctl "$ctl/$s")"
done
grep -q 'deb-systemd-invoke try-restart horace-watcher.service' "$ctl/postinst" \
  || die "postinst does not try-restart the watcher on upgrade"
grep -q 'deb-systemd-invoke stop horace-watcher.service' "$ctl/prerm" || die "prerm does not stop the watcher"
grep -q 'deb-systemd-helper purge horace-watcher.service' "$ctl/postrm" || die "postrm does not purge the enablement"
grep -q 'deb-systemd-helper.* enable ' "$ctl/postinst" && grep -q 'was-enabled' "$ctl/postinst" \
  || die "postinst enables units unconditionally"
want_user=$(grep -v '^#' packaging/sysusers.d/horace.conf)
grep -qF "horace_sysusers='$want_user'" "$ctl/preinst" \
  || die "preinst's user line differs from packaging/sysusers.d/horace.conf ($want_user)"
depends=$(dpkg-deb -f "$deb" Depends)
for d in 'libc6 (>=' 'libgcc-s1 (>=' adduser dbus; do
  grep -qF "$d" <<<"$depends" || die "Depends lacks $d: $depends"
done
rm -rf "$ctl"
ok "maintainer scripts use deb-systemd-helper/-invoke; Depends: $depends"

# Unpack, then configure: preinst makes user and group horace before the policy is
# unpacked (on this machine they usually exist already, scripts/setup.sh; the clean
# bookworm of scripts/check-systemd.sh checks the order and the bus's journal).
echo "== dpkg --unpack $deb"
dpkg --unpack "$deb" >/dev/null
[ "$(installed)" = "install ok unpacked" ] || die "status after dpkg --unpack: $(installed)"
getent group horace >/dev/null || die "group horace does not exist after unpack (preinst)"
dpkg --configure horace >/dev/null
[ "$(installed)" = "install ok installed" ] || die "status after dpkg --configure: $(installed)"
ok "dpkg --unpack + --configure: install ok installed"
[ -s /var/lib/dpkg/info/horace.md5sums ] || die "dpkg computed no md5sums"
ok "dpkg computed the md5sums ($(wc -l </var/lib/dpkg/info/horace.md5sums) files)"

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
  ! readelf -W -S "/usr/bin/$b" | grep -qE '\.(debug_info|symtab) ' || die "/usr/bin/$b is not stripped"
  out=$("/usr/bin/$b" --help 2>&1) || die "$b --help failed: $out"
  grep -qi usage <<<"$out" || die "$b --help prints no usage: $out"
done
ok "horace-zfsd, horace-watcher and horace are stripped and run --help"
for page in horace horace-watcher horace-zfsd; do
  man -w "$page" >/dev/null 2>&1 || die "man page $page not found"
done
ok "man pages horace(1), horace-watcher(8), horace-zfsd(8)"
# The completions load in their shells and offer the subcommands.
comp=$(bash -c 'source /usr/share/bash-completion/completions/horace
  COMP_WORDS=(horace se); COMP_CWORD=1; COMP_LINE="horace se"; COMP_POINT=9
  _horace horace se horace 2>/dev/null || "$(complete -p horace | sed "s/.*-F \([^ ]*\).*/\1/")"
  printf "%s\n" "${COMPREPLY[@]}"')
grep -qx search <<<"$comp" || die "bash completion of 'horace se' does not offer search: $comp"
grep -q 'search' /usr/share/zsh/vendor-completions/_horace || die "zsh completion lacks search"
grep -q "__fish_use_subcommand.*search\|-a \"search\"\|-a search" /usr/share/fish/vendor_completions.d/horace.fish \
  || die "fish completion lacks search"
ok "bash, zsh and fish completions installed; bash completes 'horace se' to search"

bash scripts/check-units.sh --installed
ok "scripts/check-units.sh --installed"

# --- The installed programs, with the installed policy and configs ---------------------
scratch=$(mktemp -d /tmp/horace-verify-deb.XXXXXX)
chmod 0755 "$scratch"
smoke_pids=()
stop_smoke() {
  for pid in "${smoke_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${smoke_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  smoke_pids=()
  rm -rf "$scratch"
}
# shellcheck disable=SC2154 # st is assigned inside the trap string
trap 'st=$?; stop_smoke; finish $st' EXIT
retry() { # retry SECONDS COMMAND...: until the command succeeds
  local n=$(($1 * 10)); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# A private bus configured like the system bus, reading the installed system.d/.
sed -e "s|@SOCKET@|$scratch/bus|" -e "s|@POLICY@|/usr/share/dbus-1/system.d/org.horace.Zfs1.conf|" \
  scripts/private-bus.conf.in >"$scratch/bus.conf"
dbus-daemon --config-file="$scratch/bus.conf" --nofork --nopidfile 2>/dev/null &
smoke_pids+=($!)
retry 10 test -S "$scratch/bus" || die "private dbus-daemon did not start"
bus=unix:path=$scratch/bus
/usr/bin/horace-zfsd --config /etc/horace/zfsd.toml --bus-address "$bus" >"$scratch/zfsd.log" 2>&1 &
smoke_pids+=($!)
retry 15 busctl --address="$bus" status org.horace.Zfs1 \
  || die "installed horace-zfsd did not take its bus name: $(cat "$scratch/zfsd.log")"
ok "installed horace-zfsd starts with /etc/horace/zfsd.toml and owns org.horace.Zfs1"

# The installed introspection XML is what the installed daemon serves.
iface() { # the org.horace.Zfs1 <interface> element, whitespace collapsed
  tr -s '[:space:]' ' ' | sed -n 's#.*\(<interface name="org.horace.Zfs1">.*</interface>\).*#\1#p' \
    | sed 's#</interface>.*#</interface>#'
}
served=$(busctl --address="$bus" introspect --xml-interface org.horace.Zfs1 /org/horace/Zfs1 | iface)
shipped=$(iface </usr/share/dbus-1/interfaces/org.horace.Zfs1.xml)
[ -n "$served" ] && [ "$served" = "$shipped" ] \
  || die "installed org.horace.Zfs1.xml differs from what horace-zfsd serves"
ok "installed introspection XML matches what horace-zfsd serves"

# The installed policy: group horace reaches the methods, others are refused by the bus
# itself (org.freedesktop.DBus.Error.AccessDenied, before zfsd's own uid check).
call_as() { # call_as SETPRIV-ARGS...: ListSnapshots through dbus-send, error text on stdout
  setpriv "$@" -- dbus-send --bus="$bus" --print-reply --dest=org.horace.Zfs1 /org/horace/Zfs1 \
    org.horace.Zfs1.ListSnapshots string:tank/files 2>&1 || true
}
as_horace=$(call_as --reuid=horace --regid=horace --init-groups)
grep -q 'org.freedesktop.DBus.Error.AccessDenied' <<<"$as_horace" && die "the bus refused user horace: $as_horace"
grep -q 'org.horace.Zfs1.Error' <<<"$as_horace" || die "user horace got no answer from zfsd: $as_horace"
as_nobody=$(call_as --reuid=nobody --regid=nogroup --clear-groups)
grep -q 'org.freedesktop.DBus.Error.AccessDenied' <<<"$as_nobody" || die "the bus let nobody call zfsd: $as_nobody"
ok "installed D-Bus policy: group horace may call, nobody is refused"

# The installed watcher, as user horace, with the installed config (files and metadata
# moved to scratch directories), answers the installed CLI and stops cleanly on SIGTERM.
install -d -o horace -g horace "$scratch/files" "$scratch/meta" "$scratch/run"
setpriv --reuid=horace --regid=horace --init-groups -- /usr/bin/horace-watcher \
  --config /etc/horace/horace.toml --files "$scratch/files" --metadata "$scratch/meta" \
  --socket "$scratch/run/q.sock" --no-snapshots >"$scratch/watcher.log" 2>&1 &
wpid=$!
retry 30 /usr/bin/horace --socket "$scratch/run/q.sock" status \
  || die "installed horace-watcher did not answer: $(tail -n 5 "$scratch/watcher.log")"
echo hello | setpriv --reuid=horace --regid=horace --init-groups -- tee "$scratch/files/a.txt" >/dev/null
/usr/bin/horace --socket "$scratch/run/q.sock" sync >/dev/null
/usr/bin/horace --socket "$scratch/run/q.sock" --json search | grep -q '"a.txt"' \
  || die "installed watcher did not catalog a.txt"
kill -TERM "$wpid"
retry 30 sh -c "! kill -0 $wpid 2>/dev/null" || die "horace-watcher did not stop within 30 s of SIGTERM"
wait "$wpid" || die "horace-watcher exited with status $? on SIGTERM: $(tail -n 5 "$scratch/watcher.log")"
ok "installed horace-watcher (user horace, /etc/horace/horace.toml) catalogs, answers, stops cleanly"
stop_smoke
trap finish EXIT

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
