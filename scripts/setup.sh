#!/usr/bin/env bash
# Installs what Horace's tests and demo need on a fresh Debian machine (run as root).
# Idempotent: a second run installs nothing.
set -euo pipefail
need=()
for pair in zfs-fuse:/usr/sbin/zfs-fuse dbus:/usr/bin/dbus-daemon util-linux:/usr/bin/setpriv \
            systemd:/usr/bin/systemd-analyze openssl:/usr/bin/openssl python3:/usr/bin/python3 \
            samba:/usr/sbin/smbd smbclient:/usr/bin/smbclient \
            rsync:/usr/bin/rsync nfs-ganesha:/usr/bin/ganesha.nfsd rpcbind:/usr/sbin/rpcbind \
            libnfs-utils:/usr/bin/nfs-cp \
            debootstrap:/usr/sbin/debootstrap systemd-container:/usr/bin/systemd-nspawn; do
  pkg=${pair%%:*}; bin=${pair#*:}
  [ -x "$bin" ] || need+=("$pkg")
done
# The real writers of tests/tests/reliability/real_writers.rs: git, and ganesha's VFS
# back end (a library, not an executable).
command -v git >/dev/null 2>&1 || need+=(git)
compgen -G '/usr/lib/*/ganesha/libfsalvfs.so' >/dev/null || need+=(nfs-ganesha-vfs)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${need[*]}; run as root to install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed (install Rust with rustup)" >&2
  exit 1
fi
# Packaging (packaging/build-deb.sh, scripts/test.sh): cargo-deb builds the .deb, lintian
# checks it. cargo-deb is pinned; installing it compiles it once (about 2 minutes).
cargo_deb_version=3.8.0
if [ "$(id -u)" -eq 0 ] && ! command -v lintian >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends lintian >/dev/null
fi
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  cargo install -q --locked cargo-deb --version "$cargo_deb_version"
fi
# cargo-deny (deny.toml, scripts/test.sh), pinned; compiled once (about 5 minutes). A
# failed install is not fatal: test.sh then says it skips cargo deny.
cargo_deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $cargo_deny_version" ]; then
  cargo install -q --locked cargo-deny --version "$cargo_deny_version" \
    || echo "setup: cargo-deny $cargo_deny_version could not be installed" >&2
fi
if [ "$(id -u)" -eq 0 ]; then
  getent group horace >/dev/null || groupadd --system horace
  getent passwd horace >/dev/null || useradd --system --gid horace --no-create-home --shell /usr/sbin/nologin horace
fi
# The MCP tests (tests/tests/reliability/mcp.rs) drive `horace mcp` with an MCP client this
# project did not write: the official Python SDK, pinned, in a venv next to the binaries.
mcp_sdk=mcp==2.3.0
venv="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/mcp-venv"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: python3-venv is missing; run as root to install it" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" != "${mcp_sdk#mcp==}" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$mcp_sdk"
fi
