//! Failures and reloads: a file the watcher cannot read goes to the retry queue (logged
//! once with its cause, retried with backoff, cataloged once readable); SIGHUP applies new
//! ignore patterns and keeps the old config when the new one is bad.

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
        log.lines()
            .filter(|l| l.contains("cannot catalog") && l.contains("will retry"))
            .count(),
        1,
        "logged once:\n{log}"
    );
    // The path and the cause are in the message itself (journalctl's text), not only in
    // fields.
    assert!(
        log.lines().any(|l| l.contains("cannot catalog")
            && l.contains("secret.txt: ")
            && l.contains("Permission denied")),
        "cause named:\n{log}"
    );
    assert!(file_row(&meta, "secret.txt").is_none());

    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    w.barrier();
    catalog_equals_disk(&files, &meta);
    w.stop();
}

#[test]
fn sighup_reloads_ignore_patterns_and_keeps_the_old_config_when_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir(&files).unwrap();
    let cfg = dir.path().join("horace.toml");
    let write_cfg = |ignore: &str| {
        let text = format!(
            "files_root = {:?}\nmetadata_dir = {:?}\nignore = {ignore}\n",
            files.display().to_string(),
            meta.display().to_string()
        );
        fs::write(&cfg, text).unwrap();
    };
    write_cfg(r#"["*.tmp"]"#);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_horace-watcher"));
    cmd.arg("--config").arg(&cfg);
    let mut w = Watcher::start_cmd(cmd, &files, &meta, &[]);
    fs::write(files.join("a.log"), "a").unwrap();
    w.barrier();
    assert!(file_row(&meta, "a.log").is_some());

    write_cfg(r#"["*.log"]"#);
    w.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(30), || w
        .log()
        .contains("configuration reloaded")));
    fs::write(files.join("b.log"), "b").unwrap();
    w.barrier();
    assert!(
        file_row(&meta, "b.log").is_none(),
        "new ignore pattern applies"
    );

    fs::write(&cfg, "files_root = 7\n").unwrap();
    w.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(30), || w
        .log()
        .contains("configuration reload failed")));
    fs::write(files.join("c.log"), "c").unwrap();
    fs::write(files.join("d.tmp"), "d").unwrap();
    w.barrier();
    assert!(file_row(&meta, "c.log").is_none(), "old settings kept");
    assert!(
        file_row(&meta, "d.tmp").is_some(),
        "*.tmp is no longer ignored"
    );
    w.stop();
}

/// Over the inotify watch limit (set to 8 in a user namespace of the watcher's own, so
/// the machine's limit is untouched): the watcher still starts, its startup scan
/// catalogs every file, it reports the directories it could not watch with the sysctl to
/// raise, and writes where it does watch are cataloged as usual.
#[test]
fn over_the_watch_limit_the_scan_still_catalogs_and_the_limit_is_named() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir(&files).unwrap();
    fs::create_dir(&meta).unwrap();
    for i in 0..20 {
        fs::create_dir(files.join(format!("d{i:02}"))).unwrap();
        fs::write(files.join(format!("d{i:02}/f.txt")), format!("{i}")).unwrap();
    }
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        "echo 8 > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_horace-watcher"),
    ]);
    let mut w = Watcher::start_cmd(cmd, &files, &meta, &[]);
    let status = w
        .notify
        .wait_for(Duration::ZERO, |l| l.starts_with("STATUS=Watching"))
        .unwrap();
    assert_eq!(status, "STATUS=Watching 20 files in 8 directories");
    let log = w.log();
    assert_eq!(
        log.matches("cannot watch directory").count(),
        21 - 8,
        "one line per directory not watched:\n{log}"
    );
    assert!(log.contains("fs.inotify.max_user_watches"), "{log}");
    w.barrier();
    catalog_equals_disk(&files, &meta);
    w.stop();
}
