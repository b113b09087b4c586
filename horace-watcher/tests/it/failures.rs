//! A file the watcher cannot read goes to the retry queue: logged once with its cause,
//! retried with backoff, cataloged once it becomes readable.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::time::Duration;

use horace_tests::{command_as, require_root, wait_until, NOBODY};

use crate::util::{catalog_equals_disk, file_row, Watcher};

#[test]
fn unreadable_file_is_retried_and_logged_once() {
    require_root("running the watcher as another uid");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    for d in [&files, &meta] {
        fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
    }
    let cmd = command_as(
        NOBODY.0,
        NOBODY.1,
        &[],
        env!("CARGO_BIN_EXE_horace-watcher"),
    );
    let mut w = Watcher::start_cmd(cmd, &files, &meta, &[]);
    w.barrier();

    let secret = files.join("secret.txt");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .unwrap();
    f.write_all(b"root only").unwrap();
    drop(f);
    // Two retries (after 1 s and 2 s of backoff) must fail quietly.
    let retried = wait_until(Duration::from_secs(30), || {
        w.log().matches("retry failed").count() >= 2
    });
    let log = w.log();
    assert!(retried, "no retries; log:\n{log}");
    assert_eq!(
        log.matches("cannot catalog; will retry").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(
        log.contains("secret.txt") && log.contains("Permission denied"),
        "cause named:\n{log}"
    );
    assert!(file_row(&meta, "secret.txt").is_none());

    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    w.barrier();
    catalog_equals_disk(&files, &meta);
    w.stop();
}
