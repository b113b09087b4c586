//! A hostile tenant against the watcher's own files in the files root (issue 12 item 1):
//! names planted at the sync cookie's names — links to the catalog, FIFOs, unwritable
//! files, directories — must neither be written through, nor block, nor fail a `sync`.
//!
//! Before the fix, `sync` opened `<root>/.horace-sync-<n>` (n counting from 0) with
//! O_CREAT|O_TRUNC: the links truncated `catalog.db` to 0 bytes, the FIFOs hung every
//! `sync` in open(), and a plain unwritable file made it fail.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use horace_tests::{bin_path, command_as, NOBODY};

use crate::fixture::{catalog_kept_aside, object_names, Watcher};

/// The names the old code used, in both its numbering and the new one's shape.
fn planted_names() -> Vec<String> {
    let mut names: Vec<String> = (0..300).map(|n| format!(".horace-sync-{n}")).collect();
    names.extend((0..50u64).map(|n| format!(".horace-sync-{n:016x}")));
    names
}

#[test]
fn planted_links_fifos_and_files_at_cookie_names_change_nothing() {
    horace_tests::require_root("setpriv");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("svc")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    // The top directory is writable by every tenant, as on a shared NAS dataset.
    fs::set_permissions(&files, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(&meta, fs::Permissions::from_mode(0o755)).unwrap();
    for i in 0..50 {
        fs::write(files.join(format!("svc/f{i}.txt")), format!("content {i}")).unwrap();
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let catalog = meta.join("catalog.db");
    let victim = dir.path().join("victim.txt");
    fs::write(&victim, b"the watcher can write this").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o666)).unwrap();

    // The tenant plants, as nobody: links to the catalog and to a writable file, FIFOs,
    // files nobody else may write, directories.
    let names = planted_names();
    for (i, name) in names.iter().enumerate() {
        let path = files.join(name);
        let (prog, args): (&str, Vec<std::ffi::OsString>) = match i % 5 {
            0 => ("ln", vec!["-s".into(), catalog.clone().into(), path.into()]),
            1 => ("ln", vec!["-s".into(), victim.clone().into(), path.into()]),
            2 => ("mkfifo", vec![path.into()]),
            3 => ("mkdir", vec![path.into()]),
            _ => (
                "sh",
                vec![
                    "-c".into(),
                    format!("umask 777; : > '{}'", path.display()).into(),
                ],
            ),
        };
        let st = command_as(NOBODY.0, NOBODY.1, &[], prog)
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success(), "planting {name} with {prog}");
    }
    let catalog_len = fs::metadata(&catalog).unwrap().len();

    // Every sync works, quickly, as the tenant and as root.
    for round in 0..20 {
        let t = Instant::now();
        let out = command_as(NOBODY.0, NOBODY.1, &[], bin_path("horace"))
            .arg("--socket")
            .arg(&w.socket)
            .arg("sync")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sync {round} as nobody: {}{}",
            String::from_utf8_lossy(&out.stderr),
            w.log()
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "sync {round} took {:?}",
            t.elapsed()
        );
    }
    fs::write(files.join("svc/late.txt"), b"written after the plants").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { w.client().await.sync().await.unwrap() });

    // Nothing planted was written through, replaced or removed.
    assert_eq!(fs::read(&victim).unwrap(), b"the watcher can write this");
    assert!(fs::metadata(&catalog).unwrap().len() >= catalog_len);
    for name in &names {
        assert!(
            files.join(name).symlink_metadata().is_ok(),
            "{name} was removed"
        );
    }
    // No cookie of the watcher's own is left behind, and none is cataloged.
    let left: Vec<_> = fs::read_dir(&files)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".horace-sync-") && !names.contains(n))
        .collect();
    assert!(left.is_empty(), "cookies left behind: {left:?}");
    w.stop();
    w.start();
    let active = w.catalog_active();
    assert_eq!(active.len(), 51, "history after restart: {active:?}");
    assert!(active.keys().all(|p| p.starts_with("svc/")), "{active:?}");
    w.stop();
}

