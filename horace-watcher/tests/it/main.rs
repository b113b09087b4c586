//! Integration tests of horace-watcher: the real binary over real inotify, on temp
//! directories and a zfs-fuse dataset, plus in-process tests of the library's watch
//! handle (sync, register, restore).

mod bulk;
mod failures;
mod inprocess;
mod lifecycle;
mod util;
