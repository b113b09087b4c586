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

/// The page of an id-set search (tags, collection) is the same whether it is found by
/// walking the sort key's index or by reading every match's row, for every sort key, both
/// orders, several offsets, and a set clustered where the walk cannot reach it.
#[test]
fn a_walked_page_equals_the_sorted_matches() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = catalog::open_writer(&catalog::catalog_path(dir.path())).unwrap();
    let n = 3000i64;
    // (path, size, created, status, tags) of each file, to compute the answers here.
    let mut rows = Vec::new();
    let tx = conn.transaction().unwrap();
    for i in 0..n {
        // Paths are a permutation of the ids; sizes and times repeat (ties break by path).
        let path = format!("p{:05}", (i * 7919) % n);
        let status = match i {
            _ if i % 11 == 0 => "deleted",
            _ if i % 13 == 0 => "archived",
            _ => "active",
        };
        let mut tags = Vec::new();
        if i % 3 == 0 {
            tags.push("dense");
        }
        if path.as_str() >= "p01500" {
            tags.push("back");
        }
        let (size, created) = ((i * 37) % 500, i % 100);
        tx.execute(
            "INSERT INTO files(id, path, owner, size, status, created_ns, updated_ns) VALUES (?1, ?2, 'o', ?3, ?4, ?5, ?5)",
            params![i + 1, path, size, status, created],
        )
        .unwrap();
        for t in &tags {
            tx.execute(
                "INSERT INTO tags(file_id, tag) VALUES (?1, ?2)",
                params![i + 1, t],
            )
            .unwrap();
        }
        rows.push((path, size, created, status, tags));
    }
    tx.execute(
        "INSERT INTO collections(id, name, created_ns) VALUES (1, 'c', 0)",
        [],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO collection_members(collection_id, file_id, added_ns) SELECT 1, file_id, 0 FROM tags WHERE tag = 'dense'",
        [],
    )
    .unwrap();
    tx.commit().unwrap();
    let mut walked = 0;
    for (set, tags_any, collection) in [
        ("dense", vec!["dense"], None),
        ("back", vec!["back"], None),
        ("dense or back", vec!["dense", "back"], None),
        ("collection", vec![], Some("c")),
    ] {
        for sort in [SortKey::Path, SortKey::Size, SortKey::Created] {
            for order in [SortOrder::Asc, SortOrder::Desc] {
                for offset in [0, 7, 600] {
                    let q = SearchQuery {
                        tags_any: tags_any.iter().map(|t| t.to_string()).collect(),
                        collection: collection.map(String::from),
                        sort,
                        order,
                        offset,
                        limit: Some(20),
                        ..Default::default()
                    };
                    let mut want: Vec<_> = rows
                        .iter()
                        .filter(|r| r.3 == "active")
                        .filter(|r| match collection {
                            Some(_) => r.4.contains(&"dense"),
                            None => tags_any.iter().any(|t| r.4.contains(t)),
                        })
                        .collect();
                    want.sort_by(|a, b| {
                        let key = match sort {
                            SortKey::Size => a.1.cmp(&b.1),
                            SortKey::Created => a.2.cmp(&b.2),
                            _ => std::cmp::Ordering::Equal,
                        };
                        key.then_with(|| a.0.cmp(&b.0))
                    });
                    if order == SortOrder::Desc {
                        want.reverse();
                    }
                    let want_page: Vec<&str> = want
                        .iter()
                        .skip(offset as usize)
                        .take(20)
                        .map(|r| r.0.as_str())
                        .collect();
                    let b = build(&q).unwrap();
                    let r = run(&conn, &b).unwrap();
                    let got: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
                    assert_eq!(r.total, want.len() as u64, "{set} {q:?}");
                    assert_eq!(got, want_page, "{set} {q:?}");
                    if super::page::walk(&conn, &b, r.total).unwrap().is_some() {
                        walked += 1;
                    }
                }
            }
        }
    }
    // Both plans ran: the walk answered most pages; "back" by path ascending (its matches
    // all sort late, past the walk's bound) fell back to reading rows.
    assert!(walked > 0 && walked < 72, "walked {walked} of 72");
}

