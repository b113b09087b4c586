#!/usr/bin/env bash
# Builds the Debian package of Horace with dpkg-deb from the workspace's binaries (the
# equivalent of cargo-deb, without downloading it).
#
# usage: packaging/build-deb.sh [--debug] [--no-build] [--out DIR]
#   --debug     package the debug binaries (faster to build; for CI smoke runs)
#   --no-build  do not run cargo; use the binaries already in the target directory
#   --out DIR   where to write the .deb (default: $CARGO_TARGET_DIR/debian or target/debian)
# Prints the path of the .deb on its last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$target_dir/debian}

if [ "$build" = 1 ]; then
  if [ "$profile" = release ]; then
    cargo build --release --workspace --bins --locked >&2
  else
    cargo build --workspace --bins --locked >&2
  fi
fi

bindir=$target_dir/$profile
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }

need() { [ -e "$1" ] || { echo "build-deb: missing $1" >&2; exit 1; }; }
for f in "$bindir/horace-zfsd" "$bindir/horace-watcher" "$bindir/horace" \
         packaging/dbus/org.horace.Zfs1.conf packaging/dbus/org.horace.Zfs1.xml \
         packaging/zfsd.toml packaging/horace.toml; do
  need "$f"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/horace_${version}_${arch}
umask 022

inst() { # inst MODE SRC DEST
  install -D -m "$1" "$2" "$root$3"
}
inst 0755 "$bindir/horace-zfsd" /usr/bin/horace-zfsd
inst 0755 "$bindir/horace-watcher" /usr/bin/horace-watcher
inst 0755 "$bindir/horace" /usr/bin/horace
strip --strip-debug "$root"/usr/bin/horace* 2>/dev/null || true

inst 0644 systemd/horace-zfsd.service /lib/systemd/system/horace-zfsd.service
inst 0644 systemd/horace-watcher.service /lib/systemd/system/horace-watcher.service
inst 0644 systemd/org.horace.Zfs1.service /usr/share/dbus-1/system-services/org.horace.Zfs1.service
inst 0644 packaging/dbus/org.horace.Zfs1.conf /usr/share/dbus-1/system.d/org.horace.Zfs1.conf
inst 0644 packaging/dbus/org.horace.Zfs1.xml /usr/share/dbus-1/interfaces/org.horace.Zfs1.xml
inst 0644 packaging/sysusers.d/horace.conf /usr/lib/sysusers.d/horace.conf
inst 0644 packaging/tmpfiles.d/horace.conf /usr/lib/tmpfiles.d/horace.conf
inst 0644 packaging/horace.toml /etc/horace/horace.toml
inst 0644 packaging/zfsd.toml /etc/horace/zfsd.toml

for page in packaging/man/*.[0-9]; do
  sec=${page##*.}
  name=$(basename "$page")
  install -d "$root/usr/share/man/man$sec"
  gzip -9n -c "$page" >"$root/usr/share/man/man$sec/$name.gz"
  chmod 0644 "$root/usr/share/man/man$sec/$name.gz"
done

docdir=/usr/share/doc/horace
inst 0644 packaging/debian/copyright $docdir/copyright
inst 0644 README.md $docdir/README.md
for d in docs/*.md; do
  [ -e "$d" ] && inst 0644 "$d" "$docdir/$(basename "$d")"
done

# DEBIAN/
install -d -m 0755 "$root/DEBIAN"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"
done
# The newest glibc symbol version any binary needs is the libc6 lower bound.
glibc=$({ objdump -T "$root"/usr/bin/horace* 2>/dev/null || true; } \
        | { grep -o 'GLIBC_[0-9][0-9.]*' || true; } | sed 's/GLIBC_//' | sort -V | tail -n 1)
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@GLIBC@/${glibc:-2.36}/" packaging/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' \
   | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/horace_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
