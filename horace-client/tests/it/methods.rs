//! Every method of the service, through the library and the CLI.

use horace_client::{
    ClientError, DuplicatesQuery, FileRef, FileStatus, FileUpdate, QueryError, SearchQuery,
};

use crate::util::{assert_fails, assert_ok, paths, Server};

#[test]
fn write_sync_info_shows_the_new_version_at_once() {
    let s = Server::start();
    s.write("svc/report.txt", b"first\n");
    s.sync();
    let info = s.json(&["info", "svc/report.txt"]);
    assert_eq!(info["file"]["current_version"], 1);
    for round in 2..=4 {
        s.write("svc/report.txt", format!("round {round}\n").as_bytes());
        s.sync();
        let info = s.json(&["info", "svc/report.txt"]);
        assert_eq!(info["file"]["current_version"], round, "{info}");
        assert_eq!(info["versions"].as_array().unwrap().len(), round as usize);
        assert_eq!(info["file"]["size"], format!("round {round}\n").len());
    }
    // The human form shows the version table and the history.
    let out = s.cli(&["info", "svc/report.txt"]);
    assert_ok(&out, &["info"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("svc/report.txt") && text.contains("CATALOGED") && text.contains("modified"),
        "{text}"
    );
    let v = s.json(&["versions", "svc/report.txt"]);
    assert_eq!(v.as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_through_the_library() {
    let s = Server::start();
    s.write("svc/a.txt", b"same content");
    s.write("svc/b.txt", b"same content");
    s.write("other/c.txt", b"unique");
    let c = s.client().await;
    c.sync().await.unwrap();

    // search, file_info (by path, absolute container path and id), versions.
    let r = c.search(SearchQuery::default()).await.unwrap();
    assert_eq!(r.total, 3);
    let a = c
        .file_info(FileRef::Path("svc/a.txt".into()))
        .await
        .unwrap();
    let by_prefix = c
        .file_info(FileRef::Path("/mnt/irina_storage/files/svc/a.txt".into()))
        .await
        .unwrap();
    let by_id = c.file_info(FileRef::Id(a.file.id)).await.unwrap();
    assert_eq!(a, by_prefix);
    assert_eq!(a, by_id);
    assert_eq!(a.file.owner, "svc");
    assert_eq!(c.versions(FileRef::Id(a.file.id)).await.unwrap().len(), 1);

    // update_file: tags, purpose, owner, correlation id, status.
    let u = FileUpdate {
        add_tags: vec!["red".into(), "blue".into()],
        purpose: Some("quarterly numbers".into()),
        owner: Some("finance".into()),
        correlation_id: Some("job-42".into()),
        ..Default::default()
    };
    let a = c.update_file(FileRef::Id(a.file.id), u).await.unwrap();
    assert_eq!(a.file.tags, ["blue", "red"]);
    assert_eq!(a.purpose.as_deref(), Some("quarterly numbers"));
    assert_eq!(a.file.owner, "finance");
    assert_eq!(a.correlation_id.as_deref(), Some("job-42"));
    let u = FileUpdate {
        remove_tags: vec!["red".into()],
        status: Some(FileStatus::Archived),
        purpose: Some(String::new()),
        ..Default::default()
    };
    let a = c.update_file(FileRef::Id(a.file.id), u).await.unwrap();
    assert_eq!(
        (a.file.tags.as_slice(), a.file.status, a.purpose.as_deref()),
        (&["blue".to_string()][..], FileStatus::Archived, None)
    );
    assert_eq!(
        c.search(SearchQuery::default()).await.unwrap().total,
        2,
        "archived files leave default searches"
    );
    assert!(
        a.events.iter().any(|e| e.kind == "archived"),
        "{:?}",
        a.events
    );
    let a = c
        .update_file(
            FileRef::Id(a.file.id),
            FileUpdate {
                status: Some(FileStatus::Active),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.file.status, FileStatus::Active);

    // collections: create, list, add, members, remove, delete.
    let col = c
        .collection_create("q3", Some("third quarter".into()))
        .await
        .unwrap();
    assert_eq!((col.name.as_str(), col.members), ("q3", 0));
    let dup = c.collection_create("q3", None).await.unwrap_err();
    assert!(
        matches!(dup, ClientError::Query(QueryError::InvalidArgument { .. })),
        "{dup}"
    );
    let files = vec![
        FileRef::Path("svc/a.txt".into()),
        FileRef::Path("other/c.txt".into()),
    ];
    assert_eq!(c.collection_add("q3", files.clone()).await.unwrap(), 2);
    assert_eq!(
        c.collection_add("q3", files).await.unwrap(),
        0,
        "adding twice changes nothing"
    );
    let list = c.collection_list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].members, 2);
    let m = c.collection_members("q3", None, 0).await.unwrap();
    assert_eq!(
        m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["other/c.txt", "svc/a.txt"]
    );
    let u = FileUpdate {
        add_collections: vec!["q3".into()],
        ..Default::default()
    };
    let b = c
        .update_file(FileRef::Path("svc/b.txt".into()), u)
        .await
        .unwrap();
    assert_eq!(b.collections, ["q3"]);
    assert_eq!(
        c.collection_remove("q3", vec![FileRef::Path("other/c.txt".into())])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c.collection_members("q3", Some(1), 1).await.unwrap().total,
        2
    );
    c.collection_delete("q3").await.unwrap();
    assert!(c.collection_delete("q3").await.unwrap_err().is_not_found());
    assert!(c
        .collection_members("q3", None, 0)
        .await
        .unwrap_err()
        .is_not_found());
    let missing = c
        .collection_add("nope", vec![FileRef::Id(a.file.id)])
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    // duplicates: a and b share their content.
    let d = c.duplicates(DuplicatesQuery::default()).await.unwrap();
    assert_eq!(d.total_groups, 1);
    assert_eq!(d.groups[0].count, 2);
    let dpaths: Vec<_> = d.groups[0].files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(dpaths, ["svc/a.txt", "svc/b.txt"]);
    assert_eq!(
        c.duplicates(DuplicatesQuery {
            min_size: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .total_groups,
        0
    );

    // snapshots (none: snapshots are off) and status.
    assert!(c.snapshots().await.unwrap().is_empty());
    let st = c.status().await.unwrap();
    assert_eq!(st.files_active, 3);
    assert!(st.versions >= 3 && st.ready && !st.snapshots_enabled);

    // restore_version: a second version, then back to the first.
    s.write("svc/a.txt", b"changed");
    c.sync().await.unwrap();
    let r = c
        .restore_version(FileRef::Path("svc/a.txt".into()), 1)
        .await
        .unwrap();
    assert_eq!((r.restored_from, r.new_version), (1, 3));
    assert_eq!(
        std::fs::read(s.files.join("svc/a.txt")).unwrap(),
        b"same content"
    );
    let v = c.versions(FileRef::Path("svc/a.txt".into())).await.unwrap();
    assert_eq!(v.last().unwrap().restored_from, Some(1));

    // register_file: catalogs at once, sets metadata, idempotent.
    s.write("svc/new.bin", b"registered");
    let u = FileUpdate {
        add_tags: vec!["reg".into()],
        ..Default::default()
    };
    let reg = c.register_file("svc/new.bin", u.clone()).await.unwrap();
    assert_eq!(reg.file.tags, ["reg"]);
    assert_eq!(reg.file.current_version, Some(1));
    let again = c.register_file("svc/new.bin", u).await.unwrap();
    assert_eq!((again.file.id, again.versions.len()), (reg.file.id, 1));
    assert!(c
        .register_file("svc/missing.bin", FileUpdate::default())
        .await
        .unwrap_err()
        .is_not_found());

    // Marking a file deleted keeps its history.
    let del = c
        .update_file(
            FileRef::Id(reg.file.id),
            FileUpdate {
                status: Some(FileStatus::Deleted),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(del.file.status, FileStatus::Deleted);
    assert!(del.deleted_ns.is_some());
}

#[test]
fn every_command_through_the_cli() {
    let s = Server::start();
    s.write("svc/a.txt", b"alpha");
    s.write("svc/b.txt", b"alpha");
    s.sync();
    let ok = |args: &[&str]| {
        let out = s.cli(args);
        assert_ok(&out, args);
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(ok(&["search"]).contains("2 of 2 files"));
    assert!(ok(&["tag", "svc/a.txt", "--add", "x", "--add", "y"]).contains("x, y"));
    let text = ok(&["tag", "svc/a.txt", "--remove", "y"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("tags ") && l.ends_with(" x")),
        "{text}"
    );
    assert!(ok(&[
        "update",
        "svc/a.txt",
        "--purpose",
        "demo",
        "--correlation-id",
        "c-1"
    ])
    .contains("demo"));
    assert!(ok(&["collections", "create", "set", "--description", "a set"]).contains("a set"));
    assert!(ok(&["collections", "add", "set", "svc/a.txt", "svc/b.txt"]).contains("added 2"));
    assert!(ok(&["collections", "list"]).contains("set "));
    assert!(ok(&["collections", "members", "set"]).contains("2 of 2 files"));
    assert!(ok(&["collections", "remove", "set", "svc/b.txt"]).contains("removed 1"));
    assert!(ok(&["collections", "delete", "set"]).contains("deleted"));
    assert!(ok(&["duplicates"]).contains("1 of 1 groups"));
    assert!(ok(&["snapshots"]).contains("NAME"));
    assert!(ok(&["status"]).contains("2 active"));
    s.write("svc/a.txt", b"beta");
    s.sync();
    assert!(ok(&["restore", "svc/a.txt", "1"]).contains("new version 3"));
    let v = s.json(&["versions", "svc/a.txt"]);
    assert_eq!(v.as_array().unwrap().len(), 3);
    s.write("svc/c.txt", b"gamma");
    assert!(ok(&["register", "svc/c.txt", "--add-tag", "r"]).contains("svc/c.txt"));
    assert_eq!(paths(&s.json(&["search", "--tag", "r"])), ["svc/c.txt"]);
    // Ids work wherever a file is named.
    let id = s.json(&["info", "svc/c.txt"])["file"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        s.json(&["info", &format!("#{id}")])["file"]["path"],
        "svc/c.txt"
    );
    assert_eq!(s.json(&["info", &format!("id:{id}")])["file"]["id"], id);
    // Usage errors are exit code 2 (clap); an empty tag command is an error.
    assert_eq!(s.cli(&["search", "--limit", "many"]).status.code(), Some(2));
    assert_fails(&s.cli(&["tag", "svc/a.txt"]), 1, "nothing to do");
    // `horace … | head` ends quietly.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_horace"))
        .arg("--socket")
        .arg(&s.socket)
        .arg("search")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert!(
        child.wait().unwrap().success(),
        "a closed stdout is not an error"
    );
}

#[test]
fn connection_errors_exit_codes_and_help() {
    let s = Server::start();
    s.write("svc/a.txt", b"x");
    // HORACE_SOCKET replaces the default socket.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_horace"))
        .arg("sync")
        .env("HORACE_SOCKET", &s.socket)
        .output()
        .unwrap();
    assert_ok(&out, &["sync (HORACE_SOCKET)"]);
    // No server: exit 5 with one line naming the socket.
    let missing = s.path().join("missing.sock");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_horace"))
        .arg("--socket")
        .arg(&missing)
        .arg("status")
        .output()
        .unwrap();
    assert_fails(&out, 5, "cannot connect to");
    // --help documents the exit codes.
    let help = s.cli(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("5  cannot connect"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_carry_a_deadline() {
    let s = Server::start();
    let c = s.client().await;
    // 2000 new files keep the watcher busy far longer than 5 ms, and sync waits for them.
    let dir = s.files.join("many");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..2000 {
        std::fs::write(dir.join(format!("f{i}")), vec![b'x'; 4096]).unwrap();
    }
    let hurried = c.clone().with_timeout(std::time::Duration::from_millis(5));
    let e = hurried.sync().await.unwrap_err();
    assert!(matches!(e, ClientError::DeadlineExceeded(_)), "{e}");
    // The connection is still usable with a sane deadline.
    c.sync().await.unwrap();
    assert_eq!(
        c.search(SearchQuery {
            limit: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .total,
        2000
    );
}