/// Issue 12 items 1 and 3: a catalog truncated to 0 bytes (what the cookie attack did) is
/// moved aside, not taken for a new one, and the store is not collected against it.
#[test]
fn a_truncated_catalog_is_kept_aside_and_the_store_is_not_collected() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("svc")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    for i in 0..20 {
        fs::write(
            files.join(format!("svc/f{i}.txt")),
            format!("old content {i}"),
        )
        .unwrap();
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for i in 0..20 {
        fs::write(
            files.join(format!("svc/f{i}.txt")),
            format!("new content {i}"),
        )
        .unwrap();
    }
    rt.block_on(async { w.client().await.sync().await.unwrap() });
    let before = object_names(&meta);
    assert!(before.len() >= 20, "{before:?}");
    w.stop();

    let catalog = meta.join("catalog.db");
    fs::write(&catalog, b"").unwrap();
    let _ = fs::remove_file(meta.join("catalog.db-wal"));
    w.start();
    let status = rt.block_on(async {
        let c = w.client().await;
        c.sync().await.unwrap();
        c.status().await.unwrap()
    });
    let after = object_names(&meta);
    let lost: Vec<_> = before.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "objects collected against the emptied catalog: {lost:?}"
    );
    let held = status
        .collection_held
        .expect("status says collection is held");
    assert!(held.contains("0 bytes"), "{held}");
    assert!(
        catalog_kept_aside(&meta, "truncated"),
        "the truncated catalog is kept aside"
    );
    // The current files are cataloged again.
    assert_eq!(w.catalog_active(), w.disk());
    w.stop();
}

/// Issue 12 item 2: a restore that cannot write names why (not `Internal`), and the CLI
/// exits with its own code (6).
#[test]
fn restore_failures_are_named_with_their_exit_code() {
    use horace_client::{ClientError, FileRef, QueryError, RestoreFailure};
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("a")).unwrap();
    fs::create_dir_all(files.join("b")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    fs::write(files.join("a/f.txt"), b"one").unwrap();
    fs::write(files.join("b/g.txt"), b"one").unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(w.client());
    fs::write(files.join("a/f.txt"), b"two").unwrap();
    fs::write(files.join("b/g.txt"), b"two").unwrap();
    rt.block_on(client.sync()).unwrap();

    // A directory where the file was; a directory swapped for a link out of the tree.
    fs::remove_file(files.join("a/f.txt")).unwrap();
    fs::create_dir(files.join("a/f.txt")).unwrap();
    fs::write(files.join("a/f.txt/inside"), b"x").unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::rename(files.join("b"), dir.path().join("b-moved")).unwrap();
    std::os::unix::fs::symlink(&outside, files.join("b")).unwrap();
    rt.block_on(client.sync()).unwrap();

    for (path, want) in [
        ("a/f.txt", RestoreFailure::IsDirectory),
        ("b/g.txt", RestoreFailure::DirectoryMissing),
    ] {
        let got = rt.block_on(client.restore_version(FileRef::Path(path.into()), 1));
        match got {
            Err(ClientError::Query(QueryError::RestoreFailed { kind, .. })) => {
                assert_eq!(kind, want, "{path}")
            }
            other => panic!("{path}: {other:?}\n{}", w.log()),
        }
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "wrote outside");
    assert_eq!(fs::read(files.join("a/f.txt/inside")).unwrap(), b"x");
    let out = std::process::Command::new(bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .args(["restore", "a/f.txt", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("a directory is at the path"), "{stderr}");
    w.stop();
}

/// Issue 12 item 5: a uid that holds every connection of its share locks out only itself,
/// and what it (or anyone past a budget) gets is the named error `TooManyConnections`,
/// which the CLI prints as such with its exit code, not "connection already shutdown".
#[test]
fn a_uid_holding_its_connections_locks_out_only_itself_and_is_told_why() {
    use horace_client::{ClientError, QueryError};
    let (_dir, files, meta) = tree_with_one_file();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    // nobody opens 40 connections (its share is 32) and keeps them open, idle.
    let holder = format!(
        "import socket, sys, time\n\
         held = []\n\
         for _ in range(40):\n\
         \x20   s = socket.socket(socket.AF_UNIX); s.connect({:?}); held.append(s)\n\
         print('held', flush=True)\n\
         time.sleep(60)\n",
        w.socket.display().to_string()
    );
    let (mut hold, _out) = hold_as_nobody(&holder);
    let cli_as_nobody = || {
        command_as(NOBODY.0, NOBODY.1, &[], bin_path("horace"))
            .arg("--socket")
            .arg(&w.socket)
            .arg("status")
            .output()
            .unwrap()
    };
    let out = cli_as_nobody();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains(&format!("too many connections: uid {}", NOBODY.0)),
        "{stderr}"
    );
    // Root (and so any other uid's budget) is not locked out.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async { w.client().await.status().await });
    assert!(status.is_ok(), "root locked out: {status:?}");
    // Root past its own budget is told the same way.
    let held: Vec<_> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..32 {
            v.push(w.client().await);
        }
        v
    });
    let refused = rt.block_on(async { w.client().await.status().await });
    assert!(
        matches!(
            &refused,
            Err(ClientError::Query(QueryError::TooManyConnections {
                limit: 32,
                ..
            }))
        ),
        "{refused:?}"
    );
    drop(held);
    let _ = hold.kill();
    let _ = hold.wait();
    // Freed: nobody gets in again.
    let back =
        horace_tests::wait_until(Duration::from_secs(10), || cli_as_nobody().status.success());
    assert!(back, "nobody still locked out after its connections closed");
    w.stop();
}

