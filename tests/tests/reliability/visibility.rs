//! Issue 12 item 9: a peer learns a file's name only if it could list the directories on
//! its path, and its checksums only if it could read it (the modes on disk), in search,
//! content search, info, versions and duplicates; root sees everything; `[query]
//! visibility = "everyone"` turns it off. The caller is `nobody`, through `setpriv` and
//! the real `horace` CLI.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use horace_tests::{bin_path, command_as, NOBODY};
use serde_json::Value;

use crate::fixture::{sha256_hex, Watcher};

/// `horace --json <args>` as nobody: (exit code, stdout as JSON or Null).
fn as_nobody(w: &Watcher, args: &[&str]) -> (i32, Value) {
    let out = command_as(NOBODY.0, NOBODY.1, &[], bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

fn paths(v: &Value) -> Vec<String> {
    v["files"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn another_uids_private_files_are_not_shown_and_their_checksums_not_told() {
    horace_tests::require_root("setpriv");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    for d in ["alice", "bob", "nob"] {
        fs::create_dir_all(files.join(d)).unwrap();
    }
    fs::create_dir_all(&meta).unwrap();
    set_mode(&files, 0o755);
    // alice (uid 1001): a private directory with a 4-digit secret in it.
    fs::write(files.join("alice/secret.txt"), b"1234").unwrap();
    chown(files.join("alice"), Some(1001), Some(1001)).unwrap();
    chown(files.join("alice/secret.txt"), Some(1001), Some(1001)).unwrap();
    set_mode(&files.join("alice"), 0o700);
    set_mode(&files.join("alice/secret.txt"), 0o600);
    // bob: a listable directory, one public and one private file.
    fs::write(files.join("bob/public.txt"), b"hello").unwrap();
    fs::write(files.join("bob/private.txt"), b"5678").unwrap();
    set_mode(&files.join("bob"), 0o755);
    set_mode(&files.join("bob/public.txt"), 0o644);
    set_mode(&files.join("bob/private.txt"), 0o600);
    // nobody's own file, with alice's secret as content (a guess).
    fs::write(files.join("nob/guess.txt"), b"1234").unwrap();
    chown(files.join("nob"), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
    chown(files.join("nob/guess.txt"), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
    set_mode(&files.join("nob/guess.txt"), 0o600);

    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root_view = rt.block_on(async {
        let c = w.client().await;
        c.sync().await.unwrap();
        c.search(Default::default()).await.unwrap()
    });
    assert_eq!(root_view.total, 4, "root sees every file: {root_view:?}");

    // Search: alice's file is not there, nor counted; bob's private file is listed
    // without its checksum; nobody's own and the public file with theirs.
    let (code, all) = as_nobody(&w, &["search"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        paths(&all),
        ["bob/private.txt", "bob/public.txt", "nob/guess.txt"],
        "{all}"
    );
    assert_eq!(all["total"], 3);
    let sha = |path: &str| {
        all["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["sha256"].clone())
            .unwrap()
    };
    assert_eq!(sha("bob/private.txt"), Value::Null);
    assert_eq!(sha("bob/public.txt"), sha256_hex(b"hello").as_str());
    assert_eq!(sha("nob/guess.txt"), sha256_hex(b"1234").as_str());

    // Content search: the guess finds only nobody's own file, never alice's; bob's
    // private content finds nothing.
    let (code, hit) = as_nobody(&w, &["search", "--sha256", &sha256_hex(b"1234")]);
    assert_eq!(code, 0, "{hit}");
    assert_eq!(paths(&hit), ["nob/guess.txt"], "{hit}");
    assert_eq!(hit["total"], 1);
    let (_, miss) = as_nobody(&w, &["search", "--sha256", &sha256_hex(b"5678")]);
    assert_eq!(miss["total"], 0, "{miss}");
    assert!(paths(&miss).is_empty());

    // Info and versions: alice's file is "not found" (as a file that does not exist);
    // bob's private one has no checksums.
    let (code, _) = as_nobody(&w, &["info", "alice/secret.txt"]);
    let (missing_code, _) = as_nobody(&w, &["info", "alice/no-such-file.txt"]);
    assert_eq!(code, missing_code, "a hidden file answers as a missing one");
    assert_ne!(code, 0);
    let (code, info) = as_nobody(&w, &["info", "bob/private.txt"]);
    assert_eq!(code, 0, "{info}");
    assert_eq!(info["file"]["sha256"], Value::Null, "{info}");
    assert!(info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["sha256"].is_null()));
    let (code, versions) = as_nobody(&w, &["versions", "bob/private.txt"]);
    assert_eq!(code, 0, "{versions}");
    assert!(versions
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["sha256"].is_null()));
    let (code, _) = as_nobody(&w, &["versions", "alice/secret.txt"]);
    assert_eq!(code, missing_code);

    // Duplicates: root sees alice's secret and nobody's guess as one content; nobody
    // may not learn that.
    let groups = rt.block_on(async {
        w.client()
            .await
            .duplicates(Default::default())
            .await
            .unwrap()
    });
    assert_eq!(groups.total_groups, 1, "{groups:?}");
    let (code, dups) = as_nobody(&w, &["duplicates"]);
    assert_eq!(code, 0, "{dups}");
    assert_eq!(dups["total_groups"], 0, "{dups}");
    w.stop();

    // A single-tenant NAS turns it off.
    let mut w = Watcher::with_query(&files, &meta, "", "visibility = \"everyone\"");
    w.start();
    let (_, all) = as_nobody(&w, &["search"]);
    assert_eq!(all["total"], 4, "{all}");
    let (_, hit) = as_nobody(&w, &["search", "--sha256", &sha256_hex(b"1234")]);
    assert_eq!(hit["total"], 2, "{hit}");
    w.stop();
}

/// The count follows a directory closed or opened while the watcher runs, and a closed
/// directory created then (the watch map keeps each directory's owner and mode, updated by
/// the directory's own attribute events; the page is checked on disk in any case, so it is
/// `total` that would lag).
#[test]
fn a_directory_closed_or_opened_while_watched_changes_the_count() {
    horace_tests::require_root("setpriv");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("bob/deep")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    set_mode(&files, 0o755);
    for d in ["bob", "bob/deep"] {
        set_mode(&files.join(d), 0o755);
    }
    for f in ["bob/a.txt", "bob/deep/b.txt", "top.txt"] {
        fs::write(files.join(f), f).unwrap();
        set_mode(&files.join(f), 0o644);
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sync = || rt.block_on(async { w.client().await.sync().await.unwrap() });
    sync();
    // Past the reuse of an answer found before a change (sight::HIDDEN_FOR).
    let settle = || {
        sync();
        std::thread::sleep(std::time::Duration::from_millis(1200));
    };
    let total = |w: &Watcher| {
        let (code, v) = as_nobody(w, &["search"]);
        assert_eq!(code, 0, "{v}");
        (v["total"].as_u64().unwrap(), paths(&v))
    };
    assert_eq!(total(&w).0, 3);

    set_mode(&files.join("bob/deep"), 0o700);
    settle();
    assert_eq!(total(&w), (2, vec!["bob/a.txt".into(), "top.txt".into()]));
    set_mode(&files.join("bob"), 0o711);
    settle();
    assert_eq!(total(&w), (1, vec!["top.txt".into()]));
    set_mode(&files.join("bob"), 0o755);
    set_mode(&files.join("bob/deep"), 0o755);
    settle();
    assert_eq!(total(&w).0, 3);

    // A closed directory made while watched, with a file in it.
    fs::create_dir(files.join("shut")).unwrap();
    set_mode(&files.join("shut"), 0o700);
    fs::write(files.join("shut/c.txt"), "c").unwrap();
    settle();
    assert_eq!(total(&w).0, 3, "shut/c.txt is not counted");
    // The root itself closed: nothing.
    set_mode(&files, 0o700);
    settle();
    assert_eq!(total(&w), (0, vec![]));
    set_mode(&files, 0o755);
    w.stop();
}
