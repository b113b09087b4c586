//! Search SQL building and running, on real catalogs built in a temp dir: each filter, the
//! pagination edges, and timings over 100,000 files.

use std::time::Instant;

use horace_client::{FileStatus, QueryError, SearchQuery, SortKey, SortOrder};
use rusqlite::{params, Connection};

use super::{build, run};
use crate::catalog;

struct Fixture {
    _dir: tempfile::TempDir,
    conn: Connection,
}

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn insert(
    conn: &Connection,
    path: &str,
    mime: &str,
    size: i64,
    status: &str,
    t: i64,
    sha: &str,
) -> i64 {
    let owner = path.split('/').next().unwrap();
    conn.execute(
        "INSERT INTO files(path, owner, mime, size, current_version, status, created_ns, updated_ns)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7)",
        params![path, owner, mime, size, status, t, t + 1000],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    crate::catalog::ops::index_path(conn, id, path).unwrap();
    conn.execute(
        "INSERT INTO versions(file_id, version, sha256, size, mtime_ns, cataloged_ns, path) VALUES (?1, 1, ?2, ?3, ?4, ?4, ?5)",
        params![id, sha, size, t, path],
    )
    .unwrap();
    id
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let conn = catalog::open_writer(&catalog::catalog_path(dir.path())).unwrap();
    let a = insert(
        &conn,
        "alpha/report.pdf",
        "application/pdf",
        100,
        "active",
        10,
        SHA_A,
    );
    let b = insert(
        &conn,
        "alpha/photo.JPG",
        "image/jpeg",
        2000,
        "active",
        20,
        SHA_B,
    );
    insert(
        &conn,
        "beta/notes.txt",
        "text/plain",
        5,
        "active",
        30,
        SHA_A,
    );
    insert(
        &conn,
        "beta/old.txt",
        "text/plain",
        7,
        "archived",
        40,
        SHA_B,
    );
    insert(
        &conn,
        "beta/gone.txt",
        "text/plain",
        9,
        "deleted",
        50,
        SHA_B,
    );
    insert(&conn, "top.png", "image/png", 300, "active", 60, SHA_B);
    for (id, tag) in [(a, "red"), (a, "blue"), (b, "red")] {
        conn.execute(
            "INSERT INTO tags(file_id, tag) VALUES (?1, ?2)",
            params![id, tag],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO collections(name, created_ns) VALUES ('c1', 1)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO collection_members(collection_id, file_id, added_ns) VALUES (1, ?1, 1)",
        [b],
    )
    .unwrap();
    Fixture { _dir: dir, conn }
}

fn paths(f: &Fixture, q: SearchQuery) -> Vec<String> {
    let r = run(&f.conn, &build(&q).unwrap()).unwrap();
    assert!(r.files.len() as u64 <= r.total);
    r.files.into_iter().map(|f| f.path).collect()
}

#[test]
fn every_filter_selects_what_it_says() {
    let f = fixture();
    let q = SearchQuery::default;
    assert_eq!(
        paths(&f, q()),
        [
            "alpha/photo.JPG",
            "alpha/report.pdf",
            "beta/notes.txt",
            "top.png"
        ]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                path_glob: Some("alpha/*".into()),
                ..q()
            }
        ),
        ["alpha/photo.JPG", "alpha/report.pdf"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                path_contains: Some("PORT".into()),
                ..q()
            }
        ),
        ["alpha/report.pdf"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                path_contains: Some("op".into()),
                ..q()
            }
        ),
        ["top.png"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                owner: Some("beta".into()),
                ..q()
            }
        ),
        ["beta/notes.txt"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                tags_all: vec!["red".into(), "blue".into()],
                ..q()
            }
        ),
        ["alpha/report.pdf"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                tags_any: vec!["red".into(), "blue".into()],
                ..q()
            }
        ),
        ["alpha/photo.JPG", "alpha/report.pdf"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                collection: Some("c1".into()),
                ..q()
            }
        ),
        ["alpha/photo.JPG"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                mime: Some("image/*".into()),
                ..q()
            }
        ),
        ["alpha/photo.JPG", "top.png"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                mime: Some("text/plain".into()),
                ..q()
            }
        ),
        ["beta/notes.txt"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                extension: Some("jpg".into()),
                ..q()
            }
        ),
        ["alpha/photo.JPG"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                extension: Some(".pdf".into()),
                ..q()
            }
        ),
        ["alpha/report.pdf"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                min_size: Some(100),
                max_size: Some(300),
                ..q()
            }
        ),
        ["alpha/report.pdf", "top.png"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                created_after: Some(20),
                created_before: Some(60),
                ..q()
            }
        ),
        ["alpha/photo.JPG", "beta/notes.txt"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                updated_after: Some(1030),
                ..q()
            }
        ),
        ["beta/notes.txt", "top.png"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                sha256: Some(SHA_A.to_uppercase()),
                ..q()
            }
        ),
        ["alpha/report.pdf", "beta/notes.txt"]
    );
    assert_eq!(
        paths(
            &f,
            SearchQuery {
                statuses: vec![FileStatus::Archived, FileStatus::Deleted],
                ..q()
            }
        ),
        ["beta/gone.txt", "beta/old.txt"]
    );
    let all = SearchQuery {
        statuses: vec![
            FileStatus::Active,
            FileStatus::Archived,
            FileStatus::Deleted,
        ],
        ..q()
    };
    assert_eq!(paths(&f, all.clone()).len(), 6);
    // Tags come with each result.
    let r = run(
        &f.conn,
        &build(&SearchQuery {
            path_glob: Some("alpha/report*".into()),
            ..q()
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(r.files[0].tags, ["blue", "red"]);
    assert_eq!(r.files[0].sha256.as_deref(), Some(SHA_A));
    // Sorting.
    let by = |sort, order| paths(&f, SearchQuery { sort, order, ..q() });
    assert_eq!(
        by(SortKey::Size, SortOrder::Desc),
        [
            "alpha/photo.JPG",
            "top.png",
            "alpha/report.pdf",
            "beta/notes.txt"
        ]
    );
    assert_eq!(
        by(SortKey::Created, SortOrder::Asc),
        [
            "alpha/report.pdf",
            "alpha/photo.JPG",
            "beta/notes.txt",
            "top.png"
        ]
    );
    assert_eq!(
        by(SortKey::Updated, SortOrder::Desc),
        [
            "top.png",
            "beta/notes.txt",
            "alpha/photo.JPG",
            "alpha/report.pdf"
        ]
    );
    assert_eq!(
        by(SortKey::Path, SortOrder::Desc),
        [
            "top.png",
            "beta/notes.txt",
            "alpha/report.pdf",
            "alpha/photo.JPG"
        ]
    );
    // Quotes and FTS syntax in a substring are literal text.
    assert!(paths(
        &f,
        SearchQuery {
            path_contains: Some("\"a\" OR *".into()),
            ..q()
        }
    )
    .is_empty());
}

#[test]
fn pagination_edges() {
    let f = fixture();
    let page = |limit, offset| {
        run(
            &f.conn,
            &build(&SearchQuery {
                limit,
                offset,
                ..Default::default()
            })
            .unwrap(),
        )
        .unwrap()
    };
    let r = page(Some(0), 0);
    assert_eq!((r.total, r.files.len()), (4, 0));
    let r = page(Some(2), 3);
    assert_eq!((r.total, r.files.len()), (4, 1));
    let r = page(None, 4);
    assert_eq!((r.total, r.files.len()), (4, 0));
    let r = page(Some(1000), u64::MAX);
    assert_eq!((r.total, r.files.len()), (4, 0));
    assert_eq!(
        build(&SearchQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap()
        .limit,
        1000
    );
    assert_eq!(build(&SearchQuery::default()).unwrap().limit, 50);
}

#[test]
fn invalid_arguments_are_named() {
    let bad = [
        SearchQuery {
            limit: Some(1001),
            ..Default::default()
        },
        SearchQuery {
            sha256: Some("xyz".into()),
            ..Default::default()
        },
        SearchQuery {
            min_size: Some(5),
            max_size: Some(4),
            ..Default::default()
        },
        SearchQuery {
            extension: Some("".into()),
            ..Default::default()
        },
        SearchQuery {
            extension: Some("a/b".into()),
            ..Default::default()
        },
    ];
    for q in bad {
        assert!(
            matches!(build(&q), Err(QueryError::InvalidArgument { .. })),
            "{q:?}"
        );
    }
    let big = SearchQuery {
        path_glob: Some("x".repeat(5000)),
        ..Default::default()
    };
    assert!(matches!(build(&big), Err(QueryError::TooLarge { .. })));
    let many = SearchQuery {
        tags_any: vec!["t".into(); 101],
        ..Default::default()
    };
    assert!(matches!(build(&many), Err(QueryError::TooLarge { .. })));
}

#[test]
fn caller_text_never_reaches_the_sql() {
    let q = SearchQuery {
        path_glob: Some("'; DROP TABLE files; --".into()),
        owner: Some("x' OR '1'='1".into()),
        tags_all: vec!["a'b".into()],
        ..Default::default()
    };
    let b = build(&q).unwrap();
    assert!(
        !b.cond.contains("DROP") && !b.cond.contains("'1'"),
        "{}",
        b.cond
    );
}

/// Builds a 100,000-file catalog and runs filtered searches: each finds rows. Times are
/// printed (run with `--nocapture`), not asserted beyond a 20 s bound against a
/// pathological plan: performance belongs to the benchmarks (house rule).
#[test]
fn search_over_100k_files_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = catalog::open_writer(&catalog::catalog_path(dir.path())).unwrap();
    let started = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut file = tx
            .prepare(
                "INSERT INTO files(id, path, owner, mime, size, current_version, status, created_ns, updated_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?7)",
            )
            .unwrap();
        let mut version = tx
            .prepare("INSERT INTO versions(file_id, version, sha256, size, mtime_ns, cataloged_ns, path) VALUES (?1, 1, ?2, ?3, 0, 0, ?4)")
            .unwrap();
        let mut tag = tx
            .prepare("INSERT INTO tags(file_id, tag) VALUES (?1, ?2)")
            .unwrap();
        let mimes = ["application/pdf", "image/png", "text/plain", "image/jpeg"];
        let exts = ["pdf", "png", "txt", "jpg"];
        for i in 0..100_000i64 {
            let owner = format!("svc{:02}", i % 40);
            let path = format!(
                "{owner}/project{}/run{}/file{i:06}.{}",
                i % 97,
                i % 13,
                exts[(i % 4) as usize]
            );
            let status = if i % 10 == 0 { "deleted" } else { "active" };
            file.execute(params![
                i + 1,
                path,
                owner,
                mimes[(i % 4) as usize],
                i * 37 % 1_000_000,
                status,
                i * 1_000_000
            ])
            .unwrap();
            version
                .execute(params![
                    i + 1,
                    format!("{:064x}", i % 90_000),
                    i * 37 % 1_000_000,
                    path
                ])
                .unwrap();
            if i % 7 == 0 {
                tag.execute(params![i + 1, "seven"]).unwrap();
            }
            if i % 3 == 0 {
                tag.execute(params![i + 1, "three"]).unwrap();
            }
        }
    }
    // New paths enter the substring index with the watcher's insert (catalog::ops), not
    // a trigger: index these in one go.
    tx.execute("INSERT INTO files_fts(files_fts) VALUES ('rebuild')", [])
        .unwrap();
    tx.commit().unwrap();
    eprintln!("built 100,000 files in {:.2?}", started.elapsed());
    let reader = catalog::open_reader(&catalog::catalog_path(dir.path())).unwrap();
    let cases: Vec<(&str, SearchQuery)> = vec![
        ("all active, by path, first page", SearchQuery::default()),
        (
            "all active, page at offset 80,000",
            SearchQuery {
                offset: 80_000,
                ..Default::default()
            },
        ),
        (
            "substring 'file0123' (trigram)",
            SearchQuery {
                path_contains: Some("file0123".into()),
                ..Default::default()
            },
        ),
        (
            "substring 'n1' (2 chars, scan)",
            SearchQuery {
                path_contains: Some("n1".into()),
                ..Default::default()
            },
        ),
        (
            "glob 'svc07/project5/*'",
            SearchQuery {
                path_glob: Some("svc07/project5/*".into()),
                ..Default::default()
            },
        ),
        (
            "owner svc13, by size desc",
            SearchQuery {
                owner: Some("svc13".into()),
                sort: SortKey::Size,
                order: SortOrder::Desc,
                ..Default::default()
            },
        ),
        (
            "tags all seven+three",
            SearchQuery {
                tags_all: vec!["seven".into(), "three".into()],
                ..Default::default()
            },
        ),
        (
            "mime image/*, updated desc, limit 1000",
            SearchQuery {
                mime: Some("image/*".into()),
                sort: SortKey::Updated,
                order: SortOrder::Desc,
                limit: Some(1000),
                ..Default::default()
            },
        ),
        (
            "extension pdf + size range",
            SearchQuery {
                extension: Some("pdf".into()),
                min_size: Some(1000),
                max_size: Some(50_000),
                ..Default::default()
            },
        ),
        (
            "checksum",
            SearchQuery {
                sha256: Some(format!("{:064x}", 4242)),
                ..Default::default()
            },
        ),
        (
            "created range, deleted",
            SearchQuery {
                created_after: Some(10_000_000_000),
                created_before: Some(20_000_000_000),
                statuses: vec![FileStatus::Deleted],
                ..Default::default()
            },
        ),
    ];
    for (name, q) in cases {
        let b = build(&q).unwrap();
        run(&reader, &b).unwrap(); // warm the statement cache and pages
        let t = Instant::now();
        let r = run(&reader, &b).unwrap();
        let took = t.elapsed();
        eprintln!(
            "search [{name}]: total {} page {} in {:.2?}",
            r.total,
            r.files.len(),
            took
        );
        assert!(r.total > 0, "{name}");
        // Performance is measured by the benchmarks; this bound only catches a search
        // gone pathological (a full scan per row), never a slow, loaded machine.
        assert!(took.as_secs_f64() < 20.0, "{name} took {took:?}");
    }
}
