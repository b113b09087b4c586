//! Every search filter and the pagination edges, over the socket.

use horace_client::{
    ClientError, FileRef, FileStatus, FileUpdate, QueryError, SearchQuery, SortKey, SortOrder,
};

use crate::util::{assert_fails, paths, Server};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_over_the_socket() {
    let s = Server::start();
    s.write("alpha/report.txt", b"plain text report\n");
    s.write("alpha/pic.png", PNG);
    s.write("beta/notes.txt", &vec![b'n'; 5000]);
    s.write("beta/gone.txt", b"soon deleted\n");
    s.sync();
    std::fs::remove_file(s.files.join("beta/gone.txt")).unwrap();
    s.write("beta/late.txt", b"written last\n");
    s.sync();
    let c = s.client().await;
    let q = SearchQuery::default;
    let found =
        |r: horace_client::SearchResult| r.files.into_iter().map(|f| f.path).collect::<Vec<_>>();

    // Through the CLI, one flag per filter.
    assert_eq!(
        paths(&s.json(&["search"])),
        [
            "alpha/pic.png",
            "alpha/report.txt",
            "beta/late.txt",
            "beta/notes.txt"
        ]
    );
    assert_eq!(
        paths(&s.json(&["search", "--glob", "alpha/*"])),
        ["alpha/pic.png", "alpha/report.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--contains", "REPO"])),
        ["alpha/report.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--contains", "te"])),
        ["beta/late.txt", "beta/notes.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--owner", "beta"])),
        ["beta/late.txt", "beta/notes.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--mime", "image/*"])),
        ["alpha/pic.png"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--mime", "image/png"])),
        ["alpha/pic.png"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--ext", "png"])),
        ["alpha/pic.png"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--min-size", "4K"])),
        ["beta/notes.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--max-size", "20", "--ext", "txt"])),
        ["alpha/report.txt", "beta/late.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--status", "deleted"])),
        ["beta/gone.txt"]
    );
    assert_eq!(s.json(&["search", "--status", "any"])["total"], 5);
    assert_eq!(
        s.json(&["search", "--created-after", "2000-01-01"])["total"],
        4
    );
    assert_eq!(
        s.json(&["search", "--created-before", "2000-01-01T00:00:00Z"])["total"],
        0
    );
    assert_eq!(
        s.json(&["search", "--updated-after", "946684800"])["total"],
        4
    );
    assert_eq!(
        s.json(&["search", "--updated-before", "946684800"])["total"],
        0
    );
    let sha = s.json(&["info", "alpha/report.txt"])["file"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        paths(&s.json(&["search", "--sha256", &sha])),
        ["alpha/report.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--sort", "size", "--desc", "--limit", "2"])),
        ["beta/notes.txt", "alpha/pic.png"]
    );

    // Tags (all / any) and collections.
    let tag = |p: &str, tags: &[&str]| {
        let u = FileUpdate {
            add_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        (FileRef::Path(p.into()), u)
    };
    for (f, u) in [
        tag("alpha/report.txt", &["red", "blue"]),
        tag("beta/notes.txt", &["red"]),
    ] {
        c.update_file(f, u).await.unwrap();
    }
    assert_eq!(
        paths(&s.json(&["search", "--tag", "red", "--tag", "blue"])),
        ["alpha/report.txt"]
    );
    assert_eq!(
        paths(&s.json(&["search", "--any-tag", "blue", "--any-tag", "red"])),
        ["alpha/report.txt", "beta/notes.txt"]
    );
    c.collection_create("set", None).await.unwrap();
    c.collection_add("set", vec![FileRef::Path("alpha/pic.png".into())])
        .await
        .unwrap();
    assert_eq!(
        paths(&s.json(&["search", "--collection", "set"])),
        ["alpha/pic.png"]
    );

    // Through the library, with exact nanosecond ranges.
    let late = c
        .file_info(FileRef::Path("beta/late.txt".into()))
        .await
        .unwrap()
        .file;
    let r = c
        .search(SearchQuery {
            created_after: Some(late.created_ns),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(found(r), ["beta/late.txt"]);
    let r = c
        .search(SearchQuery {
            updated_before: Some(late.updated_ns),
            ..q()
        })
        .await
        .unwrap();
    assert!(!found(r).contains(&"beta/late.txt".to_string()));
    let r = c
        .search(SearchQuery {
            sort: SortKey::Created,
            order: SortOrder::Desc,
            limit: Some(1),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(found(r), ["beta/late.txt"]);
    let r = c
        .search(SearchQuery {
            statuses: vec![FileStatus::Deleted, FileStatus::Active],
            owner: Some("beta".into()),
            ..q()
        })
        .await
        .unwrap();
    assert_eq!(r.total, 3);
    let bad = c
        .search(SearchQuery {
            sha256: Some("zz".into()),
            ..q()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(bad, ClientError::Query(QueryError::InvalidArgument { .. })),
        "{bad}"
    );
}

#[test]
fn pagination_edges() {
    let s = Server::start();
    let dir = s.files.join("bulk");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..1005 {
        std::fs::write(dir.join(format!("f{i:04}.txt")), format!("{i}\n")).unwrap();
    }
    s.sync();
    let page = |args: &[&str]| {
        let mut all = vec!["search"];
        all.extend_from_slice(args);
        let v = s.json(&all);
        (v["total"].as_u64().unwrap(), paths(&v))
    };
    let (total, files) = page(&[]);
    assert_eq!((total, files.len()), (1005, 50), "default limit is 50");
    let (total, files) = page(&["--limit", "1000"]);
    assert_eq!((total, files.len()), (1005, 1000));
    assert_eq!(files[999], "bulk/f0999.txt");
    let (total, files) = page(&["--limit", "1000", "--offset", "1000"]);
    assert_eq!(
        (total, files),
        (
            1005,
            (1000..1005)
                .map(|i| format!("bulk/f{i:04}.txt"))
                .collect::<Vec<_>>()
        )
    );
    let (total, files) = page(&["--limit", "0"]);
    assert_eq!(
        (total, files.len()),
        (1005, 0),
        "limit 0 gives the total only"
    );
    let (total, files) = page(&["--offset", "5000"]);
    assert_eq!(
        (total, files.len()),
        (1005, 0),
        "an offset past the end is an empty page"
    );
    assert_fails(
        &s.cli(&["search", "--limit", "1001"]),
        1,
        "limit 1001 is over the maximum of 1000",
    );
    // The human form reports the page and the total.
    let out = s.cli(&["search", "--limit", "3"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 of 1005 files"));
    // --limit 0 asks for the total only: no "0 of 1005 files".
    let out = String::from_utf8_lossy(&s.cli(&["search", "--limit", "0"]).stdout).into_owned();
    assert_eq!(out.trim(), "1005 matching files, none listed", "{out}");
}

/// Queries from many connections at once neither fail nor hold up cataloging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_do_not_block_cataloging() {
    let s = Server::start();
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(s.client().await);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for c in clients {
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let q = SearchQuery {
                    path_contains: Some("file".into()),
                    limit: Some(1000),
                    ..Default::default()
                };
                c.search(q).await.expect("search under load");
                c.status().await.expect("status under load");
                n += 1;
            }
            n
        }));
    }
    let writer = s.client().await;
    for round in 0..5 {
        for i in 0..40 {
            s.write(
                &format!("load/file{round}-{i}.txt"),
                format!("{round} {i}").as_bytes(),
            );
        }
        writer.sync().await.expect("sync under load");
        let total = writer.search(SearchQuery::default()).await.unwrap().total;
        assert_eq!(
            total,
            (round + 1) * 40,
            "everything written before sync is queryable"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for r in readers {
        answered += r.await.unwrap();
    }
    assert!(answered > 0);
}
