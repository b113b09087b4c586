//! Figures 5 and 7 (and a restart at that scale): a catalog of `rows` files in `dirs`
//! directories built directly with rusqlite on the watcher's own schema, over a real tree
//! of sparse files whose size, mtime, ctime and inode the rows record — so the watcher can
//! be started on it and finds nothing to hash or delete.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use horace_client::{SearchQuery, StatusReport};
use horace_watcher::catalog::{open_reader, open_writer};
use horace_watcher::query::{search, sight};
use horace_watcher::watch::WatchedDir;
use rusqlite::{params, Connection};

use crate::daemon::{memory_kib, mib, Catalog, Watcher};
use crate::data::{percentile, Rng};
use crate::fig_catalog::restart_figure;
use crate::report::{count, ms, Figure};
use crate::Params;

/// Owners (first path components) in the big catalog.
pub const OWNERS: u64 = 100;
/// Distinct tags; every tenth file has one.
const TAGS: u64 = 20;
/// The catalog's time span: one year of created/updated times.
const YEAR_NS: i64 = 365 * 86_400 * 1_000_000_000;
const T0_NS: i64 = 1_700_000_000 * 1_000_000_000;

struct Entry {
    path: String,
    size: i64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: i64,
}

/// Creates `rows` sparse files under `root` as `u<owner>/d<dir>/f<i>.dat`, returning
/// their fingerprints.
fn make_sparse_tree(root: &Path, rows: u64, dirs: u64) -> std::io::Result<Vec<Entry>> {
    let per_dir = rows.div_ceil(dirs);
    let parts: Vec<std::io::Result<Vec<Entry>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2u64)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = Rng::new(t + 100);
                    let mut out = Vec::new();
                    for d in (t..dirs).step_by(2) {
                        let rel_dir = format!("u{:02}/d{d:05}", d % OWNERS);
                        let dir = root.join(&rel_dir);
                        fs::create_dir_all(&dir)?;
                        for i in 0..per_dir.min(rows.saturating_sub(d * per_dir)) {
                            let name = format!("f{:07}.dat", d * per_dir + i);
                            let path = dir.join(&name);
                            let f = fs::File::create(&path)?;
                            f.set_len(512 + rng.below(65536 - 512))?;
                            let md = f.metadata()?;
                            out.push(Entry {
                                path: format!("{rel_dir}/{name}"),
                                size: md.size() as i64,
                                mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                                ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
                                inode: md.ino() as i64,
                            });
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("tree thread"))
            .collect()
    });
    let mut all = Vec::new();
    for p in parts {
        all.extend(p?);
    }
    Ok(all)
}

/// Inserts the rows (files, one version each, a tag on every tenth) in one transaction.
fn fill_catalog(conn: &mut Connection, entries: &[Entry]) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA synchronous=OFF")?;
    let tx = conn.transaction()?;
    {
        let mut file = tx.prepare(
            "INSERT INTO files (id, path, owner, mime, size, mtime_ns, ctime_ns, inode, \
             current_version, status, created_ns, updated_ns) \
             VALUES (?1, ?2, ?3, 'application/octet-stream', ?4, ?5, ?6, ?7, 1, 'active', ?8, ?9)",
        )?;
        let mut version = tx.prepare(
            "INSERT INTO versions (file_id, version, sha256, size, mtime_ns, cataloged_ns, path, \
             content_stored) VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, 0)",
        )?;
        let mut tag = tx.prepare("INSERT INTO tags (file_id, tag) VALUES (?1, ?2)")?;
        let mut rng = Rng::new(5);
        for (i, e) in entries.iter().enumerate() {
            let id = i as i64 + 1;
            let owner = e.path.split('/').next().unwrap_or_default();
            let created = T0_NS + (rng.below(YEAR_NS as u64) as i64);
            let updated = created + rng.below(86_400_000_000_000) as i64;
            file.execute(params![
                id, e.path, owner, e.size, e.mtime_ns, e.ctime_ns, e.inode, created, updated
            ])?;
            version.execute(params![
                id,
                format!("{:064x}", id),
                e.size,
                e.mtime_ns,
                updated,
                e.path
            ])?;
            if id % 10 == 0 {
                tag.execute(params![id, format!("t{:02}", (id / 10) as u64 % TAGS)])?;
            }
        }
    }
    // The watcher's insert adds each new path to the substring index (catalog::ops);
    // here it is built in one go.
    tx.execute("INSERT INTO files_fts(files_fts) VALUES ('rebuild')", [])?;
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}

