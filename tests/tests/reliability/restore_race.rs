//! A hostile container swaps a directory on a restore's target path for a symlink to a
//! directory outside the files root, over and over, while restores run (the watcher runs
//! as root here, the worst case). Nothing may be written outside the files root, and the
//! outside file's content must never enter the catalog or the content store.
//! Restores: `HORACE_RESTORE_ROUNDS` (CI 60).

use std::fs;
use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use horace_client::{ClientError, FileRef};

use crate::fixture::{knob, sha256_hex, Watcher};

/// The outside directory's entries with their contents.
fn listing(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_never_writes_through_a_swapped_symlink() {
    let rounds = knob("HORACE_RESTORE_ROUNDS", 60);
    let dir = horace_tests::shared_tempdir();
    let (files, meta, outside) = (
        dir.path().join("files"),
        dir.path().join("meta"),
        dir.path().join("outside"),
    );
    for d in [&files, &meta, &outside] {
        fs::create_dir_all(d).unwrap();
    }
    let secret = b"SECRET outside the files root\n";
    fs::write(outside.join("target.txt"), secret).unwrap();
    let before = listing(&outside);
    let sub = files.join("alice/sub");
    fs::create_dir_all(&sub).unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let client = w.client().await;
    for v in [b"version one\n".as_slice(), b"version two\n"] {
        horace_tests::atomic_write(&sub.join("target.txt"), v);
        client.sync().await.unwrap();
    }

    // A static symlink first, by path and by id: nothing is written outside (the file
    // moved with its directory, so a restore that succeeds wrote to `sub.real`).
    fs::rename(&sub, files.join("alice/sub.real")).unwrap();
    symlink(&outside, &sub).unwrap();
    let by_path = client
        .restore_version(FileRef::Path("alice/sub/target.txt".into()), 1)
        .await;
    let by_id = client.restore_version(FileRef::Id(1), 2).await;
    eprintln!("static symlink: by path {by_path:?}, by id {by_id:?}");
    assert_eq!(listing(&outside), before, "written outside the root");
    if by_id.is_ok() {
        assert_eq!(
            fs::read(files.join("alice/sub.real/target.txt")).unwrap(),
            b"version two\n"
        );
    }
    fs::remove_file(&sub).unwrap();
    fs::rename(files.join("alice/sub.real"), &sub).unwrap();
    client.sync().await.unwrap();

    // Now the race: the attacker flips the directory and the symlink continuously.
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (files, outside, sub, stop, flips) = (
            files.clone(),
            outside.clone(),
            sub.clone(),
            stop.clone(),
            flips.clone(),
        );
        std::thread::spawn(move || {
            let real = files.join("alice/sub.real");
            while !stop.load(Ordering::Relaxed) {
                if fs::rename(&sub, &real).is_ok() {
                    let _ = symlink(&outside, &sub);
                    std::thread::yield_now();
                    let _ = fs::remove_file(&sub);
                    let _ = fs::rename(&real, &sub);
                    flips.fetch_add(1, Ordering::Relaxed);
                }
                // Fast enough to land inside restores, slow enough not to overflow the
                // kernel's event queue on every flip.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let (mut ok, mut refused) = (0u32, 0u32);
    for i in 0..rounds {
        // By id: the file moves with its directory, so the restore chases it.
        match client
            .restore_version(FileRef::Id(1), 1 + i64::from(i % 2 == 0))
            .await
        {
            Ok(_) => ok += 1,
            Err(ClientError::Query(e)) => {
                refused += 1;
                if refused <= 3 {
                    eprintln!("refused: {e}");
                }
            }
            Err(e) => panic!("restore {i}: transport error {e}\n{}", w.log()),
        }
        assert_eq!(
            listing(&outside),
            before,
            "restore {i} wrote outside the files root"
        );
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    if !sub.exists() {
        fs::rename(files.join("alice/sub.real"), &sub).unwrap();
    }
    client.sync().await.unwrap();
    assert_eq!(listing(&outside), before, "written outside the files root");
    let leaked = sha256_hex(secret);
    let versions = crate::fixture::all_versions(&w.catalog());
    assert!(
        versions.iter().all(|v| v.1 != leaked),
        "outside content cataloged: {versions:?}"
    );
    let object = meta
        .join("objects/sha256")
        .join(&leaked[..2])
        .join(&leaked[2..]);
    assert!(!object.exists(), "outside content copied into the store");
    assert!(w.is_running());
    eprintln!(
        "restore race: {rounds} restores ({ok} done, {refused} refused) against {} directory/symlink flips, \
         nothing written outside, nothing read from outside",
        flips.load(Ordering::Relaxed)
    );
    w.assert_consistent("after the restore race");
    w.stop();
}