/// Issue 12 item 4 (the store part): a sparse file is copied into the store sparsely, so a
/// tenant's `truncate -s 64M` takes about nothing there instead of 64 MiB.
#[test]
fn a_sparse_file_is_stored_sparsely() {
    use std::os::unix::fs::MetadataExt;
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("a")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let sparse = files.join("a/sparse.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(&sparse).unwrap();
        f.seek(SeekFrom::Start(30 << 20)).unwrap();
        f.write_all(b"a little data in the middle").unwrap();
        f.set_len(64 << 20).unwrap();
    }
    let t0 = Instant::now();
    w.sync(4);
    let took = t0.elapsed();
    w.assert_consistent("sparse");
    let objects = object_names(&meta);
    assert_eq!(objects.len(), 1, "{objects:?}");
    let sha = objects.iter().next().unwrap();
    let obj = meta.join("objects/sha256").join(&sha[..2]).join(&sha[2..]);
    let md = fs::metadata(&obj).unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
    let on_disk = md.blocks() * 512;
    eprintln!(
        "sparse: 64 MiB file ({} bytes on disk), object {} bytes long, {on_disk} bytes on disk, cataloged in {took:?}",
        fs::metadata(&sparse).unwrap().blocks() * 512,
        md.len()
    );
    assert_eq!(md.len(), 64 << 20);
    assert!(on_disk <= 1 << 20, "the object takes {on_disk} bytes");
    w.stop();
}

/// A sparse file of `gib` GiB with a little data (reading it end to end takes minutes).
fn huge_sparse(path: &std::path::Path, gib: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::File::create(path).unwrap();
    f.seek(SeekFrom::Start(gib << 29)).unwrap();
    f.write_all(b"data in the middle").unwrap();
    f.set_len(gib << 30).unwrap();
}