/// A search by one tag counts from the tags index; the status test takes one of two forms
/// by how many inactive files there are (few: a list of them; many: a probe per member).
/// Both are exact.
#[test]
fn a_tag_count_is_exact_with_few_or_many_inactive_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = catalog::open_writer(&catalog::catalog_path(dir.path())).unwrap();
    let count = |conn: &Connection, tags_any: &[&str]| {
        let q = SearchQuery {
            tags_any: tags_any.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        run(conn, &build(&q).unwrap()).unwrap().total
    };
    let add = |conn: &mut Connection, from: i64, to: i64, status: &str| {
        let tx = conn.transaction().unwrap();
        for i in from..to {
            tx.execute(
                "INSERT INTO files(id, path, owner, status, created_ns, updated_ns) VALUES (?1, ?2, 'o', ?3, 0, 0)",
                params![i, format!("f{i:06}"), status],
            )
            .unwrap();
            let tag = if i % 2 == 0 { "even" } else { "odd" };
            for t in [tag, "all"] {
                tx.execute(
                    "INSERT INTO tags(file_id, tag) VALUES (?1, ?2)",
                    params![i, t],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    };
    add(&mut conn, 0, 100, "active");
    // Statistics that saw only active files (here: as ANALYZE finds them on 1,000,000)
    // must not turn the inactive probe into a scan of the status index.
    conn.execute_batch(
        "ANALYZE; UPDATE sqlite_stat1 SET stat = '1000000 1000000' WHERE idx = 'files_status';
         ANALYZE sqlite_schema;",
    )
    .unwrap();
    let mut st = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            super::page::COUNT_INACTIVE
        ))
        .unwrap();
    let plan: Vec<String> = st
        .query_map([10], |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.contains(&"SEARCH files USING COVERING INDEX files_status (status=?)".into()),
        "{plan:?}"
    );
    drop(st);
    add(&mut conn, 100, 110, "archived");
    assert_eq!(count(&conn, &["even"]), 50);
    assert_eq!(count(&conn, &["even", "odd", "all"]), 100);
    add(&mut conn, 110, 10_200, "deleted");
    add(&mut conn, 10_200, 10_300, "active");
    assert_eq!(count(&conn, &["even"]), 100);
    assert_eq!(count(&conn, &["all", "odd"]), 200);
    assert_eq!(count(&conn, &["none"]), 0);
}

/// A file whose content was SHA_A, then SHA_B, then SHA_A again, and one that held SHA_B
/// only before its current SHA_A: by default a checksum finds every file that ever held it
/// with the matching versions; `ContentMatch::Current` only those holding it now.
#[test]
fn sha256_matches_any_version_by_default_and_the_current_one_on_request() {
    use horace_client::ContentMatch;
    let f = fixture();
    let add_version = |path: &str, v: i64, sha: &str| {
        let id: i64 = f
            .conn
            .query_row("SELECT id FROM files WHERE path = ?1", [path], |r| r.get(0))
            .unwrap();
        f.conn
            .execute(
                "INSERT INTO versions(file_id, version, sha256, size, mtime_ns, cataloged_ns, path) VALUES (?1, ?2, ?3, 1, ?2, ?2, ?4)",
                params![id, v, sha, path],
            )
            .unwrap();
        f.conn
            .execute(
                "UPDATE files SET current_version = ?2 WHERE id = ?1",
                params![id, v],
            )
            .unwrap();
    };
    // alpha/report.pdf: v1 A, v2 B, v3 A. top.png: v1 B, v2 A.
    add_version("alpha/report.pdf", 2, SHA_B);
    add_version("alpha/report.pdf", 3, SHA_A);
    add_version("top.png", 2, SHA_A);
    let search = |sha: &str, m: ContentMatch| {
        let q = SearchQuery {
            sha256: Some(sha.into()),
            sha256_match: m,
            ..Default::default()
        };
        let r = run(&f.conn, &build(&q).unwrap()).unwrap();
        assert_eq!(r.total, r.files.len() as u64);
        r.files
            .into_iter()
            .map(|f| {
                let vs: Vec<i64> = f.matched_versions.iter().map(|v| v.version).collect();
                assert!(f
                    .matched_versions
                    .iter()
                    .all(|v| v.sha256.as_deref() == Some(sha)));
                (f.path, vs)
            })
            .collect::<Vec<_>>()
    };
    let pv = |p: &str, v: &[i64]| (p.to_string(), v.to_vec());
    assert_eq!(
        search(SHA_B, ContentMatch::AnyVersion),
        [
            pv("alpha/photo.JPG", &[1]),
            pv("alpha/report.pdf", &[2]),
            pv("top.png", &[1])
        ],
        "an old version's checksum finds the file (active files only by default)"
    );
    assert_eq!(
        search(SHA_B, ContentMatch::Current),
        [pv("alpha/photo.JPG", &[1])]
    );
    assert_eq!(
        search(SHA_A, ContentMatch::Current),
        [
            pv("alpha/report.pdf", &[1, 3]),
            pv("beta/notes.txt", &[1]),
            pv("top.png", &[2])
        ],
        "the current content's every version is listed"
    );
    assert_eq!(
        SearchQuery::default().sha256_match,
        ContentMatch::AnyVersion
    );
    // Without a checksum no versions are listed.
    let r = run(&f.conn, &build(&SearchQuery::default()).unwrap()).unwrap();
    assert!(r.files.iter().all(|f| f.matched_versions.is_empty()));
}

#[test]
fn hidden_directories_leave_the_count_and_the_page() {
    use super::{leave_out, Hidden};
    let f = fixture();
    let run_hidden = |q: SearchQuery, h: Hidden| {
        let mut b = build(&q).unwrap();
        leave_out(&mut b, &h);
        let r = run(&f.conn, &b).unwrap();
        (
            r.total,
            r.files.into_iter().map(|f| f.path).collect::<Vec<_>>(),
        )
    };
    let q = SearchQuery::default;
    assert_eq!(
        run_hidden(q(), Hidden::Under(vec!["alpha".into()])),
        (2, vec!["beta/notes.txt".to_string(), "top.png".to_string()])
    );
    // A range, not a prefix of names: "alph" hides nothing of "alpha/".
    assert_eq!(run_hidden(q(), Hidden::Under(vec!["alph".into()])).0, 4);
    assert_eq!(run_hidden(q(), Hidden::All), (0, vec![]));
    // An id-set filter (tag) alone: its count shortcut must not bypass the ranges.
    let red = SearchQuery {
        tags_any: vec!["red".into()],
        ..Default::default()
    };
    assert_eq!(run_hidden(red.clone(), Hidden::Under(vec![])).0, 2);
    assert_eq!(
        run_hidden(red, Hidden::Under(vec!["alpha".into()])),
        (0, vec![])
    );
    // A search of one owner tests only that owner's hidden directories.
    let owner = |o: &str| SearchQuery {
        owner: Some(o.into()),
        ..Default::default()
    };
    let mut b = build(&owner("beta")).unwrap();
    let plain = b.clone();
    leave_out(
        &mut b,
        &Hidden::Under(vec!["alpha".into(), "alpha/x".into()]),
    );
    assert_eq!(b, plain, "no range of another owner");
    assert_eq!(
        run_hidden(owner("beta"), Hidden::Under(vec!["alpha".into()])).0,
        1
    );
    assert_eq!(
        run_hidden(owner("alpha"), Hidden::Under(vec!["alpha".into()])),
        (0, vec![])
    );
    let (n, _) = run_hidden(owner("alpha"), Hidden::Under(vec![]));
    let (m, _) = run_hidden(owner("alpha"), Hidden::Under(vec!["alpha/sub".into()]));
    assert_eq!(
        n, m,
        "a range beneath the owner stays (nothing there in the fixture)"
    );
}
