//! Issue 12 item 4: hashing and storing are bounded and fair. One owner (top-level
//! directory) cannot fill the metadata dataset: past its share (`[versions]
//! owner_share_percent`) its new versions are cataloged without content, `status` says
//! how many and which, and the other owners' content is still stored.

use std::fs;
use std::path::Path;

use crate::fixture::Watcher;

/// Mounted at the path given; unmounted (lazily) on drop.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn tmpfs(dir: &Path, size: &str) -> Self {
        horace_tests::require_root("mount -t tmpfs");
        horace_tests::run_ok(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// `n` bytes no other call gives (so nothing is shared in the store).
fn distinct(tag: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut x = horace_tests::sha256_hex(tag.as_bytes()).into_bytes();
    while out.len() < n {
        x = horace_tests::sha256_hex(&x).into_bytes();
        out.extend_from_slice(&x);
    }
    out.truncate(n);
    out
}

fn stored_by_owner(w: &Watcher, owner: &str) -> (i64, i64) {
    let conn = w.catalog();
    conn.query_row(
        "SELECT sum(v.content_stored = 1), sum(v.content_stored = 0) FROM versions v \
         JOIN files f ON f.id = v.file_id WHERE f.owner = ?1",
        [owner],
        |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?.unwrap_or(0),
                r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            ))
        },
    )
    .unwrap()
}

#[test]
fn an_owner_over_its_store_budget_is_cataloged_without_content_and_others_still_stored() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("greedy")).unwrap();
    fs::create_dir_all(files.join("modest")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let _mounted = Mounted::tmpfs(&meta, "64m");
    // 10 % of 64 MiB: 6.4 MiB per owner.
    let mut w = Watcher::new(&files, &meta, "[versions]\nowner_share_percent = 10\n");
    w.start();
    for i in 0..12 {
        let p = files.join(format!("greedy/{i}.bin"));
        horace_tests::atomic_write(&p, &distinct(&format!("greedy {i}"), 1 << 20));
    }
    w.sync(2);
    for i in 0..3 {
        let p = files.join(format!("modest/{i}.bin"));
        horace_tests::atomic_write(&p, &distinct(&format!("modest {i}"), 100_000));
    }
    w.sync(2);
    w.assert_consistent("over budget");
    let (greedy_stored, greedy_not) = stored_by_owner(&w, "greedy");
    let (modest_stored, modest_not) = stored_by_owner(&w, "modest");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async { w.client().await.status().await.unwrap() });
    eprintln!(
        "owner budget 6.4 MiB: greedy 12 × 1 MiB: {greedy_stored} stored, {greedy_not} \
         cataloged without content; modest 3 × 100 kB: {modest_stored} stored; status: {} \
         not stored, e.g. {:?}",
        status.versions_not_stored,
        status.not_stored.first()
    );
    assert!(
        (5..=6).contains(&greedy_stored) && greedy_stored + greedy_not == 12,
        "greedy: {greedy_stored} stored, {greedy_not} not\n{}",
        crate::fixture::tail(&w.log())
    );
    assert_eq!(
        (modest_stored, modest_not),
        (3, 0),
        "the other owner is refused too"
    );
    assert_eq!(status.versions_not_stored, greedy_not as u64);
    assert!(
        status
            .not_stored
            .iter()
            .all(|n| n.path.starts_with("greedy/")
                && n.cause
                    .contains("owner \"greedy\" is over its store budget")),
        "{:?}",
        status.not_stored
    );
    let objects = crate::fixture::object_names(&meta).len() as i64;
    assert_eq!(objects, greedy_stored + modest_stored);
    w.stop();
}