/// Issue 12 item 4: a huge file that is deleted while it is being hashed stops being read,
/// and the files written after it are cataloged within seconds (a `sync` answers), not
/// after the whole file was read; SIGTERM while a huge file is read ends the watcher
/// within seconds.
#[test]
fn a_huge_file_deleted_while_hashed_is_abandoned_and_sigterm_does_not_wait_for_it() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("a")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    // 16 GiB: minutes to read here.
    huge_sparse(&files.join("a/huge.img"), 16);
    std::thread::sleep(Duration::from_secs(1));
    fs::write(files.join("a/small.txt"), b"small").unwrap();
    fs::remove_file(files.join("a/huge.img")).unwrap();
    let t0 = Instant::now();
    let took = w.sync(1);
    eprintln!("huge file deleted while hashed: sync answered {took:?} after the delete");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    w.assert_consistent("after the huge file went");

    huge_sparse(&files.join("a/huge2.img"), 16);
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    w.stop();
    let took = t0.elapsed();
    eprintln!("SIGTERM while a 16 GiB file was read: stopped in {took:?}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    // Nothing committed was lost, and the next start catalogs the huge file (it is there);
    // that is left to the next start, not waited for here.
    let conn = w.catalog();
    let small: i64 = conn
        .query_row(
            "SELECT count(*) FROM files WHERE path = 'a/small.txt' AND status = 'active'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(small, 1);
}

/// Issue 12 item 5 (the timeouts): connections a uid holds idle, and one that begins a
/// request frame and never finishes it, are closed by the server after `[query]
/// idle_timeout` and `frame_timeout`, so the uid is no longer locked out by its own
/// abandoned connections; a connection with a request in flight is not idle.
#[test]
fn idle_connections_and_half_sent_requests_are_closed() {
    let (_dir, files, meta) = tree_with_one_file();
    let mut w = Watcher::with_query(&files, &meta, "", "idle_timeout = 3\nframe_timeout = 2\n");
    w.start();
    // nobody holds its whole share (32): 31 idle connections and one that sends half a
    // request frame (a 4-byte header announcing 100 bytes, then 10 of them). Each reports
    // when and how the server closed it.
    let holder = format!(
        "import socket, time\n\
         held = []\n\
         for _ in range(32):\n\
         \x20   s = socket.socket(socket.AF_UNIX); s.connect({:?}); held.append(s)\n\
         held[0].sendall(bytes([0, 0, 0, 100]) + bytes(10))\n\
         print('held', flush=True)\n\
         t0 = time.time()\n\
         closed = []\n\
         for i, s in enumerate(held):\n\
         \x20   s.settimeout(30)\n\
         \x20   try:\n\
         \x20       r = s.recv(1)\n\
         \x20   except Exception as e:\n\
         \x20       r = repr(e)\n\
         \x20   closed.append((i, round(time.time() - t0, 1), r))\n\
         print('closed', len([c for c in closed if c[2] == b'']), closed[0][1], max(c[1] for c in closed), flush=True)\n",
        w.socket.display().to_string()
    );
    let (mut hold, mut out) = hold_as_nobody(&holder);
    let mut line = String::new();
    let cli_as_nobody = |cmd: &str| {
        command_as(NOBODY.0, NOBODY.1, &[], bin_path("horace"))
            .arg("--socket")
            .arg(&w.socket)
            .arg(cmd)
            .output()
            .unwrap()
    };
    // While they are held, nobody is locked out (its share is taken)...
    let locked = cli_as_nobody("status");
    assert_eq!(
        locked.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    // ...and once the server closed them, it is not.
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"closed"), "{line}");
    assert_eq!(
        fields[1], "32",
        "every held connection closed by the server: {line}"
    );
    let (half_sent, last): (f64, f64) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert!(
        (1.5..=3.5).contains(&half_sent),
        "the half-sent frame closed after {half_sent} s: {line}"
    );
    assert!(last <= 6.0, "the idle ones closed after {last} s: {line}");
    let _ = hold.wait();
    let back = cli_as_nobody("status");
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    // A request in flight longer than the idle timeout is not cut: a sync that waits.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = w.client().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.status()
            .await
            .expect("a connection used within the idle timeout stays open");
    });
    w.stop();
}

/// A files tree with `a/f.txt` and an empty metadata directory: (guard, files, meta).
fn tree_with_one_file() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("a")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    fs::write(files.join("a/f.txt"), b"one").unwrap();
    (dir, files, meta)
}

/// Runs a Python `script` as nobody that prints `held` once it holds its connections, and
/// returns it with the rest of its output once it has.
fn hold_as_nobody(
    script: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
) {
    let mut hold = command_as(NOBODY.0, NOBODY.1, &[], "/usr/bin/python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(hold.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "held");
    (hold, out)
}
