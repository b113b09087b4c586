#!/usr/bin/env bash
# Builds the Debian package of Horace with cargo-deb (manifest: packaging/Cargo.toml,
# [package.metadata.deb]): the three shipped binaries (not horace-bench), stripped; the
# man pages and shell completions generated from their clap definitions; Depends from
# dpkg-shlibdeps; maintainer scripts from packaging/debian/ with the deb-systemd-helper /
# deb-systemd-invoke fragments cargo-deb inserts. scripts/setup.sh installs cargo-deb.
#
# usage: packaging/build-deb.sh [--debug] [--no-build] [--out DIR]
#   --debug     package the debug binaries (faster to build; for CI smoke runs)
#   --no-build  do not run cargo build; use the binaries already in the target directory
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
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$target_dir/debian}
cargo_profile=$profile
[ "$profile" = debug ] && cargo_profile=dev

command -v cargo-deb >/dev/null 2>&1 \
  || { echo "build-deb: cargo-deb is not installed (scripts/setup.sh installs it)" >&2; exit 1; }

if [ "$build" = 1 ]; then
  cargo build --profile "$cargo_profile" --locked --bins \
    -p horace-zfsd -p horace-watcher -p horace-client >&2
fi

bindir=$target_dir/$profile
for b in horace-zfsd horace-watcher horace; do
  [ -x "$bindir/$b" ] || { echo "build-deb: missing $bindir/$b" >&2; exit 1; }
done

# The changelog's newest entry is the package's version (cargo-deb: version-revision).
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
changelog_version=$(sed -n '1s/^horace (\([^)]*\)).*/\1/p' packaging/debian/changelog)
[ "$changelog_version" = "$version-1" ] || {
  echo "build-deb: packaging/debian/changelog's newest entry is $changelog_version," \
       "the workspace version is $version (want $version-1): add a changelog entry" >&2
  exit 1
}

# Man pages (hand-written, checked against the binaries' clap definitions by
# packaging/tests/man_pages.rs) and completions (clap_complete, from `horace completions`).
gen=$bindir/package
rm -rf "$gen"
install -d "$gen/man" "$gen/completions"
for page in packaging/man/*.[0-9]; do
  gzip -9n -c "$page" >"$gen/man/$(basename "$page").gz"
done
"$bindir/horace" completions bash >"$gen/completions/horace"
"$bindir/horace" completions zsh >"$gen/completions/_horace"
"$bindir/horace" completions fish >"$gen/completions/horace.fish"

mkdir -p "$out"
fast=()
[ "$profile" = debug ] && fast=(--fast) # CI smoke runs: quicker compression
cargo deb --manifest-path packaging/Cargo.toml --no-build --locked --profile "$cargo_profile" "${fast[@]}" \
  --strip --no-separate-debug-symbols --no-dbgsym --output "$out" >&2
deb=$out/horace_${version}-1_$(dpkg --print-architecture).deb
[ -f "$deb" ] || { echo "build-deb: cargo-deb wrote no $deb" >&2; exit 1; }

# cargo-deb leaves libgcc out of $auto; packaging/Cargo.toml names it. Fail if the
# Depends lacks any package dpkg-shlibdeps derives from the packaged binaries.
chk=$(mktemp -d)
trap 'rm -rf "$chk"' EXIT
dpkg-deb -x "$deb" "$chk/root"
mkdir "$chk/debian" && : >"$chk/debian/control"
shlibs=$(cd "$chk" && dpkg-shlibdeps -O root/usr/bin/horace root/usr/bin/horace-watcher \
           root/usr/bin/horace-zfsd 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
depends=$(dpkg-deb -f "$deb" Depends)
IFS=',' read -ra derived <<<"$shlibs"
for d in "${derived[@]}"; do
  d=$(echo "$d" | sed 's/^ *//; s/ *$//')
  grep -qF "$d" <<<"$depends" \
    || { echo "build-deb: Depends ($depends) lacks $d (dpkg-shlibdeps)" >&2; exit 1; }
done
echo "$deb"
