//! Issue 12 item 4: hashing and storing are bounded and fair. One owner (top-level
//! directory) cannot fill the metadata dataset: past its share (`[versions]
//! owner_share_percent`) its new versions are cataloged without content, `status` says
//! how many and which, and the other owners' content is still stored.

use std::fs;
use std::path::Path;

use crate::fixture::{Mounted, Watcher};

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

/// A sparse file of `len` bytes with 3 MiB of data in three extents (start,
/// middle, end), made with `truncate` and writes; returns the bytes written.
fn sparse_file(path: &Path, len: u64) -> u64 {
    use std::io::{Seek, SeekFrom, Write};
    let f = fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut f = f;
    let mut written = 0;
    for (i, at) in [0, len / 2, len - (1 << 20)].into_iter().enumerate() {
        f.seek(SeekFrom::Start(at)).unwrap();
        let data = distinct(&format!("{} extent {i}", path.display()), 1 << 20);
        f.write_all(&data).unwrap();
        written += data.len() as u64;
    }
    written
}

fn lane_log(w: &Watcher, name: &str) -> bool {
    w.log()
        .lines()
        .any(|l| l.contains("big-file lane:") && l.contains(name))
}

/// Issue 12 item 4: a 1 TiB sparse file (3 MiB written) is read by the big-file lane,
/// so small files written after it are cataloged within seconds (before: the batch
/// hashed the whole TiB, holes as zeros, and `sync` timed out for everyone); `sync`
/// lists it as `hashing`; deleting it stops the read; SIGTERM while it is read ends the
/// watcher in seconds with nothing committed lost. A smaller sparse file through the
/// lane is stored by the bytes it occupies.
#[test]
fn a_1_tib_sparse_file_does_not_hold_up_small_files() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("big")).unwrap();
    fs::create_dir_all(files.join("small")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    // The lane from 64 MiB (256 MiB by default) keeps the stored case short.
    let mut w = Watcher::new(&files, &meta, "[versions]\nlane_file_size = 67108864\n");
    w.start();
    let huge = files.join("big/huge.img");
    sparse_file(&huge, 1 << 40);
    std::thread::sleep(std::time::Duration::from_secs(1));
    for i in 0..20 {
        fs::write(files.join(format!("small/{i}.txt")), format!("small {i}")).unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(w.client());
    let t0 = std::time::Instant::now();
    let report = rt
        .block_on(client.sync())
        .unwrap_or_else(|e| panic!("sync: {e}\n{}", crate::fixture::tail(&w.log())));
    let took = t0.elapsed();
    let hashing: Vec<_> = report
        .missing
        .iter()
        .filter(|m| m.why == horace_client::Missing::Hashing)
        .collect();
    eprintln!("1 TiB sparse file in the lane: 20 small files after it synced in {took:?}; sync lists {hashing:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "sync took {took:?}"
    );
    assert!(
        hashing.len() == 1 && hashing[0].path == "big/huge.img",
        "{report:?}"
    );
    let active = w.catalog_active();
    for i in 0..20 {
        assert!(
            active.contains_key(&format!("small/{i}.txt")),
            "small/{i}.txt not cataloged"
        );
    }
    assert!(!active.contains_key("big/huge.img"));

    // Deleted while read: the lane gives it up within seconds.
    fs::remove_file(&huge).unwrap();
    let t0 = std::time::Instant::now();
    let stopped = horace_tests::wait_until(std::time::Duration::from_secs(20), || {
        lane_log(&w, "big/huge.img")
    });
    let took = t0.elapsed();
    eprintln!("1 TiB sparse file deleted while read: the lane let go in {took:?}");
    assert!(
        stopped,
        "the lane still reads the deleted file\n{}",
        crate::fixture::tail(&w.log())
    );
    // Replaced (a rename over it) while read: let go as well.
    sparse_file(&files.join("big/replaced.img"), 1 << 40);
    std::thread::sleep(std::time::Duration::from_secs(1));
    fs::write(files.join("big/new.tmp"), b"the new content").unwrap();
    fs::rename(files.join("big/new.tmp"), files.join("big/replaced.img")).unwrap();
    let t0 = std::time::Instant::now();
    let stopped = horace_tests::wait_until(std::time::Duration::from_secs(20), || {
        lane_log(&w, "big/replaced.img")
    });
    eprintln!(
        "1 TiB sparse file replaced while read: the lane let go in {:?}",
        t0.elapsed()
    );
    assert!(stopped, "the lane still reads the replaced file");
    w.sync(1);
    w.assert_consistent("after the huge files were deleted and replaced");

    // Through the lane to the end: stored by what it occupies.
    let written = sparse_file(&files.join("big/medium.img"), 96 << 20);
    let t0 = std::time::Instant::now();
    let done = horace_tests::wait_until(std::time::Duration::from_secs(120), || {
        w.catalog_active().contains_key("big/medium.img")
    });
    assert!(
        done,
        "96 MiB sparse file not cataloged\n{}",
        crate::fixture::tail(&w.log())
    );
    let conn = w.catalog();
    let (sha, stored, occupies): (String, bool, i64) = conn
        .query_row(
            "SELECT v.sha256, v.content_stored, v.stored_bytes FROM versions v \
             JOIN files f ON f.id = v.file_id WHERE f.path = 'big/medium.img'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    drop(conn);
    let object = meta.join("objects/sha256").join(&sha[..2]).join(&sha[2..]);
    let on_disk = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&object).unwrap().blocks() * 512
    };
    eprintln!(
        "96 MiB sparse file ({written} bytes written) through the lane in {:?}: object {on_disk} bytes on disk, stored_bytes {occupies}",
        t0.elapsed()
    );
    assert!(stored);
    assert!(
        on_disk <= written + (1 << 20),
        "the object takes {on_disk} bytes"
    );
    assert_eq!(occupies as u64, on_disk);
    assert_eq!(
        sha,
        horace_tests::sha256_hex(&fs::read(files.join("big/medium.img")).unwrap())
    );

    // SIGTERM while the lane reads a 1 TiB file.
    sparse_file(&files.join("big/huge2.img"), 1 << 40);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let t0 = std::time::Instant::now();
    w.stop();
    let took = t0.elapsed();
    eprintln!("SIGTERM while the lane read a 1 TiB file: stopped in {took:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "SIGTERM took {took:?}"
    );
    let active = w.catalog_active();
    assert!(active.contains_key("big/medium.img") && active.contains_key("small/19.txt"));
}
