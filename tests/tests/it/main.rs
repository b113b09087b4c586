//! End-to-end tests of Horace over real parts: a zfs-fuse pool with `<pool>/files` and
//! `<pool>/meta`, a private dbus-daemon with the project's policy, the real horace-zfsd and
//! horace-watcher binaries. Run as root, after `cargo build --workspace --bins`.

mod recovery;
mod snapshots;
mod util;