/// A tree of `rows` sparse files in `dirs` directories under `root` and its catalog in
/// `meta`, as figure 5 builds them: for the figures that need a catalog of some size.
pub fn build_catalog(root: &Path, meta: &Path, rows: u64, dirs: u64) -> anyhow::Result<()> {
    let entries = make_sparse_tree(root, rows, dirs)?;
    fs::create_dir_all(meta)?;
    let mut conn = open_writer(&horace_watcher::catalog::catalog_path(meta))?;
    fill_catalog(&mut conn, &entries)?;
    Ok(())
}

/// The parameters of a baseline scan for one search.
type ScanParams = Box<dyn Fn(&SearchQuery) -> Vec<rusqlite::types::Value>>;

/// One search kind: how Horace asks it, and the full-scan baseline SQL with its parameters.
struct Kind {
    name: &'static str,
    target_ms: u64,
    query: Box<dyn Fn(&mut Rng) -> SearchQuery>,
    scan: &'static str,
    scan_params: ScanParams,
}

fn kinds(dirs: u64) -> Vec<Kind> {
    use rusqlite::types::Value as V;
    let q = SearchQuery::default;
    vec![
        Kind {
            name: "owner",
            target_ms: 20,
            query: Box::new(move |r| SearchQuery {
                owner: Some(format!("u{:02}", r.below(OWNERS))),
                ..q()
            }),
            scan: "SELECT count(*) FROM files WHERE +owner = ?1 AND status = 'active'",
            scan_params: Box::new(|s| vec![V::Text(s.owner.clone().unwrap_or_default())]),
        },
        Kind {
            name: "tag",
            target_ms: 20,
            query: Box::new(move |r| SearchQuery {
                tags_any: vec![format!("t{:02}", r.below(TAGS))],
                ..q()
            }),
            scan: "SELECT count(*) FROM tags WHERE +tag = ?1",
            scan_params: Box::new(|s| vec![V::Text(s.tags_any[0].clone())]),
        },
        Kind {
            name: "size range",
            target_ms: 20,
            query: Box::new(move |r| {
                let lo = 512 + r.below(60_000);
                SearchQuery {
                    min_size: Some(lo),
                    max_size: Some(lo + 1000),
                    ..q()
                }
            }),
            scan: "SELECT count(*) FROM files WHERE +size BETWEEN ?1 AND ?2",
            scan_params: Box::new(|s| {
                vec![
                    V::Integer(s.min_size.unwrap_or(0) as i64),
                    V::Integer(s.max_size.unwrap_or(0) as i64),
                ]
            }),
        },
        Kind {
            name: "date range",
            target_ms: 20,
            query: Box::new(move |r| {
                let from = T0_NS + r.below(YEAR_NS as u64 - 86_400_000_000_000) as i64;
                SearchQuery {
                    created_after: Some(from),
                    created_before: Some(from + 86_400_000_000_000),
                    ..q()
                }
            }),
            scan: "SELECT count(*) FROM files WHERE +created_ns >= ?1 AND +created_ns < ?2",
            scan_params: Box::new(|s| {
                vec![
                    V::Integer(s.created_after.unwrap_or(0)),
                    V::Integer(s.created_before.unwrap_or(0)),
                ]
            }),
        },
        Kind {
            name: "path substring",
            target_ms: 50,
            query: Box::new(move |r| SearchQuery {
                path_contains: Some(format!("d{:05}/f", r.below(dirs))),
                ..q()
            }),
            scan: "SELECT count(*) FROM files WHERE instr(lower(path), lower(?1)) > 0",
            scan_params: Box::new(|s| vec![V::Text(s.path_contains.clone().unwrap_or_default())]),
        },
    ]
}

