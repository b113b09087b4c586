//! Damaged store objects (issue 12 item 10): an object overwritten with garbage is found
//! by the scrub (`[versions] scrub_interval_secs = 1` here), moved to `objects/damaged`,
//! counted in status (a degradation), a restore of its version answers `Damaged`, and
//! saving the same content again heals it: the restore then puts the old bytes back.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use horace_client::{ClientError, FileRef, QueryError, RestoreFailure};

use crate::fixture::{eventually, sha256_hex, tail, Watcher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_is_found_reported_refused_and_healed() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let mut w = Watcher::new(&files, &meta, "[versions]\nscrub_interval_secs = 1\n");
    w.start();
    let client = w.client().await;
    let v1 = b"the contract, first draft\n".repeat(100);
    horace_tests::atomic_write(&files.join("contract.txt"), &v1);
    client.sync().await.unwrap();
    horace_tests::atomic_write(&files.join("contract.txt"), b"second draft\n");
    client.sync().await.unwrap();
    assert_eq!(client.status().await.unwrap().damaged_objects, 0);

    // The bytes of version 1's object rot.
    let sha = sha256_hex(&v1);
    let obj = meta.join("objects/sha256").join(&sha[..2]).join(&sha[2..]);
    fs::set_permissions(&obj, fs::Permissions::from_mode(0o644)).unwrap();
    let mut rotten = v1.clone();
    rotten[7] ^= 0x20;
    fs::write(&obj, &rotten).unwrap();

    let found = eventually(Duration::from_secs(30), || async {
        client.status().await.is_ok_and(|s| s.damaged_objects == 1)
    })
    .await;
    assert!(found, "the scrub did not find it\n{}", tail(&w.log()));
    let status = client.status().await.unwrap();
    assert!(
        status
            .degradation()
            .iter()
            .any(|d| d.contains("store objects damaged")),
        "{:?}",
        status.degradation()
    );
    assert!(meta.join("objects/damaged").join(&sha).is_file() && !obj.exists());

    let r = client
        .restore_version(FileRef::Path("contract.txt".into()), 1)
        .await;
    assert!(
        matches!(
            &r,
            Err(ClientError::Query(QueryError::RestoreFailed {
                kind: RestoreFailure::Damaged,
                ..
            }))
        ),
        "restore of a damaged version: {r:?}"
    );
    assert_eq!(
        fs::read(files.join("contract.txt")).unwrap(),
        b"second draft\n"
    );

    // Someone saves the same content again: the object is healed.
    horace_tests::atomic_write(&files.join("copy of contract.txt"), &v1);
    client.sync().await.unwrap();
    assert_eq!(client.status().await.unwrap().damaged_objects, 0);
    assert_eq!(sha256_hex(&fs::read(&obj).unwrap()), sha);
    client
        .restore_version(FileRef::Path("contract.txt".into()), 1)
        .await
        .unwrap();
    assert_eq!(fs::read(files.join("contract.txt")).unwrap(), v1);
    client.sync().await.unwrap();
    w.assert_consistent("after the heal");
}
