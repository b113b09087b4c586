//! Reliability and security tests of Horace (issue 8): faults (kill -9 of the watcher
//! and of zfsd, a full metadata dataset, a corrupt catalog, the files root moved away),
//! awkward writers, sustained mixed load, and hostile input against the real binaries.
//! Run as root after `cargo build --workspace --bins`; longer runs: `scripts/soak.sh`.

mod corrupt;
mod dbus;
mod dbus_forged;
/// The end-to-end fixture (both daemons over a zfs-fuse pool), shared with `tests/it`.
#[allow(dead_code)]
#[path = "../it/util.rs"]
mod e2e;
mod fast_saves;
mod fixture;
mod flood;
mod full;
mod fuzz;
mod hostile;
mod kill_rollback;
mod kill_watcher;
mod kill_zfsd;
mod load;
mod mcp;
mod monitor;
mod mounts;
mod open_writes;
mod real_writers;
mod restore_modes;
mod restore_race;
mod root;
mod samba;
mod scan_renames;
mod scrub;
mod side_files;
mod socket;
mod store_limits;
mod visibility;
mod writers;