/// One pass of figure 5's searches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// On the catalog as filled, by a caller that sees everything.
    Fresh,
    /// After `ANALYZE`.
    Analyzed,
    /// As another uid, with visibility on: some owners' directories closed to it.
    OtherUid,
}

/// The uid figure 5's [`Pass::OtherUid`] searches as (owns nothing in the tree).
const OTHER_UID: u32 = 4242;
/// Every this many owners' directories are made 0700 for [`Pass::OtherUid`].
const CLOSED_OWNER_EVERY: u64 = 10;

/// The directories the watcher would watch on the big tree, with the owners and modes its
/// watch map would hold (examined once, after the modes are set).
fn big_tree_dirs(root: &Path, dirs: u64) -> Vec<WatchedDir> {
    let owners = (0..OWNERS).map(|o| PathBuf::from(format!("u{o:02}")));
    let leaves = (0..dirs).map(|d| PathBuf::from(format!("u{:02}/d{d:05}", d % OWNERS)));
    std::iter::once(PathBuf::new())
        .chain(owners)
        .chain(leaves)
        .map(|rel| WatchedDir::examine(root, &rel))
        .collect()
}

fn other_viewer() -> sight::Viewer {
    sight::Viewer {
        uid: Some(OTHER_UID),
        gids: vec![OTHER_UID],
    }
}

/// p50 of finding the hidden directories anew from the watched directories' modes.
fn time_hidden_refresh(root: &Path, dirs: &[WatchedDir]) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            sight::Seer::new(root, other_viewer()).hidden_dirs(dirs.to_vec());
            t.elapsed()
        })
        .collect();
    percentile(&mut times, 50.0)
}

fn time_search(
    conn: &Connection,
    q: &SearchQuery,
    as_other: Option<(&Path, &[WatchedDir])>,
    generation: u64,
) -> anyhow::Result<(Duration, u64)> {
    let t0 = Instant::now();
    let built = search::build(q).map_err(|e| anyhow::anyhow!("{e}"))?;
    let res = match as_other {
        None => search::run(conn, &built),
        Some((root, dirs)) => {
            // As the query service does: the hidden directories reused per uid while the
            // watched directories are unchanged, and for sight::HIDDEN_FOR once they
            // change; here they count as changed before every search (a busy tree), so
            // the first search of each second finds them anew.
            let mut seer = sight::Seer::new(root, other_viewer());
            let hidden = sight::hidden_for(&mut seer, generation, || (generation, dirs.to_vec()));
            sight::search(conn, built, &hidden, &mut seer)
        }
    }
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((t0.elapsed(), res.total))
}

