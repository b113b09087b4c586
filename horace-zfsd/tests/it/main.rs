//! Integration tests of horace-zfsd over real parts: a zfs-fuse pool, a private
//! dbus-daemon with the project's policy file, and the real daemon binary. Run as root.

mod denials;
mod flows;
mod fuzz;
mod interface;
mod process;
mod util;