fn search_figures(
    p: &Params,
    db: &Path,
    root: &Path,
    pass: Pass,
    fill: Duration,
    figs: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let conn = open_reader(db)?;
    let suffix = match pass {
        Pass::Fresh => "",
        Pass::Analyzed => " (after ANALYZE)",
        Pass::OtherUid => " (as another uid, visibility on)",
    };
    let dirs = match pass {
        Pass::OtherUid => big_tree_dirs(root, p.dirs),
        Pass::Fresh | Pass::Analyzed => Vec::new(),
    };
    let as_other = (pass == Pass::OtherUid).then_some((root, &dirs[..]));
    let refresh = as_other.map(|(root, dirs)| time_hidden_refresh(root, dirs));
    for k in kinds(p.dirs) {
        eprintln!("bench: 5. search by {}{suffix}", k.name);
        let mut rng = Rng::new(42);
        let (mut times, mut hits) = (Vec::new(), 0u64);
        for i in 0..p.searches {
            let (t, n) = time_search(&conn, &(k.query)(&mut rng), as_other, i as u64)?;
            times.push(t);
            hits += n;
        }
        let mut scans = Vec::new();
        let mut scan = conn.prepare(k.scan)?;
        for _ in 0..5 {
            let sq = (k.query)(&mut rng);
            let t0 = Instant::now();
            let _: i64 = scan.query_row(rusqlite::params_from_iter((k.scan_params)(&sq)), |r| {
                r.get(0)
            })?;
            scans.push(t0.elapsed());
        }
        let (p50, p99) = (percentile(&mut times, 50.0), percentile(&mut times, 99.0));
        let s50 = percentile(&mut scans, 50.0);
        let mut f = Figure::new(
            &format!("5. Search: {}{suffix}", k.name),
            &format!("p99 ≤ {} ms on 1,000,000 files", k.target_ms),
        );
        f.value = format!("p50 {}, p99 {} ({} rows)", ms(p50), ms(p99), count(p.rows));
        f.baseline = format!("full scan without the index: p50 {}", ms(s50));
        f.ratio = format!(
            "{:.1}x faster than the scan",
            s50.as_secs_f64() / p50.as_secs_f64()
        );
        f.pass = (p.rows >= 1_000_000).then(|| p99 <= Duration::from_millis(k.target_ms));
        f.note(format!(
            "{} searches through the watcher's own query code (horace_watcher::query::search \
             build + run: count of all matches, then one page of 50 sorted by path, with tags) \
             on a read-only connection; mean {} matches per search. Baseline: `{}` (unary + \
             disables the index), 5 runs.",
            p.searches,
            count(hits / p.searches.max(1) as u64),
            k.scan
        ));
        match pass {
            Pass::Analyzed => f.note(
                "Same searches after `ANALYZE` (sqlite_stat1) on the catalog, which the \
                 watcher does not run: the plans must not depend on planner statistics.",
            ),
            Pass::OtherUid => f.note(format!(
                "Same searches as uid {OTHER_UID} through query::sight (issue 12 item 9): \
                 {} of {OWNERS} owners' directories are 0700 (their files leave the count \
                 by one path range each, unless the search names an owner) and every file \
                 of the page is checked on disk (its directory and its mode). The hidden \
                 directories come from the modes the watch map holds ({} directories; \
                 found anew in p50 {}, in memory) and are reused per uid while the watched \
                 directories are unchanged, else for 1 s; here they count as changed \
                 before every search, so the first search of a uid in each second pays \
                 the refresh.",
                OWNERS / CLOSED_OWNER_EVERY,
                count(dirs.len() as u64),
                ms(refresh.unwrap_or_default())
            )),
            Pass::Fresh => f.note(format!(
                "The catalog was filled in {:.1} s (one transaction: {} files with a version \
                 each, a tag on every tenth, the substring index rebuilt), on the watcher's \
                 schema and indexes.",
                fill.as_secs_f64(),
                count(p.rows)
            )),
        }
        figs.push(f);
    }
    Ok(())
}

/// Builds the big catalog and its tree, runs figure 5, then starts the watcher on it for
/// figure 7 (and a restart figure at that scale).
pub async fn run(p: &Params, work: &Path, figs: &mut Vec<Figure>) -> anyhow::Result<()> {
    let root = work.join("big-files");
    let meta = work.join("big-meta");
    eprintln!(
        "bench: 5. creating {} sparse files in {} directories",
        p.rows, p.dirs
    );
    let t0 = Instant::now();
    let entries = make_sparse_tree(&root, p.rows, p.dirs)?;
    let made = t0.elapsed();
    fs::create_dir_all(&meta)?;
    let db: PathBuf = horace_watcher::catalog::catalog_path(&meta);
    let t1 = Instant::now();
    let mut conn = open_writer(&db)?;
    let t2 = Instant::now();
    fill_catalog(&mut conn, &entries)?;
    let fill = t2.elapsed();
    drop(conn);
    let n = entries.len() as u64;
    drop(entries);
    eprintln!(
        "bench: tree in {:.1} s, catalog in {:.1} s (fill_catalog {:.1} s)",
        made.as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        fill.as_secs_f64()
    );
    search_figures(p, &db, &root, Pass::Fresh, fill, figs)?;
    // The watcher never runs ANALYZE; show what planner statistics change.
    let t = Instant::now();
    open_writer(&db)?.execute_batch("ANALYZE")?;
    eprintln!("bench: ANALYZE in {:.1} s", t.elapsed().as_secs_f64());
    search_figures(p, &db, &root, Pass::Analyzed, fill, figs)?;
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |o: u64, m: u32| {
            fs::set_permissions(root.join(format!("u{o:02}")), fs::Permissions::from_mode(m))
        };
        for o in (0..OWNERS).step_by(CLOSED_OWNER_EVERY as usize) {
            mode(o, 0o700)?;
        }
        search_figures(p, &db, &root, Pass::OtherUid, fill, figs)?;
        for o in (0..OWNERS).step_by(CLOSED_OWNER_EVERY as usize) {
            mode(o, 0o755)?;
        }
    }

    eprintln!("bench: 7. watcher memory (empty tree first)");
    let empty = work.join("empty-files");
    fs::create_dir_all(&empty)?;
    let mut w = Watcher::start(&empty, &work.join("empty-meta"), Catalog::New)?;
    w.wait_ready(Duration::from_millis(20), Duration::from_secs(60))
        .await?;
    let (_, empty_rss) = memory_kib(w.pid())?;
    w.stop()?;

    let stat_walk = crate::baseline::find_stat_walk(&root)?;
    let mut w = Watcher::start(&root, &meta, Catalog::Kept)?;
    let (st, wall): (StatusReport, Duration) = w
        .wait_ready(Duration::from_millis(100), Duration::from_secs(3600))
        .await?;
    let mut f = restart_figure(
        &format!("2b. Restart, {} files", count(n)),
        n,
        &st,
        wall,
        stat_walk,
    );
    f.note("The big catalog below, over its sparse-file tree: the watcher's startup scan at that scale.");
    figs.push(f);
    let client = w.client(Duration::from_secs(60)).await?;
    // A few searches through the socket, so memory includes the query path's caches.
    let mut over_socket = Vec::new();
    let mut rng = Rng::new(9);
    for _ in 0..p.searches.min(100) {
        let q = SearchQuery {
            owner: Some(format!("u{:02}", rng.below(OWNERS))),
            ..Default::default()
        };
        let t = Instant::now();
        client.search(q).await?;
        over_socket.push(t.elapsed());
    }
    let (hwm, rss) = memory_kib(w.pid())?;
    let st = client.status().await?;
    let mut f = Figure::new(
        "7. Watcher memory",
        "RSS ≤ 100 MiB with 1,000,000 files, 10,000 dirs watched",
    );
    f.value = format!("VmRSS {}, VmHWM (peak) {}", mib(rss), mib(hwm));
    f.baseline = format!(
        "the same watcher on an empty tree: VmRSS {}",
        mib(empty_rss)
    );
    f.ratio = format!(
        "{:.1}x the empty watcher",
        rss as f64 / empty_rss.max(1) as f64
    );
    f.pass = (p.rows >= 1_000_000).then_some(rss <= 100 * 1024);
    f.note(format!(
        "{} active files cataloged, {} directories watched ({} watch failures), measured from \
         /proc/<pid>/status after the startup scan and {} owner searches over the socket \
         (p50 {}, p99 {} through tarpc). VmHWM includes the startup scan's peak, when the scan \
         holds every catalog row in memory to compare fingerprints.",
        count(st.files_active),
        count(p.dirs + p.dirs.min(OWNERS) + 1),
        st.watch_failures,
        over_socket.len(),
        ms(percentile(&mut over_socket, 50.0)),
        ms(percentile(&mut over_socket, 99.0))
    ));
    figs.push(f);
    w.stop()?;
    Ok(())
}
